/**
 * import --delete while a dataset waits for a later bundle, on zfs-fuse:
 * export --max-size takes the root's and `a`'s new snapshots and leaves
 * `b`'s for the next disk. The newest bundle then cannot speak for `b`;
 * an older one once became the view instead, and --delete destroyed the
 * snapshots this very import had just received (with no older bundle
 * there, --delete refused every such round). Now the newest bundle
 * speaks for the root and `a`, `b` is left alone until its snapshot
 * arrives, and what the source still has is never destroyed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let pools: TwoPools | undefined;
let work: string;

before(async () => {
  ({ src, dst, work } = pools = await twoPools('ld', 96));
  for (const d of ['a', 'b']) await run('zfs', ['create', `${src.name}/${d}`]);
  for (const d of ['', '/a', '/b']) await writeData(`${src.name}${d}`, 'one.bin', 64);
  await snapshot(`${src.name}@one`, true);
});

after(async () => {
  await pools?.teardown();
});

const snapshotsOf = async (dataset: string) => (await run('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', dataset])).split('\n').filter(Boolean);

test('--delete keeps what the import just received while a dataset\'s newest snapshot waits for the next bundle', async () => {
  const journal = path.join(work, 'journal');
  const target = `${dst.name}/copy`;
  // The seed on the same disk as round two: an older bundle there that could speak for the source.
  await zferryOk('export', src.name, path.join(work, 'disk1'), '--journal', journal);
  await zferryOk('import', path.join(work, 'disk1'), target);
  // Round two: a little on the root and a; about 1.5 MiB stored on b, more than the limit leaves after them.
  await writeData(src.name, 'two.bin', 16);
  await writeData(`${src.name}/a`, 'two.bin', 16);
  await writeData(`${src.name}/b`, 'big.bin', 3072);
  await snapshot(`${src.name}@two`, true);

  const first = JSON.parse((await zferryOk('export', src.name, path.join(work, 'disk1'), '--journal', journal, '--max-size', '1536K', '--json')).stdout) as { streams: Array<{ dataset: string }>; limit: { left: number } };
  assert.deepEqual(first.streams.map((s) => s.dataset), ['', 'a'], 'b is left for the next bundle');
  assert.equal(first.limit.left, 1);
  const im = JSON.parse((await zferryOk('import', path.join(work, 'disk1'), target, '--delete', '--json')).stdout) as { extras: { snapshots: string[]; datasets: string[]; kept: Array<{ dataset: string }> } };
  assert.deepEqual(im.extras.snapshots, [], 'nothing the source still has is destroyed');
  assert.deepEqual(im.extras.kept.map((k) => k.dataset), ['b'], 'b is left alone until its snapshot arrives, and the output says so');
  const text = await zferryOk('import', path.join(work, 'disk1'), target, '--delete', '--dry-run');
  assert.match(text.stdout, new RegExp(`kept ${target}/b: its newest snapshot on the source does not arrive with this import \\(a bundle still to come`));
  const held = await snapshotsOf(target);
  for (const s of [`${target}@two`, `${target}/a@two`, `${target}/b@one`]) assert.ok(held.includes(s), `${s} kept: ${held.join(' ')}`);

  // b's stream is larger than one disk: parts, staged, and every round --delete takes nothing.
  for (let i = 2; ; i++) {
    assert.ok(i < 8, 'done within 7 disks');
    const disk = path.join(work, `disk${i}`);
    const r = JSON.parse((await zferryOk('export', src.name, disk, '--journal', journal, '--max-size', '1536K', '--json')).stdout) as { limit: { split: unknown; left: number } };
    const last = r.limit.split === null && r.limit.left === 0;
    const im = await zferry('import', disk, target, '--stage', path.join(work, 'stage'), '--delete', '--json');
    assert.equal(im.code, last ? 0 : 3, im.stderr);
    assert.deepEqual((JSON.parse(im.stdout) as { extras: { snapshots: string[] } }).extras.snapshots, []);
    if (last) break;
  }
  assert.deepEqual(await guidList(target), await guidList(src.name));
});
