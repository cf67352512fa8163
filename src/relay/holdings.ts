/**
 * Relay resume (wire version 2): what a receiver already holds of the bundles
 * a sender offers, read from its own disk, re-hashed, so a cut push goes on
 * from there. A bundle complete in the spool is held whole; under
 * SPOOL/.incoming/NAME each volume of the kept manifest that is whole and
 * matches its sha256 is held whole, one that is shorter is a kept prefix
 * (checked when the rest has arrived: the volume's sha256 decides), and
 * everything else there is removed.
 */
import { createHash, type Hash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ZferryError } from '../errors.js';
import { MANIFEST_FILE, parseManifest, readManifest, type Manifest } from '../bundle/index.js';
import { openRegular, readRegular, removeEntry } from '../fs/safe.js';
import { INCOMING_DIR } from './names.js';
import type { RelayHeader } from './pack.js';

export interface HeldBundle {
  name: string;
  bundleId: string;
  /** Complete in the receiver's spool: nothing of it need come. */
  complete: boolean;
  /** Volume file → bytes held (whole, or a prefix). */
  files: Record<string, number>;
}

export interface HoldingsMessage {
  format: 'zferry-relay-have';
  formatVersion: 2;
  bundles: HeldBundle[];
}

/** The receiver's side: the message, and the hash state of every kept file for the bytes still to come. */
export interface Holdings {
  message: HoldingsMessage;
  /** bundle name → volume file → bytes and sha256 state over them. */
  kept: Map<string, Map<string, { bytes: number; hash: Hash }>>;
  /** One line per kept file discarded (its bytes did not match). */
  discarded: string[];
}

const MAX_MANIFEST = 64 * 1024 * 1024;

async function hashPrefix(file: string, within: string, limit: number): Promise<{ bytes: number; hash: Hash } | null> {
  let f;
  try {
    f = await openRegular(file, within);
  } catch {
    return null;
  }
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    let bytes = 0;
    while (bytes < Math.min(f.size, limit)) {
      const { bytesRead } = await f.fh.read(buf, 0, Math.min(buf.length, limit - bytes), bytes);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    return { bytes, hash };
  } finally {
    await f.fh.close().catch(() => undefined);
  }
}

async function keptManifest(dir: string): Promise<Manifest | null> {
  try {
    const text = (await readRegular(join(dir, MANIFEST_FILE), { within: dir, maxBytes: MAX_MANIFEST, what: 'manifest' })).toString('utf8');
    return parseManifest(text, join(dir, MANIFEST_FILE));
  } catch {
    return null;
  }
}

/** Reads what `spool` holds of the bundles `header` offers; clears every other kept transfer (applied or pruned by now). */
export async function readHoldings(spool: string, header: RelayHeader): Promise<Holdings> {
  const incoming = join(spool, INCOMING_DIR);
  const out: Holdings = { message: { format: 'zferry-relay-have', formatVersion: 2, bundles: [] }, kept: new Map(), discarded: [] };
  const offered = new Map(header.bundles.map((b) => [b.name, b.bundleId]));
  for (const name of await readdir(incoming).catch(() => [] as string[])) {
    if (!offered.has(name)) await removeEntry(join(incoming, name));
  }
  for (const [name, bundleId] of offered) {
    const done = await readManifest(join(spool, name)).catch(() => null);
    if (done?.bundleId === bundleId) {
      out.message.bundles.push({ name, bundleId, complete: true, files: {} });
      continue;
    }
    const dir = join(incoming, name);
    const m = await keptManifest(dir);
    if (m === null || m.bundleId !== bundleId) {
      await removeEntry(dir);
      continue;
    }
    const files: Record<string, number> = {};
    const kept = new Map<string, { bytes: number; hash: Hash }>();
    const listed = new Set<string>();
    for (const s of m.streams) {
      for (const v of s.volumes) {
        listed.add(v.file);
        const file = join(dir, v.file);
        const got = await hashPrefix(file, dir, v.bytes + 1);
        if (got === null) continue;
        if (got.bytes === 0) {
          await removeEntry(file);
          continue;
        }
        let bad: string | null = null;
        if (got.bytes > v.bytes) bad = `is longer than the ${v.bytes} bytes manifest.json lists`;
        else if (got.bytes === v.bytes && got.hash.copy().digest('hex') !== v.sha256) bad = `does not match manifest.json's sha256 ${v.sha256}`;
        if (bad) {
          await removeEntry(file);
          out.discarded.push(`kept ${file} (${got.bytes} bytes) ${bad}: discarded, fetched again`);
          continue;
        }
        files[v.file] = got.bytes;
        kept.set(v.file, got);
      }
    }
    // A file under streams/ the manifest does not list is no part of the bundle.
    for (const n of await readdir(join(dir, 'streams')).catch(() => [] as string[])) {
      if (!listed.has(`streams/${n}`)) await removeEntry(join(dir, 'streams', n));
    }
    out.message.bundles.push({ name, bundleId, complete: false, files });
    out.kept.set(name, kept);
  }
  return out;
}

/** The sender's side: the receiver's holdings message, checked for shape; byte counts bounded by the bundles' own. */
export function parseHoldings(text: string, from: string): HoldingsMessage {
  let data: HoldingsMessage;
  try {
    data = JSON.parse(text) as HoldingsMessage;
  } catch {
    throw new ZferryError(`holdings from ${from}: not JSON (${text.length} bytes)`, {});
  }
  if (data?.format !== 'zferry-relay-have' || data.formatVersion !== 2 || !Array.isArray(data.bundles)) {
    throw new ZferryError(`holdings from ${from}: not a zferry-relay-have version 2`, { field: '/format' });
  }
  for (const b of data.bundles) {
    const ok = typeof b?.name === 'string' && typeof b.bundleId === 'string' && typeof b.complete === 'boolean' && b.files !== null && typeof b.files === 'object'
      && Object.values(b.files).every((n) => Number.isSafeInteger(n) && n >= 0);
    if (!ok) throw new ZferryError(`holdings from ${from}: a bundle entry is malformed`, { field: '/bundles' });
  }
  return data;
}
