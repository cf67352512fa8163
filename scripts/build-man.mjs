// Writes dist/man/zferry.1 from the built command tree's help text (npm run
// build, and so prepack): the man page npm installs with the package.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { buildProgram } = await import(join(root, 'dist/src/cli/program.js'));
const { manPage } = await import(join(root, 'dist/src/cli/manpage.js'));
const { ZFERRY_VERSION } = await import(join(root, 'dist/src/version.js'));
// SOURCE_DATE_EPOCH, when set, makes the page reproducible (the date is its only varying line).
const date = process.env.SOURCE_DATE_EPOCH
  ? new Date(Number(process.env.SOURCE_DATE_EPOCH) * 1000).toISOString().slice(0, 10)
  : new Date().toISOString().slice(0, 10);
const out = join(root, 'dist/man/zferry.1');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, manPage(buildProgram(), ZFERRY_VERSION, date));
