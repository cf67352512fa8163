/**
 * One disk, many rounds: the bundles of earlier rounds stay on it, as the
 * README's story leaves them. Once --delete has followed the source's
 * rotation (zfs-auto-snapshot destroys old snapshots all the time), an old
 * bundle's snapshots are gone from the target too; that bundle must be
 * passed as superseded, not stop every later import (it did: "refusing a
 * full stream into an existing dataset"), not bring back a dataset the
 * source destroyed, and not let --rollback discard newer snapshots for it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { datasetList, guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let pools: TwoPools | undefined;
let disk: string;
let target: string;

interface Imported {
  receipt: string | null;
  bundles: Array<{ bundle: string; status: string }>;
  superseded: Array<{ bundle: string; message: string }>;
  extras: { datasets: string[]; snapshots: string[] };
}

const bundles: string[] = [];

async function exportRound(): Promise<void> {
  bundles.push(JSON.parse((await zferryOk('export', src.name, disk, '--json')).stdout).bundle);
}

async function importAll(...flags: string[]): Promise<Imported> {
  return JSON.parse((await zferryOk('import', disk, target, '--json', ...flags)).stdout) as Imported;
}

/** Rotation as zfs-auto-snapshot does it, less the base zferry holds for the next round. */
async function rotate(oldest: string, next: string): Promise<void> {
  await run('zfs', ['destroy', '-r', `${src.name}@${oldest}`]);
  await writeData(`${src.name}/a`, `${next}.bin`, 16);
  await snapshot(`${src.name}@${next}`, true);
}

before(async () => {
  ({ src, dst, work: disk } = pools = await twoPools('ob', 96));
  disk = path.join(disk, 'disk');
  target = `${dst.name}/mirror`;
  for (const d of ['a', 'gone']) await run('zfs', ['create', `${src.name}/${d}`]);
  await writeData(`${src.name}/a`, 'one.bin', 16);
  await snapshot(`${src.name}@h1`, true);
  await snapshot(`${src.name}@h2`, true);
});

after(async () => {
  await pools?.teardown();
});

test('round 1 seeds; round 2 follows a destroyed dataset and a rotated snapshot with --delete', async () => {
  await exportRound();
  await importAll();
  // The source destroys `gone` (its base hold released first) and rotates @h1 out.
  await run('zfs', ['release', 'zferry', `${src.name}/gone@h2`], { allowFailure: true });
  await run('zfs', ['destroy', '-r', `${src.name}/gone`]);
  await rotate('h1', 'h3');
  await exportRound();
  const r = await importAll('--delete');
  assert.deepEqual(r.bundles.map((b) => [b.bundle, b.status]), [[bundles[0], 'already-applied'], [bundles[1], 'applied']]);
  assert.deepEqual(r.superseded, []);
  assert.deepEqual(await datasetList(target), ['', 'a']);
  assert.deepEqual(await guidList(target), await guidList(src.name));
});

test('round 3: the first bundle is superseded, named, and the rest imports; `gone` stays gone', async () => {
  await run('zfs', ['release', '-r', 'zferry', `${src.name}@h2`], { allowFailure: true });
  await rotate('h2', 'h4');
  await exportRound();
  const r = await importAll('--delete');
  assert.deepEqual(r.superseded.map((x) => x.bundle), [bundles[0]]);
  assert.match(r.superseded[0].message, /superseded: it shows the source as of txg \d+, older than what .*\/mirror already received \(zferry:source-txg=\d+\).*nothing of it was received/);
  assert.deepEqual(r.bundles.map((b) => [b.bundle, b.status]), [[bundles[1], 'already-applied'], [bundles[2], 'applied']]);
  // The receipt names it with the others: the source (a relay sender, the journal) may let it go.
  const receipt = JSON.parse(await readFile(r.receipt!, 'utf8')) as { bundles: string[] };
  const id = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')).bundleId as string;
  assert.deepEqual(receipt.bundles, bundles.map(id));
  assert.deepEqual(await datasetList(target), ['', 'a']);
  assert.deepEqual(await guidList(target), await guidList(src.name));
  // Said in the human output too, and the run is a success.
  const plain = await zferry('import', disk, target, '--delete');
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, new RegExp(`${path.basename(bundles[0])}: superseded: `));
});

test('--rollback does not make an old bundle apply: nothing is discarded for older snapshots', async () => {
  const before = await guidList(target);
  const r = await importAll('--rollback', '--delete');
  // The second bundle is older than the record too, but wholly on the target: still "already applied".
  assert.deepEqual(r.superseded.map((x) => x.bundle), [bundles[0]]);
  assert.deepEqual(r.bundles.map((b) => [b.bundle, b.status]), [[bundles[1], 'already-applied'], [bundles[2], 'already-applied']]);
  assert.deepEqual(r.extras.snapshots, []);
  assert.deepEqual(await guidList(target), before);
});

test('a folder holding only a superseded bundle: nothing received, no receipt, and the output says so', async () => {
  const alone = path.join(path.dirname(disk), 'alone');
  await cp(bundles[0], path.join(alone, path.basename(bundles[0])), { recursive: true });
  const r = await zferry('import', alone, target);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /superseded: /);
  assert.match(r.stdout, /\/mirror: nothing received in [0-9.]+ s; no receipt written$/m);
  assert.doesNotMatch(r.stdout, /updated in/);
});
