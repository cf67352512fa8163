#!/usr/bin/env node
// Part of `npm run build` (after tsc and build-schemas): the CLI users run,
// bundled by esbuild into dist/cli/ from tsc's output in dist/src/.
//
// Why: Node resolves, reads and compiles an ES module file at a time. A
// command loaded about 290 of them (105 of execa's alone), 0.25–0.3 s before
// its first zfs call; bundled, it loads a handful. Measured on an import,
// exec to first `zfs` process: 0.67–0.69 s → 0.37–0.46 s (docs/performance.md).
//
// What stays outside the bundle, resolved from node_modules as before:
// zstd-napi (a native addon), and the AWS SDK and age-encryption, which only a
// bucket or an encrypted bundle loads. Each command's code stays its own chunk
// (the CLI imports commands on demand), and the sha256 worker is an entry of
// its own beside the chunks, where `new URL('./sha256-worker.js',
// import.meta.url)` finds it. The schemas' standalone validators
// (build-schemas.mjs) are copied beside them for the same reason.
import { build } from 'esbuild';
import { copyFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'dist', 'cli');

rmSync(OUT, { recursive: true, force: true });
await build({
  absWorkingDir: ROOT,
  entryPoints: ['dist/src/cli/main.js', 'dist/src/hash/sha256-worker.js'],
  outdir: OUT,
  entryNames: '[name]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['zstd-napi', '@aws-sdk/*', 'age-encryption'],
  // CommonJS packages in the bundle (cli-progress, ajv's runtime) call require(); an ES module has none.
  banner: { js: "import { createRequire as __zferryRequire } from 'node:module'; const require = __zferryRequire(import.meta.url);" },
  logLevel: 'warning',
});
copyFileSync(join(ROOT, 'dist', 'src', 'schemas.precompiled.cjs'), join(OUT, 'schemas.precompiled.cjs'));
console.log(`cli: bundled into ${OUT}`);
