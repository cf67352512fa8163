/**
 * Bundles in a bucket against the stock client (issue 18, point 5): export
 * into the bucket against `s3cmd put` of the same bytes (the bundle's
 * volumes), and import from the bucket against `s3cmd get` of them, on the
 * same server (the one-node Ceph RGW of scripts/ceph-s3.sh, which must be
 * running). Medians of paired runs, as in bench/e2e.ts; the source is the
 * e2e pool's big dataset unless ZFERRY_BENCH_S3_SOURCE names another (a
 * small one for a quick look).
 *
 *   npm run bench -- --s3
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Manifest } from '../src/bundle/manifest.js';
import { ensureZfs } from '../test/helpers/zfslab.js';
import { BIG, destroyDataset, destroyPool, fmtPair, measure, paired, sendArgs, sourcePool, sparseFile, verdict, zfsOk, type E2eOptions } from './e2e.js';

const GiB = 1024 ** 3;

/** Median peak RSS of zferry's runs, in MB. */
function rssOf(p: { ours: Array<{ rssMB: number }> }): string {
  const v = p.ours.map((s) => s.rssMB).sort((a, b) => a - b);
  return `${v[Math.floor(v.length / 2)]!.toFixed(0)} MB`;
}

/** The Ceph test server's env file: endpoint and the test user's keys. */
async function cephEnv(): Promise<Record<string, string>> {
  const file = join(process.env.ZFERRY_CEPH_DIR ?? '/var/tmp/zferry-ceph', 'env');
  const env: Record<string, string> = {};
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

async function benchS3(opts: E2eOptions & { target: string }): Promise<string[][]> {
  const { work, cli, log } = opts;
  const source = process.env.ZFERRY_BENCH_S3_SOURCE ?? BIG;
  if (!process.env.ZFERRY_BENCH_S3_SOURCE) await sourcePool(opts.cacheDir, log);
  const s3env = await cephEnv();
  const host = s3env.AWS_ENDPOINT_URL!.replace(/^https?:\/\//, '');
  // s3cmd's keys in a file of mode 600, not on its command line (ps shows that to every user).
  const cfg = join(work, 's3cmd.cfg');
  await writeFile(cfg, `[default]\naccess_key = ${s3env.AWS_ACCESS_KEY_ID}\nsecret_key = ${s3env.AWS_SECRET_ACCESS_KEY}\nhost_base = ${host}\nhost_bucket = ${host}\nuse_https = False\nsignature_v2 = False\n`, { mode: 0o600 });
  const s3cmd = (...args: string[]) => ['s3cmd', ['-c', cfg, '--no-progress', ...args]] as const;
  const bucket = `zferry-bench-${process.pid}`;
  await execa(...s3cmd('mb', `s3://${bucket}`), { stdin: 'ignore' });
  const env = { ...s3env, ZFERRY_STATE_DIR: join(work, 'state') };
  const zferry = (...args: string[]) => () => measure(process.execPath, [cli, ...args], work, env);
  const emptyBucket = () => execa(...s3cmd('del', '--recursive', '--force', `s3://${bucket}/`), { stdin: 'ignore', reject: false }).then(() => undefined);
  // RGW frees a deleted object's data only at its garbage collection, hours later by default: without this
  // the runs' copies pile up in the test OSD's memstore until it is full (and stops answering).
  const collect = () => execa('radosgw-admin', ['-c', s3env.ZFERRY_CEPH_CONF!, '-n', 'client.rgw.a', '--admin_socket=', 'gc', 'process', '--include-all'], { stdin: 'ignore', reject: false }).then(() => undefined);
  try {
    // One export, untimed: its volumes are the bytes s3cmd carries, and the bundle every import reads.
    const kept = `s3://${bucket}/kept`;
    const ex = JSON.parse((await execa(process.execPath, [cli, 'export', source, kept, '--no-journal', '--json'], { env: { ...process.env, ...env }, stdin: 'ignore' })).stdout) as { bundle: string };
    const local = join(work, 'volumes');
    // s3cmd get --recursive writes into a folder that must exist.
    await mkdir(local, { recursive: true });
    await execa(...s3cmd('get', '--recursive', `${ex.bundle}/`, `${local}/`), { stdin: 'ignore' });
    const manifest = JSON.parse(await readFile(join(local, 'manifest.json'), 'utf8')) as Manifest;
    const raw = manifest.streams.reduce((n, s) => n + s.rawBytes, 0);
    const stored = manifest.streams.reduce((n, s) => n + s.storedBytes, 0);
    log(`s3: ${source}, ${(raw / GiB).toFixed(2)} GiB raw, ${(stored / GiB).toFixed(2)} GiB stored`);
    const rows: string[][] = [];

    // Export: zfs send, zstd, sha256 and the upload, against the upload alone of the same bytes.
    const dropRuns = async () => {
      for (const p of ['ours', 'shell', 'pipe']) await execa(...s3cmd('del', '--recursive', '--force', `s3://${bucket}/${p}/`), { stdin: 'ignore', reject: false });
      await collect();
      await execa('zfs', ['release', '-r', 'zferry', `${source}@${manifest.streams.find((s) => s.to)?.to?.name}`], { reject: false, stdin: 'ignore' });
    };
    const put = () => measure('s3cmd', ['-c', cfg, '--no-progress', 'put', '--recursive', join(local, 'streams') + '/', `s3://${bucket}/shell/`], work);
    const exp = await paired(zferry('export', source, `s3://${bucket}/ours`, '--no-journal', '--json'), put, dropRuns);
    const e = fmtPair(exp, raw / GiB);
    rows.push([`export ${(raw / GiB).toFixed(2)} GiB to the bucket`, `${e.ours}, ${rssOf(exp)}`, `${e.shell}  (s3cmd put of the ${(stored / GiB).toFixed(2)} GiB of volumes)`, e.ratio.toFixed(2), '>= 0.9', verdict(e.ratio, 0.9)]);
    // The same job as a shell pipe (what a user would type for it): the bare transfer above leaves out
    // zfs send and zstd, which on this machine share two cores with the gateway and the OSD.
    const sends = manifest.streams.filter((s) => s.volumes.length > 0);
    const one = sends.length === 1 ? sends[0]! : null;
    if (one) {
      const pipeUp = () => measure('bash', ['-o', 'pipefail', '-c', `${sendArgs(source, one)} | zstd -q -T0 -${manifest.compression.level} | s3cmd -c "$1" --no-progress put - "$2"`, 'pipe', cfg, `s3://${bucket}/pipe/s.zst`], work);
      const ep = await paired(zferry('export', source, `s3://${bucket}/ours`, '--no-journal', '--json'), pipeUp, dropRuns);
      const f = fmtPair(ep, raw / GiB);
      rows.push([`export ${(raw / GiB).toFixed(2)} GiB to the bucket`, `${f.ours}, ${rssOf(ep)}`, `${f.shell}  (zfs send | zstd -T0 | s3cmd put -)`, f.ratio.toFixed(2), '(context)', '']);
    } else {
      log(`s3: ${sends.length} streams: no shell-pipe rows (they are written for one stream)`);
    }

    // Import: download, verify, zstd -d and zfs recv, against the download alone.
    const target = `${opts.target}/s3`;
    const getDir = join(work, 'got');
    const clean = async () => {
      await destroyDataset(target);
      await rm(getDir, { recursive: true, force: true });
      await mkdir(getDir, { recursive: true });
    };
    const get = () => measure('s3cmd', ['-c', cfg, '--no-progress', 'get', '--recursive', `${ex.bundle}/streams/`, `${getDir}/`], work);
    const imp = await paired(zferry('import', ex.bundle, target, '--json'), get, clean);
    const i = fmtPair(imp, raw / GiB);
    rows.push([`import ${(raw / GiB).toFixed(2)} GiB from the bucket`, `${i.ours}, ${rssOf(imp)}`, `${i.shell}  (s3cmd get of the volumes)`, i.ratio.toFixed(2), '>= 0.9', verdict(i.ratio, 0.9)]);
    if (one) {
      const keys = one.volumes.map((v) => `${ex.bundle}/${v.file}`);
      const pipeDown = () => measure('bash', ['-o', 'pipefail', '-c', 'cfg=$1; t=$2; shift 2; for k in "$@"; do s3cmd -c "$cfg" --no-progress get "$k" -; done | zstd -dc | zfs recv -u "$t"', 'pipe', cfg, target, ...keys], work);
      const ip = await paired(zferry('import', ex.bundle, target, '--json'), pipeDown, clean);
      const g = fmtPair(ip, raw / GiB);
      rows.push([`import ${(raw / GiB).toFixed(2)} GiB from the bucket`, `${g.ours}, ${rssOf(ip)}`, `${g.shell}  (s3cmd get - | zstd -dc | zfs recv -u)`, g.ratio.toFixed(2), '(context)', '']);
    }
    await clean();
    return rows;
  } finally {
    await emptyBucket();
    await execa(...s3cmd('rb', `s3://${bucket}`), { stdin: 'ignore', reject: false });
    await rm(join(work, 'volumes'), { recursive: true, force: true });
  }
}

/** `npm run bench -- --s3`: the two rows, with a target pool of their own. */
export async function benchS3Alone(opts: E2eOptions): Promise<string[][]> {
  await ensureZfs();
  const pool = `zfbenchs3${process.pid}`;
  const img = `${opts.work}/s3-target.img`;
  await sparseFile(img, 4 * GiB);
  await zfsOk(['create', '-m', `${opts.work}/s3-mnt`, pool, img], 'zpool');
  try {
    return await benchS3({ ...opts, target: pool });
  } finally {
    await destroyPool(pool).catch((err: Error) => opts.log(`WARNING: ${err.message}`));
  }
}
