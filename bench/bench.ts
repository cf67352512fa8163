/**
 * zferry benchmark: data-path throughput against the zstd CLI, peak memory of
 * each path at 256 MiB and 2 GiB, and the planner on a large inventory.
 * Prints a table; asserts nothing.
 *
 *   npm run bench             # full run (replays the stream to reach >= 2 GiB)
 *   npm run bench -- --quick  # skips the 2 GiB case
 *   npm run bench -- --relay  # only relay vs bare mbuffer on loopback (medians of 3)
 *   npm run bench -- --rename # only the rename row: next bundle after renaming a 256 MiB dataset
 *   npm run bench -- --resume # only issue 14's figures (bench/resume.ts): relay cut three
 *                             # times over a slow link, and --level auto against -3 at
 *                             # 1, 10, 100 Mbit/s; ZFERRY_BENCH_RESUME_MIB (default 512)
 *                             # and ZFERRY_BENCH_LEVEL_MIB scale them down for a quick look
 *   npm run bench -- --s3     # only the bucket rows (bench/s3.ts): export to / import from
 *                             # the Ceph RGW of scripts/ceph-s3.sh (running) against
 *                             # s3cmd put / get of the same volumes
 *   npm run bench -- --e2e    # only the end-to-end section (bench/e2e.ts): the CLI on a
 *                             # real pool against the shell a user would type
 *
 * Each measured path runs in a child process (this file with --child) so
 * that process.resourceUsage().maxRSS is the peak of that path alone.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { writeStream } from '../src/pipeline/export.js';
import { readStream } from '../src/pipeline/import.js';
import { VolumeReader } from '../src/bundle/volume-reader.js';
import type { StreamEntry } from '../src/bundle/manifest.js';
import type { Inventory, Dataset } from '../src/model.js';
import { benchE2e, benchRenameAlone, loadNote, zfsFlavour } from './e2e.js';
import { relayInput, type RelayInput } from './relay-input.js';
import { benchResume, resumeRows } from './resume.js';
import { benchS3Alone } from './s3.js';

const MiB = 1024 * 1024;
const CACHE_DIR = join(tmpdir(), 'zferry-bench');
const STREAM_FILE = join(CACHE_DIR, 'send-stream-v1.zfs');
const SYNTH_FILE = join(CACHE_DIR, 'synthetic-v1.bin');
const MIN_STREAM = 256 * MiB;
const VOLUME_SIZE = 512 * MiB;
const SELF = fileURLToPath(import.meta.url);

// ---------- the input stream ----------

/** Runs a command with stdout sent straight to a file (never buffered in this process). */
async function runToFile(cmd: string, args: string[], outFile: string, inFile?: string): Promise<void> {
  const stdin = inFile === undefined ? ('ignore' as const) : { file: inFile };
  await execa(cmd, args, { stdin, stdout: { file: outFile }, buffer: false });
}


async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).size >= MIN_STREAM;
  } catch {
    return false;
  }
}

async function zfsUsable(): Promise<boolean> {
  const r = await execa('zpool', ['list', '-H'], { reject: false, timeout: 10_000 });
  return r.exitCode === 0;
}

/** A real `zfs send` stream of a dataset filled with /usr files, random and zero data. */
async function makeZfsStream(): Promise<void> {
  const pool = `zfbench${process.pid}`;
  const img = join(CACHE_DIR, `${pool}.img`);
  const mnt = join(CACHE_DIR, `${pool}-mnt`);
  const fh = await open(img, 'w');
  await fh.truncate(1536 * MiB);
  await fh.close();
  await execa('zpool', ['create', '-m', mnt, pool, img]);
  try {
    await execa('zfs', ['create', `${pool}/data`]);
    const dest = join(mnt, 'data');
    for (const src of ['/usr/bin', '/usr/share/doc', '/usr/share/man']) await execa('cp', ['-a', src, dest + '/'], { reject: false });
    await runToFile('head', ['-c', String(32 * MiB), '/dev/urandom'], join(dest, 'random.bin'));
    await runToFile('head', ['-c', String(32 * MiB), '/dev/zero'], join(dest, 'zeros.bin'));
    await execa('zfs', ['snapshot', `${pool}/data@bench`]);
    const tmp = STREAM_FILE + '.tmp';
    await runToFile('zfs', ['send', `${pool}/data@bench`], tmp);
    await rename(tmp, STREAM_FILE);
  } finally {
    // zfs-fuse may call a pool busy right after a send: retry, and say so if it stays.
    let destroyed = false;
    for (let i = 0; i < 5 && !destroyed; i++) {
      destroyed = (await execa('zpool', ['destroy', '-f', pool], { reject: false })).exitCode === 0;
      if (!destroyed) await new Promise((r) => setTimeout(r, 1000));
    }
    if (!destroyed) console.log(`WARNING: could not destroy bench pool ${pool}; run: zpool destroy -f ${pool}`);
    await rm(img, { force: true });
    await rm(mnt, { recursive: true, force: true });
  }
}

