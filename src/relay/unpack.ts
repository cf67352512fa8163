/**
 * The receiver's stage: a relay tar stream unpacked into a spool. Each bundle
 * is written under SPOOL/.incoming/NAME, every volume's size and sha256 is
 * checked against the bundle's manifest as it arrives, and only when the whole
 * bundle passes verifyArrived (every listed volume arrived with its manifest
 * size and sha256, SHA256SUMS agrees, no strays; the same verdict as
 * verifyBundle without reading the volumes a second time) is the folder
 * renamed to SPOOL/NAME. A transfer
 * cut anywhere leaves at most a folder under .incoming, which no import sees
 * (findBundles looks one level down only) and the next receive clears.
 */
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { ZferryError } from '../errors.js';
import { SIGNATURE_FILE, checkTrust } from '../trust/minisign.js';
import { MANIFEST_FILE, RESTORE_FILE, SUMS_FILE, parseManifest, readManifest, verifyArrived, type ArrivedVolume, type Manifest, type VolumeEntry } from '../bundle/index.js';
import { ensureFolder, fsyncDir, makeFreshFolder, writeNewFile } from '../fs/safe.js';
import { sinkToFile } from '../fs/sink.js';
import { sourceTag } from '../commands/import.js';
import { RELAY_HEADER, type RelayHeader } from './pack.js';
import type { Holdings } from './holdings.js';
import { removeEntry } from '../fs/safe.js';
import { INCOMING_DIR, bundleNameProblem, isBundleDirName } from './names.js';

export const INCOMING = INCOMING_DIR;
const MAX_SMALL_FILE = 64 * 1024 * 1024;

export interface UnpackResult {
  /** Bundle folders now complete in the spool, in the order received. */
  bundles: string[];
  bytes: number;
  /** Set when the push was a version-2 offer: the header alone, asking what this spool holds (holdings.ts). */
  offer?: RelayHeader;
}

export interface UnpackOptions {
  /** The source this spool serves (`poolGuid:root`): a bundle from any other is refused at its manifest, before any of its files is written. */
  source: string;
  onHeader?: (h: RelayHeader) => void;
  onBytes?: (n: number) => void;
  /** Called when a bundle is verified and in place. */
  onBundle?: (dir: string) => void;
  /** minisign public key file: a bundle not signed by it never enters the spool. */
  trust?: string;
  /** What this spool told the sender it holds (after an offer): a data push leaves exactly that out. */
  holdings?: Holdings | null;
}

/** Removes what an interrupted receive left behind. */
export async function clearIncoming(spool: string): Promise<void> {
  await rm(join(spool, INCOMING), { recursive: true, force: true });
}

