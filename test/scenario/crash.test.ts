/**
 * Crash safety: `export` SIGKILLed during a stream, between streams and just
 * before the manifest leaves nothing verify or import accepts, and a re-run
 * produces a good bundle; `import` SIGKILLed between streams completes on
 * re-run. Kill points come from the ZFERRY_TEST_PAUSE_AT hook
 * (src/test-hook.ts): the process announces the point in a file and waits,
 * so the kill lands exactly there, without timing guesses.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { killAt as killAtPoint } from '../helpers/kill.js';
import { waitFor } from '../helpers/relay.js';
import { fingerprint, guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let pools: TwoPools | undefined;
let dst: TestPool;
let work: string;

before(async () => {
  ({ src, dst, work: work } = pools = await twoPools('cr', 96));
  for (const d of ['a', 'b']) await run('zfs', ['create', `${src.name}/${d}`]);
  for (const d of ['', '/a', '/b']) await writeData(`${src.name}${d}`, 'one.bin', 48);
  await snapshot(`${src.name}@one`, true);
});

after(async () => {
  await pools?.teardown();
});

/** Runs zferry until it reaches `point`, then SIGKILLs it. */
async function killAt(point: string, ...args: string[]): Promise<void> {
  return killAtWith(point, {}, async () => undefined, ...args);
}

/**
 * Runs zferry until it reaches `point` (extra environment in `env`, e.g.
 * ZFERRY_TEST_PAUSE_BYTES), waits for `settle` (what must have happened
 * before the kill), then SIGKILLs it.
 */
async function killAtWith(point: string, env: Record<string, string>, settle: () => Promise<void>, ...args: string[]): Promise<void> {
  return killAtPoint(point, { dir: work, env, settle }, ...args);
}

async function manifestOf(bundle: string): Promise<{ streams: Array<{ index: number; dataset: string; kind: string; rawBytes: number; intermediates: boolean; sendFlags: string[]; creates: Array<{ name: string }> }> }> {
  return JSON.parse(await readFile(path.join(bundle, 'manifest.json'), 'utf8'));
}

/** Byte count of `zfs send ARGS`. */
async function sendBytes(args: string[]): Promise<number> {
  const r = await execa('zfs', ['send', ...args], { encoding: 'buffer', stripFinalNewline: false, stdin: 'ignore' });
  return r.stdout.length;
}

// Every test seeds a fresh target from a fresh disk: --no-journal keeps one test's bundle from being the next one's basis.
for (const point of ['export:stream:2', 'export:between:1', 'export:manifest']) {
  test(`export killed at ${point} leaves nothing that verifies or imports, and a re-run is good`, async () => {
    const dest = path.join(work, point.replace(/:/g, '_'));
    await killAt(point, 'export', src.name, dest, '--no-journal', '--volume-size', '8K');
    assert.equal((await readdir(dest)).length, 1, 'the unfinished bundle folder is there');
    const v = await zferry('verify', dest);
    assert.notEqual(v.code, 0);
    assert.match(v.stderr, /no zferry bundle here/);
    const target = `${dst.name}/k${point.split(':')[1]}`;
    const i = await zferry('import', dest, target);
    assert.notEqual(i.code, 0);
    assert.equal((await run('zfs', ['list', '-H', '-o', 'name', '-r', dst.name])).includes(target), false, 'nothing received');
    await zferryOk('export', src.name, dest, '--no-journal', '--volume-size', '8K');
    await zferryOk('verify', dest);
    await zferryOk('import', dest, target);
    assert.deepEqual(await guidList(target), await guidList(src.name));
    await run('zfs', ['destroy', '-r', target]);
  });
}

for (const point of ['import:between:1', 'import:between:2']) {
  test(`import killed at ${point} completes on re-run`, async () => {
    const dest = path.join(work, `imp-${point.replace(/:/g, '_')}`);
    await zferryOk('export', src.name, dest, '--no-journal', '--volume-size', '8K');
    const target = `${dst.name}/i${point.split(':')[2]}`;
    await killAt(point, 'import', dest, target);
    const partial = await fingerprint(target);
    assert.ok(partial.length > 0, 'something was received before the kill');
    await zferryOk('import', dest, target);
    assert.deepEqual(await guidList(target), await guidList(src.name));
    await run('zfs', ['destroy', '-r', target]);
  });
}