/** Fallback: a send-stream-like mix of random, text-like and zero blocks. */
async function makeSyntheticStream(): Promise<void> {
  const fh = await open(SYNTH_FILE + '.tmp', 'w');
  const text = Buffer.from('0123456789 the quick brown fox jumps over the lazy dog\n'.repeat(20000)).subarray(0, MiB);
  for (let i = 0; i < 256; i++) await fh.write(i % 4 === 0 ? randomBytes(MiB) : i % 4 === 1 ? Buffer.alloc(MiB) : text);
  await fh.close();
  await rename(SYNTH_FILE + '.tmp', SYNTH_FILE);
}

async function inputStream(): Promise<{ file: string; real: boolean; note: string }> {
  await mkdir(CACHE_DIR, { recursive: true });
  if (await exists(STREAM_FILE)) return { file: STREAM_FILE, real: true, note: 'cached real zfs send stream' };
  if (await zfsUsable()) {
    try {
      console.log('creating a real zfs send stream (once, cached in ' + STREAM_FILE + ') ...');
      await makeZfsStream();
      if (await exists(STREAM_FILE)) return { file: STREAM_FILE, real: true, note: 'real zfs send stream (zfs-fuse)' };
      console.log('the zfs send stream came out smaller than 256 MiB');
    } catch (err) {
      console.log(`could not build a zfs send stream: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (!(await exists(SYNTH_FILE))) await makeSyntheticStream();
  return { file: SYNTH_FILE, real: false, note: 'SYNTHETIC data (zfs unavailable): figures are indicative only' };
}

// ---------- child processes: one measured path each ----------

/** The file read `times` times back to back, as one stream. */
function replay(file: string, times: number): Readable {
  async function* gen() {
    for (let i = 0; i < times; i++) for await (const chunk of createReadStream(file, { highWaterMark: MiB })) yield chunk as Buffer;
  }
  return Readable.from(gen(), { objectMode: false });
}

interface ChildResult {
  seconds: number;
  bytes: number;
  maxRssMB: number;
  extra?: unknown;
}

async function child(args: string[]): Promise<void> {
  const [mode, a, b, c] = args;
  let result: ChildResult;
  if (mode === 'export') {
    const t0 = performance.now();
    const w = await writeStream(replay(a, Number(c)), { dir: b, index: 1, kind: 'full', volumeSize: VOLUME_SIZE, level: 3 });
    result = { seconds: (performance.now() - t0) / 1000, bytes: w.rawBytes, maxRssMB: 0, extra: w };
  } else {
    // What `zferry import` does per bundle: the verify pass (verifyBundle reads
    // and hashes every volume) and then the apply pass (sizes only, then zstd -d
    // and the tail gate's raw sha256) into zfs recv, here a sink.
    const entry = JSON.parse(await readFile(b, 'utf8')) as StreamEntry;
    const sink = (count: (n: number) => void) => new Writable({ highWaterMark: MiB, write: (chunk: Buffer, _e, done) => (count(chunk.length), done()) });
    const t0 = performance.now();
    await pipeline(new VolumeReader(a, entry.volumes), sink(() => undefined));
    const t1 = performance.now();
    let n = 0;
    await pipeline(readStream(a, entry, { volumesVerified: true }), sink((k) => (n += k)));
    const t2 = performance.now();
    result = { seconds: (t2 - t0) / 1000, bytes: n, maxRssMB: 0, extra: { verifySeconds: (t1 - t0) / 1000, applySeconds: (t2 - t1) / 1000 } };
  }
  result.maxRssMB = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(JSON.stringify(result));
}

async function runChild(args: string[]): Promise<ChildResult> {
  const { stdout } = await execa(process.execPath, [SELF, '--child', ...args]);
  return JSON.parse(stdout) as ChildResult;
}

function median(xs: number[]): number {
  const v = [...xs].sort((x, y) => x - y);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

// ---------- the planner hook ----------

function synthInventory(root: string, datasets: number, snapsPer: number, keep: (j: number) => boolean): Inventory {
  const list: Dataset[] = [];
  for (let i = 0; i < datasets; i++) {
    const snapshots = [];
    for (let j = 0; j < snapsPer; j++) {
      if (!keep(j)) continue;
      const id = BigInt(i) * 1000n + BigInt(j);
      snapshots.push({ name: `auto-${String(j).padStart(4, '0')}`, guid: String(10_000_000_000_000_000n + id), createtxg: String(100 + j * 10), creation: 1_700_000_000 + j * 3600 });
    }
    list.push({ path: i === 0 ? '' : `g${String(i % 50).padStart(2, '0')}/d${String(i).padStart(4, '0')}`, type: 'filesystem', guid: String(9_000_000_000_000_000n + BigInt(i)), snapshots, bookmarks: [] });
  }
  // Parents before children: add the group datasets and sort by path.
  for (let g = 0; g < 50 && g < datasets; g++) list.push({ path: `g${String(g).padStart(2, '0')}`, type: 'filesystem', guid: String(8_000_000_000_000_000n + BigInt(g)), snapshots: [], bookmarks: [] });
  list.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  return { root, datasets: list };
}

/**
 * HOOK benchPlanner(): times planSync from src/plan (written by another
 * helper; signature planSync(source: Inventory, target: Inventory | null): Plan)
 * on 5,000 datasets x 100,000 snapshots, the target holding the older half.
 */
async function benchPlanner(): Promise<{ seconds: number | null; note: string }> {
  const PLAN_MODULE = '../src/plan/index.js';
  let planSync: ((s: Inventory, t: Inventory | null) => unknown) | undefined;
  try {
    planSync = ((await import(PLAN_MODULE)) as { planSync?: typeof planSync }).planSync;
  } catch (err) {
    return { seconds: null, note: `planner not available: ${(err as Error).message.split('\n')[0]}` };
  }
  if (typeof planSync !== 'function') return { seconds: null, note: 'src/plan does not export planSync yet' };
  const DATASETS = 5000;
  const PER = 20; // 5,000 x 20 = 100,000 snapshots
  const source = synthInventory('tank/data', DATASETS, PER, () => true);
  const target = synthInventory('backup/data', DATASETS, PER, (j) => j < PER / 2);
  const snaps = source.datasets.reduce((n, d) => n + d.snapshots.length, 0);
  let best = Infinity;
  let note = '';
  for (let run = 0; run < 3; run++) {
    try {
      const t = await timeIt(async () => planSync!(source, target));
      best = Math.min(best, t);
    } catch (err) {
      return { seconds: null, note: `planSync threw: ${(err as Error).message.split('\n')[0]}` };
    }
  }
  note = `${source.datasets.length} datasets, ${snaps} snapshots, target has the older half; best of 3`;
  return { seconds: best, note };
}

// ---------- relay over loopback ----------

const CLI = join(SELF, '..', '..', 'cli', 'main.js');

/**
 * `zferry relay send` → `zferry relay receive` (tar, sha256 on arrival, write,
 * fsync, the arrival hashes checked against the manifest, rename) against, on
 * the same bytes with the same -s/-m over 127.0.0.1:
 * - the baseline, bare `mbuffer -i FILE -O` → `mbuffer -I -o /dev/null`
 *   (moves the bytes and discards them);
 * - bare `mbuffer -I -o FILE` (writes, no hash, no fsync);
 * - the same work done by stock tools, what a user would type to receive and
 *   check a file: `mbuffer -I -o - | tee FILE | openssl dgst -sha256`, then
 *   `sync FILE`.
 * Runs interleaved, medians of RELAY_RUNS. The clock starts when the sender is
 * launched (the listener had time to come up), so a zferry run pays one CLI
 * start-up (shown separately), which bare mbuffer does not. RELAY_MIB
 * (default 1024; env ZFERRY_BENCH_RELAY_MIB) is large enough that start-up is
 * a small part of the figure, as it is in a real relay of a day's snapshots.
 * On loopback both ends share this machine's cores, so the figure is the
 * CPU cost of receiving, hashing and storing; a last pair of runs limits both
 * senders to a link speed (mbuffer -r) to show whether zferry fills a link.
 */
const RELAY_RUNS = 3;
const RELAY_MIB = Number(process.env.ZFERRY_BENCH_RELAY_MIB ?? 1024);
/** A link zferry should fill completely: mbuffer -r on both senders (about 1 Gbit/s). */
const LINK_RATE = '100M';

interface RelayFigures {
  ours: number;
  bareNull: number;
  bareFile: number;
  /** mbuffer | tee | openssl sha256, then sync; null without openssl. */
  stock: number | null;
  bytes: number;
  startup: number;
  /** Both senders limited to LINK_RATE. */
  link: { ours: number; bare: number; bytes: number };
}

async function benchRelay(work: string): Promise<RelayFigures | null> {
  if ((await execa('mbuffer', ['-V'], { reject: false })).exitCode !== 0) return null;
  const haveOpenssl = (await execa('openssl', ['version'], { reject: false }).catch(() => ({ exitCode: 1 }))).exitCode === 0;
  const big = await relayInput(work, 'relay-src', RELAY_MIB);
  const tune = ['-s', '128k', '-m', '64M'];
  const zTune = ['--buffer', '64M', '--block-size', '128k'];
  let port = 47000 + (process.pid % 1000) * 8;
  // Time for a listener to come up before the sender starts (a zferry receiver
  // needs its CLI start-up first); not counted. Timing therefore includes the
  // sender's start-up but not the receiver's.
  const settle = 1200;
  const outFile = join(work, 'relay-bare-out.bin');
  const timed = async (listen: (p: number) => Promise<unknown>, send: (p: number) => Promise<unknown>) => {
    const p = port++;
    const rx = listen(p);
    rx.catch(() => undefined);
    await new Promise((r) => setTimeout(r, settle));
    const t = await timeIt(async () => {
      await send(p);
      await rx;
    });
    await rm(outFile, { force: true });
    return t;
  };
  const bareSend = (input: RelayInput, limit: string[] = []) => (p: number) =>
    execa('mbuffer', ['-q', ...tune, ...limit, '-i', input.flat, '-O', `127.0.0.1:${p}`], { stdin: 'ignore' });
  const bareListen = (out: string) => (p: number) => execa('mbuffer', ['-q', ...tune, '-I', `127.0.0.1:${p}`, '-o', out], { stdin: 'ignore' });
  // The pipeline a user would type. A fixed script with the port and file as
  // positional arguments: bash connects the processes directly, as it would
  // for the user (execa's .pipe() would route every byte through this process).
  const stockScript = 'mbuffer -q -s 128k -m 64M -I "127.0.0.1:$1" -o - | tee "$2" | openssl dgst -sha256 >/dev/null && sync "$2"';
  const stockListen = (p: number) => execa('bash', ['-o', 'pipefail', '-c', stockScript, 'stock', String(p), outFile], { stdin: 'ignore' });
  let spools = 0;
  const ours = (input: RelayInput, limit: string[] = []) => {
    const spool = join(work, `relay-spool-${spools++}`);
    return timed(
      (p) => execa(process.execPath, [CLI, 'relay', 'receive', '--once', '--listen', `127.0.0.1:${p}`, '--spool', spool, '--source', '1:bench', ...zTune, '--json']),
      (p) => execa(process.execPath, [CLI, 'relay', 'send', input.parent, '--to', `127.0.0.1:${p}`, ...zTune, ...limit, '--json']),
    ).finally(() => rm(spool, { recursive: true, force: true }));
  };
  const times = { ours: [] as number[], bareNull: [] as number[], bareFile: [] as number[], stock: [] as number[], startup: [] as number[], linkOurs: [] as number[], linkBare: [] as number[] };
  for (let i = 0; i < RELAY_RUNS; i++) {
    times.bareNull.push(await timed(bareListen('/dev/null'), bareSend(big)));
    times.bareFile.push(await timed(bareListen(outFile), bareSend(big)));
    if (haveOpenssl) times.stock.push(await timed(stockListen, bareSend(big)));
    times.ours.push(await ours(big));
    times.linkBare.push(await timed(bareListen('/dev/null'), bareSend(big, ['-r', LINK_RATE])));
    times.linkOurs.push(await ours(big, ['--rate', LINK_RATE]));
    times.startup.push(await timeIt(() => execa(process.execPath, [CLI, '--version'])));
  }
  const rate = (bytes: number, xs: number[]) => bytes / MiB / median(xs);
  return {
    ours: rate(big.bytes, times.ours), bareNull: rate(big.bytes, times.bareNull), bareFile: rate(big.bytes, times.bareFile),
    stock: haveOpenssl ? rate(big.bytes, times.stock) : null, bytes: big.bytes, startup: median(times.startup),
    link: { ours: rate(big.bytes, times.linkOurs), bare: rate(big.bytes, times.linkBare), bytes: big.bytes },
  };
}

function relayRows(r: RelayFigures): string[][] {
  const mib = (r.bytes / MiB).toFixed(0);
  return [
    [`relay ${mib}M loopback (tar, sha256 on arrival, fsync, check, rename)`, `${r.ours.toFixed(0)} MiB/s`, `bare mbuffer -o /dev/null (discards): ${r.bareNull.toFixed(0)} MiB/s`, (r.ours / r.bareNull).toFixed(2), '>= 0.90'],
    ['  same, against a baseline that writes', '', `bare mbuffer -o FILE (no hash, no fsync): ${r.bareFile.toFixed(0)} MiB/s`, (r.ours / r.bareFile).toFixed(2), ''],
    r.stock === null
      ? ['  same, against stock tools doing the same work', '', 'skipped (no openssl)', '', '']
      : ['  same, against stock tools doing the same work', '', `mbuffer -o - | tee FILE | openssl sha256; sync: ${r.stock.toFixed(0)} MiB/s`, (r.ours / r.stock).toFixed(2), ''],
    [`relay ${(r.link.bytes / MiB).toFixed(0)}M over a ${LINK_RATE}/s link (-r ${LINK_RATE} on both senders)`, `${r.link.ours.toFixed(0)} MiB/s`, `bare mbuffer -r ${LINK_RATE} -o /dev/null: ${r.link.bare.toFixed(0)} MiB/s`, (r.link.ours / r.link.bare).toFixed(2), ''],
    ['  zferry CLI start-up (the sender\'s is in the figures)', `${r.startup.toFixed(2)} s`, `medians of ${RELAY_RUNS}, same -s 128k -m 64M, same bytes`, '', ''],
  ];
}

// ---------- import ----------

const IMPORT_RUNS = 3;

/** Import (verify pass + apply pass, and the apply pass alone) against zstd -d; medians of IMPORT_RUNS, interleaved. */
async function benchImport(bundle: string, entryFile: string, zst: string, rawSize: number): Promise<{ rows: string[][]; maxRssMB: number }> {
  const zstd: number[] = [];
  const runs: ChildResult[] = [];
  for (let i = 0; i < IMPORT_RUNS; i++) {
    zstd.push(await timeIt(() => runToFile('zstd', ['-dc', '-q'], '/dev/null', zst)));
    runs.push(await runChild(['import', bundle, entryFile]));
  }
  const bytes = runs[0].bytes;
  const rate = (s: number) => bytes / MiB / s;
  const theirs = rawSize / MiB / median(zstd);
  const whole = rate(median(runs.map((r) => r.seconds)));
  const apply = rate(median(runs.map((r) => (r.extra as { applySeconds: number }).applySeconds)));
  const verify = (r: ChildResult) => (r.extra as { verifySeconds: number }).verifySeconds;
  return {
    rows: [
      ['import 256M+ as zferry import runs it: verify pass + apply pass -> sink', `${whole.toFixed(0)} MiB/s`, `zstd -d: ${theirs.toFixed(0)} MiB/s (median of ${IMPORT_RUNS})`, (whole / theirs).toFixed(2), '>= 0.90'],
      ['  apply pass alone (sizes, zstd -d, raw sha256, tail gate)', `${apply.toFixed(0)} MiB/s`, `verify pass ${median(runs.map(verify)).toFixed(2)} s`, (apply / theirs).toFixed(2), ''],
    ],
    maxRssMB: Math.max(...runs.map((r) => r.maxRssMB)),
  };
}

function printTable(rows: string[][], head = ['measure', 'zferry', 'baseline / note', 'ratio', 'goal']): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  console.log(row(head, widths));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(row(r, widths));
}

// ---------- main ----------

function row(cols: string[], widths: number[]): string {
  return cols.map((c, i) => c.padEnd(widths[i])).join('  ');
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const input = await inputStream();
  const size = (await stat(input.file)).size;
  const work = join(CACHE_DIR, `run-${process.pid}`);
  await mkdir(work, { recursive: true });
  const rows: string[][] = [];
  const mbps = (bytes: number, s: number) => bytes / MiB / s;
  try {
    console.log(`input: ${input.note}, ${(size / MiB).toFixed(0)} MiB (${input.file})`);
    console.log(`machine: ${(await import('node:os')).cpus().length} CPUs, node ${process.version}\n`);

    // Export vs zstd -T0 -3 (best of 2 each, warm page cache).
    const zstdOut = join(work, 'baseline.zst');
    await runToFile('cat', [input.file], '/dev/null');
    let zstdExport = Infinity;
    for (let i = 0; i < 2; i++) zstdExport = Math.min(zstdExport, await timeIt(() => runToFile('zstd', ['-T0', '-3', '-q'], zstdOut, input.file)));
    let exp1: ChildResult | null = null;
    const bundle1 = join(work, 'bundle-1x');
    for (let i = 0; i < 2; i++) {
      await rm(bundle1, { recursive: true, force: true });
      const r = await runChild(['export', input.file, bundle1, '1']);
      if (!exp1 || r.seconds < exp1.seconds) exp1 = r;
    }
    const w1 = exp1!.extra as { rawBytes: number; rawSha256: string; storedBytes: number; volumes: StreamEntry['volumes'] };
    const oursExp = mbps(exp1!.bytes, exp1!.seconds);
    const theirsExp = mbps(size, zstdExport);
    rows.push(['export 256M+ (read, sha256, zstd -3, split, sha256, fsync)', `${oursExp.toFixed(0)} MiB/s`, `zstd -T0 -3: ${theirsExp.toFixed(0)} MiB/s`, (oursExp / theirsExp).toFixed(2), '>= 0.90']);
    rows.push(['  compression ratio', `${(size / w1.storedBytes).toFixed(2)}x`, '', '', '']);

    // Import vs zstd -d.
    const entry: StreamEntry = {
      index: 1, dataset: '', type: 'filesystem', kind: 'full', from: null, to: { name: 'bench', guid: '1' }, intermediates: false,
      creates: [{ name: 'bench', guid: '1' }], force: false, sendFlags: [], ...w1,
    };
    const entryFile = join(work, 'entry-1x.json');
    await writeFile(entryFile, JSON.stringify(entry));
    const imp = await benchImport(bundle1, entryFile, zstdOut, size);
    rows.push(...imp.rows);
    rows.push([`peak RSS export, ${(size / MiB).toFixed(0)} MiB`, `${exp1!.maxRssMB.toFixed(0)} MB`, '', '', '<= 150 MB']);
    rows.push([`peak RSS import, ${(size / MiB).toFixed(0)} MiB`, `${imp.maxRssMB.toFixed(0)} MB`, '', '', '<= 150 MB']);
    await rm(zstdOut, { force: true });

    if (!quick) {
      const bundle8 = join(work, 'bundle-8x');
      const times = Math.ceil((2 * 1024 * MiB) / size);
      const exp8 = await runChild(['export', input.file, bundle8, String(times)]);
      const w8 = exp8.extra as typeof w1;
      const entry8File = join(work, 'entry-8x.json');
      await writeFile(entry8File, JSON.stringify({ ...entry, ...w8 }));
      const imp8 = await runChild(['import', bundle8, entry8File]);
      const gib = (exp8.bytes / 1024 / MiB).toFixed(2);
      rows.push([`peak RSS export, ${gib} GiB (${times}x replay)`, `${exp8.maxRssMB.toFixed(0)} MB`, `${mbps(exp8.bytes, exp8.seconds).toFixed(0)} MiB/s`, '', 'flat, <= 150 MB']);
      rows.push([`peak RSS import, ${gib} GiB (${times}x replay)`, `${imp8.maxRssMB.toFixed(0)} MB`, `${mbps(imp8.bytes, imp8.seconds).toFixed(0)} MiB/s`, '', 'flat, <= 150 MB']);
      await rm(bundle8, { recursive: true, force: true });
    } else {
      rows.push(['peak RSS at 2 GiB', 'skipped (--quick)', '', '', '']);
    }

    const relay = await benchRelay(work);
    if (relay) {
      rows.push(...relayRows(relay));
    } else {
      rows.push(['relay loopback', 'skipped (no mbuffer)', '', '', '']);
    }

    const resume = await benchResume(CLI, join(work, 'resume'), input.file);
    if (resume) rows.push(...resumeRows(resume));
    else rows.push(['relay resume', 'skipped (no mbuffer)', '', '', '']);

    const plan = await benchPlanner();
    rows.push(['planner: planSync 5,000 datasets x 100,000 snapshots', plan.seconds === null ? 'n/a' : `${plan.seconds.toFixed(3)} s`, plan.note, '', '< 2 s']);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  printTable(rows);
  if (!input.real) console.log('\nNOTE: input was SYNTHETIC data because zfs was unavailable.');
  console.log('');
  await e2e();
}

const E2E_HEAD = ['end to end (medians of 3, paired)', 'zferry', 'shell a user would type', 'shell/zferry', 'goal', 'met'];

/** The end-to-end section: its own table, since its columns differ. */
async function e2e(): Promise<void> {
  const work = join(CACHE_DIR, `e2e-${process.pid}`);
  await mkdir(work, { recursive: true });
  try {
    const before = await loadNote();
    const rows = await benchE2e({ cacheDir: CACHE_DIR, work, cli: CLI, log: (l) => console.log(l) });
    printTable(rows, E2E_HEAD);
    const zfs = await zfsFlavour();
    const outside = zfs.daemon ? "the zfs-fuse daemon's own work" : "the kernel's own ZFS threads' work (txg sync, checksums, I/O)";
    console.log(`\nmachine: ${before} before, ${await loadNote()} after; ${zfs.name}; CPU is user+sys of the whole process tree per GiB of send stream; ${outside} is in neither figure`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--relay') {
  // Just the relay figure: npm run bench -- --relay
  const work = join(CACHE_DIR, `run-${process.pid}`);
  await mkdir(work, { recursive: true });
  try {
    const r = await benchRelay(work);
    if (r) printTable(relayRows(r));
    else console.log('relay: skipped (no mbuffer)');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
} else if (process.argv[2] === '--resume') {
  const work = join(CACHE_DIR, `resume-${process.pid}`);
  try {
    const r = await benchResume(CLI, work, process.env.ZFERRY_BENCH_LEVEL_INPUT ?? null);
    if (r) printTable(resumeRows(r));
    else console.log('relay resume: skipped (no mbuffer)');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
} else if (process.argv[2] === '--e2e') {
  await e2e();
} else if (process.argv[2] === '--rename') {
  // Just the rename row (issue 14): npm run bench -- --rename
  const work = join(CACHE_DIR, `rename-${process.pid}`);
  await mkdir(work, { recursive: true });
  try {
    printTable(await benchRenameAlone({ cacheDir: CACHE_DIR, work, cli: CLI, log: (l) => console.log(l) }), E2E_HEAD);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
} else if (process.argv[2] === '--s3') {
  const work = join(CACHE_DIR, `s3-${process.pid}`);
  await mkdir(work, { recursive: true });
  try {
    printTable(await benchS3Alone({ cacheDir: CACHE_DIR, work, cli: CLI, log: (l) => console.log(l) }), ['bucket (medians of 3, paired)', 'zferry', 's3cmd, same bytes, same server', 's3cmd/zferry', 'goal', 'met']);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
} else if (process.argv[2] === '--child') {
  await child(process.argv.slice(3));
} else {
  await main();
}
