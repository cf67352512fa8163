/**
 * A bundle in a bucket (`s3://BUCKET/PREFIX/zferry-…`): the same files under
 * the same names as in a folder, one object each. What differs from a folder
 * is only how a file is reached: finding, closing and checking a bundle at
 * rest. The volume bytes go through VolumeReader / VolumeUploader.
 */
import { createHash } from 'node:crypto';
import { ZferryError } from '../errors.js';
import { MANIFEST_FILE, MAX_MANIFEST_BYTES, parseManifest, type Manifest } from './manifest.js';
import { SUMS_FILE, sha256sumsText } from './sums.js';
import { writeBundleFiles, type FinishOptions } from './finish.js';
import { MAX_PARTIAL, PARTIAL_FILE, parsePartial, partialText, stagedName, volumeMismatch, type PartialPlace } from './partial.js';
import {
  abortUploads, bundlePath, childPlace, copyObject, deleteAll, deleteObjects, getSmall, getStream, listAll, listBesideVolumes, parseS3Url, putSmall, s3Error, urlOf, type S3Place,
} from '../store/s3.js';

/** What one listBesideVolumes of a prefix says about the folders under it. */
export interface PrefixContents {
  /** The prefix itself holds manifest.json: it is a bundle. */
  self: boolean;
  /** Folders one level down that hold manifest.json, sorted by name. */
  bundles: string[];
  /** Folders one level down with objects but no manifest.json (exports that did not finish), sorted by name. */
  unfinished: Array<{ name: string; marked: boolean }>;
}

/** Pure: the folders of a listing by the names of their files; anything deeper than one level is passed over. */
export function prefixContents(listing: { objects: Array<{ name: string }>; streamFolders: string[] }): PrefixContents {
  const files = new Map<string, Set<string>>();
  const add = (folder: string, file: string) => (files.get(folder) ?? files.set(folder, new Set()).get(folder)!).add(file);
  for (const o of listing.objects) {
    const parts = o.name.split('/');
    if (parts.length === 2) add(parts[0]!, parts[1]!);
  }
  for (const f of listing.streamFolders) if (f.split('/').length === 3) add(f.split('/')[0]!, 'streams/');
  const names = [...files.keys()].sort();
  return {
    self: listing.objects.some((o) => o.name === MANIFEST_FILE),
    bundles: names.filter((n) => files.get(n)!.has(MANIFEST_FILE)),
    unfinished: names.filter((n) => !files.get(n)!.has(MANIFEST_FILE)).map((name) => ({ name, marked: files.get(name)!.has(PARTIAL_FILE) })),
  };
}

/**
 * `url` itself when it holds manifest.json, else the bundles one level under
 * it, sorted by name. One listing with the delimiter '/streams/' (every
 * closing file, each bundle's volumes rolled up into one entry) answers
 * both: about five entries a bundle, 1,000 entries a request, and no HEAD
 * per bundle. A prefix without a manifest is an export that did not finish:
 * never a bundle.
 */
export async function findBundlesInBucket(url: string): Promise<string[]> {
  const place = parseS3Url(url);
  const found = prefixContents(await listBesideVolumes(place));
  return found.self ? [urlOf(place)] : found.bundles.map((f) => urlOf(childPlace(place, f)));
}

/** A folder under a prefix that is no bundle (no manifest.json): an export that did not finish. */
export interface UnfinishedInBucket {
  name: string;
  /** It holds an export marker (a resumable export), else only what an export killed before its marker left. */
  marked: boolean;
  partial: PartialPlace;
}

/**
 * From the same one listing as findBundlesInBucket: the folders under
 * `bucket` that hold objects but no manifest.json, and the names of all its
 * folders, finished or not (what a new bundle's name must sort after).
 */
export async function foldersInBucket(bucket: S3Place): Promise<{ unfinished: UnfinishedInBucket[]; names: string[] }> {
  const found = prefixContents(await listBesideVolumes(bucket));
  return {
    unfinished: found.unfinished.map((u) => ({ ...u, partial: bucketPartial(childPlace(bucket, u.name)) })),
    names: [...found.bundles, ...found.unfinished.map((u) => u.name)],
  };
}

/**
 * An unfinished export under a prefix in a bucket. S3 has no rename: a
 * volume moves by CopyObject (on the server) and DeleteObject. A kept
 * volume's size comes from one LIST, its sha256 from reading it whole (a
 * streaming GET): neither the marker nor an ETag is trusted.
 */
export function bucketPartial(place: S3Place): PartialPlace {
  let sizes: Promise<Map<string, number>> | null = null;
  const sizeOf = async (name: string) => (await (sizes ??= listAll(place).then((l) => new Map(l.map((o) => [o.name, o.size]))))).get(name);
  const volumes = async () => (await listAll(place)).filter((o) => o.name.startsWith('streams/'));
  return {
    where: urlOf(place),
    async readMarker() {
      const bytes = await getSmall(place, PARTIAL_FILE, MAX_PARTIAL).catch(() => null);
      return bytes ? parsePartial(bytes.toString('utf8')) : null;
    },
    writeMarker: (p) => putSmall(place, PARTIAL_FILE, partialText(p)),
    removeMarker: () => deleteObjects(place, [PARTIAL_FILE]),
    async checkVolume(v) {
      const listed = await sizeOf(v.file);
      if (listed === undefined) return `${v.file}: no such object`;
      // A size that already differs needs no download.
      if (listed !== v.bytes) return volumeMismatch(v, { bytes: listed });
      const got = await getStream(place, v.file);
      if (!got) return `${v.file}: no such object`;
      const hash = createHash('sha256');
      let bytes = 0;
      try {
        for await (const chunk of got.body) {
          hash.update(chunk as Buffer);
          bytes += (chunk as Buffer).length;
        }
      } catch (err) {
        throw s3Error(err, 'GET', bundlePath(urlOf(place), v.file));
      }
      return volumeMismatch(v, { bytes, sha256: hash.digest('hex') });
    },
    async arrange(reused) {
      // The cut stream's multipart upload first: it would otherwise become an object after the listing below.
      await abortUploads(place);
      const all = await listAll(place);
      const size = new Map(all.map((o) => [o.name, o.size]));
      // The last run's closing files (sums, recipe, a signature this run may not make) are written afresh.
      await deleteObjects(place, all.map((o) => o.name).filter((n) => n !== PARTIAL_FILE && !n.startsWith('streams/')));
      const moving = reused.flatMap((r) => r.renames);
      for (const m of moving) await copyObject(place, m.from, stagedName(m.to), size.get(m.from) ?? 0);
      const keep = new Set(reused.flatMap((r) => r.entry.volumes.map((v) => v.file)));
      const staged = new Set(moving.map((m) => stagedName(m.to)));
      await deleteObjects(place, all.map((o) => o.name).filter((n) => n.startsWith('streams/') && !staged.has(n) && (!keep.has(n) || moving.some((m) => m.to === n))));
      for (const m of moving) await copyObject(place, stagedName(m.to), m.to, size.get(m.from) ?? 0);
      await deleteObjects(place, [...staged]);
    },
    async dropUnlisted(finished) {
      await abortUploads(place);
      const keep = new Set(finished.flatMap((s) => s.volumes.map((v) => v.file)));
      await deleteObjects(place, (await volumes()).map((o) => o.name).filter((n) => !keep.has(n)));
    },
    async remove() {
      await abortUploads(place);
      await deleteAll(place);
    },
  };
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
  return writeBundleFiles(draft, opts, (name, text) => putSmall(place, name, text));
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
