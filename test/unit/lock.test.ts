/** The job lock (src/state/lock.ts): who holds it, refusal, waiting, stale takeover, on literal lock files. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, exportLockFile, importLockFile, spoolLockFile } from '../../src/state/lock.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-lock-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const holder = (pid: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ pid, command: 'zferry export tank /mnt/disk', started: '2026-11-29T06:00:00.000Z', host: hostname(), boot: null, pidStart: null, token: 'abc', ...extra }) + '\n';

test('a live holder makes a second run refuse, naming its pid and command; release frees the lock', async () => {
  await withDir(async (dir) => {
    const file = exportLockFile(dir, 'tank');
    const first = await acquireLock(file, { what: 'an export of tank' });
    const recorded = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(recorded.pid, process.pid);
    assert.match(recorded.command, /^zferry\b/);
    const err = await acquireLock(file, { what: 'an export of tank' }).then(() => null, (e: Error) => e);
    assert.ok(err);
    assert.match(err.message, new RegExp(`an export of tank is already running, by pid ${process.pid} \\(zferry`));
    assert.match(err.message, /this run did nothing; --wait \[SECONDS\] waits for it$/);
    assert.doesNotMatch(err.message, /\n/);
    await first.release();
    assert.deepEqual(await readdir(dir), []);
    const again = await acquireLock(file, { what: 'an export of tank' });
    await again.release();
  });
});

test('a lock whose pid is dead is taken over with one line naming the dead pid', async () => {
  await withDir(async (dir) => {
    const file = importLockFile(dir, 'backup');
    await writeFile(file, holder(999_999_999));
    const said: string[] = [];
    const lock = await acquireLock(file, { what: 'an import into backup', notice: (l) => said.push(l) });
    assert.equal(said.length, 1);
    assert.match(said[0], /took over the lock of pid 999999999 \(zferry export tank \/mnt\/disk\), which is no longer running/);
    assert.equal(JSON.parse(await readFile(file, 'utf8')).pid, process.pid);
    await lock.release();
  });
});

test('a lock from before a reboot is stale even when its pid runs again now', async () => {
  await withDir(async (dir) => {
    const file = spoolLockFile(dir);
    // Our own pid, alive, but recorded under another boot id.
    await writeFile(file, holder(process.pid, { boot: '00000000-0000-0000-0000-000000000000' }));
    const said: string[] = [];
    await (await acquireLock(file, { what: 'a relay round', notice: (l) => said.push(l) })).release();
    assert.equal(said.length, 1);
  });
});

test('a lock in the old relay format (the pid alone) is still understood', async () => {
  await withDir(async (dir) => {
    const file = spoolLockFile(dir);
    await writeFile(file, `${process.pid}\n`);
    await assert.rejects(acquireLock(file, { what: 'a relay round' }), new RegExp(`by pid ${process.pid} \\(a relay round`));
    await writeFile(file, '999999999\n');
    const lock = await acquireLock(file, { what: 'a relay round' });
    await lock.release();
  });
});

test('--wait: a second run waits until the holder releases, or refuses once the seconds are up', async () => {
  await withDir(async (dir) => {
    const file = exportLockFile(dir, 'tank');
    const first = await acquireLock(file, { what: 'an export of tank' });
    const said: string[] = [];
    const t0 = Date.now();
    await assert.rejects(acquireLock(file, { what: 'an export of tank', waitSeconds: 0.3, notice: (l) => said.push(l) }), /already running, by pid \d+ .*after waiting 0.3 s$/);
    assert.ok(Date.now() - t0 >= 250);
    assert.equal(said.length, 1);
    assert.match(said[0], /waiting for pid \d+ .* to finish an export of tank/);
    setTimeout(() => void first.release(), 300);
    const second = await acquireLock(file, { what: 'an export of tank', waitSeconds: Infinity });
    assert.equal(JSON.parse(await readFile(file, 'utf8')).pid, process.pid);
    await second.release();
  });
});

test('many runs taking over the same stale lock at once: exactly one gets it', async () => {
  await withDir(async (dir) => {
    const file = importLockFile(dir, 'backup');
    await writeFile(file, holder(999_999_999));
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => acquireLock(file, { what: 'an import into backup' })));
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1);
    for (const r of results) if (r.status === 'rejected') assert.match(String(r.reason), /already running/);
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value.release();
    assert.deepEqual(await readdir(dir), []);
  });
});

test('release never removes a lock another run took over', async () => {
  await withDir(async (dir) => {
    const file = importLockFile(dir, 'backup');
    const lock = await acquireLock(file, { what: 'an import into backup' });
    await writeFile(file, holder(process.pid, { token: 'someone-else' }));
    await lock.release();
    assert.equal(JSON.parse(await readFile(file, 'utf8')).token, 'someone-else');
  });
});

test('lock file names: one per source and site, per target, per spool; distinct names never share a file', () => {
  assert.equal(exportLockFile('/var/lib/zferry', 'tank/data'), '/var/lib/zferry/export-tank+data@default.lock');
  assert.equal(exportLockFile('/s', 'tank/data', 'offsite'), '/s/export-tank+data@offsite.lock');
  assert.notEqual(exportLockFile('/s', 'tank/a_b'), exportLockFile('/s', 'tank_a/b'));
  assert.notEqual(exportLockFile('/s', 'tank/a b'), exportLockFile('/s', 'tank/a_b'));
  assert.equal(importLockFile('/var/lib/zferry', 'backup/tank'), '/var/lib/zferry/import-backup+tank.lock');
  assert.equal(spoolLockFile('/srv/spool'), '/srv/spool/.zferry-relay.lock');
});
