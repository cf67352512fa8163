/**
 * `export` to a nearly full disk: a 1 MiB tmpfs made by the test, mostly
 * filled, receives a bundle bigger than what is left. The export fails with
 * one line naming the file and "no space left on device", exits non-zero,
 * and, having finished no stream to keep for a re-run, removes its
 * unfinished bundle folder, so verify and import find nothing to accept.
 * (Finished streams stay for the re-run: test/scenario/export-resume.test.ts.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { zferry } from '../helpers/cli.js';
import { snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let work: string;
let disk: string;
let mounted = false;

before(async () => {
  src = await makePool('dfs', 64);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-full-'));
  disk = path.join(work, 'disk');
  await mkdir(disk);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', disk]);
  mounted = true;
  // Nearly full: about 300 KiB left, for a bundle of about 550 KiB (512 KiB of it random).
  await writeFile(path.join(disk, 'filler'), randomBytes(700 * 1024));
  await writeData(src.name, 'big.bin', 1024);
  await snapshot(`${src.name}@one`);
});

after(async () => {
  if (mounted) await run('umount', [disk]);
  await src?.destroy();
  await rm(work, { recursive: true, force: true });
});

test('export to a nearly full disk fails with one line naming the file, and leaves nothing verify or import accept', async (t) => {
  const r = await zferry('export', src.name, disk, '--no-journal', '--volume-size', '64K');
  assert.notEqual(r.code, 0, 'exit non-zero');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0], /^zferry: no space left on device (writing|creating|flushing) /);
  const file = lines[0].match(/ (\/\S+)/)?.[1] ?? '';
  assert.ok(file.startsWith(`${disk}/zferry-`), `names the file on the disk: ${lines[0]}`);
  t.diagnostic(lines[0]);
  assert.deepEqual(await readdir(disk), ['filler'], 'the unfinished bundle folder is removed');

  const v = await zferry('verify', disk);
  assert.notEqual(v.code, 0);
  assert.match(v.stderr, /no zferry bundle here/);
  const target = `${src.name}/copy`;
  const i = await zferry('import', disk, target);
  assert.notEqual(i.code, 0);
  assert.match(i.stderr, /no zferry bundle here/);
  assert.equal((await run('zfs', ['list', '-H', '-o', 'name', '-r', src.name])).includes(target), false, 'nothing received');
});
