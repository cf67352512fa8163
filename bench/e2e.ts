/**
 * End-to-end benchmark: the built CLI run as a user runs it, on a real pool
 * (zfs-fuse here), each path paired run by run with the shell a user would
 * type instead. Whole processes are measured from outside: wall time, user +
 * sys CPU of the whole process tree and the largest single process's peak
 * RSS (GNU time, which reads the kernel's accounting of every waited-for
 * descendant). Under zfs-fuse the send/receive work itself runs in the
 * zfs-fuse daemon, which neither side's CPU figure includes.
 *
 *   npm run bench -- --e2e     # only this section
 *   npm run bench:openzfs      # this section in the QEMU guest, on OpenZFS
 *
 * The source pool (>= 1 GiB of text, random and zero data in one dataset,
 * and 200 small datasets x 3 snapshots beside it) is built once and kept in
 * the bench cache folder; the target pool lives for one run, and every timed
 * import starts from a destroyed target.
 *
 * Environment, for the guest (test/lab/bench-openzfs.sh sets them) or a quick look:
 *   ZFERRY_BENCH_E2E_DISKS="SRC TGT"  pools on these block devices, not on sparse
 *                                     files; the source pool is then built every run
 *   ZFERRY_BENCH_E2E_MIB=N            the big dataset's size (default 1088), same mix
 *   ZFERRY_BENCH_E2E_MANY=N           how many small datasets (default 200)
 *   ZFERRY_BENCH_E2E_RENAME_MIB=N     the renamed dataset's size in the rename row (default 256)
 *   ZFERRY_BENCH_E2E_RUNS, ZFERRY_BENCH_E2E_ONLY=big|many   (below)
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { ensureZfs } from '../test/helpers/zfslab.js';
import type { Manifest, StreamEntry } from '../src/bundle/manifest.js';
import { Zfs } from '../src/zfs/index.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SRC_POOL = 'zfbenchsrc';
export const BIG = `${SRC_POOL}/big`;
const MANY = `${SRC_POOL}/many`;
const MANY_DATASETS = positiveEnv('ZFERRY_BENCH_E2E_MANY', 200);
/** The big dataset's size in MiB: the issue's ">= 1 GiB" by default; smaller in the emulated guest. */
const BIG_MIB = positiveEnv('ZFERRY_BENCH_E2E_MIB', 1088);
/** Block devices for the source and target pools (the guest's scratch disks). */
const DISKS = (process.env.ZFERRY_BENCH_E2E_DISKS ?? '').split(/\s+/).filter(Boolean);
/**
 * Bump the version when the source pool's recipe changes: the cached pool is
 * then rebuilt. Sizes other than the defaults are part of the name, and the
 * pool carries its recipe (RECIPE_PROP), so a pool built for other sizes is
 * never taken for this one.
 */
const RECIPE = BIG_MIB === 1088 && MANY_DATASETS === 200 ? 'e2e-src-v1' : `e2e-src-v1-${BIG_MIB}m-${MANY_DATASETS}`;
const RECIPE_PROP = 'zferry-bench:recipe';
const SNAPSHOTS = ['s1', 's2', 's3'];
/** Paired runs per comparison (env ZFERRY_BENCH_E2E_RUNS, for a quick look). */
const RUNS = Number(process.env.ZFERRY_BENCH_E2E_RUNS ?? 3);
/** Only one of the two sources (env ZFERRY_BENCH_E2E_ONLY=big|many), for a quick look at one path. */
const ONLY = process.env.ZFERRY_BENCH_E2E_ONLY;
const TIME = '/usr/bin/time';

/** What the big dataset holds, in MiB: real files from /usr, generated text, random, zeros (1088 MiB, scaled to BIG_MIB). */
const MIX = Object.fromEntries(
  Object.entries({ usr: 288, text: 224, random: 320, zeros: 256 }).map(([k, v]) => [k, Math.max(1, Math.round((v * BIG_MIB) / 1088))]),
) as { usr: number; text: number; random: number; zeros: number };

