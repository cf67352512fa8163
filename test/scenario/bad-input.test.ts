/**
 * Bad input never reaches zfs recv: every case exits non-zero with a one-line
 * message naming the file, field or dataset, and the target is unchanged —
 * except that the default one-pass import keeps the whole streams it received
 * before the one whose bytes turned out bad (checked with --verify-first too).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { lane, makePool, run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { buildSource, fingerprint, flipByte, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let pools: TwoPools | undefined;
let dst: TestPool;
let work: string;
let target: string;
/** An unapplied, multi-volume, multi-stream bundle for the target's next round. */
let good: string;

before(async () => {
  ({ src, dst, work: work } = pools = await twoPools('bi', 192));
  target = `${dst.name}/backup`;
  await buildSource(src.name);
  const seed = path.join(work, 'seed');
  await zferryOk('export', src.name, seed);
  await zferryOk('import', seed, target);
  for (const d of ['data', 'home', 'media']) await writeData(`${src.name}/${d}`, 'round2.bin', 96);
  await snapshot(`${src.name}@round2`, true);
  const r = JSON.parse((await zferryOk('export', src.name, path.join(work, 'next'), '--since', path.join(seed, `receipt-${target.replace(/\//g, '_')}.json`), '--volume-size', '32K', '--json')).stdout);
  good = r.bundle;
});

after(async () => {
  await pools?.teardown();
});

let copies = 0;
/** A fresh copy of the good bundle to damage. */
async function copyOfGood(): Promise<string> {
  const dir = path.join(work, `case-${++copies}`, path.basename(good));
  await cp(good, dir, { recursive: true });
  return dir;
}

async function volumesOf(bundle: string): Promise<string[]> {
  return (await readdir(path.join(bundle, 'streams'))).sort().map((f) => path.join(bundle, 'streams', f));
}

/** Each dataset's newest snapshot under root. */
async function newestSnapshots(root: string): Promise<Map<string, string>> {
  const out = await run('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-r', root]);
  const m = new Map<string, string>();
  for (const line of out.split('\n').filter(Boolean)) m.set(line.split('@')[0], line.split('@')[1]);
  return m;
}

/**
 * Runs import (and verify where it applies) and checks the refusal and the
 * untouched target. With `midStream` (damage inside a volume's bytes, which
 * the one-pass import finds only as it streams), `--verify-first` must leave
 * the target untouched, and the default import may keep the streams before
 * the damaged one, whole; the target is then rolled back for the next case.
 */
