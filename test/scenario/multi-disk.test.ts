/**
 * One export across several disks (issue 16, point 2), on zfs-fuse with
 * small volumes and a small --max-size: a stream larger than one disk is
 * written as numbered parts, one bundle per disk, each export continuing
 * from the journal; import stages the parts (--stage) and receives the
 * whole stream once the last part is in, byte-exact, and so does the stock
 * RESTORE.txt recipe; a missing, out-of-order or corrupt part is refused
 * with one line naming it, and nothing is received.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, open, readdir, readFile, stat, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { assertSameFiles, flipByte, guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let pools: TwoPools | undefined;
let work: string;

/** Under this limit the volumes get about 380 KiB a disk (1 MiB and more is kept for the manifest and the other files). */
const LIMIT = '1536K';
const LIMIT_BYTES = 1536 * 1024;

before(async () => {
  ({ src, dst, work } = pools = await twoPools('md', 96));
  await run('zfs', ['create', `${src.name}/small`]);
  // The root's full stream: about 3 MiB raw, half of it random (about 1.6 MiB stored): over three disks.
  await writeData(src.name, 'big.bin', 3072);
  await writeData(`${src.name}/small`, 'a.bin', 64);
  await snapshot(`${src.name}@one`, true);
});

after(async () => {
  await pools?.teardown();
});

interface Part { number: number; offset: number; previous: string | null; continues: boolean; streamRawBytes: number | null }
interface Stream { index: number; dataset: string; kind: string; rawBytes: number; part?: Part }
interface Manifest { bundleId: string; formatVersion: number; streams: Stream[] }

async function onlyBundle(disk: string): Promise<{ dir: string; m: Manifest }> {
  const names = (await readdir(disk)).filter((n) => n.startsWith('zferry-'));
  assert.equal(names.length, 1, `one bundle on ${disk}: ${names.join(', ')}`);
  const dir = path.join(disk, names[0]);
  return { dir, m: JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Manifest };
}