function positiveEnv(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${v}: a whole number >= 1 expected`);
  return n;
}

export interface E2eOptions {
  cacheDir: string;
  work: string;
  /** The built CLI (dist/cli/main.js). */
  cli: string;
  log: (line: string) => void;
}

interface Sample {
  wall: number;
  cpu: number;
  rssMB: number;
}

// ---------- running and measuring ----------

/** Runs a command under GNU time; throws with its stderr when it fails. */
export async function measure(cmd: string, args: string[], work: string, env: Record<string, string> = {}): Promise<Sample> {
  const tf = join(work, 'time.out');
  const t0 = performance.now();
  const r = await execa(TIME, ['-f', '%U %S %M', '-o', tf, cmd, ...args], {
    reject: false, stdin: 'ignore', stdout: 'ignore', env: { LC_ALL: 'C', ...env },
  });
  const wall = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.exitCode}: ${String(r.stderr).trim().split('\n').slice(-3).join(' | ')}`);
  const [user, sys, rssKB] = (await readFile(tf, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
  return { wall, cpu: user + sys, rssMB: rssKB / 1024 };
}

function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

interface Pair {
  ours: Sample[];
  shell: Sample[];
  /** shell wall / zferry wall, run by run. */
  ratios: number[];
}

/**
 * A and B in turn, RUNS times each, after one unmeasured warm-up of each
 * (ARC and page cache then hold what the first real run would find).
 * `prepare` runs before every run, untimed (destroying the target).
 */
export async function paired(ours: () => Promise<Sample>, shell: () => Promise<Sample>, prepare: () => Promise<void>): Promise<Pair> {
  const p: Pair = { ours: [], shell: [], ratios: [] };
  await prepare();
  await ours();
  await prepare();
  await shell();
  for (let i = 0; i < RUNS; i++) {
    await prepare();
    const a = await ours();
    await prepare();
    const b = await shell();
    p.ours.push(a);
    p.shell.push(b);
    p.ratios.push(b.wall / a.wall);
  }
  return p;
}

// ---------- zfs ----------

export async function zfsOk(args: string[], cmd = 'zfs'): Promise<string> {
  const r = await execa(cmd, args, { reject: false, stdin: 'ignore', env: { LC_ALL: 'C' } });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${String(r.stderr).trim()}`);
  return String(r.stdout);
}

async function poolImported(pool: string): Promise<boolean> {
  return (await execa('zpool', ['list', '-H', '-o', 'name', pool], { reject: false, stdin: 'ignore' })).exitCode === 0;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** zfs-fuse may call a pool busy right after use: retry a few times. */
export async function destroyPool(pool: string): Promise<void> {
  for (let i = 0; i < 8; i++) {
    const r = await execa('zpool', ['destroy', '-f', pool], { reject: false, stdin: 'ignore', env: { LC_ALL: 'C' } });
    if (r.exitCode === 0 || /no such pool/.test(String(r.stderr))) return;
    await new Promise((res) => setTimeout(res, 1000));
  }
  throw new Error(`could not destroy pool ${pool}; run: zpool destroy -f ${pool}`);
}

export async function destroyDataset(name: string): Promise<void> {
  for (let i = 0; i < 8; i++) {
    const r = await execa('zfs', ['destroy', '-r', name], { reject: false, stdin: 'ignore', env: { LC_ALL: 'C' } });
    if (r.exitCode === 0 || /does not exist/.test(String(r.stderr))) return;
    // zfs-fuse: a freshly received filesystem is sometimes "busy" for a moment.
    await execa('zfs', ['unmount', '-f', name], { reject: false, stdin: 'ignore' });
    await new Promise((res) => setTimeout(res, 500));
  }
  throw new Error(`could not destroy ${name}`);
}

export async function sparseFile(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}

/** Deterministic log-like text: compresses about as well as real logs (zstd -3 ~ 3-4x). */
async function writeText(path: string, bytes: number): Promise<void> {
  const words = 'error warning info debug request response client server session timeout retry connected closed bytes ms user admin backup snapshot dataset pool volume stream received sent'.split(' ');
  const fh = await open(path, 'w');
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  try {
    let written = 0;
    while (written < bytes) {
      const lines: string[] = [];
      for (let i = 0; i < 8192; i++) {
        const n = 4 + rnd(10);
        const msg = Array.from({ length: n }, () => words[rnd(words.length)]).join(' ');
        lines.push(`2026-01-${String(1 + rnd(28)).padStart(2, '0')}T${String(rnd(24)).padStart(2, '0')}:${String(rnd(60)).padStart(2, '0')}:${String(rnd(60)).padStart(2, '0')}Z host${rnd(50)} [${rnd(99999)}] ${msg} id=${rnd(1e9).toString(16)}`);
      }
      const buf = Buffer.from(lines.join('\n') + '\n').subarray(0, bytes - written);
      await fh.write(buf);
      written += buf.length;
    }
  } finally {
    await fh.close();
  }
}

async function headToFile(src: string, bytes: number, out: string): Promise<void> {
  await execa('head', ['-c', String(bytes), src], { stdin: 'ignore', stdout: { file: out }, buffer: false });
}

/**
 * The cached source pool: imported as it is, re-imported from its image after
 * a zfs-fuse restart, or built (once) when neither works.
 */
export async function sourcePool(cacheDir: string, log: (l: string) => void): Promise<void> {
  await ensureZfs();
  const img = join(cacheDir, `${RECIPE}.img`);
  const ready = join(cacheDir, `${RECIPE}.ready`);
  if (DISKS.length === 0 && (await exists(ready))) {
    if (!(await poolImported(SRC_POOL))) {
      const r = await execa('zpool', ['import', '-d', cacheDir, SRC_POOL], { reject: false, stdin: 'ignore' });
      if (r.exitCode !== 0) log(`cached source pool would not import (${String(r.stderr).trim()}): rebuilding`);
    }
    const built = await poolRecipe();
    // Pools cached before the property existed were built by the default recipe.
    if (built === RECIPE || (built === '-' && RECIPE === 'e2e-src-v1')) return;
  }
  log(DISKS.length > 0 ? `building the e2e source pool on ${DISKS[0]} (${BIG_MIB} MiB, ${MANY_DATASETS} small datasets) ...` : `building the e2e source pool (once, cached in ${img}) ...`);
  if (await poolImported(SRC_POOL)) {
    // Only a pool this bench built is destroyed: one that carries its recipe property, or (built before the
    // property) one on the bench's own image file. A failed `zfs get` ('') proves nothing.
    const recipe = await poolRecipe();
    const onImage = (await execa('zpool', ['list', '-vHP', SRC_POOL], { reject: false, stdin: 'ignore' })).stdout.includes(img);
    if (!recipe.startsWith('e2e-src-v1') && !(recipe === '-' && onImage)) {
      throw new Error(`a pool named ${SRC_POOL} is imported and was not built by this bench (no ${RECIPE_PROP} property): export or rename it first`);
    }
    await destroyPool(SRC_POOL);
  }
  await rm(ready, { force: true });
  await rm(img, { force: true });
  await mkdir(cacheDir, { recursive: true });
  if (DISKS.length === 0) await sparseFile(img, Math.max(3 * GiB, 2 * BIG_MIB * MiB));
  const mnt = join(cacheDir, `${RECIPE}-mnt`);
  // Compression off (zfs-fuse's default, set anyway): the send stream then
  // carries the zeros as data, and zstd meets all three kinds.
  await zfsOk(['create', ...(DISKS.length > 0 ? ['-f'] : []), '-m', mnt, '-O', 'compression=off', SRC_POOL, DISKS[0] ?? img], 'zpool');
  await zfsOk(['create', BIG]);
  const big = join(mnt, 'big');
  // tar stops with SIGPIPE once head has its share: that is the point, not an error.
  await execa('bash', ['-c', 'tar -c -C / usr/share usr/bin usr/lib 2>/dev/null | head -c "$1" > "$2"', 'usr', String(MIX.usr * MiB), join(big, 'usr.tar')], { stdin: 'ignore' });
  await writeText(join(big, 'logs.txt'), MIX.text * MiB);
  await headToFile('/dev/urandom', MIX.random * MiB, join(big, 'random.bin'));
  await headToFile('/dev/zero', MIX.zeros * MiB, join(big, 'zeros.bin'));
  await zfsOk(['snapshot', `${BIG}@s1`]);

  // 200 small datasets, each changed a little between three recursive snapshots.
  await zfsOk(['create', MANY]);
  for (let i = 0; i < MANY_DATASETS; i++) await zfsOk(['create', `${MANY}/d${String(i).padStart(3, '0')}`]);
  for (const [k, snap] of SNAPSHOTS.entries()) {
    for (let i = 0; i < MANY_DATASETS; i++) {
      const dir = join(mnt, 'many', `d${String(i).padStart(3, '0')}`);
      await writeText(join(dir, `f${k}.txt`), 8 * 1024 + ((i * 977) % 8192));
    }
    await zfsOk(['snapshot', '-r', `${MANY}@${snap}`]);
  }
  await zfsOk(['set', `${RECIPE_PROP}=${RECIPE}`, SRC_POOL]);
  if (DISKS.length === 0) await writeFile(ready, `${new Date().toISOString()}\n`);
}

/** The recipe the imported source pool was built by: '-' when it carries none, '' when not imported. */
async function poolRecipe(): Promise<string> {
  const r = await execa('zfs', ['get', '-H', '-o', 'value', RECIPE_PROP, SRC_POOL], { reject: false, stdin: 'ignore' });
  return r.exitCode === 0 ? String(r.stdout).trim() : '';
}

// ---------- the section ----------

interface Row {
  measure: string;
  ours: string;
  shell: string;
  ratio: string;
  goal: string;
  met: string;
}

export function fmtPair(p: Pair, gib: number): { ours: string; shell: string; ratio: number } {
  const o = median(p.ours.map((s) => s.wall));
  const s = median(p.shell.map((x) => x.wall));
  const oc = median(p.ours.map((x) => x.cpu)) / gib;
  const sc = median(p.shell.map((x) => x.cpu)) / gib;
  const cpu = (c: number) => (gib >= 0.5 ? `${c.toFixed(2)} cpu-s/GiB` : `cpu ${(c * gib).toFixed(2)} s (${c.toFixed(0)}/GiB)`);
  return {
    ours: `${o.toFixed(2)} s, ${cpu(oc)}`,
    shell: `${s.toFixed(2)} s, ${cpu(sc)}`,
    ratio: median(p.ratios),
  };
}

export function verdict(ratio: number, goal: number): string {
  return ratio >= goal ? 'yes' : 'NO';
}

/** The manifest of the one bundle in `parent`. */
async function onlyBundle(parent: string): Promise<{ dir: string; manifest: Manifest }> {
  const names = (await readdir(parent)).filter((n) => n.startsWith('zferry-'));
  if (names.length !== 1) throw new Error(`expected one bundle in ${parent}, found ${names.length}`);
  const dir = join(parent, names[0]);
  return { dir, manifest: JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest };
}

const q = (w: string) => `'${w.replace(/'/g, `'\\''`)}'`;

