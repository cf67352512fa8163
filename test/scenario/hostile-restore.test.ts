/**
 * RESTORE.txt is covered like a volume (bundle format 2): a bundle whose
 * RESTORE.txt was replaced by other commands is refused by verify, verify
 * --trust and import, which receives nothing, and stock `sha256sum -c` fails
 * on it too. `export --bundle-format 1` still writes a bundle an older zferry
 * reads, which imports. A state file whose guid is 2^64 stops export before
 * it writes anything.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { fingerprint, guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let pools: TwoPools | undefined;
let dst: TestPool;
let work: string;
let key: string;
/** A signed bundle in the default format. */
let signed: string;

const EVIL = (marker: string) => `#!/bin/bash\n# Restoring zferry bundle (looks familiar)\ntouch ${marker}\n`;

before(async () => {
  ({ src, dst, work: work } = pools = await twoPools('hr', 64));
  await run('zfs', ['create', `${src.name}/docs`]);
  await writeData(src.name, 'one.bin', 32);
  await writeData(`${src.name}/docs`, 'two.bin', 16);
  await snapshot(`${src.name}@one`, true);
  key = path.join(work, 'key');
  await zferryOk('keygen', '-o', key);
  const r = await zferryOk('export', src.name, path.join(work, 'signed'), '--no-journal', '--sign', key, '--volume-size', '16K', '--json');
  signed = JSON.parse(r.stdout).bundle;
});

after(async () => {
  await pools?.teardown();
});

let copies = 0;
async function copyOf(bundle: string): Promise<string> {
  const dir = path.join(work, `case-${++copies}`, path.basename(bundle));
  await cp(bundle, dir, { recursive: true });
  return dir;
}

