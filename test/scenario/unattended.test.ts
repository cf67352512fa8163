/**
 * Run it and forget it, on real ZFS: hooks around export and import, the
 * outcome each records, the event --notify receives, and `zferry status`
 * reading them back with Nagios exit codes and a Prometheus textfile.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { STATE_DIR, zferry, zferryOk } from '../helpers/cli.js';
import { snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let work: string;
let disk: string;
let target: string;
let ageKey: string;
let recipient: string;

before(async () => {
  src = await makePool('uns', 128);
  dst = await makePool('und', 128);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-unattended-'));
  disk = path.join(work, 'disk');
  target = `${dst.name}/backup`;
  await run('zfs', ['create', `${src.name}/data`]);
  await writeData(`${src.name}/data`, 'a.bin', 32);
  await snapshot(`${src.name}@one`, true);
  ageKey = path.join(work, 'age.key');
  await run('age-keygen', ['-o', ageKey]);
  recipient = (await run('age-keygen', ['-y', ageKey])).trim();
});

after(async () => {
  await src?.destroy();
  await dst?.destroy();
  await rm(work, { recursive: true, force: true });
});

/** A hook that writes its ZFERRY_* environment to FILE (not through a shell of zferry's: the hook names sh itself). */
const envHook = (file: string) => `sh -c 'env | grep ^ZFERRY_ | sort > "${file}"'`;
const catHook = (file: string) => `sh -c 'cat > "${file}"'`;

