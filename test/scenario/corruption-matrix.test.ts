/**
 * The corruption matrix, on real ZFS: for every volume of a multi-volume,
 * multi-stream incremental bundle — a byte flipped at the start, middle and
 * end, truncated, extended, deleted — and for swapped volumes, a hand-edited
 * manifest and an edited SHA256SUMS, both `verify` and `import` refuse,
 * naming the file. With --verify-first the target's snapshots (and on OpenZFS
 * its receive_resume_token) are unchanged; the default one-pass import keeps
 * every stream but the damaged one and those that wait for it, each a whole
 * snapshot. The bundle's streams are the root's, then a's and b's: a and b
 * are siblings, received side by side once the root's is in (plan/lanes.ts),
 * so damage in one of them stops only that one, and damage in the root's
 * stops all three.
 *
 * The bundle is built once; each case damages a fresh copy. verify and import
 * run in-process (one probed adapter) to keep ~50 cases fast; a sample also
 * runs through the CLI to pin the exit code and the one-line message.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, cp, mkdtemp, open, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { lane, makePool, run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { fingerprint, flipByte, snapshot, writeData } from '../helpers/fixtures.js';
import { ZferryError } from '../../src/errors.js';
import { Zfs } from '../../src/zfs/index.js';
import { runImport } from '../../src/commands/import.js';
import { runVerify } from '../../src/commands/verify.js';

let src: TestPool;
let pools: TwoPools | undefined;
let dst: TestPool;
let work: string;
let target: string;
let good: string;
let zfs: Zfs;

before(async () => {
  ({ src, dst, work: work } = pools = await twoPools('cm', 96));
  target = `${dst.name}/backup`;
  for (const d of ['a', 'b']) await run('zfs', ['create', `${src.name}/${d}`]);
  await snapshot(`${src.name}@one`, true);
  const seed = path.join(work, 'seed');
  await zferryOk('export', src.name, seed);
  await zferryOk('import', seed, target);
  for (const d of ['', '/a', '/b']) await writeData(`${src.name}${d}`, 'two.bin', 40);
  await snapshot(`${src.name}@two`, true);
  const receipt = path.join(seed, `receipt-${target.replace(/\//g, '_')}.json`);
  good = JSON.parse((await zferryOk('export', src.name, path.join(work, 'next'), '--since', receipt, '--volume-size', '12K', '--json')).stdout).bundle;
  zfs = await Zfs.probe();
});

after(async () => {
  await pools?.teardown();
});

/** Snapshot guids, plus the partial-receive state where zfs keeps one (OpenZFS). */
async function targetState(): Promise<string> {
  const fp = await fingerprint(target);
  if (lane !== 'openzfs') return fp;
  return `${fp}\n${await run('zfs', ['get', '-H', '-r', '-o', 'name,value', 'receive_resume_token', target])}`;
}

let copies = 0;
async function copyOfGood(): Promise<string> {
  const dir = path.join(work, `case-${++copies}`, path.basename(good));
  await cp(good, dir, { recursive: true });
  return dir;
}

