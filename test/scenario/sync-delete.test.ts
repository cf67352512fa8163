/**
 * Sync like rsync --delete on real ZFS: datasets and snapshots deleted,
 * re-created and renamed on the source between rounds end up the same on the
 * target with --delete; nothing outside TARGET or outside the export's scope
 * is touched; divergence is refused unless --rollback; filters; base holds;
 * two disks in rotation.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makePool, run, lane, type TestPool } from '../helpers/zfslab.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { datasetList, guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let target: string;
const disks: string[] = [];

/** dataset=guid of every in-scope snapshot: equal sets mean target = source (names may differ after a rename). */
const byGuid = (l: string[]) =>
  l.filter((x) => !/^(scratch|private)@/.test(x) && !x.includes('frequent')).map((x) => x.replace(/@[^=]*=/, '=')).sort();

async function disk(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'zferry-sync-'));
  disks.push(d);
  return d;
}

/** Exports everything new to a fresh disk and imports it with extra flags; returns the import's JSON. */
async function round(importFlags: string[], exportFlags: string[] = []) {
  const d = await disk();
  await zferryOk('export', src.name, d, '--json', ...exportFlags);
  return { disk: d, result: JSON.parse((await zferryOk('import', d, target, '--json', ...importFlags)).stdout) };
}

before(async () => {
  src = await makePool('sys', 128);
  dst = await makePool('syd', 128);
  target = `${dst.name}/mirror`;
  for (const d of ['a', 'a/b', 'gone', 'gone/kid', 'renew', 'scratch']) await run('zfs', ['create', `${src.name}/${d}`]);
  await writeData(`${src.name}/a`, 'f.bin', 16);
  await snapshot(`${src.name}@s1`, true);
  await snapshot(`${src.name}@s2`, true);
  // Outside TARGET: a sibling the import must never touch.
  await run('zfs', ['create', `${dst.name}/sibling`]);
  await snapshot(`${dst.name}/sibling@keep`);
});

after(async () => {
  await src?.destroy();
  await dst?.destroy();
  for (const d of disks) await rm(d, { recursive: true, force: true });
});

test('first round with --exclude: the excluded dataset stays out, and --delete later leaves its target copy alone', async () => {
  await round([], ['--exclude', 'scratch']);
  assert.deepEqual(await datasetList(target), ['', 'a', 'a/b', 'gone', 'gone/kid', 'renew']);
  // A dataset made on the target under an excluded name is out of scope too.
  await run('zfs', ['create', `${target}/scratch`]);
  await snapshot(`${target}/scratch@mine`);
});

test('deletions, a re-created dataset and a renamed snapshot: reported without --delete, listed by --dry-run --delete, applied by --delete', async () => {
  // zferry holds each dataset's newest exported snapshot (base protection): the user releases it to delete by hand.
  for (const ds of ['gone', 'gone/kid', 'renew']) await run('zfs', ['release', 'zferry', `${src.name}/${ds}@s2`]);
  for (const ds of ['gone/kid', 'gone', 'renew']) await run('zfs', ['unmount', `${src.name}/${ds}`]);
  await run('zfs', ['destroy', '-r', `${src.name}/gone`]);
  await run('zfs', ['destroy', '-r', `${src.name}@s1`]);
  await run('zfs', ['destroy', '-r', `${src.name}/renew`]);
  await run('zfs', ['create', `${src.name}/renew`]);
  await run('zfs', ['rename', `${src.name}/a@s2`, `${src.name}/a@s2-renamed`]);
  await snapshot(`${src.name}@s3`, true);

  const d = await disk();
  await zferryOk('export', src.name, d, '--exclude', 'scratch');
  // Without --delete: the re-created dataset needs --delete; nothing is received.
  const plain = await zferry('import', d, target);
  assert.equal(plain.code, 1);
  assert.match(plain.stderr, /renew: the source's dataset was re-created.*use --delete/);

  const before = await guidList(target);
  const dry = await zferryOk('import', d, target, '--dry-run', '--delete', '--json');
  const plan = JSON.parse(dry.stdout).extras;
  assert.equal(plan.action, 'would-destroy');
  assert.deepEqual(plan.datasets, [`${target}/gone/kid`, `${target}/gone`]);
  assert.ok(plan.snapshots.includes(`${target}@s1`) && plan.snapshots.includes(`${target}/a/b@s1`), plan.snapshots.join(' '));
  assert.ok(!plan.snapshots.some((s: string) => s.includes('scratch') || s.includes('sibling')));
  assert.deepEqual(await guidList(target), before, 'a dry run touches nothing');

  await zferryOk('import', d, target, '--delete');
  assert.deepEqual(await datasetList(target), ['', 'a', 'a/b', 'renew', 'scratch']);
  assert.deepEqual(byGuid(await guidList(target)), byGuid(await guidList(src.name)));
  // Renamed on the source, same guid: renamed on the target too (a rename step, no stream).
  assert.ok((await guidList(target)).some((l) => l.startsWith('a@s2-renamed=')));
  assert.match(await run('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', `${target}/scratch@mine`]), /mine/);
  assert.match(await run('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', `${dst.name}/sibling@keep`]), /keep/);
});

test('a bundle from another source is refused, with and without --delete, and the target is untouched', async () => {
  const other = await makePool('syo', 64);
  try {
    await snapshot(`${other.name}@x`);
    const d = await disk();
    await zferryOk('export', other.name, d, '--no-journal');
    const before = await guidList(target);
    for (const flags of [[], ['--delete']]) {
      const r = await zferry('import', d, target, ...flags);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /mirrors source .* refusing; use --force/);
    }
    assert.deepEqual(await guidList(target), before);
  } finally {
    await other.destroy();
  }
});