async function readSmall(entry: AsyncIterable<unknown>, name: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of entry) {
    n += (chunk as Buffer).length;
    if (n > MAX_SMALL_FILE) throw new ZferryError(`relay stream: ${name} is larger than ${MAX_SMALL_FILE} bytes`, { file: name });
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

function parseHeader(data: Buffer): RelayHeader {
  let h: RelayHeader;
  try {
    h = JSON.parse(data.toString('utf8')) as RelayHeader;
  } catch {
    throw new ZferryError(`relay stream: ${RELAY_HEADER} is not JSON (is the sender zferry relay send?)`, { file: RELAY_HEADER });
  }
  if (h?.format !== 'zferry-relay' || (h.formatVersion !== 1 && h.formatVersion !== 2) || !Array.isArray(h.bundles)) {
    throw new ZferryError(`relay stream: ${RELAY_HEADER} has format ${JSON.stringify(h?.format)} version ${JSON.stringify(h?.formatVersion)}; this zferry reads zferry-relay versions 1 and 2`, { file: RELAY_HEADER, field: '/formatVersion' });
  }
  if (h.phase !== undefined && h.phase !== 'offer' && h.phase !== 'data') {
    throw new ZferryError(`relay stream: ${RELAY_HEADER} has phase ${JSON.stringify(h.phase)}, not offer or data`, { file: RELAY_HEADER, field: '/phase' });
  }
  const names = new Set((h.bundles as Array<{ name?: unknown }>).map((b) => b?.name));
  if (h.held !== undefined && (!Array.isArray(h.held) || !h.held.every((n) => names.has(n)))) {
    throw new ZferryError(`relay stream: ${RELAY_HEADER} lists as held a bundle it does not announce`, { file: RELAY_HEADER, field: '/held' });
  }
  if (h.resume !== undefined) {
    const ok = typeof h.resume === 'object' && h.resume !== null && Object.entries(h.resume).every(([n, offs]) => names.has(n) && typeof offs === 'object' && offs !== null
      && Object.values(offs).every((x) => Number.isSafeInteger(x) && x > 0));
    if (!ok) throw new ZferryError(`relay stream: ${RELAY_HEADER} has a malformed resume list`, { file: RELAY_HEADER, field: '/resume' });
  }
  for (const b of h.bundles) {
    // Only export's names: a peer cannot make a folder named like a receipt, the lock or the journal.
    if (typeof b?.name !== 'string' || !isBundleDirName(b.name)) {
      throw new ZferryError(`relay stream: ${bundleNameProblem(typeof b?.name === 'string' ? b.name : String(b?.name))}; nothing was written`, { file: RELAY_HEADER, field: '/bundles' });
    }
  }
  return h;
}

interface Current {
  name: string;
  temp: string;
  manifest: Manifest;
  volumes: Map<string, VolumeEntry>;
  seen: Set<string>;
  /** Volumes written so far, with the size and sha256 computed as they arrived. */
  arrived: Map<string, ArrivedVolume>;
  /** One per volume written: its fsync, started when its last byte was written. */
  durable: Array<Promise<void>>;
  /** Volume file → bytes this spool holds and the push leaves out. */
  offsets: Record<string, number>;
  kept: Map<string, { bytes: number; hash: import('node:crypto').Hash }> | null;
}

/**
 * A bundle's manifest, checked before any of its files is written: the name
 * is the one export gives this bundle id, the header announced this id, and
 * it comes from the source the spool serves.
 */
function admit(name: string, manifest: Manifest, header: RelayHeader, served: string): void {
  const problem = bundleNameProblem(name, manifest.bundleId);
  if (problem) throw new ZferryError(`relay stream: ${problem}; nothing of it was written`, { file: name });
  const announced = header.bundles.find((b) => b.name === name)?.bundleId;
  if (announced !== manifest.bundleId) {
    throw new ZferryError(`relay stream: ${RELAY_HEADER} announced bundle ${name} as ${JSON.stringify(announced)}, its manifest.json says ${manifest.bundleId}`, { file: name, field: '/bundleId' });
  }
  const from = sourceTag(manifest.source);
  if (from !== served) {
    throw new ZferryError(
      `relay stream: bundle ${name} comes from source ${from} (${manifest.source.host}), but this spool serves ${served}: refused before any of its files was written`,
      { file: name, field: '/source' },
    );
  }
}

/** Verified and complete: rename into place (a bundle already there is the same bundle, resent). */
async function finish(spool: string, cur: Current, trust: string | undefined): Promise<string> {
  await Promise.all(cur.durable.splice(0));
  await fsyncDir(join(cur.temp, 'streams')).catch(() => undefined);
  if (cur.manifest.parity) await fsyncDir(join(cur.temp, 'parity')).catch(() => undefined);
  await verifyArrived(cur.temp, cur.manifest, cur.arrived);
  if (trust) await checkTrust(cur.temp, trust);
  const final = join(spool, cur.name);
  // Never through a link: only a real folder with a manifest counts as the same bundle already here.
  const existing = (await lstat(final).catch(() => null))?.isDirectory() && (await lstat(join(final, MANIFEST_FILE)).catch(() => null));
  if (existing) {
    const there = await readManifest(final);
    if (there.bundleId !== cur.manifest.bundleId) {
      throw new ZferryError(`relay stream: ${final} already holds bundle ${there.bundleId}, not ${cur.manifest.bundleId}: remove that folder`, { file: final });
    }
    await rm(cur.temp, { recursive: true, force: true });
  } else {
    await rm(final, { recursive: true, force: true });
    await rename(cur.temp, final);
    await fsyncDir(spool);
  }
  return final;
}

/**
 * Reads a relay tar stream to its end. Throws a ZferryError at the first file
 * that does not match its manifest, or when the stream ends before every
 * bundle the header announced was complete; bundles finished before that stay.
 */
export async function unpackInto(spool: string, source: Readable, opts: UnpackOptions): Promise<UnpackResult> {
  await mkdir(spool, { recursive: true });
  await ensureFolder(join(spool, INCOMING));
  const extract = tar.extract();
  const feeding = pipeline(source, extract);
  feeding.catch(() => undefined);
  let header: RelayHeader | null = null;
  let cur: Current | null = null;
  const done: string[] = [];
  let bytes = 0;
  const count = (n: number) => {
    bytes += n;
    opts.onBytes?.(n);
  };
  try {
    for await (const entry of extract) {
      const name = entry.header.name;
      if (header === null) {
        if (name !== RELAY_HEADER) throw new ZferryError(`relay stream: starts with ${JSON.stringify(name)}, not ${RELAY_HEADER} (is the sender zferry relay send?)`, { file: name });
        header = parseHeader(await readSmall(entry, name));
        if (header.phase === 'offer') continue;
        opts.onHeader?.(header);
        for (const held of header.held ?? []) {
          const there = await readManifest(join(spool, held)).catch(() => null);
          const id = header.bundles.find((b) => b.name === held)?.bundleId;
          if (there?.bundleId !== id) throw new ZferryError(`relay stream: ${RELAY_HEADER} says this spool holds bundle ${held} complete, but it does not`, { file: held, field: '/held' });
          done.push(join(spool, held));
        }
        continue;
      }
      if (header.phase === 'offer') throw new ZferryError(`relay stream: ${name} follows an offer, which carries no files`, { file: name });
      if (entry.header.type !== 'file') throw new ZferryError(`relay stream: ${name} is a ${entry.header.type}, only files are accepted`, { file: name });
      const slash = name.indexOf('/');
      const bundle = slash > 0 ? name.slice(0, slash) : '';
      const rel = name.slice(slash + 1);
      if (!header.bundles.some((b) => b.name === bundle)) throw new ZferryError(`relay stream: ${name} belongs to no bundle announced in ${RELAY_HEADER}`, { file: name });
      if (cur === null || cur.name !== bundle) {
        if (cur !== null) done.push(await finish(spool, cur, opts.trust));
        cur = null;
        if (done.some((d) => d.endsWith(`/${bundle}`))) throw new ZferryError(`relay stream: bundle ${bundle} appears twice`, { file: name });
        if (rel !== MANIFEST_FILE) throw new ZferryError(`relay stream: bundle ${bundle} starts with ${rel}, not ${MANIFEST_FILE}`, { file: name });
        const data = await readSmall(entry, name);
        // Schema, semantic, name and source checks before a single file of the bundle is written.
        const manifest = parseManifest(data.toString('utf8'), `${name} (relay from sender)`);
        admit(bundle, manifest, header, opts.source);
        const temp = join(spool, INCOMING, bundle);
        const kept: Current['kept'] = opts.holdings?.kept.get(bundle) ?? null;
        const offsets: Record<string, number> = (header as RelayHeader).resume?.[bundle] ?? {};
        for (const [file, n] of Object.entries(offsets)) {
          if (kept?.get(file)?.bytes !== n) {
            throw new ZferryError(`relay stream: ${RELAY_HEADER} leaves out ${n} bytes of ${bundle}/${file}, but this spool holds ${kept?.get(file)?.bytes ?? 0}`, { file: `${bundle}/${file}`, field: '/resume' });
          }
        }
        if (kept) {
          // Resumed: the kept volumes stay, the small files (and parity) come again.
          for (const name of await readdir(temp)) if (name !== 'streams') await removeEntry(join(temp, name));
          for (const file of kept.keys()) if (!(file in offsets)) await removeEntry(join(temp, file));
        } else {
          await rm(temp, { recursive: true, force: true });
          await makeFreshFolder(temp);
          await makeFreshFolder(join(temp, 'streams'));
        }
        if (manifest.parity) await makeFreshFolder(join(temp, 'parity'));
        cur = { name: bundle, temp, manifest, volumes: new Map(), seen: new Set([MANIFEST_FILE]), arrived: new Map(), durable: [], offsets, kept };
        for (const s of manifest.streams) for (const v of s.volumes) cur.volumes.set(v.file, v);
        // Parity files arrive like volumes: listed by the manifest, size and sha256 checked as they are written.
        for (const f of manifest.parity?.files ?? []) cur.volumes.set(f.file, f);
        for (const [file, n] of Object.entries(offsets)) {
          const v = cur.volumes.get(file);
          if (!v || !file.startsWith('streams/') || n > v.bytes) throw new ZferryError(`relay stream: ${RELAY_HEADER} leaves out ${n} bytes of ${bundle}/${file}, which manifest.json does not list at that size`, { file: `${bundle}/${file}`, field: '/resume' });
          if (n === v.bytes) {
            // Held whole, its sha256 checked when the holdings were read.
            cur.seen.add(file);
            cur.arrived.set(file, { bytes: n, sha256: kept!.get(file)!.hash.copy().digest('hex') });
          }
        }
        await writeNewFile(join(temp, rel), data);
        count(data.length);
        continue;
      }
      if (cur.seen.has(rel)) throw new ZferryError(`relay stream: ${name} sent twice`, { file: name });
      cur.seen.add(rel);
      const path = join(cur.temp, rel);
      if (rel === SUMS_FILE || rel === RESTORE_FILE || rel === SIGNATURE_FILE) {
        const data = await readSmall(entry, name);
        await writeNewFile(path, data);
        count(data.length);
      } else {
        const v = cur.volumes.get(rel);
        if (!v) throw new ZferryError(`relay stream: ${name} is not listed in the bundle's manifest.json`, { file: name });
        const from = cur.offsets[rel] ?? 0;
        if (entry.header.size !== v.bytes - from) {
          throw new ZferryError(`relay stream: ${name} is ${entry.header.size} bytes${from > 0 ? ` after the ${from} kept` : ''}, manifest.json says ${v.bytes}`, { file: name, field: '/streams/volumes/bytes' });
        }
        const prefix = from > 0 ? cur.kept?.get(rel) : undefined;
        // A file kept but not resumed from (the sender chose to resend it) makes way.
        if (from === 0 && cur.kept) await removeEntry(path);
        const got = await sinkToFile(entry as AsyncIterable<Buffer>, path, count, prefix ? { bytes: from, hash: prefix.hash, within: cur.temp } : undefined);
        cur.durable.push(got.durable);
        if (got.bytes !== v.bytes || got.sha256 !== v.sha256) {
          await got.durable;
          // Never promoted, never kept: the next push sends it whole.
          await removeEntry(path);
          if (from > 0) {
            throw new ZferryError(`relay stream: ${name}: the ${from} bytes kept from an earlier push and the ${v.bytes - from} that came now make sha256 ${got.sha256}, manifest.json says ${v.sha256}: the kept part is discarded and the volume fetched whole on the next push`, { file: name });
          }
          throw new ZferryError(`relay stream: ${name} arrived with sha256 ${got.sha256} (${got.bytes} bytes), manifest.json says ${v.sha256} (${v.bytes} bytes)`, { file: name });
        }
        cur.arrived.set(rel, { bytes: got.bytes, sha256: got.sha256 });
      }
    }
    await feeding;
    if (header === null) throw new ZferryError('relay stream: ended before its first entry (sender stopped or connection dropped)', {});
    if (header.phase === 'offer') return { bundles: [], bytes, offer: header };
    if (cur !== null) done.push(await finish(spool, cur, opts.trust));
    if (done.length !== header.bundles.length) {
      throw new ZferryError(`relay stream: ended after ${done.length} of ${header.bundles.length} bundles (sender stopped or connection dropped)`, {});
    }
  } catch (err) {
    extract.destroy();
    source.destroy();
    if (cur !== null) {
      // What arrived stays under .incoming, fsynced, for the next push to go on from (relay resume).
      await Promise.allSettled(cur.durable);
      await fsyncDir(join(cur.temp, 'streams')).catch(() => undefined);
    }
    if (err instanceof ZferryError) throw err;
    const msg = (err as Error).message;
    throw new ZferryError(`relay stream cut or corrupt${cur ? ` in bundle ${cur.name}` : ''}: ${msg}`, {});
  }
  for (const d of done) opts.onBundle?.(d);
  return { bundles: done, bytes };
}