/** `zfs send` arguments of a manifest's stream, exactly as zferry ran it. */
export function sendArgs(root: string, s: StreamEntry): string {
  const ds = s.dataset === '' ? root : `${root}/${s.dataset}`;
  const opts = s.sendFlags.filter((f) => f !== '-i' && f !== '-I');
  const from = s.from ? [s.intermediates ? '-I' : '-i', q(`${s.from.dataset !== undefined ? (s.from.dataset === '' ? root : `${root}/${s.from.dataset}`) : ds}@${s.from.name}`)] : [];
  return ['zfs', 'send', ...opts, ...from, q(`${ds}@${s.to!.name}`)].join(' ');
}

async function folderBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await stat(join(e.parentPath ?? e.path, e.name))).size;
  }
  return n;
}

async function hasStrace(): Promise<boolean> {
  return (await execa('strace', ['-V'], { reject: false, stdin: 'ignore' }).catch(() => ({ exitCode: 1 }))).exitCode === 0;
}

/**
 * Bytes zferry import reads from the bundle's files, counted from outside:
 * strace follows every thread (Node reads on libuv's pool) and -y names each
 * descriptor's file. Split calls ("unfinished ... resumed") are matched by pid.
 */
async function bundleBytesRead(cli: string, parent: string, bundle: string, target: string, work: string, env: Record<string, string>): Promise<number> {
  const out = join(work, 'import.strace');
  const r = await execa('strace', ['-f', '-qq', '-s', '0', '-e', 'trace=read,pread64,readv,preadv', '-y', '-o', out, process.execPath, cli, 'import', parent, target], {
    reject: false, stdin: 'ignore', env,
  });
  if (r.exitCode !== 0) throw new Error(`strace zferry import exited ${r.exitCode}: ${String(r.stderr).trim().split('\n').slice(-2).join(' | ')}`);
  const pending = new Map<string, string>();
  let total = 0;
  const lines = createReadStream(out, { encoding: 'utf8' });
  let rest = '';
  const take = (line: string) => {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) return;
    const [, pid, call] = m;
    const start = /^(?:read|pread64|readv|preadv)\(\d+<([^>]*)>/.exec(call);
    if (start && / <unfinished \.\.\.>$/.test(call)) {
      pending.set(pid, start[1]);
      return;
    }
    let file = start?.[1];
    if (!start && /^<\.\.\. (?:read|pread64|readv|preadv) resumed>/.test(call)) {
      file = pending.get(pid);
      pending.delete(pid);
    }
    const ret = /\)\s+=\s+(\d+)/.exec(call);
    if (file !== undefined && ret && file.startsWith(bundle + '/')) total += Number(ret[1]);
  };
  for await (const chunk of lines) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    parts.forEach(take);
  }
  take(rest);
  await rm(out, { force: true });
  return total;
}

