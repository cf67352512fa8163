/**
 * `import --keep GRID` on real ZFS: the grid thins the target's snapshots
 * after the streams are in, with --delete taking only the datasets the
 * source lost; the newest common snapshot and out-of-scope snapshots stay;
 * --dry-run --json lists what would go and why, and destroys nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from '../helpers/zfslab.js';
import { zferryOk } from '../helpers/cli.js';
import { datasetList, snapshot, writeData } from '../helpers/fixtures.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';

let lab: TwoPools;
let target: string;
const disks: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function snapsOf(dataset: string): Promise<string[]> {
  return (await run('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot', '-r', '-d', '1', dataset])).split('\n').filter(Boolean).map((n) => n.split('@')[1]!);
}

async function exportTo(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'zferry-keep-'));
  disks.push(d);
  await zferryOk('export', lab.src.name, d, '--exclude', 'scratch');
  return d;
}

before(async () => {
  lab = await twoPools('kep', 128);
  target = `${lab.dst.name}/mirror`;
  await run('zfs', ['create', `${lab.src.name}/gone`]);
  await writeData(lab.src.name, 'f.bin', 16);
  // Creation times have one-second resolution: snapshots 1.2 s apart fall in different one-second intervals.
  for (const s of ['s1', 's2', 's3']) {
    await snapshot(`${lab.src.name}@${s}`, true);
    await sleep(1200);
  }
  await zferryOk('import', await exportTo(), target);
  // Out of the export's scope (--exclude scratch): a dataset of the target's own, whose snapshots the grid would drop.
  await run('zfs', ['create', '-o', 'canmount=off', `${target}/scratch`]);
  await snapshot(`${target}/scratch@local-1`);
  await sleep(1200);
  await snapshot(`${target}/scratch@local-2`);
  // The source prunes s1, loses `gone`, and takes s4.
  await run('zfs', ['destroy', '-r', `${lab.src.name}@s1`]);
  // The export holds its base (tag zferry) on the source; a dataset the user really drops is released first.
  await run('zfs', ['release', 'zferry', `${lab.src.name}/gone@s3`]);
  await run('zfs', ['unmount', `${lab.src.name}/gone`], { allowFailure: true });
  await run('zfs', ['destroy', '-r', `${lab.src.name}/gone`]);
  await snapshot(`${lab.src.name}@s4`, true);
});

after(async () => {
  await lab?.teardown();
  for (const d of disks) await rm(d, { recursive: true, force: true });
});

test('with --delete and --keep, the lost dataset goes by --delete and the snapshots by the grid, out-of-scope data stays; --dry-run lists it all and touches nothing', async () => {
  const d = await exportTo();
  const grid = '1s x 1 | 1h x 1';
  const dry = JSON.parse((await zferryOk('import', d, target, '--delete', '--keep', grid, '--dry-run', '--json')).stdout);
  assert.deepEqual(dry.extras.datasets, [`${target}/gone`]);
  assert.deepEqual(dry.extras.snapshots.filter((s: string) => !s.startsWith(`${target}/gone@`)), [], 'no snapshot follows --delete');
  assert.equal(dry.retention.action, 'would-destroy');
  // Anchored at s4 (received by this import): its own second, then an hour that keeps its oldest, s1, which the source pruned.
  assert.deepEqual(dry.retention.destroy.map((x: { full: string }) => x.full), [`${target}@s2`, `${target}@s3`]);
  for (const x of dry.retention.destroy) assert.match(x.reason, /^interval 1h x 1 \(.*\) keeps @s1$/);
  assert.deepEqual(await snapsOf(target), ['s1', 's2', 's3'], 'a dry run destroys nothing');

  await zferryOk('import', d, target, '--delete', '--keep', grid);
  assert.deepEqual(await snapsOf(target), ['s1', 's4']);
  assert.deepEqual(await datasetList(target), ['', 'scratch']);
  assert.deepEqual(await snapsOf(`${target}/scratch`), ['local-1', 'local-2'], 'out of scope: untouched');
});
