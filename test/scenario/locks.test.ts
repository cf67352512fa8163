/**
 * One job at a time (issue 13, point 3), on real ZFS with runs that really
 * overlap: the first export or import is held at a chosen point by the test
 * pause hook (src/test-hook.ts) with its lock taken; a second run refuses,
 * naming the holder's pid and command; a third with --wait waits, and runs
 * once the first is let go. The journal and receipts come out as if the runs
 * had been made one after the other.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { ResultPromise } from 'execa';
import { run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { startZferry, stopZferry, zferry, zferryOk } from '../helpers/cli.js';
import { killAt, pauseAt } from '../helpers/kill.js';
import { guidList, snapshot, writeData } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/relay.js';
import { readState } from '../../src/state/receipt.js';

let lab: TwoPools;
let src: TestPool;
let dst: TestPool;
let work: string;
const running: ResultPromise[] = [];

before(async () => {
  lab = await twoPools('lk', 96);
  ({ src, dst, work } = lab);
  await run('zfs', ['create', `${src.name}/a`]);
  for (const d of ['', '/a']) await writeData(`${src.name}${d}`, 'one.bin', 64);
  await snapshot(`${src.name}@one`, true);
});

after(async () => {
  for (const p of running) await stopZferry(p, true);
  await lab?.teardown();
});

function background(...args: string[]): { p: ResultPromise; stderr: () => string } {
  const p = startZferry(...args);
  running.push(p);
  let text = '';
  p.stderr?.on('data', (c: Buffer) => {
    text += c.toString('utf8');
  });
  return { p, stderr: () => text };
}

async function bundlesUnder(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith('zferry-')).map((n) => path.join(dir, n));
}

const journalDir = () => path.join(work, 'journal');
const disk = (n: number) => path.join(work, `disk-${n}`);
const target = () => `${dst.name}/mirror`;

test('two exports of one source overlap: the second refuses naming the first\'s pid and command; a third with --wait runs after it, planned on its journal entry', async () => {
  const J = journalDir();
  const first = await pauseAt('export:stream:1', { dir: work }, 'export', src.name, disk(1), '--journal', J, '--volume-size', '8K');
  const pid = first.child.pid!;
  const held = JSON.parse(await readFile(path.join(J, `export-${src.name}@default.lock`), 'utf8'));
  assert.equal(held.pid, pid);

  const refused = await zferry('export', src.name, disk(2), '--journal', J);
  assert.equal(refused.code, 1);
  const lines = refused.stderr.trim().split('\n');
  assert.equal(lines.length, 1, refused.stderr);
  assert.match(lines[0], new RegExp(`^zferry: .*export-${src.name}@default\\.lock: an export of ${src.name} is already running, by pid ${pid} \\(zferry export ${src.name} ${disk(1)} --journal .*\\); this run did nothing; --wait \\[SECONDS\\] waits for it$`));
  assert.deepEqual(await bundlesUnder(disk(2)), [], 'the refused run wrote nothing');

  // New data while the first export is held: the waiting run must plan on top of what the first one sends.
  await writeData(`${src.name}/a`, 'two.bin', 16);
  await snapshot(`${src.name}@two`, true);
  const waiter = background('export', src.name, disk(2), '--journal', J, '--wait', '120', '--volume-size', '8K');
  await waitFor('the third export to say it waits', () => /waiting for pid \d+/.test(waiter.stderr()), 60_000);
  assert.match(waiter.stderr(), new RegExp(`waiting for pid ${pid} \\(zferry export ${src.name} ${disk(1)}`));
  assert.equal(waiter.p.exitCode, null, 'it waits, it has not given up');

  await first.resume();
  const a = await first.child;
  assert.equal(a.exitCode, 0, String(a.stderr));
  const c = await waiter.p;
  assert.equal(c.exitCode, 0, String(c.stderr));
  assert.equal(String(c.stderr).trim().split('\n').length, 1, 'one line: the wait');

  const [bundleA] = await bundlesUnder(disk(1));
  const [bundleC] = await bundlesUnder(disk(2));
  const mA = JSON.parse(await readFile(path.join(bundleA, 'manifest.json'), 'utf8'));
  const mC = JSON.parse(await readFile(path.join(bundleC, 'manifest.json'), 'utf8'));
  const journalName = (await readdir(J)).find((n) => n.startsWith('journal-'))!;
  const journal = JSON.parse(await readFile(path.join(J, journalName), 'utf8'));
  assert.deepEqual(journal.entries.map((e: { bundleId: string; after: string | null }) => [e.bundleId, e.after]), [[mA.bundleId, null], [mC.bundleId, mA.bundleId]]);
  assert.equal(mC.basis.origin, 'journal');
  assert.ok(mC.streams.every((s: { kind: string }) => s.kind !== 'full'), 'the second bundle only carries @one→@two');
  assert.deepEqual((await readdir(J)).filter((n) => n.endsWith('.lock')), [], 'no lock left behind');
});

test('two imports into one target overlap: the second refuses naming the first\'s pid and command; a third with --wait applies after it; both receipts are right', async () => {
  const T = target();
  const first = await pauseAt('import:stream:1', { dir: work, env: { ZFERRY_TEST_PAUSE_BYTES: '4096' } }, 'import', disk(1), T);
  const pid = first.child.pid!;

  const refused = await zferry('import', disk(2), T);
  assert.equal(refused.code, 1);
  const lines = refused.stderr.trim().split('\n');
  assert.equal(lines.length, 1, refused.stderr);
  assert.match(lines[0], new RegExp(`^zferry: .*import-${dst.name}\\+mirror\\.lock: an import into ${T} is already running, by pid ${pid} \\(zferry import ${disk(1)} ${T}, since .*\\); this run did nothing; --wait \\[SECONDS\\] waits for it$`));
  assert.deepEqual((await readdir(disk(2))).filter((n) => n.startsWith('receipt-')), [], 'the refused run wrote no receipt');

  const waiter = background('import', disk(2), T, '--wait');
  await waitFor('the third import to say it waits', () => /waiting for pid \d+/.test(waiter.stderr()), 60_000);
  assert.equal(waiter.p.exitCode, null);

  await first.resume();
  const a = await first.child;
  assert.equal(a.exitCode, 0, String(a.stderr));
  const c = await waiter.p;
  assert.equal(c.exitCode, 0, String(c.stderr));
  assert.equal(String(c.stderr).trim().split('\n').length, 1, 'one line: the wait');

  assert.deepEqual(await guidList(T), await guidList(src.name));
  const [bundleA] = await bundlesUnder(disk(1));
  const [bundleC] = await bundlesUnder(disk(2));
  const idOf = async (b: string) => JSON.parse(await readFile(path.join(b, 'manifest.json'), 'utf8')).bundleId as string;
  const receiptName = `receipt-${T.replace(/\//g, '_')}.json`;
  const r1 = await readState(path.join(disk(1), receiptName));
  const r2 = await readState(path.join(disk(2), receiptName));
  assert.deepEqual(r1.bundles, [await idOf(bundleA)]);
  assert.deepEqual(r2.bundles, [await idOf(bundleC)]);
  const inReceipt = r2.inventory.datasets.flatMap((d) => d.snapshots.map((s) => `${d.path}@${s.name}=${s.guid}`)).sort();
  assert.deepEqual(inReceipt, await guidList(T), 'the later receipt holds what the target holds');
});

test('a lock left by a killed export is taken over with one line naming the dead pid', async () => {
  const J = path.join(work, 'journal-killed');
  await killAt('export:between:1', { dir: work }, 'export', src.name, disk(3), '--journal', J);
  const left = JSON.parse(await readFile(path.join(J, `export-${src.name}@default.lock`), 'utf8'));
  await rm(disk(3), { recursive: true, force: true });
  const r = await zferryOk('export', src.name, disk(3), '--journal', J);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], new RegExp(`took over the lock of pid ${left.pid} \\(zferry export ${src.name} ${disk(3)} --journal ${J}\\), which is no longer running$`));
  assert.equal((await bundlesUnder(disk(3))).length, 1);
});