export async function benchE2e(opts: E2eOptions): Promise<string[][]> {
  const { work, cli, log } = opts;
  await sourcePool(opts.cacheDir, log);
  const tgtPool = `zfbenchtgt${process.pid}`;
  const tgtImg = join(work, 'target.img');
  if (DISKS.length < 2) await sparseFile(tgtImg, Math.max(6 * GiB, 4 * BIG_MIB * MiB));
  await zfsOk(['create', ...(DISKS.length > 1 ? ['-f'] : []), '-m', join(work, 'tgt-mnt'), tgtPool, DISKS[1] ?? tgtImg], 'zpool');
  const env = { ZFERRY_STATE_DIR: join(work, 'state') };
  const rows: Row[] = [];
  let peakRss = 0;
  const zferry = (...args: string[]) => () => measure(process.execPath, [cli, ...args], work, env).then((s) => ((peakRss = Math.max(peakRss, s.rssMB)), s));
  const bash = (script: string, ...args: string[]) => () => measure('bash', ['-o', 'pipefail', '-e', '-c', script, 'bench', ...args], work);
  try {
    for (const which of ['big', 'many'] as const) {
      if (ONLY !== undefined && ONLY !== which) continue;
      const source = which === 'big' ? BIG : MANY;
      const outOurs = join(work, `${which}-ours`);
      const outShell = join(work, `${which}-shell`);
      const fresh = async () => {
        for (const d of [outOurs, outShell]) {
          await rm(d, { recursive: true, force: true });
          await mkdir(d, { recursive: true });
        }
        // Every export then holds snapshots that have no hold yet, as a real round's new snapshots do.
        await execa('zfs', ['release', '-r', 'zferry', `${source}@${which === 'big' ? 's1' : SNAPSHOTS[SNAPSHOTS.length - 1]}`], { reject: false, stdin: 'ignore' });
      };
      // The streams zferry sends decide the shell's: one export, untimed, gives
      // the list, and the bundle every import below reads.
      const kept = join(work, `${which}-bundle`);
      await mkdir(kept, { recursive: true });
      await execa(process.execPath, [cli, 'export', source, kept, '--no-journal', '--json'], { env, stdin: 'ignore' });
      const { dir: bundle, manifest } = await onlyBundle(kept);
      const raw = manifest.streams.reduce((n, s) => n + s.rawBytes, 0);
      const gib = raw / GiB;
      const sends = manifest.streams.filter((s) => s.kind !== 'create');
      log(`${which}: ${manifest.streams.length} streams, ${(raw / MiB).toFixed(1)} MiB raw`);

      const exportScript = which === 'big'
        // What the issue names, with tee's copy hashed in the same pipeline so bash waits for the hash too,
        // and sync of the file written (not of every filesystem on a shared machine).
        ? `${sendArgs(BIG, sends[0])} | zstd -q -T0 -3 | tee "$1/s.zst" | sha256sum > "$1/s.sha256"; sync "$1/s.zst"`
        : [
            'cd "$1"',
            ...sends.map((s, i) => `${sendArgs(MANY, s)} | zstd -q -3 > ${i}.zst`),
            'sha256sum *.zst > SHA256SUMS',
            'sync *.zst SHA256SUMS',
          ].join('\n');
      const exp = await paired(zferry('export', source, outOurs, '--no-journal', '--json'), bash(exportScript, outShell), fresh);
      const e = fmtPair(exp, gib);
      const goalExp = which === 'big' ? 1.1 : 0.9;
      rows.push({
        measure: which === 'big' ? `export ${(raw / GiB).toFixed(2)} GiB, 1 stream` : `export ${sends.length} streams of ${manifest.inventory.datasets.length} datasets`,
        ours: e.ours, shell: `${e.shell}  (${which === 'big' ? 'zfs send | zstd -T0 -3 | tee | sha256sum; sync' : 'loop zfs send | zstd -3 > f; sha256sum; sync'})`,
        ratio: e.ratio.toFixed(2), goal: `>= ${goalExp}`, met: verdict(e.ratio, goalExp),
      });

      // Import: into a target destroyed before every run.
      const target = `${tgtPool}/${which}`;
      const clean = () => destroyDataset(target);
      const restore = bash('cd "$1"; TARGET="$2" bash RESTORE.txt >/dev/null', bundle, target);
      const imp = await paired(zferry('import', kept, target, '--json'), restore, clean);
      const i = fmtPair(imp, gib);
      const goalImp = which === 'big' ? 1.2 : null;
      rows.push({
        measure: `import ${which === 'big' ? `${(raw / GiB).toFixed(2)} GiB` : `${sends.length} streams`} vs RESTORE.txt`,
        ours: i.ours, shell: `${i.shell}  (sha256sum -c; cat | zstd -dc | zfs recv -u)`,
        ratio: i.ratio.toFixed(2), goal: goalImp === null ? '' : `>= ${goalImp}`, met: goalImp === null ? '' : verdict(i.ratio, goalImp),
      });
      const recvLoop = [
        'cd "$1"',
        ...manifest.streams.map((s) =>
          s.kind === 'create'
            ? `zfs create -p ${q(s.dataset === '' ? target : `${target}/${s.dataset}`)}`
            : `${s.volumes.length === 1 ? `zstd -dc ${q(s.volumes[0].file)}` : `cat ${s.volumes.map((v) => q(v.file)).join(' ')} | zstd -dc`} | zfs recv -u ${q(s.dataset === '' ? target : `${target}/${s.dataset}`)}`),
      ].join('\n');
      const bare = await paired(zferry('import', kept, target, '--json'), bash(recvLoop, bundle), clean);
      const b = fmtPair(bare, gib);
      const goalBare = which === 'big' ? 0.95 : 0.9;
      rows.push({
        measure: `import ${which === 'big' ? `${(raw / GiB).toFixed(2)} GiB` : `${sends.length} streams`} vs bare receive`,
        ours: b.ours, shell: `${b.shell}  (${which === 'big' ? 'cat vols | zstd -dc | zfs recv -u' : 'loop zstd -dc f | zfs recv -u'})`,
        ratio: b.ratio.toFixed(2), goal: `>= ${goalBare}`, met: verdict(b.ratio, goalBare),
      });

      if (which === 'big' && !(await hasStrace())) {
        rows.push({ measure: 'import: bytes read from the bundle per bundle byte', ours: 'skipped', shell: 'no strace here', ratio: '', goal: '1.0', met: '' });
      } else if (which === 'big') {
        await clean();
        const read = await bundleBytesRead(cli, kept, bundle, target, work, { ...process.env as Record<string, string>, ...env, LC_ALL: 'C' });
        const size = await folderBytes(bundle);
        const perByte = read / size;
        rows.push({
          measure: 'import: bytes read from the bundle per bundle byte', ours: perByte.toFixed(3),
          shell: `${(read / MiB).toFixed(1)} MiB read of ${(size / MiB).toFixed(1)} MiB (strace -f, reads on the bundle's files)`,
          ratio: '', goal: '1.0', met: perByte <= 1.005 ? 'yes' : 'NO',
        });
      }
      await clean();
      for (const d of [outOurs, outShell, kept]) await rm(d, { recursive: true, force: true });
    }
    rows.push(await benchRename({ ...opts, pool: tgtPool, mountRoot: join(work, 'tgt-mnt') }));
    rows.push({ measure: 'peak RSS, largest zferry process of all runs above', ours: `${peakRss.toFixed(0)} MB`, shell: '', ratio: '', goal: '<= 150 MB', met: peakRss <= 150 ? 'yes' : 'NO' });
  } finally {
    await destroyPool(tgtPool).catch((err: Error) => log(`WARNING: ${err.message}`));
  }
  return rows.map((r) => [r.measure, r.ours, r.shell, r.ratio, r.goal, r.met]);
}