/** Every dataset and snapshot under the destination pool, by guid. */
const dstState = () => fingerprint(dst.name);

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one-line error expected, got: ${stderr}`);
  return lines[0];
}

test('export writes format 2: the manifest lists RESTORE.txt and stock sha256sum -c checks it', async () => {
  const m = JSON.parse(await readFile(path.join(signed, 'manifest.json'), 'utf8'));
  assert.equal(m.formatVersion, 2);
  assert.equal(m.restore.file, 'RESTORE.txt');
  const sums = (await readFile(path.join(signed, 'SHA256SUMS'), 'utf8')).trim().split('\n');
  assert.equal(sums[sums.length - 1], `${m.restore.sha256}  RESTORE.txt`);
  const stock = await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: signed, reject: false });
  assert.equal(stock.exitCode, 0, stock.stderr);
  assert.match(stock.stdout, /^RESTORE\.txt: OK$/m);
  const v = JSON.parse((await zferryOk('verify', signed, '--trust', `${key}.pub`, '--json')).stdout);
  assert.equal(v.bundles[0].formatVersion, 2);
  assert.equal(v.bundles[0].restoreCovered, true);
});

test('a RESTORE.txt replaced by other commands is refused by verify, verify --trust and import, and nothing is received', async () => {
  const bundle = await copyOf(signed);
  const marker = path.join(work, 'pwned');
  await writeFile(path.join(bundle, 'RESTORE.txt'), EVIL(marker));
  const before = await dstState();

  const v = await zferry('verify', bundle);
  assert.notEqual(v.code, 0);
  assert.match(oneLine(v.stderr), /RESTORE\.txt: size is \d+ bytes, manifest\.json says \d+: not the RESTORE\.txt this bundle was exported with; do not run it$/);

  // The signature still matches the untouched manifest; the manifest's hash of RESTORE.txt does not.
  await run('minisign', ['-V', '-q', '-p', `${key}.pub`, '-m', path.join(bundle, 'manifest.json')]);
  const t = await zferry('verify', bundle, '--trust', `${key}.pub`);
  assert.notEqual(t.code, 0);
  assert.match(oneLine(t.stderr), /RESTORE\.txt: size is/);

  // One read pass (the default) checks RESTORE.txt with the rest at rest; --verify-first in its full verify.
  for (const args of [[], ['--trust', `${key}.pub`], ['--verify-first']]) {
    const i = await zferry('import', bundle, `${dst.name}/backup`, ...args);
    assert.notEqual(i.code, 0, `import ${args.join(' ')}`);
    assert.match(oneLine(i.stderr), /RESTORE\.txt: size is/);
  }
  assert.equal(await dstState(), before, 'nothing was received');
  assert.equal((await run('zfs', ['list', '-H', '-t', 'snapshot', '-r', dst.name])).trim(), '');

  const stock = await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: bundle, reject: false });
  assert.notEqual(stock.exitCode, 0);
  assert.match(stock.stdout, /^RESTORE\.txt: FAILED$/m);
});

test('a RESTORE.txt replaced together with its SHA256SUMS line is still refused: the signed manifest holds the hash', async () => {
  const bundle = await copyOf(signed);
  await writeFile(path.join(bundle, 'RESTORE.txt'), EVIL(path.join(work, 'pwned2')));
  const digest = (await run('sha256sum', [path.join(bundle, 'RESTORE.txt')])).split(' ')[0];
  const sumsFile = path.join(bundle, 'SHA256SUMS');
  const sums = (await readFile(sumsFile, 'utf8')).replace(/^[0-9a-f]{64}  RESTORE\.txt$/m, `${digest}  RESTORE.txt`);
  await writeFile(sumsFile, sums);
  // Stock sha256sum -c alone is fooled: it guards against damage, not against whoever rewrites SHA256SUMS.
  assert.equal((await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: bundle, reject: false })).exitCode, 0);
  const t = await zferry('verify', bundle, '--trust', `${key}.pub`);
  assert.notEqual(t.code, 0);
  assert.match(oneLine(t.stderr), /RESTORE\.txt: size is/);
});

test('export --bundle-format 1 writes a format 1 bundle that verifies with a note and imports', async () => {
  const r = await zferryOk('export', src.name, path.join(work, 'v1'), '--no-journal', '--bundle-format', '1', '--volume-size', '16K', '--json');
  const bundle = JSON.parse(r.stdout).bundle as string;
  const m = JSON.parse(await readFile(path.join(bundle, 'manifest.json'), 'utf8'));
  assert.equal(m.formatVersion, 1);
  assert.equal('restore' in m, false);
  assert.doesNotMatch(await readFile(path.join(bundle, 'SHA256SUMS'), 'utf8'), /RESTORE/);
  assert.ok((await readdir(bundle)).includes('RESTORE.txt'));

  const human = await zferryOk('verify', bundle);
  assert.match(human.stdout, /^ok /);
  assert.match(human.stdout, /note: bundle format 1: RESTORE\.txt is not covered by its checksums/);
  assert.equal(JSON.parse((await zferryOk('verify', bundle, '--json')).stdout).bundles[0].restoreCovered, false);

  const target = `${dst.name}/v1`;
  await zferryOk('import', bundle, target);
  assert.deepEqual(await guidList(target), await guidList(src.name));

  const bad = await zferry('export', src.name, path.join(work, 'v3'), '--bundle-format', '3');
  assert.equal(bad.code, 2, 'usage error');
  assert.match(bad.stderr, /--bundle-format/);
});

test('export --since a state file whose guid is 2^64 exits non-zero with one line naming the file and field, and writes no bundle', async () => {
  const target = `${dst.name}/v1`;
  const state = path.join(work, 'state.json');
  await zferryOk('state', target, '-o', state);
  const s = JSON.parse(await readFile(state, 'utf8'));
  s.inventory.datasets[0].snapshots[0].guid = '18446744073709551616';
  await writeFile(state, JSON.stringify(s, null, 2));
  const dest = path.join(work, 'since-bad');
  const r = await zferry('export', src.name, dest, '--no-journal', '--since', state);
  assert.notEqual(r.code, 0);
  assert.equal(oneLine(r.stderr), `zferry: ${state}: /inventory/datasets/0/snapshots/0/guid must be at most 18446744073709551615 (unsigned 64-bit), got 18446744073709551616`);
  assert.deepEqual(await readdir(dest).catch(() => []), [], 'no bundle written');
});