async function assertRefused(bundle: string, expect: RegExp, opts: { verifyToo?: boolean; midStream?: boolean } = {}): Promise<void> {
  const before = await fingerprint(target);
  const newest = await newestSnapshots(target);
  const r = await zferry('import', bundle, target, ...(opts.midStream ? ['--verify-first'] : []));
  assert.notEqual(r.code, 0, `import of ${bundle} should fail`);
  assert.match(r.stderr, expect);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one-line error expected, got: ${r.stderr}`);
  assert.equal(await fingerprint(target), before, 'the target must be unchanged');
  if (opts.midStream) {
    const one = await zferry('import', bundle, target);
    assert.notEqual(one.code, 0, `one-pass import of ${bundle} should fail`);
    assert.match(one.stderr, expect);
    assert.match(one.stderr, /was not received/);
    assert.equal(one.stderr.trim().split('\n').length, 1, `one-line error expected, got: ${one.stderr}`);
    for (const [ds, snap] of await newestSnapshots(target)) {
      if (newest.get(ds) !== snap) await run('zfs', ['rollback', '-r', `${ds}@${newest.get(ds)}`]);
    }
    assert.equal(await fingerprint(target), before, 'rolled back for the next case');
  }
  if (opts.verifyToo) {
    const v = await zferry('verify', bundle);
    assert.notEqual(v.code, 0);
    assert.match(v.stderr, expect);
  }
}

test('the undamaged bundle has several streams and volumes and verifies', async () => {
  const m = JSON.parse(await readFile(path.join(good, 'manifest.json'), 'utf8'));
  assert.ok(m.streams.length >= 3, `streams: ${m.streams.length}`);
  assert.ok((await volumesOf(good)).length >= 6, 'several volumes');
  await zferryOk('verify', good);
});

test('one flipped byte in any volume is refused by verify and import, naming the volume', async () => {
  const all = (await volumesOf(good)).map((f) => path.basename(f));
  // Every volume in the zfs-fuse lane; under emulation (two CLI runs a volume) the first, a middle and the last.
  const names = lane === 'openzfs' ? [...new Set([all[0], all[Math.floor(all.length / 2)], all[all.length - 1]])] : all;
  for (const name of names) {
    const bundle = await copyOfGood();
    const file = path.join(bundle, 'streams', name);
    await flipByte(file, 'middle');
    await assertRefused(bundle, new RegExp(name.replace(/\./g, '\\.')), { verifyToo: true, midStream: true });
  }
});

test('a missing volume is refused, naming it', async () => {
  const bundle = await copyOfGood();
  const vols = await volumesOf(bundle);
  const victim = vols[Math.floor(vols.length / 2)];
  await rm(victim);
  await assertRefused(bundle, new RegExp(path.basename(victim).replace(/\./g, '\\.')), { verifyToo: true });
});

test('a manifest that fails the schema is refused, naming the JSON path', async () => {
  const bundle = await copyOfGood();
  const file = path.join(bundle, 'manifest.json');
  const m = JSON.parse(await readFile(file, 'utf8'));
  m.streams[1].rawBytes = -5;
  await writeFile(file, JSON.stringify(m));
  await assertRefused(bundle, /manifest\.json.*\/streams\/1\/rawBytes/, { verifyToo: true });
});

test('a stream whose raw sha256 in the manifest was edited never gets its end record to zfs recv', async () => {
  // Volumes and SHA256SUMS still agree, so only the tail gate can catch this: zfs recv is
  // stopped before the end of the stream and commits nothing.
  const bundle = await copyOfGood();
  const file = path.join(bundle, 'manifest.json');
  const m = JSON.parse(await readFile(file, 'utf8'));
  m.streams[0].rawSha256 = m.streams[0].rawSha256.replace(/^./, (c: string) => (c === '0' ? '1' : '0'));
  await writeFile(file, JSON.stringify(m));
  await assertRefused(bundle, /stream 1|sha256/, { midStream: true });
});

test('a manifest of an unknown format version is refused by its version', async () => {
  const bundle = await copyOfGood();
  const file = path.join(bundle, 'manifest.json');
  const m = JSON.parse(await readFile(file, 'utf8'));
  m.formatVersion = 7;
  await writeFile(file, JSON.stringify(m));
  await assertRefused(bundle, /format version 7 is not supported/, { verifyToo: true });
});

test('a bundle from another source is refused', async () => {
  const other = await makePool('bio', 128);
  try {
    await buildSource(other.name);
    const out = path.join(work, 'other');
    const r = JSON.parse((await zferryOk('export', other.name, out, '--json')).stdout);
    await assertRefused(r.bundle, new RegExp(`${target}.*(mirrors|another source)`));
  } finally {
    await other.destroy();
  }
});

test('a stream whose base the target lacks is refused before anything is received', async () => {
  // Bundle B is planned on top of the good bundle's snapshots, which the target never got.
  const scratch = `${dst.name}/scratch`;
  await zferryOk('import', path.join(work, 'seed'), scratch);
  await zferryOk('import', good, scratch);
  const state = path.join(work, 'scratch-state.json');
  await zferryOk('state', scratch, '-o', state);
  await writeData(`${src.name}/home`, 'round3.bin', 8);
  await snapshot(`${src.name}@round3`, true);
  const b = JSON.parse((await zferryOk('export', src.name, path.join(work, 'ahead'), '--since', state, '--json')).stdout);
  await assertRefused(b.bundle, /base|round2/);
  await run('zfs', ['destroy', '-r', scratch]);
});

test('the good bundle still applies after all that', async () => {
  await zferryOk('import', good, target);
});
