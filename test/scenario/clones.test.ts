/**
 * Clones on real ZFS: a clone of a snapshot in scope arrives on the target as
 * a clone of the target's copy of its origin (space shared, same guids), its
 * origin sent first even when the clone sorts before it; a clone whose origin
 * is out of scope arrives as a full stream, and the plan says so. RESTORE.txt
 * rebuilds the clone with stock tools.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { lane, makePool, run, type TestPool } from '../helpers/zfslab.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let target: string;
const disks: string[] = [];

async function disk(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'zferry-clones-'));
  disks.push(d);
  return d;
}

const prop = async (dataset: string, name: string) => (await run('zfs', ['get', '-H', '-p', '-o', 'value', name, dataset])).trim();
const inScope = (l: string[]) => l.filter((x) => !x.startsWith('scratch@'));

before(async () => {
  src = await makePool('cls', 128);
  dst = await makePool('cld', 128);
  target = `${dst.name}/mirror`;
  // `zbase` sorts after its clone `aclone`: the plan must still send it first.
  await run('zfs', ['create', `${src.name}/zbase`]);
  await writeData(`${src.name}/zbase`, 'big.bin', 2048);
  await snapshot(`${src.name}@s1`, true);
  await run('zfs', ['clone', `${src.name}/zbase@s1`, `${src.name}/aclone`]);
  await writeData(`${src.name}/aclone`, 'own.bin', 16);
  await snapshot(`${src.name}/aclone@c1`);
  await writeData(`${src.name}/aclone`, 'more.bin', 16);
  await snapshot(`${src.name}/aclone@c2`);
  // A clone whose origin is left out of the sync: it can only go as a full stream.
  await run('zfs', ['create', `${src.name}/scratch`]);
  await writeData(`${src.name}/scratch`, 'tmp.bin', 64);
  await snapshot(`${src.name}/scratch@t1`);
  await run('zfs', ['clone', `${src.name}/scratch@t1`, `${src.name}/fromscratch`]);
  await snapshot(`${src.name}/fromscratch@f1`);
});

after(async () => {
  await src?.destroy();
  await dst?.destroy();
  for (const d of disks) await rm(d, { recursive: true, force: true });
});

test('a clone arrives as a clone of the target copy of its origin: origin sent first, same guids, space shared', async () => {
  const d = await disk();
  const exp = JSON.parse((await zferryOk('export', src.name, d, '--json', '--exclude', 'scratch')).stdout);
  const order = exp.plan.steps.map((s: { dataset: string; kind: string }) => `${s.dataset}:${s.kind}`);
  assert.ok(order.indexOf('zbase:full') < order.indexOf('aclone:incremental'), `origin first: ${order.join(' ')}`);
  const first = exp.plan.steps.find((s: { dataset: string }) => s.dataset === 'aclone');
  assert.deepEqual({ from: first.from.dataset, name: first.from.name, intermediates: first.intermediates }, { from: 'zbase', name: 's1', intermediates: false });
  assert.deepEqual(
    exp.plan.clones.map((c: { dataset: string; sentAs: string }) => `${c.dataset}:${c.sentAs}`).sort(),
    ['aclone:clone', 'fromscratch:full'],
  );

  await zferryOk('import', d, target);
  assert.equal(await prop(`${target}/aclone`, 'origin'), `${target}/zbase@s1`);
  assert.equal(await prop(`${target}/fromscratch`, 'origin'), '-');
  assert.deepEqual(await guidList(target), inScope(await guidList(src.name)));
  // The clone's own data is a few dozen KiB; the MiB it shares with zbase@s1 (half random, so it survives compression) is not stored twice.
  const own = Number(await prop(`${target}/aclone`, 'usedbydataset'));
  const shared = Number(await prop(`${target}/zbase`, 'referenced'));
  assert.ok(shared > 1_000_000, `zbase references ${shared}`);
  assert.ok(own * 4 < shared, `clone's own usage ${own} vs origin ${shared}`);
  assert.ok(Number(await prop(`${target}/aclone`, 'referenced')) > shared, 'the clone references the shared data too');
});

test('next round: a new clone of an origin the target already holds goes as a clone; the old one goes on incrementally', async () => {
  await run('zfs', ['clone', `${src.name}/zbase@s1`, `${src.name}/later`]);
  await snapshot(`${src.name}/later@l1`);
  await writeData(`${src.name}/aclone`, 'three.bin', 16);
  await snapshot(`${src.name}/aclone@c3`);
  const d = await disk();
  const exp = JSON.parse((await zferryOk('export', src.name, d, '--json', '--exclude', 'scratch')).stdout);
  const brief = exp.plan.steps.map((s: { dataset: string; kind: string; from: { name: string; dataset?: string } | null }) =>
    `${s.dataset}:${s.kind}:${s.from?.dataset ?? ''}@${s.from?.name ?? ''}`);
  assert.deepEqual(brief, ['aclone:incremental:@c2', 'later:incremental:zbase@s1']);
  await zferryOk('import', d, target);
  assert.equal(await prop(`${target}/later`, 'origin'), `${target}/zbase@s1`);
  assert.deepEqual(await guidList(target), inScope(await guidList(src.name)));
});

test('a second copy in the same pool: OpenZFS is told the origin (-o origin=); zfs-fuse, which would pick either copy, refuses', async () => {
  const second = `${dst.name}/second`;
  const r = await zferry('import', disks[0], second);
  if (lane === 'fuse') {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /also holds that snapshot .* as .*mirror\/zbase@s1.*nothing was received/);
    assert.equal(await run('zfs', ['list', second], { allowFailure: true }).then((o) => o.trim()), '');
  } else {
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await prop(`${second}/aclone`, 'origin'), `${second}/zbase@s1`);
  }
});

test('RESTORE.txt receives the clone with stock tools into a fresh pool', async () => {
  const fresh = await makePool('clr', 64);
  try {
    const copy = `${fresh.name}/copy`;
    const bundles = (await run('ls', [disks[0]])).split('\n').filter((n) => n.startsWith('zferry-'));
    assert.equal(bundles.length, 1);
    await run('env', [`TARGET=${copy}`, 'bash', path.join(disks[0], bundles[0], 'RESTORE.txt')]);
    assert.equal(await prop(`${copy}/aclone`, 'origin'), `${copy}/zbase@s1`);
    assert.equal(await prop(`${copy}/aclone@c2`, 'guid'), await prop(`${src.name}/aclone@c2`, 'guid'));
  } finally {
    await fresh.destroy();
  }
});
