/**
 * `export` to too little space, on the two kinds of full a user meets: a
 * nearly full disk (a 1 MiB tmpfs made by the test, mostly filled) and a
 * ZFS dataset whose quota runs out (zfs-fuse returns EDQUOT, which Node
 * cannot name by itself). Checked first, the export refuses with the
 * shortfall and writes nothing; with the check off (a file system that
 * misreports its free space), the write that runs out ends in one line
 * naming the file and the space missing, and, having finished no stream to
 * keep for a re-run, the unfinished bundle goes.
 * (Finished streams stay for the re-run: test/scenario/export-resume.test.ts.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { makePool, mountpointOf, run, type TestPool } from '../helpers/zfslab.js';
import { zferry } from '../helpers/cli.js';
import { snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let media: TestPool;
let work: string;
let disk: string;
let quotaDir: string;
let mounted = false;

before(async () => {
  src = await makePool('dfs', 64);
  media = await makePool('dfq', 64);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-full-'));
  disk = path.join(work, 'disk');
  await mkdir(disk);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', disk]);
  mounted = true;
  // Nearly full: about 300 KiB left, for a bundle of about 550 KiB (512 KiB of it random).
  await writeFile(path.join(disk, 'filler'), randomBytes(700 * 1024));
  // A dataset with 768 KiB of quota for the 2 MiB stream below (1 MiB of it random: about 1 MiB stored).
  await run('zfs', ['create', '-o', 'quota=768K', `${media.name}/disk`]);
  quotaDir = await mountpointOf(`${media.name}/disk`);
  await writeData(src.name, 'big.bin', 1024);
  await writeData(src.name, 'more.bin', 1024);
  await snapshot(`${src.name}@one`);
});

after(async () => {
  if (mounted) await run('umount', [disk]);
  await src?.destroy();
  await media?.destroy();
  await rm(work, { recursive: true, force: true });
});

function oneLineOf(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${stderr}`);
  return lines[0]!;
}

async function assertNothingAccepted(where: string): Promise<void> {
  const v = await zferry('verify', where);
  assert.notEqual(v.code, 0);
  assert.match(v.stderr, /no zferry bundle here/);
  const target = `${src.name}/copy`;
  const i = await zferry('import', where, target);
  assert.notEqual(i.code, 0);
  assert.match(i.stderr, /no zferry bundle here/);
  assert.equal((await run('zfs', ['list', '-H', '-o', 'name', '-r', src.name])).includes(target), false, 'nothing received');
}

test('export to a nearly full disk refuses before writing, with the shortfall in one line', async (t) => {
  const r = await zferry('export', src.name, disk, '--no-journal', '--volume-size', '64K');
  assert.notEqual(r.code, 0, 'exit non-zero');
  const line = oneLineOf(r.stderr);
  t.diagnostic(line);
  assert.match(line, new RegExp(`^zferry: not enough space on ${disk}: the bundle needs about .* free; .* short$`));
  assert.deepEqual(await readdir(disk), ['filler'], 'nothing written');
  await assertNothingAccepted(disk);
});

test('export --dry-run and estimate --dest report the same shortfall, and the dry run exits non-zero', async () => {
  const dry = await zferry('export', src.name, disk, '--no-journal', '--dry-run');
  assert.equal(dry.code, 1, dry.stderr);
  assert.match(dry.stdout, new RegExp(`space: not enough space on ${disk}: .* short`));
  const est = await zferry('estimate', src.name, '--dest', disk, '--no-journal', '--json');
  assert.equal(est.code, 0, est.stderr);
  const space = JSON.parse(est.stdout).space;
  assert.equal(space.fits, false);
  assert.ok(space.shortfallBytes > 0);
  const json = await zferry('export', src.name, disk, '--no-journal', '--dry-run', '--json');
  assert.equal(JSON.parse(json.stdout).space.fits, false);
  assert.deepEqual(await readdir(disk), ['filler'], 'nothing written');
});

test('with the check off, a disk that fills mid-write ends in one line naming the file and the space missing', async (t) => {
  const r = await zferry('export', src.name, disk, '--no-journal', '--volume-size', '64K', '--no-space-check');
  assert.notEqual(r.code, 0, 'exit non-zero');
  const line = oneLineOf(r.stderr);
  t.diagnostic(line);
  assert.match(line, /^zferry: no space left on device (writing|creating|flushing) /);
  assert.match(line, /more space is needed$/);
  const file = line.match(/ (\/\S+)/)?.[1] ?? '';
  assert.ok(file.startsWith(`${disk}/zferry-`), `names the file on the disk: ${line}`);
  assert.deepEqual(await readdir(disk), ['filler'], 'the unfinished bundle folder is removed');
  await assertNothingAccepted(disk);
});

test('export into a dataset whose quota is too small refuses before writing', async (t) => {
  const r = await zferry('export', src.name, quotaDir, '--no-journal', '--volume-size', '256K');
  assert.notEqual(r.code, 0);
  const line = oneLineOf(r.stderr);
  t.diagnostic(line);
  assert.match(line, new RegExp(`^zferry: not enough space on ${quotaDir}: .* short$`));
  assert.deepEqual(await readdir(quotaDir), [], 'nothing written');
});

test('a quota running out mid-write (EDQUOT) ends in one plain line naming the file and the space missing', async (t) => {
  const r = await zferry('export', src.name, quotaDir, '--no-journal', '--volume-size', '256K', '--no-space-check');
  assert.notEqual(r.code, 0);
  const line = oneLineOf(r.stderr);
  t.diagnostic(line);
  assert.doesNotMatch(line, /Unknown system error/);
  assert.match(line, new RegExp(`^zferry: disk quota exceeded (writing|creating|flushing) ${quotaDir}/zferry-\\S+.*: .*more space is needed$`));
  assert.deepEqual(await readdir(quotaDir), [], 'the unfinished bundle folder is removed');
  await assertNothingAccepted(quotaDir);
});

test('the same export fits once the quota is raised, and the check says so', async () => {
  await run('zfs', ['set', 'quota=16M', `${media.name}/disk`]);
  const r = await zferry('export', src.name, quotaDir, '--no-journal', '--volume-size', '256K');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`space: the bundle fits on ${quotaDir}`));
  const v = await zferry('verify', quotaDir);
  assert.equal(v.code, 0, v.stderr);
});
