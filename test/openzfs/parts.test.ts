/**
 * OpenZFS only: export --max-size where zfs-fuse cannot show it. Here the
 * plan's sizes come from `zfs send -nvP` (zfs-fuse has none, so the lane
 * there plans by `used`), and `zfs holds` names the tag that keeps a split
 * stream's snapshot while its parts are out, which zfs-fuse can only count
 * (test/scenario/multi-disk.test.ts). After a seed, round two changes a
 * little on the root and `a` and much on `b`: the first bundle takes the
 * root and `a` whole and part 1 of `b` (held); the next ones continue it, and
 * the hold goes with the last part. Each is imported with --stage --delete
 * as it arrives: the files are checked as exported (the plan leaves the
 * continuing part out), and --delete never takes what the import just
 * received while `b` waits for its last part.
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
  for (const d of ['', '/a', '/b']) await writeData(`${src.name}${d}`, 'one.bin', 64);
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

test('--max-size plans by send -nvP and holds the split snapshot under a :parts tag; whole streams before part 1 import, and --delete keeps what it just received while b waits', { skip }, async () => {
  const journal = path.join(work, 'journal');
  const stage = path.join(work, 'stage');
  const target = `${dst.name}/copy`;
  await zferryOk('export', src.name, path.join(work, 'seed'), '--journal', journal);
  await zferryOk('import', path.join(work, 'seed'), target);
  // Round two: a little on the root and a, 12 MiB on b (text, then random: its sampled ratio plans it
  // small, it overruns the limit as it is written, and becomes part 1 after the whole streams).
  await writeData(src.name, 'two.bin', 16);
  await writeData(`${src.name}/a`, 'two.bin', 16);
  await writeData(`${src.name}/b`, 'l.bin', 12 * 1024);
  await snapshot(`${src.name}@two`, true);
  let n = 0;
  const exportOnce = async () => {
    const disk = path.join(work, `disk${++n}`);
    const r = JSON.parse((await zferryOk('export', src.name, disk, '--journal', journal, '--max-size', '4M', '--json')).stdout) as {
      streams: Array<{ dataset: string }>;
      limit: { split: { dataset: string; part: number } | null; left: number };
    };
    return { disk, r };
  };
  const first = await exportOnce();
  assert.equal(first.r.limit.split?.dataset, 'b', JSON.stringify(first.r.limit));
  assert.equal(first.r.limit.split?.part, 1);
  assert.deepEqual(first.r.streams.map((s) => s.dataset), ['', 'a', 'b'], 'whole streams, then part 1 of b');
  assert.ok((await holdTags(`${src.name}/b@two`)).some((t) => t.endsWith(':parts')), 'the split snapshot is held while its parts are out');

  const im = await zferry('import', first.disk, target, '--stage', stage, '--delete');
  assert.equal(im.code, 3, im.stderr);
  const held = (await run('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', target])).split('\n');
  for (const x of [`${target}@two`, `${target}/a@two`, `${target}/b@one`]) assert.ok(held.includes(x), `${x} kept: ${held.join(' ')}`);
  assert.ok(!held.includes(`${target}/b@two`), 'b waits for its last part');

  let r = first.r;
  while (r.limit.split !== null || r.limit.left > 0) {
    assert.ok(n < 8, 'done within 8 bundles');
    const next = await exportOnce();
    r = next.r;
    const code = (await zferry('import', next.disk, target, '--stage', stage, '--delete')).code;
    assert.equal(code, r.limit.split === null && r.limit.left === 0 ? 0 : 3);
  }
  assert.ok(n >= 3, `b's 6 MiB of random data took ${n} bundles of 4 MiB`);
  assert.deepEqual((await holdTags(`${src.name}/b@two`)).filter((t) => t.endsWith(':parts')), [], 'no :parts hold once the last part is written');
  assert.deepEqual(await guidList(target), await guidList(src.name));
});

test('a bookmark under zferry\'s name that marks another snapshot is refused by name, never taken as the base', { skip }, async () => {
  const ds = `${src.name}/a`;
  await snapshot(`${ds}@three`);
  const guid = async (name: string) => (await run('zfs', ['get', '-H', '-p', '-o', 'value', 'guid', name])).trim();
  const three = await guid(`${ds}@three`);
  // Someone's bookmark of @two, named as zferry would name @three's.
  await run('zfs', ['bookmark', `${ds}@two`, `${ds}#zferry-${three}`]);
  const disk = path.join(work, 'disk-b');
  const r = await zferry('export', src.name, disk, '--no-journal');
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`${ds}#zferry-${three} already exists and marks another snapshot`));
  await run('zfs', ['destroy', `${ds}#zferry-${three}`]);
  await zferryOk('export', src.name, path.join(work, 'disk-c'), '--no-journal');
  assert.equal(await guid(`${ds}#zferry-${three}`), three);
});
