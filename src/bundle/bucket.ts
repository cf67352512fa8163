/**
 * A bundle in a bucket (`s3://BUCKET/PREFIX/zferry-…`): the same files under
 * the same names as in a folder, one object each. What differs from a folder
 * is only how a file is reached: finding, closing and checking a bundle at
 * rest. The volume bytes go through VolumeReader / VolumeUploader.
 */
import { createHash } from 'node:crypto';
import { ZferryError } from '../errors.js';
import { MANIFEST_FILE, MAX_MANIFEST_BYTES, manifestText, parseManifest, type Manifest } from './manifest.js';
import { RESTORE_FILE, restoreText } from './restore.js';
import { SUMS_FILE, sha256sumsText } from './sums.js';
import { withRestore, type FinishOptions } from './finish.js';
import { testPause } from '../test-hook.js';
import { bundlePath, childPlace, getSmall, listAll, listLevel, objectSize, parseS3Url, putSmall, urlOf } from '../store/s3.js';

/** HEAD requests in flight while bundles are found under a prefix. */
const PARALLEL = 16;

/** `url` itself when it holds manifest.json, else the bundles one level under it, sorted by name. */
export async function findBundlesInBucket(url: string): Promise<string[]> {
  const place = parseS3Url(url);
  if ((await objectSize(place, MANIFEST_FILE)) !== null) return [urlOf(place)];
  const { folders } = await listLevel(place);
  const found: Array<string | null> = new Array(folders.length).fill(null);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < folders.length) {
      const i = next++;
      // A prefix without a manifest is an export that did not finish: never a bundle.
      if ((await objectSize(childPlace(place, folders[i]!), MANIFEST_FILE)) !== null) found[i] = urlOf(childPlace(place, folders[i]!));
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, folders.length) }, worker));
  return found.filter((u): u is string => u !== null);
}

/** The manifest's exact bytes, as a signature covers them. */
export async function manifestBytesInBucket(url: string): Promise<Buffer> {
  const file = bundlePath(url, MANIFEST_FILE);
  const bytes = await getSmall(parseS3Url(url), MANIFEST_FILE, MAX_MANIFEST_BYTES);
  if (!bytes) throw new ZferryError(`${file}: no such object (not a zferry bundle, or its export did not finish)`, { file });
  return bytes;
}

export async function readManifestInBucket(url: string): Promise<Manifest> {
  return parseManifest((await manifestBytesInBucket(url)).toString('utf8'), bundlePath(url, MANIFEST_FILE));
}

/**
 * finishBundle for a bucket: RESTORE.txt, SHA256SUMS and the signature, then
 * manifest.json last. Each is one PUT, which S3 shows whole or not at all, so
 * a prefix with a manifest is always a complete bundle.
 */
export async function finishBundleInBucket(url: string, draft: Manifest, opts: FinishOptions = {}): Promise<Manifest> {
  const place = parseS3Url(url);
  const restore = restoreText(draft);
  const m = withRestore(draft, restore);
  await putSmall(place, RESTORE_FILE, restore);
  await putSmall(place, SUMS_FILE, sha256sumsText(m));
  if (opts.sign) await putSmall(place, `${MANIFEST_FILE}.minisig`, opts.sign(Buffer.from(manifestText(m), 'utf8')));
  await testPause('export:manifest');
  await putSmall(place, MANIFEST_FILE, manifestText(m));
  return m;
}

/**
 * checkBundleAtRest for a bucket: RESTORE.txt and SHA256SUMS as the manifest
 * says, no stray object under streams/, every volume there with its size.
 * One LIST gives every size: no request per volume.
 */
export async function checkBundleAtRestInBucket(url: string, m: Manifest): Promise<void> {
  const place = parseS3Url(url);
  if (m.parity) throw new ZferryError(`${bundlePath(url, MANIFEST_FILE)}: the bundle lists parity files; a bundle in a bucket carries none (copy it to a folder to repair it)`, { file: bundlePath(url, MANIFEST_FILE) });
  if (m.restore !== undefined) {
    const file = bundlePath(url, m.restore.file);
    const data = await getSmall(place, m.restore.file, MAX_MANIFEST_BYTES);
    if (!data) throw new ZferryError(`${file}: missing (manifest.json lists its size and sha256)`, { file, field: '/restore' });
    const sha256 = createHash('sha256').update(data).digest('hex');
    if (data.length !== m.restore.bytes || sha256 !== m.restore.sha256) {
      throw new ZferryError(`${file}: sha256 is ${sha256} (${data.length} bytes), manifest.json says ${m.restore.sha256} (${m.restore.bytes} bytes): not the RESTORE.txt this bundle was exported with; do not run it`, { file, field: '/restore' });
    }
  }
  const sumsFile = bundlePath(url, SUMS_FILE);
  const sums = await getSmall(place, SUMS_FILE, MAX_MANIFEST_BYTES);
  if (!sums) throw new ZferryError(`${sumsFile}: missing (every bundle carries one for sha256sum -c)`, { file: sumsFile });
  if (sums.toString('utf8') !== sha256sumsText(m)) throw new ZferryError(`${sumsFile}: does not match manifest.json`, { file: sumsFile });
  const sizes = new Map((await listAll(place)).map((o) => [o.name, o.size]));
  const listed = new Set(m.streams.flatMap((s) => s.volumes.map((v) => v.file)));
  for (const name of [...sizes.keys()].sort()) {
    if (name.startsWith('streams/') && !listed.has(name)) {
      const file = bundlePath(url, name);
      throw new ZferryError(`${file}: not listed in manifest.json (a stray volume would corrupt a restore by cat)`, { file });
    }
  }
  for (const s of m.streams) {
    for (const v of s.volumes) {
      const file = bundlePath(url, v.file);
      const size = sizes.get(v.file);
      if (size === undefined) throw new ZferryError(`missing volume ${file}`, { file });
      if (size !== v.bytes) throw new ZferryError(`${file}: size is ${size} bytes, manifest says ${v.bytes} (${size < v.bytes ? 'truncated' : 'too long'})`, { file, offset: Math.min(size, v.bytes) });
    }
  }
}
