/**
 * Hostile input that zferry already withstood when issue 11 was filed, on
 * real ZFS (zfs-fuse) and real mbuffer over 127.0.0.1, kept as tests so it
 * keeps holding:
 * - dataset names that look like options (`-F`, `-o`, `-r`) in a bundle and
 *   as the import target: zfs only ever gets full names;
 * - a hostile state file stops `export --since` before anything is sent;
 * - key files of the wrong kind or cut short, on export, import and verify;
 * - two imports into one target at once;
 * - SIGINT/SIGTERM during an import, then a re-run;
 * - hostile relay streams and a wrongly signed bundle at `relay receive`.
 * The pure side (every tar entry kind, every key reader) is in
 * test/unit/hostile-held.test.ts; SIGKILL at every import and export point is
 * in crash.test.ts.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, lstat, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type ResultPromise } from 'execa';
import { freePortRange, sourceId } from '../helpers/relay.js';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { STATE_DIR, startZferry, stopZferry, within, zferry, zferryOk, type CliResult } from '../helpers/cli.js';
import { datasetList, fingerprint, guidList, snapshot, writeData } from '../helpers/fixtures.js';
import { killAt } from '../helpers/kill.js';
import { bundleEntries, headerEntry, sendRaw, tarBytes, waitListening, type TarEntry } from '../helpers/relay-tar.js';
import { readState } from '../../src/state/receipt.js';

const LOOP = '127.0.0.1';
/** The first of 8 free ports, found in `before`. */
let BASE: number;
/** Child datasets whose names zfs's getopt would take for options. */
const OPTION_LIKE = ['-F', '-o', '-r'];

let src: TestPool;
let dst: TestPool;
let work: string;
/** A full bundle of the whole source: one stream or more per dataset. */
let bundle: string;
/** The source's snapshots by guid when `bundle` was made (later tests add to the source). */
let inBundle: string[];
const started: ResultPromise[] = [];

before(async () => {
  BASE = await freePortRange(8);
  [src, dst] = await Promise.all([makePool('hhs', 96), makePool('hhd', 160)]);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-held-'));
  for (const d of [...OPTION_LIKE, 'data']) await run('zfs', ['create', `${src.name}/${d}`]);
  for (const d of ['', ...OPTION_LIKE, 'data']) await writeData(d ? `${src.name}/${d}` : src.name, 'one.bin', 24);
  await snapshot(`${src.name}@one`, true);
  for (const d of ['', 'data']) await writeData(d ? `${src.name}/${d}` : src.name, 'two.bin', 24);
  await snapshot(`${src.name}@two`, true);
  const disk = path.join(work, 'disk');
  bundle = JSON.parse((await zferryOk('export', src.name, disk, '--no-journal', '--volume-size', '16K', '--json')).stdout).bundle;
  inBundle = await guidList(src.name);
});

after(async () => {
  for (const p of started) await stopZferry(p);
  await Promise.all([src?.destroy(), dst?.destroy()]);
  await rm(work, { recursive: true, force: true });
});

