/**
 * import --trust passes over a bundle the key does not vouch for and applies
 * the others (src/commands/import.ts readManifests): a folder planted under
 * a shared disk or prefix, or a genuine bundle whose signature was damaged,
 * costs that bundle, never the whole import. It exits 3 naming each one;
 * what was planned on a passed-over bundle waits; --delete takes no view
 * from it. Without --trust the first bad bundle still stops the import.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { datasetList, guidList, snapshot, writeData } from '../helpers/fixtures.js';
import type { TestPool } from '../helpers/zfslab.js';

let src: TestPool;
let dst: TestPool;
let pools: TwoPools | undefined;
let work: string;
let key: string;
let disk: string;

before(async () => {
  ({ src, dst, work } = pools = await twoPools('tpo', 96));
  await writeData(src.name, 'one.bin', 16);
  await snapshot(`${src.name}@one`);
  key = path.join(work, 'source.key');
  await zferryOk('keygen', '-o', key);
  disk = path.join(work, 'disk');
});

after(async () => {
  await pools?.teardown();
});

const bundlesOn = async () => (await readdir(disk)).filter((n) => n.startsWith('zferry-')).sort();

test('with --trust, planted folders (junk, a genuine manifest without its signature) are passed over by name; the signed bundle is applied and the import exits 3', async () => {
  await zferryOk('export', src.name, disk, '--sign', key, '--no-journal');
  const [genuine] = await bundlesOn();
  const junk = path.join(disk, 'zferry-planted-junk');
  await mkdir(junk);
  await writeFile(path.join(junk, 'manifest.json'), '{"format": "zferry-bundle"');
  const unsigned = path.join(disk, 'zferry-planted-unsigned');
  await cp(path.join(disk, genuine!), unsigned, { recursive: true });
  await rm(path.join(unsigned, 'manifest.json.minisig'));
  const target = `${dst.name}/copy`;

  // Without --trust nothing vouches for any bundle: the first bad one stops the import, nothing is received.
  const plain = await zferry('import', disk, target);
  assert.equal(plain.code, 1, plain.stderr);
  assert.match(plain.stderr, /zferry-planted-junk\/manifest\.json/);
  assert.deepEqual(await datasetList(dst.name), [''], 'nothing received');

  const r = await zferry('import', disk, target, '--trust', `${key}.pub`, '--json');
  assert.equal(r.code, 3, r.stderr);
  const out = JSON.parse(r.stdout) as { passedOver: string[]; bundles: Array<{ bundle: string; status: string }>; warnings: string[] };
  assert.equal(out.passedOver.length, 2, out.passedOver.join('\n'));
  assert.ok(out.passedOver.some((l) => l.includes(`${junk}/manifest.json`)), out.passedOver.join('\n'));
  assert.ok(out.passedOver.some((l) => l.includes(`${unsigned}/manifest.json.minisig: missing`)), out.passedOver.join('\n'));
  assert.ok(out.warnings.every((w) => !w.includes('\n')) && out.warnings.filter((w) => w.endsWith('passed over')).length === 2, out.warnings.join(' | '));
  assert.deepEqual(out.bundles.map((b) => [path.basename(b.bundle), b.status]), [[genuine, 'applied']]);
  assert.deepEqual(await guidList(target), await guidList(src.name));

  // Every bundle refused: the import fails on the first, as before.
  const other = path.join(work, 'other.key');
  await zferryOk('keygen', '-o', other);
  const wrong = await zferry('import', disk, target, '--trust', `${other}.pub`);
  assert.equal(wrong.code, 1, wrong.stderr);
  assert.equal(wrong.stderr.trim().split('\n').length, 1, wrong.stderr);
  // verify is unchanged: it fails on what it cannot vouch for.
  assert.notEqual((await zferry('verify', disk, '--trust', `${key}.pub`)).code, 0);
  await rm(junk, { recursive: true });
  await rm(unsigned, { recursive: true });
});

test('a genuine bundle whose signature was damaged is passed over: nothing of it is received, --delete destroys nothing, and it applies once the signature is whole again', async () => {
  const target = `${dst.name}/copy`;
  await writeData(src.name, 'two.bin', 16);
  await snapshot(`${src.name}@two`);
  await zferryOk('export', src.name, disk, '--sign', key, '--no-journal');
  const newest = (await bundlesOn()).at(-1)!;
  const sig = path.join(disk, newest, 'manifest.json.minisig');
  const whole = await readFile(sig, 'utf8');
  const lines = whole.split('\n');
  // The signature line (second), one base64 character changed.
  lines[1] = (lines[1]!.startsWith('A') ? 'B' : 'A') + lines[1]!.slice(1);
  await writeFile(sig, lines.join('\n'));
  const before = await guidList(target);

  const r = await zferry('import', disk, target, '--trust', `${key}.pub`, '--delete');
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`${newest}/manifest\\.json\\.minisig: .*passed over`));
  assert.deepEqual(await guidList(target), before, 'nothing received, nothing destroyed');

  await writeFile(sig, whole);
  await zferryOk('import', disk, target, '--trust', `${key}.pub`, '--delete');
  assert.deepEqual(await guidList(target), await guidList(src.name));
});