/** Size of the renamed dataset in the rename row (issue 14: >= 256 MiB; ZFERRY_BENCH_E2E_RENAME_MIB for the emulated guest). */
const RENAME_MIB = positiveEnv('ZFERRY_BENCH_E2E_RENAME_MIB', 256);

/**
 * Renames, not resends: seed a dataset of RENAME_MIB MiB of random data (it
 * would cost that much again on the link), rename it on the source, and
 * measure the next bundle (the receipt beside the first is its basis). Runs
 * in `pool`, as source and target side by side; `npm run bench -- --rename`
 * runs it alone.
 */
export async function benchRename(opts: Omit<E2eOptions, 'cacheDir'> & { pool: string; mountRoot: string }): Promise<Row> {
  const { cli, work, pool, log } = opts;
  const env = { ZFERRY_STATE_DIR: join(work, 'state-rename') };
  const src = `${pool}/rnsrc`;
  const dst = `${pool}/rndst`;
  const disk = join(work, 'rename-disk');
  await mkdir(disk, { recursive: true });
  const cliJson = async (...args: string[]) => {
    const r = await execa(process.execPath, [cli, ...args, '--json'], { env, stdin: 'ignore', reject: false });
    if (r.exitCode !== 0) throw new Error(`zferry ${args.join(' ')} exited ${r.exitCode}: ${String(r.stderr).trim()}`);
    return JSON.parse(String(r.stdout));
  };
  try {
    await zfsOk(['create', '-p', `${src}/d`]);
    await headToFile('/dev/urandom', RENAME_MIB * MiB, join(opts.mountRoot, 'rnsrc', 'd', 'random.bin'));
    await zfsOk(['snapshot', '-r', `${src}@r1`]);
    const first = await cliJson('export', src, disk, '--no-journal');
    await cliJson('import', disk, dst);
    // zfs-fuse calls a mounted filesystem busy when it is renamed.
    await execa('zfs', ['unmount', `${src}/d`], { reject: false, stdin: 'ignore' });
    await zfsOk(['rename', `${src}/d`, `${src}/d2`]);
    await zfsOk(['snapshot', '-r', `${src}@r2`]);
    const second = await cliJson('export', src, disk, '--no-journal');
    const bytes = await folderBytes(second.bundle);
    const full = await folderBytes(first.bundle);
    const imported = await cliJson('import', second.bundle, dst, '--delete');
    const renamed = imported.bundles[0].applied.some((a: { kind: string; renamedFrom?: string }) => a.kind === 'rename' && a.renamedFrom === 'd');
    log(`rename: first bundle ${(full / MiB).toFixed(1)} MiB, after the rename ${(bytes / 1024).toFixed(1)} KiB; renamed on the target: ${renamed}`);
    return {
      measure: `rename: next bundle after renaming a ${RENAME_MIB} MiB dataset (zfs rename d d2, one new snapshot)`,
      ours: `${(bytes / 1024).toFixed(1)} KiB`,
      shell: `${(full / MiB).toFixed(1)} MiB  (its first bundle: what a resend would cost)`,
      ratio: (full / bytes).toFixed(0),
      goal: '< 1 MiB, renamed on target',
      met: bytes < MiB && renamed ? 'yes' : 'NO',
    };
  } finally {
    // Export holds each newest sent snapshot (base protection); released so the source can go.
    for (const snap of ['r1', 'r2']) await execa('zfs', ['release', '-r', 'zferry', `${src}@${snap}`], { reject: false, stdin: 'ignore' });
    for (const d of [dst, src]) await destroyDataset(d).catch((err: Error) => log(`WARNING: ${err.message}`));
    await rm(disk, { recursive: true, force: true });
  }
}

