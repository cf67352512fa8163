/**
 * The user's situation as fixtures: a source pool with nested datasets,
 * zfs-auto-snapshot names and manual snapshots, and a half-seeded target.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { mountpointOf, run, snapshotGuids } from './zfslab.js';

export const AUTO = (kind: string, n: number) => `zfs-auto-snap_${kind}-2026-11-26-${String(700 + n).padStart(4, '0')}`;

/** Writes a file into a mounted dataset: some compressible text, some random bytes. */
export async function writeData(dataset: string, file: string, kib = 64): Promise<void> {
  const dir = await mountpointOf(dataset);
  const target = path.join(dir, file);
  await mkdir(path.dirname(target), { recursive: true });
  const text = Buffer.from(`${dataset}/${file} `.repeat(Math.ceil((kib * 512) / (dataset.length + file.length + 2))));
  await writeFile(target, Buffer.concat([text.subarray(0, kib * 512), randomBytes(kib * 512)]));
}

export async function snapshot(name: string, recursive = false): Promise<void> {
  await run('zfs', recursive ? ['snapshot', '-r', name] : ['snapshot', name]);
}

/** Source tree three deep: root, data, data/projects, data/projects/2026, home, media. */
export const TREE = ['data', 'data/projects', 'data/projects/2026', 'home', 'media'];

/**
 * Builds the source: every dataset gets files and three rounds of snapshots —
 * hourly auto-snapshots, a daily one and a manual `before-upgrade`.
 */
export async function buildSource(pool: string): Promise<void> {
  for (const d of TREE) await run('zfs', ['create', `${pool}/${d}`]);
  for (const d of ['', ...TREE]) await writeData(d ? `${pool}/${d}` : pool, 'first.bin');
  await snapshot(`${pool}@${AUTO('hourly', 1)}`, true);
  await snapshot(`${pool}@${AUTO('daily', 1)}`, true);
  for (const d of TREE) await writeData(`${pool}/${d}`, 'second.bin', 32);
  await snapshot(`${pool}@before-upgrade`, true);
  await writeData(`${pool}/data/projects/2026`, 'notes/third.bin', 16);
  await snapshot(`${pool}@${AUTO('hourly', 2)}`, true);
}

/**
 * Streams `zfs send ARGS` into `zfs recv -u RECV` with stock tools, as a user
 * seeding by hand would; `mounted`: without -u, as a user's first try might.
 */
export async function stockSendRecv(sendArgs: string[], recvArgs: string[], opts: { mounted?: boolean } = {}): Promise<void> {
  const recv = opts.mounted ? ['recv', ...recvArgs] : ['recv', '-u', ...recvArgs];
  await execa('zfs', ['send', ...sendArgs], { stdin: 'ignore', buffer: { stdout: false } }).pipe('zfs', recv);
}

/**
 * The user's half-finished `zfs send -R`: the root is current, `data` and
 * `data/projects` stop at the first snapshot, `media` is current, and
 * `data/projects/2026` and `home` are missing.
 */
export async function halfSeed(src: string, dst: string): Promise<void> {
  const first = AUTO('hourly', 1);
  const newest = AUTO('hourly', 2);
  await stockSendRecv([`${src}@${first}`], [dst]);
  await stockSendRecv(['-I', `${src}@${first}`, `${src}@${newest}`], [dst]);
  await stockSendRecv([`${src}/data@${first}`], [`${dst}/data`]);
  await stockSendRecv([`${src}/data/projects@${first}`], [`${dst}/data/projects`]);
  await stockSendRecv([`${src}/media@${first}`], [`${dst}/media`]);
  await stockSendRecv(['-I', `${src}/media@${first}`, `${src}/media@${newest}`], [`${dst}/media`]);
}

/** sha256 of every file under a folder, by relative path, leaving out the `skip` sub-folders (child datasets). */
export async function treeDigest(dir: string, skip: string[] = []): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const skipped = new Set(skip.map((s) => path.join(dir, s)));
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (skipped.has(p)) continue;
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.set(path.relative(dir, p), createHash('sha256').update(await readFile(p)).digest('hex'));
    }
  };
  await walk(dir);
  return out;
}

/** The (relative dataset, snapshot name) → guid map of a tree, as a sorted list for deepEqual. */
export async function guidList(root: string): Promise<string[]> {
  return [...(await snapshotGuids(root))].map(([k, g]) => `${k}=${g}`).sort();
}

/** The datasets (filesystems and volumes) under root, relative, sorted. */
export async function datasetList(root: string): Promise<string[]> {
  const out = await run('zfs', ['list', '-H', '-r', '-o', 'name', root]);
  return out.split('\n').filter(Boolean).map((n) => (n === root ? '' : n.slice(root.length + 1))).sort();
}

/**
 * Compares the files of every target dataset with its source dataset at the
 * source's newest snapshot. The target is never mounted: a mount (even
 * read-only) makes mountpoint folders in the parent and dirties it for the
 * next incremental. Each target snapshot is cloned, compared and destroyed.
 */
export async function assertSameFiles(src: string, dst: string): Promise<void> {
  const pool = dst.split('/')[0];
  const datasets = await datasetList(src);
  for (const d of datasets) {
    const s = d ? `${src}/${d}` : src;
    const t = d ? `${dst}/${d}` : dst;
    const snaps = (await run('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot', '-r', '-d', '1', s])).split('\n').filter(Boolean);
    if (snaps.length === 0) continue;
    const newest = snaps[snaps.length - 1].split('@')[1];
    const clone = `${pool}/zferry-cmp-${process.pid}`;
    const cloneMnt = `/tmp/zferry-cmp/${process.pid}`;
    await run('zfs', ['clone', '-o', `mountpoint=${cloneMnt}`, `${t}@${newest}`, clone]);
    try {
      const children = datasets.filter((c) => c !== d && (d === '' || c.startsWith(`${d}/`)))
        .map((c) => (d === '' ? c : c.slice(d.length + 1)));
      const [a, b] = await Promise.all([treeDigest(await mountpointOf(s), children), treeDigest(cloneMnt, children)]);
      assert.deepEqual(b, a, `files of ${t}@${newest} differ from ${s}`);
    } finally {
      await destroyQuietly(clone);
    }
  }
}

/** zfs-fuse answers "dataset is busy" to a destroy right after a mount: unmount, then retry. */
export async function destroyQuietly(dataset: string): Promise<void> {
  await run('zfs', ['unmount', dataset], { allowFailure: true });
  for (let attempt = 1; ; attempt++) {
    try {
      await run('zfs', ['destroy', dataset]);
      return;
    } catch (err) {
      if (attempt >= 10 || !/busy/.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

/** Inventory fingerprint of a target: every dataset and snapshot with its guid. */
export async function fingerprint(root: string): Promise<string> {
  return (await run('zfs', ['get', '-H', '-p', '-r', '-o', 'name,value', 'guid', root])).split('\n').sort().join('\n');
}


/** Inverts one byte of `file` in place: at an offset, or at its start, middle or last byte. */
export async function flipByte(file: string, at: number | 'start' | 'middle' | 'end'): Promise<void> {
  const size = typeof at === 'number' ? 0 : (await stat(file)).size;
  const offset = typeof at === 'number' ? at : at === 'start' ? 0 : at === 'middle' ? Math.floor(size / 2) : size - 1;
  const fh = await open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0] ^= 0xff;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}