function envOf(text: string): Record<string, string> {
  return Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

test('a failing pre hook stops export before anything is touched; the post hook still runs and status reports it', async () => {
  const post = path.join(work, 'post-failed.env');
  const r = await zferry('export', src.name, disk, '--pre', 'sh -c "echo backup pool missing >&2; exit 4"', '--post', envHook(post));
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').pop(), 'zferry: --pre hook "sh -c echo backup pool missing >&2; exit 4" failed (exit 4): backup pool missing');
  await assert.rejects(readdir(disk), 'nothing was written: not even the destination folder');
  const journals = (await readdir(STATE_DIR).catch(() => [])).filter((f) => f.startsWith('journal-') && f.includes(src.name));
  assert.deepEqual(journals, []);
  const env = envOf(await readFile(post, 'utf8'));
  assert.equal(env.ZFERRY_RESULT, 'failed');
  assert.equal(env.ZFERRY_SOURCE, src.name);

  const s = await zferry('status', src.name, '--json');
  assert.equal(s.code, 2, s.stderr);
  const report = JSON.parse(s.stdout);
  assert.equal(report.sites[0].lastExport.outcome, 'failed');
  assert.match(report.sites[0].health.reasons.join('\n'), /last export failed .* backup pool missing/);
});

test('export runs its hooks with the facts in the environment and notifies without secrets', async () => {
  const pre = path.join(work, 'pre.env');
  const post = path.join(work, 'post.env');
  const event = path.join(work, 'export-event.json');
  const config = path.join(work, 'zferry.json');
  // One file for every command: export takes the hooks and the notifier from it.
  await writeFile(config, JSON.stringify({ pre: envHook(pre), post: ['sh', '-c', `env | grep ^ZFERRY_ | sort > "${post}"`], notify: catHook(event) }));
  const r = await zferryOk('export', src.name, disk, '--config', config, '--encrypt-to', recipient, '--json');
  const bundle = JSON.parse(r.stdout).bundle as string;

  const before = envOf(await readFile(pre, 'utf8'));
  const { ZFERRY_BUNDLE, ZFERRY_KIND, ZFERRY_SITE, ZFERRY_SOURCE, ZFERRY_TARGET, ZFERRY_RESULT } = before;
  assert.deepEqual({ ZFERRY_BUNDLE, ZFERRY_KIND, ZFERRY_SITE, ZFERRY_SOURCE, ZFERRY_TARGET, ZFERRY_RESULT },
    { ZFERRY_BUNDLE: disk, ZFERRY_KIND: 'export', ZFERRY_SITE: 'default', ZFERRY_SOURCE: src.name, ZFERRY_TARGET: disk, ZFERRY_RESULT: undefined });
  const afterEnv = envOf(await readFile(post, 'utf8'));
  assert.equal(afterEnv.ZFERRY_RESULT, 'ok');
  assert.equal(afterEnv.ZFERRY_BUNDLE, bundle);

  const e = JSON.parse(await readFile(event, 'utf8'));
  assert.equal(e.format, 'zferry-event');
  assert.equal(e.kind, 'export');
  assert.equal(e.outcome, 'ok');
  assert.equal(e.source, src.name);
  assert.equal(e.site, 'default');
  assert.equal(e.error, null);
  assert.equal(e.figures.bundle, bundle);
  assert.ok(e.figures.storedBytes > 0);
  assert.equal(e.figures.streams, 2);

  // In transit: exported, not yet confirmed.
  const s = await zferry('status', src.name, '--json');
  assert.equal(s.code, 0, s.stdout);
  const site = JSON.parse(s.stdout).sites[0];
  assert.equal(site.receipt, null);
  assert.equal(site.pending.length, 1);
  assert.equal(site.health.pendingBytes, e.figures.storedBytes);
  assert.equal(site.protections.kept.length, 2);
});

test('import with an age identity records its outcome; the event carries no key; status then reads the receipt on the disk', async () => {
  const event = path.join(work, 'import-event.json');
  const post = path.join(work, 'import-post.env');
  await zferryOk('import', disk, target, '--identity', ageKey, '--notify', catHook(event), '--post', envHook(post));
  const text = await readFile(event, 'utf8');
  const secret = (await readFile(ageKey, 'utf8')).match(/AGE-SECRET-KEY-1[0-9A-Z]+/)![0];
  assert.ok(!text.includes(secret));
  assert.ok(!text.includes('AGE-SECRET-KEY'));
  const e = JSON.parse(text);
  assert.equal(e.kind, 'import');
  assert.equal(e.target, target);
  assert.equal(e.source, src.name);
  assert.equal(e.figures.applied, 1);
  assert.equal(envOf(await readFile(post, 'utf8')).ZFERRY_TARGET, target);

  const s = await zferry('status', src.name, '--dest', disk, '--json');
  assert.equal(s.code, 0, s.stdout);
  const site = JSON.parse(s.stdout).sites[0];
  assert.match(site.receipt.file, /receipt-/);
  assert.equal(site.receipt.newest.name, 'one');
  assert.equal(site.pending.length, 0);

  // The receiving side: the last import and the target's newest snapshot.
  const t = await zferry('status', '--target', target, '--json');
  const remote = JSON.parse(t.stdout).targets.find((x: { target: string }) => x.target === target);
  assert.equal(remote.lastImport.outcome, 'ok');
  assert.equal(remote.newest.name, 'one');
});

test('status ages the receipt: WARNING past --warn, CRITICAL past --crit, and writes the Prometheus textfile atomically', async () => {
  await new Promise((r) => setTimeout(r, 2100));
  const prom = path.join(work, 'metrics', 'zferry.prom');
  await run('mkdir', ['-p', path.dirname(prom)]);
  const warn = await zferry('status', src.name, '--dest', disk, '--warn', '1s', '--crit', '1h', '--prometheus', prom);
  assert.equal(warn.code, 1, warn.stdout);
  assert.match(warn.stdout.split('\n')[0]!, /^ZFERRY WARNING - .*newest receipt is \d+ s old/);
  const crit = await zferry('status', src.name, '--dest', disk, '--warn', '1s', '--crit', '2s');
  assert.equal(crit.code, 2, crit.stdout);
  assert.match(crit.stdout, /^ZFERRY CRITICAL/);

  const text = await readFile(prom, 'utf8');
  assert.match(text, new RegExp(`^zferry_last_receipt_timestamp_seconds\\{source="${src.name}",site="default"\\} \\d+$`, 'm'));
  assert.match(text, new RegExp(`^zferry_pending_bundles\\{source="${src.name}",site="default"\\} 0$`, 'm'));
  assert.match(text, new RegExp(`^zferry_last_run_success\\{source="${src.name}",site="default",kind="export"\\} 1$`, 'm'));
  assert.match(text, /^# TYPE zferry_status gauge$/m);
  assert.match(text, /^zferry_status 1$/m);
  assert.deepEqual(await readdir(path.dirname(prom)), ['zferry.prom']);
});

test('a failing notifier never hides the job\'s exit code', async () => {
  const ok = await zferry('export', src.name, disk, '--notify', 'sh -c "exit 9"');
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /--notify .* failed \(exit 9\)/);
  const bad = await zferry('import', path.join(work, 'no-such-disk'), target, '--notify', 'no-such-notifier-program');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /no zferry bundle here|no such file/i);
});

test('a post hook that fails after a good job fails it; status usage errors exit UNKNOWN', async () => {
  const r = await zferry('export', src.name, disk, '--post', 'false');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--post hook "false" failed \(exit 1\)/);
  const u = await zferry('status', '--warn', 'soon');
  assert.equal(u.code, 3);
  const v = await zferry('status', '--no-such-option');
  assert.equal(v.code, 3);
});