test('target-ahead: refused with both sides and --rollback; --rollback --delete makes target = source', async () => {
  await snapshot(`${target}/a@target-only`);
  await snapshot(`${src.name}@s4`, true);
  const d = await disk();
  await zferryOk('export', src.name, d, '--exclude', 'scratch');
  const r = await zferry('import', d, target, '--delete');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /mirror\/a: target has snapshots newer than the base @s3 .*target-only: @target-only; source sends: @s4.*use --rollback/);
  await zferryOk('import', d, target, '--delete', '--rollback');
  assert.deepEqual(byGuid(await guidList(target)), byGuid(await guidList(src.name)));
});

test('a target written to since its snapshot: one line naming the dataset and --rollback; --rollback discards the change', async () => {
  await run('zfs', ['set', `mountpoint=/tmp/zferry-mnt/${dst.name}-a`, `${target}/a`]);
  await run('zfs', ['mount', `${target}/a`]);
  await writeData(`${target}/a`, 'local-change.bin', 8);
  await run('zfs', ['unmount', `${target}/a`]);
  await snapshot(`${src.name}@s5`, true);
  const d = await disk();
  await zferryOk('export', src.name, d, '--exclude', 'scratch');
  const r = await zferry('import', d, target);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, new RegExp(`${target}/a has been modified since .*--rollback`));
  await zferryOk('import', d, target, '--rollback');
  assert.deepEqual(byGuid(await guidList(target)), byGuid(await guidList(src.name)));
});

test('--exclude-snapshots and zferry:skip: left-out snapshots never travel, skipped datasets stay out and survive --delete', async () => {
  await run('zfs', ['create', `${src.name}/private`]);
  await snapshot(`${src.name}/private@p1`);
  await run('zfs', ['set', 'zferry:skip=on', `${src.name}/private`]);
  await run('zfs', ['create', `${target}/private`]);
  await snapshot(`${target}/private@theirs`);
  await snapshot(`${src.name}@zfs-auto-snap_frequent-1`, true);
  await snapshot(`${src.name}@s6`, true);
  await snapshot(`${src.name}@zfs-auto-snap_frequent-2`, true);
  await snapshot(`${src.name}@s7`, true);
  const { result } = await round(['--delete'], ['--exclude', 'scratch', '--exclude-snapshots', 'zfs-auto-snap_frequent-*']);
  assert.equal(result.bundles[0].status, 'applied');
  const got = await guidList(target);
  assert.ok(!got.some((l) => l.includes('frequent')), got.join(' '));
  assert.ok(got.some((l) => l.startsWith('@s6=')) && got.some((l) => l.startsWith('@s7=')));
  assert.ok(got.some((l) => l.startsWith('private@theirs=')), 'a skipped dataset on the target is out of scope for --delete');
});

test('base protection: the newest exported snapshot is held until a receipt proves the target has something newer', { skip: lane !== 'fuse' && 'OpenZFS keeps bases by bookmark: test/openzfs' }, async () => {
  const d = await disk();
  await snapshot(`${src.name}@s8`, true);
  await zferryOk('export', src.name, d, '--exclude', 'scratch', '--exclude-snapshots', 'zfs-auto-snap_frequent-*');
  const refs = async (snap: string) => (await run('zfs', ['get', '-H', '-p', '-o', 'value', 'userrefs', snap])).trim();
  assert.equal(await refs(`${src.name}/a@s8`), '1');
  const destroy = await run('zfs', ['destroy', `${src.name}/a@s8`], { allowFailure: true });
  assert.equal(await refs(`${src.name}/a@s8`), '1', destroy);
  await zferryOk('import', d, target, '--delete');
  await snapshot(`${src.name}@s9`, true);
  await zferryOk('export', src.name, d, '--exclude', 'scratch', '--exclude-snapshots', 'zfs-auto-snap_frequent-*');
  await zferryOk('import', d, target, '--delete');
  await snapshot(`${src.name}@s10`, true);
  // The receipt now proves s9: the hold on s8 is released, s9's stays while s10's bundle is away.
  await zferryOk('export', src.name, d, '--exclude', 'scratch', '--exclude-snapshots', 'zfs-auto-snap_frequent-*');
  assert.equal(await refs(`${src.name}/a@s8`), '0');
  assert.equal(await refs(`${src.name}/a@s9`), '1');
  assert.equal(await refs(`${src.name}/a@s10`), '1');
  await zferryOk('import', d, target, '--delete');
});

test('two disks in rotation: disk B is planned on top of disk A; B first is deferred naming A; then A, then B', async () => {
  const flags = ['--exclude', 'scratch', '--exclude-snapshots', 'zfs-auto-snap_frequent-*'];
  await snapshot(`${src.name}@r1`, true);
  const diskA = await disk();
  const a = JSON.parse((await zferryOk('export', src.name, diskA, '--json', ...flags)).stdout);
  await snapshot(`${src.name}@r2`, true);
  const diskB = await disk();
  const b = JSON.parse((await zferryOk('export', src.name, diskB, '--json', ...flags)).stdout);
  assert.equal(b.basis.origin, 'journal');
  assert.deepEqual(b.plan.steps.map((s: { from: { name: string } }) => s.from.name), ['r1', 'r1', 'r1', 'r1']);

  const early = await zferry('import', diskB, target, '--json');
  assert.equal(early.code, 3);
  assert.match(early.stderr, new RegExp(`planned on top of bundle ${a.bundleId}, which must be imported first`));
  await zferryOk('import', diskA, target, '--delete');
  await zferryOk('import', diskB, target, '--delete');
  assert.deepEqual(byGuid(await guidList(target)), byGuid(await guidList(src.name)));
});
