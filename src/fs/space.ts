/** Free space of the file system a folder is (or will be) on. */
import { lstat, readdir, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileError } from './errors.js';

/**
 * Bytes this user may still write under `dir` (statfs bavail × bsize; on ZFS
 * a dataset's quota shows here). A folder not made yet is measured on its
 * nearest existing parent. null when the file system reports no size at all
 * (some FUSE and network file systems): the caller then cannot check.
 */
export async function freeSpace(dir: string): Promise<number | null> {
  let at = dir;
  for (;;) {
    try {
      const s = await statfs(at);
      if (s.blocks === 0) return null;
      return s.bavail * s.bsize;
    } catch (err) {
      const parent = dirname(at);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === at) throw fileError(err, 'measuring free space of', at);
      at = parent;
    }
  }
}

/** Bytes now in the files under `dir` (what a failed bundle had written); 0 for what cannot be read. */
export async function bytesUnder(dir: string): Promise<number> {
  let n = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) n += await bytesUnder(p);
    else if (e.isFile()) n += (await lstat(p).catch(() => null))?.size ?? 0;
  }
  return n;
}
