/**
 * The README's first command, `npm run demo`, is what a new user runs
 * before anything else: the whole story (a half-finished seed, one bundle by
 * disk, a second round from the receipt) on file-backed pools. It must end
 * level by guid, leave no pool behind, and touch nothing of the user's: its
 * state folder is its own, whatever $ZFERRY_STATE_DIR says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { ensureZfs, run } from '../helpers/zfslab.js';

const DEMO = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'demo', 'demo.js');

test('the demo runs the whole story, ends level by guid, leaves no pool, and keeps the user\'s $ZFERRY_STATE_DIR', async () => {
  await ensureZfs();
  const pools = async () => (await run('zpool', ['list', '-H', '-o', 'name'])).split('\n').filter(Boolean).sort();
  const before = await pools();
  // A user's real state folder, as cron's jobs would use it.
  const theirs = await mkdtemp(path.join(os.tmpdir(), 'zferry-users-state-'));
  await writeFile(path.join(theirs, 'journal-tank.json'), '{"kept":true}\n');
  try {
    const r = await execa(process.execPath, [DEMO], { reject: false, stdin: 'ignore', timeout: 240_000, env: { LC_ALL: 'C', ZFERRY_STATE_DIR: theirs } });
    assert.equal(r.exitCode, 0, `${r.stderr}\n${r.stdout}`);
    for (const step of ['$ zferry state ', '$ zferry export ', '$ zferry verify ', '$ zferry import ']) assert.ok(r.stdout.includes(step), `the demo shows ${step.trim()}`);
    assert.match(r.stdout, /every snapshot on the target has the source's guid: yes/);
    assert.deepEqual(await readdir(theirs), ['journal-tank.json'], 'the user\'s state folder is untouched');
    assert.deepEqual(await pools(), before, 'the demo\'s pools are gone');
  } finally {
    await rm(theirs, { recursive: true, force: true });
  }
});