async function volumes(bundle: string): Promise<string[]> {
  return (await readdir(path.join(bundle, 'streams'))).sort();
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface Case {
  name: string;
  damage: (bundle: string) => Promise<void>;
  /** The file the refusal must name. */
  names: string;
}

const cases: Case[] = [];
let checked = 0;
let onePassPartial = 0;
/** Datasets of the matrix bundle's streams, in order. */
let streams: string[] = [];

/** Target datasets (relative) that hold @two, i.e. whose stream was received. */
async function received(): Promise<string[]> {
  return (await fingerprint(target)).split('\n').filter((l) => /@two\t/.test(l))
    .map((l) => l.split('@')[0]).map((n) => (n === target ? '' : n.slice(target.length + 1))).sort();
}

/**
 * What a one-pass import that failed at stream `failedAt` (0: before any
 * receive) leaves received: nothing if it was the root's (a and b wait for
 * it), else every stream but that one (the sibling ran beside it).
 */
function wanted(failedAt: number): string[] {
  return failedAt <= 1 ? [] : streams.filter((_, i) => i !== failedAt - 1).sort();
}

/** Back to the state before the bundle: every dataset rolled back to @one. */
async function resetTarget(): Promise<void> {
  for (const d of await received()) await run('zfs', ['rollback', '-r', `${d ? `${target}/${d}` : target}@one`]);
}

/**
 * verify refuses naming the file; `import --verify-first` refuses with the
 * target unchanged; the default one-pass import refuses naming the file too,
 * and the target holds every stream but the one the damage is in and those
 * that wait for it (wanted() below), each a whole snapshot (a stream's end reaches zfs recv only after all its
 * bytes matched; ZFS commits a snapshot atomically). Damage found without
 * reading volume bytes (sizes, SHA256SUMS, strays, the manifest) changes nothing.
 */
async function assertRefused(c: Case, bundle: string): Promise<void> {
  const expect = new RegExp(esc(c.names));
  await assert.rejects(runVerify(bundle), (err: unknown) => {
    assert.ok(err instanceof ZferryError, `${c.name}: verify threw ${String(err)}`);
    assert.match(err.message, expect, `${c.name}: verify must name ${c.names}`);
    return true;
  });
  const before = await targetState();
  await assert.rejects(runImport(zfs, { path: bundle, target, dryRun: false, force: false, verifyFirst: true }), (err: unknown) => {
    assert.ok(err instanceof ZferryError, `${c.name}: import --verify-first threw ${String(err)}`);
    assert.match(err.message, expect, `${c.name}: import --verify-first must name ${c.names}`);
    return true;
  });
  assert.equal(await targetState(), before, `${c.name}: --verify-first leaves the target unchanged`);
  let failedAt = 0;
  await assert.rejects(runImport(zfs, { path: bundle, target, dryRun: false, force: false }), (err: unknown) => {
    assert.ok(err instanceof ZferryError, `${c.name}: import threw ${String(err)}`);
    assert.match(err.message, expect, `${c.name}: import must name ${c.names}`);
    failedAt = Number(/stream (\d+) \(.*\) of .* was not received/.exec(err.message)?.[1] ?? 0);
    return true;
  });
  assert.deepEqual(await received(), wanted(failedAt), `${c.name}: every stream but the damaged one and those that wait for it is received`);
  if (failedAt > 1) {
    assert.notEqual(await targetState(), before);
    onePassPartial++;
  }
  await resetTarget();
  assert.equal(await targetState(), before, `${c.name}: reset`);
  checked++;
}

test('the matrix bundle has 3 streams and at least 6 volumes, and verifies', async () => {
  const m = JSON.parse(await readFile(path.join(good, 'manifest.json'), 'utf8'));
  assert.equal(m.streams.length, 3);
  streams = m.streams.map((x: { dataset: string }) => x.dataset);
  assert.ok((await volumes(good)).length >= 6, `volumes: ${(await volumes(good)).length}`);
  await runVerify(good);
});

test('every volume: flipped at start, middle and end, truncated, extended, deleted', async () => {
  for (const name of await volumes(good)) {
    const rel = `streams/${name}`;
    const size = (await stat(path.join(good, rel))).size;
    cases.push(
      { name: `${name} flipped at start`, damage: (b) => flipByte(path.join(b, rel), 0), names: rel },
      { name: `${name} flipped in the middle`, damage: (b) => flipByte(path.join(b, rel), Math.floor(size / 2)), names: rel },
      { name: `${name} flipped at the end`, damage: (b) => flipByte(path.join(b, rel), size - 1), names: rel },
      { name: `${name} truncated`, damage: (b) => truncate(path.join(b, rel), size - 1), names: rel },
      { name: `${name} extended`, damage: (b) => appendFile(path.join(b, rel), Buffer.from([0])), names: rel },
      { name: `${name} deleted`, damage: (b) => rm(path.join(b, rel)), names: rel },
    );
  }
  for (const c of cases) {
    const bundle = await copyOfGood();
    await c.damage(bundle);
    await assertRefused(c, bundle);
  }
});

async function swap(bundle: string, a: string, b: string): Promise<void> {
  const pa = path.join(bundle, 'streams', a);
  const pb = path.join(bundle, 'streams', b);
  await rename(pa, `${pa}.tmp`);
  await rename(pb, pa);
  await rename(`${pa}.tmp`, pb);
}

async function editJson(bundle: string, edit: (m: any) => void): Promise<void> {
  const file = path.join(bundle, 'manifest.json');
  const m = JSON.parse(await readFile(file, 'utf8'));
  edit(m);
  await writeFile(file, JSON.stringify(m, null, 2) + '\n');
}

async function editSums(bundle: string, edit: (lines: string[]) => string[]): Promise<void> {
  const file = path.join(bundle, 'SHA256SUMS');
  const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  await writeFile(file, edit(lines).join('\n') + '\n');
}

test('swapped volumes, a hand-edited manifest, an edited SHA256SUMS', async () => {
  const vols = await volumes(good);
  const more: Case[] = [
    { name: 'two volumes of one stream swapped', damage: (b) => swap(b, vols[0], vols[1]), names: `streams/${vols[0]}` },
    { name: 'volumes of two streams swapped', damage: (b) => swap(b, vols[1], vols[vols.length - 1]), names: `streams/${vols[1]}` },
    { name: 'manifest: a volume sha256 edited', damage: (b) => editJson(b, (m) => { m.streams[1].volumes[0].sha256 = 'f'.repeat(64); }), names: 'SHA256SUMS' },
    { name: 'manifest: a volume size edited', damage: (b) => editJson(b, (m) => { m.streams[2].volumes[0].bytes += 1; m.streams[2].storedBytes += 1; }), names: m2v0(vols) },
    { name: 'manifest: a volume dropped from the list', damage: (b) => editJson(b, (m) => { const v = m.streams[0].volumes.pop(); m.streams[0].storedBytes -= v.bytes; }), names: 'SHA256SUMS' },
    { name: 'manifest: invalid JSON', damage: (b) => appendFile(path.join(b, 'manifest.json'), '}'), names: 'manifest.json' },
    { name: 'SHA256SUMS: a hash edited', damage: (b) => editSums(b, (l) => [`${'0'.repeat(64)}${l[0].slice(64)}`, ...l.slice(1)]), names: 'SHA256SUMS' },
    { name: 'SHA256SUMS: a line dropped', damage: (b) => editSums(b, (l) => l.slice(0, -1)), names: 'SHA256SUMS' },
    { name: 'SHA256SUMS: a line added', damage: (b) => editSums(b, (l) => [...l, `${'1'.repeat(64)}  streams/9999-full.zst.000`]), names: 'SHA256SUMS' },
    { name: 'SHA256SUMS: deleted', damage: (b) => rm(path.join(b, 'SHA256SUMS')), names: 'SHA256SUMS' },
    { name: 'a stray volume added', damage: (b) => writeFile(path.join(b, 'streams', vols[0].replace(/\d{3}$/, '999')), 'x'), names: vols[0].replace(/\d{3}$/, '999') },
  ];
  for (const c of more) {
    const bundle = await copyOfGood();
    await c.damage(bundle);
    await assertRefused(c, bundle);
  }
  cases.push(...more);
});

/** The first volume of stream 3 (the size edit lands there). */
function m2v0(vols: string[]): string {
  return `streams/${vols.find((v) => v.startsWith('0003-'))}`;
}

test('through the CLI: exit non-zero with one line naming the file; after the volume is replaced a re-run continues', async () => {
  const vols = await volumes(good);
  const bundle = await copyOfGood();
  await flipByte(path.join(bundle, 'streams', vols[2]), 0);
  const r = await zferry('verify', bundle);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(esc(`streams/${vols[2]}`)));
  assert.equal(r.stderr.trim().split('\n').length, 1);
  const first = await zferry('import', bundle, target, '--verify-first');
  assert.equal(first.code, 1, first.stderr);
  assert.match(first.stderr, new RegExp(esc(`streams/${vols[2]}`)));
  assert.deepEqual(await received(), []);

  // One pass: a's stream, holding the bad volume, is not received; the root's before it and b's beside it are, and the line counts them.
  const later = vols.find((v) => v.startsWith('0002-'))!;
  const damaged = await copyOfGood();
  await flipByte(path.join(damaged, 'streams', later), 0);
  const one = await zferry('import', damaged, target);
  assert.equal(one.code, 1, one.stderr);
  assert.equal(one.stderr.trim().split('\n').length, 1);
  assert.match(one.stderr.trim(), new RegExp(`${esc(`streams/${later}`)}.*stream 2 \\(.*\\) of ${esc(damaged)} was not received; 2 stream\\(s\\) were received and stay \\(1 of them after it in the plan, which do not depend on it\\); a re-run continues from there$`));
  assert.deepEqual(await received(), wanted(2));
  await cp(path.join(good, 'streams', later), path.join(damaged, 'streams', later));
  const again = JSON.parse((await zferryOk('import', damaged, target, '--json')).stdout);
  assert.deepEqual(again.bundles[0].skipped.map((x: { index: number }) => x.index), [1, 3]);
  assert.deepEqual(await received(), [...streams].sort());
  await resetTarget();
});

test('the undamaged bundle still applies', async () => {
  await zferryOk('import', good, target);
  console.log(`corruption matrix: ${checked} cases, each refused by verify and import; ${onePassPartial} left the streams before the damage received`);
  assert.ok(checked >= 40, `cases: ${checked}`);
  assert.ok(onePassPartial > 0, 'some cases damage a later stream, after earlier ones were received');
});