async function bytesUnder(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await stat(path.join(e.parentPath, e.name))).size;
  }
  return n;
}

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${stderr}`);
  return lines[0];
}

async function userrefs(snapshot: string): Promise<number> {
  return Number((await run('zfs', ['get', '-H', '-o', 'value', 'userrefs', snapshot])).trim());
}

async function exists(dataset: string): Promise<boolean> {
  return (await run('zfs', ['list', '-H', '-o', 'name', dataset], { allowFailure: true })).trim() === dataset;
}

/** Three disks: part 1 and part 2 of the root's stream under the limit, the rest (part 3, then the small dataset) on the third. */
async function exportThreeDisks(prefix: string, journal: string): Promise<Array<{ disk: string; dir: string; m: Manifest }>> {
  const out = [];
  for (const [i, limit] of [LIMIT, LIMIT, null].entries()) {
    const disk = path.join(work, `${prefix}${i + 1}`);
    await zferryOk('export', src.name, disk, '--journal', journal, '--volume-size', '64K', ...(limit ? ['--max-size', limit] : []));
    out.push({ disk, ...(await onlyBundle(disk)) });
    // zfs-fuse has no `zfs holds`: the count of holds tells. One is the base protection's.
    if (limit) assert.equal(await userrefs(`${src.name}@one`), 2, 'the split stream\'s snapshot is held until its last part is out');
  }
  return out;
}

test('a stream larger than one disk goes over three disks as numbered parts, and imports byte-exact through --stage', async () => {
  const journal = path.join(work, 'journal-a');
  const disks = await exportThreeDisks('disk', journal);
  const [p1, p2, p3] = disks.map((d) => d.m);
  // Held while in parts (rotation must not take it before the last part is sent), let go after.
  assert.equal(await userrefs(`${src.name}@one`), 1, 'the parts hold is released once the last part is written; the base protection stays');
  assert.deepEqual(p1.streams.map((s) => [s.index, s.dataset, s.part?.number, s.part?.continues]), [[1, '', 1, true]], 'disk 1: part 1, continues');
  assert.deepEqual(p2.streams.map((s) => [s.index, s.dataset, s.part?.number, s.part?.continues, s.part?.previous]), [[1, '', 2, true, p1.bundleId]], 'disk 2: part 2 after disk 1');
  assert.deepEqual(p3.streams.map((s) => [s.dataset, s.part?.number, s.part?.continues]), [['', 3, false], ['small', undefined, undefined]], 'disk 3: the last part, then the rest of the plan');
  assert.equal(p2.streams[0].part!.offset, p1.streams[0].rawBytes);
  assert.equal(p3.streams[0].part!.streamRawBytes, p1.streams[0].rawBytes + p2.streams[0].rawBytes + p3.streams[0].rawBytes);
  for (const d of disks.slice(0, 2)) {
    const used = await bytesUnder(d.dir);
    assert.ok(used <= LIMIT_BYTES, `${d.dir} holds ${used} bytes, within ${LIMIT_BYTES}`);
  }
  for (const d of disks) await zferryOk('verify', d.disk);

  const stage = path.join(work, 'stage-a');
  const target = `${dst.name}/a`;
  const first = await zferry('import', disks[0].disk, target, '--stage', stage);
  assert.equal(first.code, 3, first.stderr);
  assert.match(first.stderr, new RegExp(`part 2 is in the bundle exported after ${p1.bundleId}, on the next disk: import it with --stage ${stage}`));
  assert.equal(await exists(target), false, 'nothing received from part 1 alone');
  const second = await zferry('import', disks[1].disk, target, '--stage', stage, '--json');
  assert.equal(second.code, 3, second.stderr);
  assert.match(second.stderr, /parts 1-2 staged/);
  // Nothing of either bundle is on the target yet: neither says it was applied.
  assert.deepEqual((JSON.parse(second.stdout) as { bundles: Array<{ status: string }> }).bundles.map((b) => b.status), ['waiting', 'waiting'], second.stdout);
  assert.equal((await readdir(stage)).filter((n) => !n.startsWith('.')).length, 2, 'two parts staged');
  await zferryOk('import', disks[2].disk, target, '--stage', stage);
  assert.deepEqual(await guidList(target), await guidList(src.name));
  await assertSameFiles(src.name, target);
  assert.deepEqual(await readdir(stage), [], 'the staged parts are gone once the stream is in');

  // The stock recipe: each part's RESTORE.txt with the same STAGE, the last one receives.
  const stockStage = path.join(work, 'stock-stage');
  await mkdir(stockStage);
  const stockTarget = `${dst.name}/stock`;
  for (const d of disks) {
    await execa('bash', [path.join(d.dir, 'RESTORE.txt')], { env: { TARGET: stockTarget, STAGE: stockStage }, stdin: 'ignore' });
  }
  assert.deepEqual(await guidList(stockTarget), await guidList(src.name));
});

test('--max-size stops before the first stream that does not fit, and the next export carries it', async () => {
  await writeData(src.name, 'two.bin', 128);
  await writeData(`${src.name}/small`, 'two.bin', 2048);
  await snapshot(`${src.name}@two`, true);
  const journal = path.join(work, 'journal-b');
  // From the receipt the last import left: the target has @one.
  const base = path.join(work, 'disk3');
  const d1 = path.join(base, 'b1');
  const receipt = path.join(base, `receipt-${`${dst.name}/a`.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
  const r = await zferryOk('export', src.name, d1, '--journal', journal, '--since', receipt, '--volume-size', '64K', '--max-size', LIMIT, '--json');
  const res = JSON.parse(r.stdout) as { limit: { planned: number; taken: number; left: number; split: unknown } };
  assert.deepEqual([res.limit.planned, res.limit.taken, res.limit.left, res.limit.split], [2, 1, 1, null]);
  const b1 = await onlyBundle(d1);
  assert.deepEqual(b1.m.streams.map((s) => [s.dataset, s.kind, s.part]), [['', 'incremental', undefined]], 'the root\'s incremental only, whole');
  const d2 = path.join(base, 'b2');
  await zferryOk('export', src.name, d2, '--journal', journal, '--volume-size', '64K');
  const b2 = await onlyBundle(d2);
  assert.deepEqual(b2.m.streams.map((s) => [s.dataset, s.kind, s.part]), [['small', 'incremental', undefined]], 'the stream left over, on the next disk');
  const target = `${dst.name}/a`;
  await zferryOk('import', d1, target);
  await zferryOk('import', d2, target);
  assert.deepEqual(await guidList(target), await guidList(src.name));
});