test('import killed in the middle of a stream (import:stream:2, half its bytes fed to zfs recv) completes on re-run', async () => {
  const dest = path.join(work, 'imp-mid');
  await zferryOk('export', src.name, dest, '--no-journal', '--volume-size', '8K');
  const bundle = path.join(dest, (await readdir(dest))[0]);
  const s = (await manifestOf(bundle)).streams[1];
  const target = `${dst.name}/mid`;
  const half = Math.floor(s.rawBytes / 2);
  await killAtWith('import:stream:2', { ZFERRY_TEST_PAUSE_BYTES: String(half) }, async () => undefined, 'import', dest, target);
  const partial = await guidList(target);
  assert.ok(partial.some((g) => g.startsWith('@one=')), 'stream 1 was received before the kill');
  assert.ok(!partial.some((g) => g.startsWith(`${s.dataset}@one=`)), `stream 2 (${s.dataset}) was cut after ${half} of ${s.rawBytes} bytes: nothing of it committed`);
  await zferryOk('import', dest, target);
  assert.deepEqual(await guidList(target), await guidList(src.name));
  await run('zfs', ['destroy', '-r', target]);
});

test('an -I stream killed after some of its snapshots were committed is completed on re-run, rolling back only what it re-creates', async () => {
  const from = `${src.name}/inc`;
  const target = `${dst.name}/inc`;
  const dest = path.join(work, 'imp-inc');
  await run('zfs', ['create', from]);
  await writeData(from, 'one.bin', 16);
  await snapshot(`${from}@one`);
  await zferryOk('export', from, dest, '--no-journal');
  await zferryOk('import', dest, target);
  for (const n of ['two', 'three', 'four']) {
    await writeData(from, `${n}.bin`, 64);
    await snapshot(`${from}@${n}`);
  }
  // The receipt the first import left in `dest` makes this an incremental: one -I stream @one → @four.
  await zferryOk('export', from, dest, '--no-journal');
  const second = path.join(dest, (await readdir(dest)).filter((n) => n.startsWith('zferry-')).sort()[1]);
  const m = await manifestOf(second);
  assert.equal(m.streams.length, 1);
  assert.equal(m.streams[0].kind, 'incremental');
  assert.equal(m.streams[0].intermediates, true);
  assert.deepEqual(m.streams[0].creates.map((c) => c.name), ['two', 'three', 'four']);

  // An -I stream is the -i streams one after another (plus a few hundred bytes each on zfs-fuse): stop halfway through @three → @four.
  const flags = m.streams[0].sendFlags.filter((f) => f !== '-I' && f !== '-i');
  const [two, three, four] = await Promise.all([
    sendBytes([...flags, '-i', `${from}@one`, `${from}@two`]),
    sendBytes([...flags, '-i', `${from}@two`, `${from}@three`]),
    sendBytes([...flags, '-i', `${from}@three`, `${from}@four`]),
  ]);
  assert.ok(Math.abs(two + three + four - m.streams[0].rawBytes) < four / 4, 'the -I stream is about the three -i streams');
  const cut = two + three + Math.floor(four / 2);
  const snaps = async () => (await guidList(target)).map((g) => g.split('=')[0]);
  await killAtWith('import:stream:1', { ZFERRY_TEST_PAUSE_BYTES: String(cut) },
    // Up to 60 s: zfs-fuse on a loaded CI host commits late.
    () => waitFor('zfs recv to commit @two and @three', async () => (await snaps()).includes('@three'), 60_000),
    'import', second, target);
  assert.deepEqual(await snaps(), ['@one', '@three', '@two'], '@two and @three committed, @four not');

  const r = await zferryOk('import', second, target, '--json');
  const applied = JSON.parse(r.stdout).bundles[0].applied;
  assert.equal(applied.length, 1);
  assert.equal(applied[0].rollbackTo, 'one', 'rolled back to the base, which the stream re-creates from');
  assert.equal(applied[0].discards, undefined, 'no snapshot the stream does not re-create was discarded');
  assert.deepEqual(await guidList(target), await guidList(from));
  await run('zfs', ['destroy', '-r', target]);
});
