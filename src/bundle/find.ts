/** Locating bundles on disk: a folder is a bundle when it holds manifest.json. */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST_FILE } from './manifest.js';
import { isS3Url } from '../store/s3.js';
import { findBundlesInBucket } from './bucket.js';

/**
 * Anything named manifest.json counts, never followed: a link or FIFO there
 * makes the bundle's reader refuse it by name rather than pass it over.
 */
export async function isBundleDir(dir: string): Promise<boolean> {
  try {
    await lstat(join(dir, MANIFEST_FILE));
    return true;
  } catch {
    return false;
  }
}

/** `dir` itself when it is a bundle, else its immediate subfolders that are, sorted by name. */
export async function findBundles(dir: string): Promise<string[]> {
  if (isS3Url(dir)) return findBundlesInBucket(dir);
  if (await isBundleDir(dir)) return [dir];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const found: string[] = [];
  for (const name of names) if (await isBundleDir(join(dir, name))) found.push(join(dir, name));
  return found;
}
