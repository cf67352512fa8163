/**
 * OpenZFS only: export --max-size where zfs-fuse cannot show it. Here the
 * plan's sizes come from `zfs send -nvP` (zfs-fuse has none, so the lane
 * there plans by `used`), and `zfs holds` names the tag that keeps a split
 * stream's snapshot while its parts are out, which zfs-fuse can only count
 * (test/scenario/multi-disk.test.ts). One dataset that fits (`a`), one larger
 * than the limit (`b`): the first bundle takes `a` whole and part 1 of `b`,
 * held; the next ones continue it, and the hold goes with the
 * last part. The bundles import in one run into the same guids.
 * Runs in the QEMU guest lane (ZFERRY_LANE=openzfs).
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
let work: string;
const skip = lane !== 'openzfs' && 'send -nvP and zfs holds need OpenZFS';

before(async () => {
  if (lane !== 'openzfs') return;
  src = await makePool('oprs', 128);
  dst = await makePool('oprd', 128);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-opr-'));
  // In plan order (by name): `a` fits, `b` does not.
  for (const d of ['a', 'b']) await run('zfs', ['create', '-o', 'compression=off', `${src.name}/${d}`]);
  // writeData: half text, half random; KiB.
  await writeData(`${src.name}/a`, 's.bin', 256);
  await writeData(`${src.name}/b`, 'l.bin', 12 * 1024);
  await snapshot(`${src.name}@one`, true);
});

after(async () => {
  await src?.destroy();
  await dst?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

/** The tags of the holds on a snapshot (`zfs holds -H`: name, tag, time). */
async function holdTags(snapshot: string): Promise<string[]> {
  return (await run('zfs', ['holds', '-H', snapshot])).split('\n').filter(Boolean).map((l) => l.split('\t')[1]!.trim()).sort();
}

test('--max-size plans by send -nvP, holds the split snapshot under a :parts tag until its last part, and the bundles import whole', { skip }, async () => {
  const disk = path.join(work, 'disk');
  const journal = path.join(work, 'journal');
  const exportOnce = async () =>
    JSON.parse((await zferryOk('export', src.name, disk, '--journal', journal, '--max-size', '4M', '--json')).stdout) as {
      streams: Array<{ dataset: string }>;
      limit: { split: { dataset: string; part: number } | null; left: number; planned: number };
    };
  const first = await exportOnce();
  assert.equal(first.limit.split?.dataset, 'b', JSON.stringify(first.limit));
  assert.equal(first.limit.split?.part, 1);
  assert.ok(first.streams.some((s) => s.dataset === 'a'), 'the small dataset fits whole before the split');
  assert.ok((await holdTags(`${src.name}/b@one`)).some((t) => t.endsWith(':parts')), 'the split snapshot is held while its parts are out');
  let r = first;
  let bundles = 1;
  while (r.limit.split !== null || r.limit.left > 0) {
    assert.ok(bundles < 8, 'done within 8 bundles');
    r = await exportOnce();
    bundles++;
  }
  assert.ok(bundles >= 3, `the 6 MiB of random data took ${bundles} bundles of 4 MiB`);
  assert.deepEqual((await holdTags(`${src.name}/b@one`)).filter((t) => t.endsWith(':parts')), [], 'no :parts hold once the last part is written');
  await zferryOk('import', disk, `${dst.name}/copy`);
  assert.deepEqual(await guidList(`${dst.name}/copy`), await guidList(src.name));
});

test('a bookmark under zferry\'s name that marks another snapshot is refused by name, never taken as the base', { skip }, async () => {
  const ds = `${src.name}/a`;
  await snapshot(`${ds}@two`);
  const guid = async (name: string) => (await run('zfs', ['get', '-H', '-p', '-o', 'value', 'guid', name])).trim();
  const two = await guid(`${ds}@two`);
  // Someone's bookmark of @one, named as zferry would name @two's.
  await run('zfs', ['bookmark', `${ds}@one`, `${ds}#zferry-${two}`]);
  const disk = path.join(work, 'disk-b');
  const r = await zferry('export', src.name, disk, '--no-journal');
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`${ds}#zferry-${two} already exists and marks another snapshot`));
  await run('zfs', ['destroy', `${ds}#zferry-${two}`]);
  await zferryOk('export', src.name, path.join(work, 'disk-c'), '--no-journal');
  assert.equal(await guid(`${ds}#zferry-${two}`), two);
});