test('a part missing, out of order or corrupt, or a link or FIFO planted in the stage, is refused in one line naming it, and nothing is received', async () => {
  const journal = path.join(work, 'journal-c');
  const disks = await exportThreeDisks('c', journal);
  const stage = path.join(work, 'stage-c');
  const target = `${dst.name}/c`;

  const early = await zferry('import', disks[1].disk, target, '--stage', stage);
  assert.equal(early.code, 1);
  assert.match(oneLine(early.stderr), new RegExp(`^zferry: ${disks[1].dir}/manifest.json: stream 1 \\(\\(root\\)@one\\) is part 2 of a stream split across disks, and part 1 \\(bundle ${disks[0].m.bundleId}\\) is neither here nor staged`));
  assert.equal(await exists(target), false);

  const noStage = await zferry('import', disks[0].disk, target);
  assert.equal(noStage.code, 1);
  assert.match(oneLine(noStage.stderr), /is split across disks: part 1 here; part 2 is in the bundle exported after .*; import with --stage DIR/);

  // Someone with access to the stage puts a link, then a FIFO, where part 1 would be staged: refused by name, nothing written through it, no hang.
  await mkdir(stage, { recursive: true });
  const outside = path.join(work, 'outside-c');
  await mkdir(outside);
  const planted = path.join(stage, path.basename(disks[0].dir));
  await symlink(outside, planted);
  const linked = await zferry('import', disks[0].disk, target, '--stage', stage);
  assert.equal(linked.code, 1);
  assert.match(oneLine(linked.stderr), new RegExp(`^zferry: ${planted}: is a symbolic link inside ${stage}; zferry follows no links there; part 1 of \\(root\\)@one was not staged; nothing was received$`));
  assert.deepEqual(await readdir(outside), [], 'nothing written through the link');
  await unlink(planted);
  await execa('mkfifo', [planted]);
  const fifo = await zferry('import', disks[0].disk, target, '--stage', stage);
  assert.equal(fifo.code, 1);
  assert.match(oneLine(fifo.stderr), new RegExp(`^zferry: ${planted}: is a FIFO, not a folder; part 1 of \\(root\\)@one was not staged`));
  await unlink(planted);
  assert.deepEqual(await readdir(stage), [], 'no half-staged copy left');
  assert.equal(await exists(target), false);

  assert.equal((await zferry('import', disks[0].disk, target, '--stage', stage)).code, 3, 'part 1 staged');
  const skipped = await zferry('import', disks[2].disk, target, '--stage', stage);
  assert.equal(skipped.code, 1);
  assert.match(oneLine(skipped.stderr), new RegExp(`is part 3 of a stream split across disks, and part 2 \\(bundle ${disks[1].m.bundleId}\\) is neither here nor staged`));
  assert.equal(await exists(target), false);

  // A flipped byte in part 2: found while it is copied into the stage, before anything is received.
  const vol = path.join(disks[1].dir, 'streams', '0001-full.zst.002');
  await flipByte(vol, 100);
  const corrupt = await zferry('import', disks[1].disk, target, '--stage', stage);
  assert.equal(corrupt.code, 1);
  const line = oneLine(corrupt.stderr);
  assert.match(line, new RegExp(`^zferry: ${vol}: sha256 is [0-9a-f]{64}, manifest says [0-9a-f]{64} \\(the volume is corrupt\\); part 2 of \\(root\\)@one was not staged; nothing was received$`));
  assert.deepEqual((await readdir(stage)).filter((n) => !n.startsWith('.')), [path.basename(disks[0].dir)], 'only part 1 is staged');
  assert.deepEqual((await readdir(stage)).filter((n) => n.startsWith('.')), [], 'no half-staged copy left');
  assert.equal(await exists(target), false);

  // Mended, part 2 stages; then part 1's staged copy is damaged: the receive stops there, and the stream's end never reaches zfs recv.
  await flipByte(vol, 100);
  assert.equal((await zferry('import', disks[1].disk, target, '--stage', stage)).code, 3, 'part 2 staged');
  const staged1 = path.join(stage, path.basename(disks[0].dir), 'streams', '0001-full.zst.001');
  await flipByte(staged1, 10);
  const late = await zferry('import', disks[2].disk, target, '--stage', stage);
  assert.equal(late.code, 1);
  assert.match(oneLine(late.stderr), new RegExp(`^zferry: ${staged1}: sha256 is .* \\(the volume is corrupt\\); stream 1 \\(\\(root\\)@one\\) of ${disks[2].dir} was not received, nor the \\d+ after it; nothing was received$`));
  assert.equal(await exists(target), false, 'nothing of the stream was received');
  assert.equal((await readdir(stage)).filter((n) => !n.startsWith('.')).length, 2, 'the staged parts stay for a re-run');
});

test('--fill takes the disk\'s free space less the margin as the limit, and the bundle fits it', async () => {
  const disk = path.join(work, 'small-disk');
  await mkdir(disk);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', disk]);
  try {
    const r = await zferryOk('export', src.name, disk, '--journal', path.join(work, 'journal-d'), '--volume-size', '64K', '--fill', '--json');
    const res = JSON.parse(r.stdout) as { limit: { maxBytes: number; split: { part: number } | null } };
    assert.ok(res.limit.maxBytes <= 3 * 1024 * 1024 - 1024 * 1024, `limit ${res.limit.maxBytes} keeps the margin`);
    assert.equal(res.limit.split?.part, 1, 'the seed is cut into part 1');
    const { dir } = await onlyBundle(disk);
    assert.ok((await bytesUnder(dir)) <= res.limit.maxBytes);
    await zferryOk('verify', disk);
  } finally {
    await run('umount', [disk]);
  }
});
