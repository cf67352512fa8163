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
import { BIG, destroyDataset, destroyPool, fmtPair, measure, paired, sourcePool, sparseFile, verdict, zfsOk, type E2eOptions } from './e2e.js';

const GiB = 1024 ** 3;

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
      for (const p of ['ours', 'shell']) await execa(...s3cmd('del', '--recursive', '--force', `s3://${bucket}/${p}/`), { stdin: 'ignore', reject: false });
      await execa('zfs', ['release', '-r', 'zferry', `${source}@${manifest.streams.find((s) => s.to)?.to?.name}`], { reject: false, stdin: 'ignore' });
    };
    const put = () => measure('s3cmd', ['-c', cfg, '--no-progress', 'put', '--recursive', join(local, 'streams') + '/', `s3://${bucket}/shell/`], work);
    const exp = await paired(zferry('export', source, `s3://${bucket}/ours`, '--no-journal', '--json'), put, dropRuns);
    const e = fmtPair(exp, raw / GiB);
    rows.push([`export ${(raw / GiB).toFixed(2)} GiB to the bucket`, e.ours, `${e.shell}  (s3cmd put of the ${(stored / GiB).toFixed(2)} GiB of volumes)`, e.ratio.toFixed(2), '>= 0.9', verdict(e.ratio, 0.9)]);

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
    rows.push([`import ${(raw / GiB).toFixed(2)} GiB from the bucket`, i.ours, `${i.shell}  (s3cmd get of the volumes)`, i.ratio.toFixed(2), '>= 0.9', verdict(i.ratio, 0.9)]);
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