/** Refused: non-zero exit and one line on stderr matching `re`. */
function assertRefused(r: CliResult, re: RegExp, what: string): void {
  assert.notEqual(r.code, 0, `${what}: exit 0\n${r.stdout}`);
  assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line expected, got: ${r.stderr}`);
  assert.match(r.stderr, re, what);
}

/** Both pools, every dataset and snapshot with its guid, and every hold count: what a refusal must leave as it was. */
async function pools(): Promise<string> {
  const holds = await run('zfs', ['get', '-H', '-r', '-o', 'name,value', 'userrefs', src.name]);
  return `${await fingerprint(src.name)}\n${await fingerprint(dst.name)}\n${holds}`;
}

async function absent(dataset: string): Promise<boolean> {
  return (await run('zfs', ['list', '-H', '-o', 'name', dataset], { allowFailure: true })).trim() === '';
}

test('dataset names that look like options (-F, -o, -r) travel as full names: exported, imported, nothing else touched', async () => {
  const m = JSON.parse(await readFile(path.join(bundle, 'manifest.json'), 'utf8')) as { streams: Array<{ dataset: string }> };
  assert.deepEqual([...new Set(m.streams.map((s) => s.dataset))].sort(), ['', ...OPTION_LIKE, 'data'].sort());
  const target = `${dst.name}/copy`;
  await zferryOk('import', bundle, target);
  assert.deepEqual(await guidList(target), inBundle);
  assert.deepEqual(await datasetList(dst.name), ['', 'copy', ...[...OPTION_LIKE, 'data'].map((d) => `copy/${d}`)].sort());
});

test('an import target, state target or source that looks like an option is refused before zfs runs; nothing changes', async () => {
  const before = await pools();
  const receipts = (await readdir(bundle)).filter((n) => n.startsWith('receipt-')).sort();
  for (const name of ['-F', '-o', '-r', '-o x']) {
    assertRefused(await zferry('import', bundle, '--', name), new RegExp(`^zferry: import target ${JSON.stringify(name)} is not a dataset name`), `import -- ${name}`);
  }
  // `zfs list -r` and `zfs get -r` would list every dataset on the host.
  for (const name of ['-r', '-F']) {
    assertRefused(await zferry('state', '--', name), /^zferry: state target .* is not a dataset name/, `state -- ${name}`);
    const dest = path.join(work, 'optlike-export');
    assertRefused(await zferry('export', '--', name, dest), /^zferry: source .* is not a dataset name/, `export -- ${name}`);
    assert.equal(existsSync(dest), false, `export -- ${name} wrote nothing`);
  }
  // Without `--` the command line itself refuses them as unknown options.
  const r = await zferry('import', bundle, '-F');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option '-F'/);
  assert.deepEqual((await readdir(bundle)).filter((n) => n.startsWith('receipt-')).sort(), receipts, 'no receipt written');
  assert.equal(await pools(), before);
});

test('export --since a hostile state file: one line naming the file, no bundle, no hold, no journal', async () => {
  // Every kind of hostile state file is refused by readState in test/unit/hostile-held.test.ts; these show export stops there.
  const dir = path.join(work, 'states');
  await mkdir(dir);
  const goodFile = path.join(bundle, `receipt-${dst.name}_copy.json`);
  const good = JSON.parse(await readFile(goodFile, 'utf8'));
  const huge = path.join(dir, 'huge.json');
  const fh = await open(huge, 'w');
  await fh.truncate(4 * 1024 ** 3); // sparse: costs no disk
  await fh.close();
  const cases: Array<[string, string | null, RegExp]> = [
    ['not JSON', 'garbage{', /not valid JSON/],
    ['200000 nested arrays as the inventory', JSON.stringify({ ...good, inventory: '@@' }).replace('"@@"', '['.repeat(200_000) + ']'.repeat(200_000)), /\/inventory must be object/],
    ['a guid as a JSON number', JSON.stringify({ ...good, inventory: { ...good.inventory, datasets: [{ ...good.inventory.datasets[0], guid: 7 }] } }), /\/inventory\/datasets\/0\/guid must be string/],
    ['a 4 GiB file', null, /cannot read|larger|too large/],
  ];
  const dest = path.join(work, 'since-out');
  const before = await pools();
  let n = 0;
  for (const [what, text, expect] of cases) {
    const file = text === null ? huge : path.join(dir, `state-${++n}.json`);
    if (text !== null) await writeFile(file, text);
    assertRefused(await zferry('export', src.name, dest, '--since', file), new RegExp(`^zferry: ${file}: .*(?:${expect.source})`), what);
    assert.equal(existsSync(dest), false, `${what}: no bundle`);
  }
  assert.equal(await pools(), before, 'no hold taken, nothing changed');
  const journals = (await readdir(STATE_DIR).catch(() => [] as string[])).filter((x) => x.startsWith('journal-'));
  assert.deepEqual(journals, [], 'no journal entry for a refused export');
  // Positive control: the unedited receipt plans an export (with nothing new to send).
  await zferryOk('export', src.name, dest, '--since', goodFile, '--no-journal');
});

test('keys of the wrong kind, cut short or damaged: one line naming the file on export, import and verify; nothing written or received', async () => {
  const dir = path.join(work, 'keys');
  await mkdir(dir);
  const key = path.join(dir, 'key');
  await zferryOk('keygen', '-o', key);
  const ageId = path.join(dir, 'age.txt');
  await run('age-keygen', ['-o', ageId]);
  const recipient = (await run('age-keygen', ['-y', ageId])).trim();
  const encDisk = path.join(dir, 'disk');
  const enc = JSON.parse((await zferryOk('export', `${src.name}/data`, encDisk, '--no-journal', '--sign', key, '--encrypt-to', recipient, '--json')).stdout).bundle as string;
  const secretLine = (await readFile(ageId, 'utf8')).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;
  const cutSecret = path.join(dir, 'cut-key');
  const secretText = await readFile(key, 'utf8');
  await writeFile(cutSecret, secretText.slice(0, secretText.indexOf('-----BEGIN') + 50));
  const cutPub = path.join(dir, 'cut.pub');
  await writeFile(cutPub, (await readFile(`${key}.pub`, 'utf8')).slice(0, 60));
  const cutId = path.join(dir, 'age-cut.txt');
  await writeFile(cutId, `${secretLine.slice(0, 40)}\n`);

  const out = path.join(dir, 'out');
  const target = `${dst.name}/keys`;
  const before = await pools();
  const exportCases: Array<[string, string[], RegExp]> = [
    ['a public key given to --sign', ['--sign', `${key}.pub`], new RegExp(`^zferry: ${key}\\.pub: not a zferry signing key`)],
    ['a secret key cut short', ['--sign', cutSecret], new RegExp(`^zferry: ${cutSecret}: not a readable PEM private key`)],
    ['a recipient cut short', ['--encrypt-to', recipient.slice(0, 40)], /^zferry: --encrypt-to age1\S+: not an age recipient/],
  ];
  for (const [what, args, expect] of exportCases) {
    assertRefused(await zferry('export', `${src.name}/data`, out, '--no-journal', ...args), expect, what);
    assert.equal(existsSync(out), false, `${what}: no bundle`);
  }
  const importCases: Array<[string, string[], RegExp]> = [
    ['a secret key given to --trust', ['--trust', key, '--identity', ageId], new RegExp(`^zferry: ${key}: not a minisign public key`)],
    ['a public key cut short', ['--trust', cutPub, '--identity', ageId], new RegExp(`^zferry: ${cutPub}: not a minisign public key`)],
    ['a minisign key given as the age identity', ['--trust', `${key}.pub`, '--identity', key], new RegExp(`^zferry: ${key}: no AGE-SECRET-KEY-1`)],
    ['an age identity cut short', ['--trust', `${key}.pub`, '--identity', cutId], new RegExp(`^zferry: ${cutId}: line 1 is not a valid age identity`)],
  ];
  for (const [what, args, expect] of importCases) {
    const r = await zferry('import', enc, target, ...args);
    assertRefused(r, expect, what);
    assert.ok(!r.stderr.includes(secretLine.slice(16, 40)), `${what}: the secret key is not printed`);
    assert.ok(await absent(target), `${what}: nothing received`);
  }
  assertRefused(await zferry('verify', enc, '--trust', key), new RegExp(`^zferry: ${key}: not a minisign public key`), 'verify --trust SECRET');
  assert.equal(await pools(), before);
  // Positive control: the right keys open and apply the bundle.
  await zferryOk('verify', enc, '--trust', `${key}.pub`);
  await zferryOk('import', enc, target, '--trust', `${key}.pub`, '--identity', ageId);
  assert.deepEqual(await guidList(target), await guidList(`${src.name}/data`));
});

interface ImportJson {
  bundles: Array<{ status: string }>;
}

/**
 * Two imports raced into one target: at most one completes having applied
 * anything; the other is refused at its first stream that the winner
 * received (one line, naming a dataset of the target) or finds nothing left;
 * the target then equals the source, the receipt says so, and a third import
 * has nothing to do.
 */
async function assertRaceOutcome(t: TestContext, runs: CliResult[], target: string, receiptDir: string, sourceRoot: string): Promise<void> {
  t.diagnostic(runs.map((r) => `exit ${r.code}${r.code === 0 ? ` ${(JSON.parse(r.stdout) as ImportJson).bundles.map((b) => b.status)}` : `: ${r.stderr.trim()}`}`).join(' / '));
  const applied = runs.filter((r) => r.code === 0 && (JSON.parse(r.stdout) as ImportJson).bundles.some((b) => b.status === 'applied'));
  assert.ok(applied.length <= 1, 'at most one import applied and succeeded');
  for (const r of runs.filter((x) => x.code !== 0)) {
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.ok(r.stderr.includes(target), `names the target: ${r.stderr}`);
  }
  assert.ok(runs.some((r) => r.code === 0), `one of them completed: ${runs.map((r) => r.stderr).join(' / ')}`);
  assert.deepEqual(await guidList(target), await guidList(sourceRoot));
  const receipt = await readState(path.join(receiptDir, `receipt-${target.replace(/\//g, '_')}.json`));
  const inReceipt = receipt.inventory.datasets.flatMap((d) => d.snapshots.map((s) => `${d.path}@${s.name}=${s.guid}`)).sort();
  assert.deepEqual(inReceipt, await guidList(target), 'the receipt holds what the target holds');
  const again = await zferryOk('import', receiptDir, target, '--json');
  assert.ok((JSON.parse(again.stdout) as ImportJson).bundles.every((b) => b.status === 'already-applied'), again.stdout);
}

test('two imports into one target at once: one applies, the other is refused or finds nothing to do; the target ends whole', async (t) => {
  const target = `${dst.name}/race`;
  for (let round = 1; round <= 2; round++) {
    const seed = await Promise.all([zferry('import', bundle, target, '--json'), zferry('import', bundle, target, '--json')]);
    await assertRaceOutcome(t, seed, target, bundle, src.name);
    await run('zfs', ['destroy', '-r', target]);
  }
  await zferryOk('import', bundle, target);
  // The next round's incremental, on two disks, imported from both at once.
  await writeData(`${src.name}/data`, 'three.bin', 32);
  await writeData(`${src.name}/-F`, 'three.bin', 16);
  await snapshot(`${src.name}@three`, true);
  const next = JSON.parse((await zferryOk('export', src.name, path.join(work, 'next'), '--since', path.join(bundle, `receipt-${target.replace(/\//g, '_')}.json`), '--no-journal', '--json')).stdout).bundle as string;
  const disks = [path.join(work, 'disk-a'), path.join(work, 'disk-b')];
  for (const d of disks) await cp(next, path.join(d, path.basename(next)), { recursive: true });
  const runs = await Promise.all(disks.map((d) => zferry('import', d, target, '--json')));
  const winner = runs.findIndex((r) => r.code === 0 && (JSON.parse(r.stdout) as ImportJson).bundles.some((b) => b.status === 'applied'));
  await assertRaceOutcome(t, runs, target, disks[winner === -1 ? 0 : winner], src.name);
});

test('SIGTERM or SIGINT during an import (between streams, inside one, to zferry or its whole process group) leaves a target a re-run completes', async () => {
  const m = JSON.parse(await readFile(path.join(bundle, 'manifest.json'), 'utf8')) as { streams: Array<{ rawBytes: number }> };
  assert.ok(m.streams.length >= 4, `streams: ${m.streams.length}`);
  const cases: Array<[string, NodeJS.Signals, boolean, Record<string, string>]> = [
    ['import:between:1', 'SIGTERM', false, {}],
    ['import:stream:2', 'SIGINT', true, { ZFERRY_TEST_PAUSE_BYTES: String(Math.floor(m.streams[1].rawBytes / 2)) }],
    ['import:stream:1', 'SIGTERM', true, { ZFERRY_TEST_PAUSE_BYTES: '1' }],
    ['import:between:3', 'SIGINT', false, {}],
  ];
  let n = 0;
  for (const [point, signal, group, env] of cases) {
    const target = `${dst.name}/sig${++n}`;
    const receipt = path.join(bundle, `receipt-${target.replace(/\//g, '_')}.json`);
    await killAt(point, { dir: work, env, signal, group }, 'import', bundle, target);
    assert.equal(existsSync(receipt), false, `${signal} at ${point}: no receipt for an unfinished import`);
    await zferryOk('import', bundle, target);
    assert.deepEqual(await guidList(target), inBundle, `${signal} at ${point}${group ? ' (group)' : ''}`);
    assert.equal((await readState(receipt)).target, target);
  }
});

/** The bundle folders directly under dir. */
async function bundlesIn(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => n !== '.incoming');
}

test('relay receive over real mbuffer: a symlink to outside, a `../` entry, a 2^40-byte volume or a wrongly signed bundle is never promoted out of the spool\'s .incoming (which keeps only the bundle\'s own files) and never reaches zfs', async () => {
  const sandbox = path.join(work, 'relay');
  await mkdir(sandbox);
  const header = await headerEntry([bundle]);
  const [manifest, sums, restore, vol0] = await bundleEntries(bundle);
  const name = path.basename(bundle);
  const raw: Array<[string, TarEntry[], RegExp]> = [
    ['a symlink at a volume\'s name pointing outside, then the volume', [header, manifest, sums, restore, { name: vol0.name, type: 'symlink', linkname: `${sandbox}/escape-link` }, vol0], /is a symlink, only files are accepted/],
    ['an entry climbing out with ../', [header, manifest, { name: `${name}/../../../escape-dotdot`, body: Buffer.from('x') }], /escape-dotdot is not listed in the bundle's manifest\.json/],
    ['a volume declaring 2^40 bytes', [header, manifest, sums, restore, { ...vol0, size: 2 ** 40 }], /is 1099511627776 bytes, manifest\.json says/],
  ];
  // The real sender's signed bundle, for a receiver that trusts another key (exported first: export takes holds).
  const dir = path.join(work, 'relay-keys');
  await mkdir(dir);
  await zferryOk('keygen', '-o', path.join(dir, 'signer'));
  await zferryOk('keygen', '-o', path.join(dir, 'other'));
  const signed = JSON.parse((await zferryOk('export', `${src.name}/data`, path.join(dir, 'disk'), '--no-journal', '--sign', path.join(dir, 'signer'), '--json')).stdout).bundle as string;
  const before = await pools();
  let port = BASE;
  const srcId = await sourceId(src.name);
  const dataId = await sourceId(`${src.name}/data`);
  const receive = (spool: string, source: string, ...extra: string[]) => {
    const p = startZferry('relay', 'receive', '--listen', `${LOOP}:${port}`, '--spool', spool, '--import', `${dst.name}/relayed`, '--source', source, '--once', '--buffer', '1M',
      // Unsigned hostile streams must meet the receiver's own checks, not only the signature rule.
      ...(extra.includes('--trust') ? extra : ['--allow-unsigned', ...extra]));
    started.push(p);
    return p;
  };
  const refused = async (receiver: ResultPromise, spool: string, expect: RegExp, what: string, announced = bundle) => {
    const r = await within(receiver, 60_000);
    assert.ok(r !== null, `${what}: the receiver ended within 60 s`);
    assertRefused({ code: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr) }, expect, what);
    assert.deepEqual(await bundlesIn(spool), [], `${what}: nothing in the spool`);
    // What arrived in order before the refusal may stay under .incoming for a resumed push (issue 14):
    // only the announced bundle's regular files, none a link, none longer than its manifest lists.
    const listed = new Map((await bundleEntries(announced)).map((e) => [e.name, e.body!.length]));
    for (const kept of await readdir(path.join(spool, '.incoming')).catch(() => [] as string[])) {
      assert.equal(kept, path.basename(announced), `${what}: .incoming holds only the announced bundle`);
      for (const f of await readdir(path.join(spool, '.incoming', kept), { recursive: true })) {
        const st = await lstat(path.join(spool, '.incoming', kept, f));
        if (st.isDirectory()) continue;
        assert.ok(st.isFile() && listed.has(`${kept}/${f}`), `${what}: kept ${kept}/${f} is a file of the bundle`);
        assert.ok(st.size <= listed.get(`${kept}/${f}`)!, `${what}: kept ${kept}/${f} is no longer than listed`);
      }
    }
    assert.ok(await absent(`${dst.name}/relayed`), `${what}: nothing received`);
  };
  for (const [what, entries, expect] of raw) {
    const spool = path.join(sandbox, `spool-${++port}`);
    const receiver = receive(spool, srcId);
    await sendRaw(LOOP, port, await tarBytes(entries));
    await refused(receiver, spool, expect, what);
  }
  const spool = path.join(sandbox, `spool-${++port}`);
  const receiver = receive(spool, dataId, '--trust', path.join(dir, 'other.pub'));
  await waitListening(port);
  await zferry('relay', 'send', signed, '--to', `${LOOP}:${port}`, '--buffer', '1M');
  await refused(receiver, spool, /manifest\.json\.minisig: signed by key [0-9A-F]{16}, not by the trusted key/, 'wrongly signed', signed);

  const escaped = [...(await readdir(sandbox, { recursive: true })), ...(await readdir('/tmp')), ...(await readdir('/'))].filter((p) => String(p).includes('escape-'));
  assert.deepEqual(escaped, [], 'nothing written outside the spools');
  assert.equal(await pools(), before);
});