/** `npm run bench -- --rename`: the rename row alone, in a pool of its own. */
export async function benchRenameAlone(opts: E2eOptions): Promise<string[][]> {
  await ensureZfs();
  const pool = `zfbenchrn${process.pid}`;
  const img = join(opts.work, 'rename.img');
  await sparseFile(img, 2 * GiB);
  await zfsOk(['create', '-m', join(opts.work, 'rn-mnt'), pool, img], 'zpool');
  try {
    const r = await benchRename({ ...opts, pool, mountRoot: join(opts.work, 'rn-mnt') });
    return [[r.measure, r.ours, r.shell, r.ratio, r.goal, r.met]];
  } finally {
    await destroyPool(pool).catch((err: Error) => opts.log(`WARNING: ${err.message}`));
  }
}

/** Which ZFS the pools are on, for the table's reader, as the adapter's probe tells it. */
export async function zfsFlavour(): Promise<{ name: string; daemon: boolean }> {
  const { caps } = await Zfs.probe();
  return caps.flavour === 'zfs-fuse' ? { name: 'zfs-fuse', daemon: true } : { name: `${caps.flavour === 'openzfs' ? 'OpenZFS' : 'zfs'} ${caps.version ?? '(version unknown)'}`, daemon: false };
}

/** One line on how busy the machine was, for the table's reader. */
export async function loadNote(): Promise<string> {
  const la = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  return `load average ${la} on ${(await import('node:os')).cpus().length} CPUs`;
}

