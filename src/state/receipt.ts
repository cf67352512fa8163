/**
 * The state/receipt format: what a target holds, written by `zferry state`
 * and by `zferry import` (a receipt), read by `zferry export --since` and by
 * export's search for the newest receipt under its destination. import
 * writes its receipt holding the target's import lock (src/state/lock.ts),
 * and every replacement is atomic.
 */
import { readdir, rm } from 'node:fs/promises';
import { join, dirname, basename } from 'node:path';
import { hostname } from 'node:os';
import type { Inventory, SourceIdentity } from '../model.js';
import { ZferryError, readUserFile } from '../errors.js';
import { readRegular, writeFileAtomic } from '../fs/safe.js';
import { validateWith } from '../schemas.js';
import { ZFERRY_VERSION } from '../version.js';
import { MAX_MANIFEST_BYTES } from '../bundle/manifest.js';
import { DEFAULT_SITE, siteField, siteOf } from './site.js';
import { bundlePath, deleteObjects, getSmall, isS3Url, listLevel, objectOf, parseS3Url, putSmall, readSmallAt } from '../store/s3.js';
import { checkReceiptSignature, RECEIPT_SIGNATURE_SUFFIX, signReceipt, type ReceiptTrust } from '../trust/receipt-signature.js';
import type { SecretKey } from '../trust/minisign.js';

export const STATE_FORMAT_VERSION = 1;
/** A state or receipt holds one inventory, as a manifest does: the same limit, checked before it is parsed. */
export const MAX_STATE_BYTES = MAX_MANIFEST_BYTES;

export interface TargetState {
  format: 'zferry-state';
  formatVersion: number;
  takenAt: string;
  host: string;
  zferryVersion: string;
  /** Full name of the dataset the inventory was read from. */
  target: string;
  /** The source this target mirrors, where known (from its zferry:source property or the bundles applied). */
  source: SourceIdentity | null;
  /** Bundles the import that wrote this receipt dealt with, in order: applied, already on the target, or superseded (nothing of it needed). */
  bundles: string[];
  /** The site of the bundles applied (their manifest's `site`); absent for the default site. */
  site?: string;
  inventory: Inventory;
}

export function makeState(
  target: string,
  inventory: Inventory,
  source: SourceIdentity | null,
  bundles: string[] = [],
  site: string = DEFAULT_SITE,
): TargetState {
  return {
    format: 'zferry-state',
    formatVersion: STATE_FORMAT_VERSION,
    takenAt: new Date().toISOString(),
    host: hostname(),
    zferryVersion: ZFERRY_VERSION,
    target,
    source,
    bundles,
    ...siteField(site),
    inventory,
  };
}

/**
 * Parses and validates a state or receipt file (or a receipt in a relay reply)
 * with the manifest's bounds: schema, then guid/createtxg/poolGuid at most
 * 2^64-1; errors name the file and the JSON path.
 */
export function parseState(text: string, file: string): TargetState {
  if (text.length > MAX_STATE_BYTES) {
    throw new ZferryError(`${file}: larger than any state or receipt zferry writes (limit ${MAX_STATE_BYTES} bytes)`, { file });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ZferryError(`${file}: not valid JSON (${(err as Error).message})`, { file });
  }
  const version = (data as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof data === 'object' && data !== null && (data as { format?: unknown }).format === 'zferry-state'
      && version !== STATE_FORMAT_VERSION) {
    throw new ZferryError(
      `${file}: state format version ${JSON.stringify(version)} is not supported by zferry ${ZFERRY_VERSION} (supports ${STATE_FORMAT_VERSION})`,
      { file, field: '/formatVersion' },
    );
  }
  const problem = validateWith('state', data);
  if (problem) {
    throw new ZferryError(`${file}: ${problem.path || '/'} ${problem.message}`, { file, field: problem.path });
  }
  return data as TargetState;
}

/** A state file the user names (`export --since`): the user's choice, read as named. */
export async function readState(file: string): Promise<TargetState> {
  return parseState(await readUserFile(file, 'state file', MAX_STATE_BYTES), file);
}

/**
 * A receipt zferry finds or wrote itself inside a bundle, spool or state
 * folder (`within`): only a regular file, never through a link.
 */
export async function readReceipt(file: string, within?: string): Promise<TargetState> {
  return parseState(await readReceiptText(file, within), file);
}

async function readReceiptText(file: string, within?: string): Promise<string> {
  let buf: Buffer;
  if (isS3Url(file)) {
    const { place, name } = objectOf(file);
    const got = await getSmall(place, name, MAX_STATE_BYTES);
    if (!got) throw new ZferryError(`${file}: no such receipt`, { file });
    return got.toString('utf8');
  }
  try {
    buf = await readRegular(file, { within, maxBytes: MAX_STATE_BYTES, what: 'receipt' });
  } catch (err) {
    if (err instanceof ZferryError) throw err;
    throw new ZferryError(`${file}: cannot read receipt (${(err as NodeJS.ErrnoException).code ?? err})`, { file });
  }
  return buf.toString('utf8');
}

/**
 * Replaces `file` atomically (writeFileAtomic), so a reader never sees half a
 * receipt. A link, FIFO or folder at that name is refused, not replaced.
 */
export async function writeStateAtomic(file: string, state: TargetState): Promise<void> {
  await putText(file, receiptText(state));
}

/** The exact text zferry writes as a receipt (and signs). */
export function receiptText(state: TargetState): string {
  return JSON.stringify(state, null, 2) + '\n';
}

/** One whole file or object: an atomic file write, or one PUT, which readers see whole or not at all. */
async function putText(file: string, text: string): Promise<void> {
  if (isS3Url(file)) {
    const { place, name } = objectOf(file);
    return putSmall(place, name, text);
  }
  await writeFileAtomic(dirname(file), basename(file), text);
}

/**
 * The receipt import leaves beside the bundles, then its signature by `sk`
 * (`import --sign`) as RECEIPT.minisig, which export, estimate and status
 * --trust-receiver require. Unsigned, a signature left by an earlier import
 * goes: it would vouch for other bytes. A reader that meets the new receipt
 * beside the old signature finds them not matching and passes it over.
 */
export async function writeReceipt(file: string, state: TargetState, sk: SecretKey | null): Promise<void> {
  const text = receiptText(state);
  await putReceipt(file, text, sk ? signReceipt(text, sk, state) : null);
}

/** A receipt's exact text, then its signature beside it, or, unsigned, no signature (writeReceipt; relay send stores a reply's). */
export async function putReceipt(file: string, text: string, signature: string | null): Promise<void> {
  await putText(file, text);
  await putReceiptSignature(file, signature);
}

/** RECEIPT.minisig beside the receipt `file` already holds, or none (relay receive signs the file import wrote). */
export async function putReceiptSignature(file: string, signature: string | null): Promise<void> {
  const sig = file + RECEIPT_SIGNATURE_SUFFIX;
  if (signature !== null) await putText(sig, signature);
  else if (isS3Url(sig)) {
    const { place, name } = objectOf(sig);
    await deleteObjects(place, [name]);
  } else await rm(sig, { force: true });
}


export function receiptFileName(target: string): string {
  return `receipt-${target.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`;
}

function sameSource(a: SourceIdentity | null, b: SourceIdentity): boolean {
  return a !== null && a.poolGuid === b.poolGuid && a.root === b.root;
}

/**
 * The newest receipt under `dir` (the folder itself and its immediate
 * sub-folders, where bundles live) that speaks of `source` and `site`.
 * Unreadable or foreign files are passed over: a disk may carry other
 * sources' or other sites' bundles. With `trust`, so is one of this source
 * and site without a valid signature by that key beside it (`onUntrusted`
 * hears which and why): anyone who can write to the disk or bucket can write
 * a receipt, and its word decides what export sends and which of the
 * source's bases it releases.
 */
export async function findNewestReceipt(
  dir: string,
  source: SourceIdentity,
  site: string = DEFAULT_SITE,
  trust: ReceiptTrust | null = null,
  onUntrusted?: (line: string) => void,
): Promise<{ file: string; state: TargetState } | null> {
  const candidates: string[] = [];
  if (isS3Url(dir)) {
    // Receipts sit at the prefix's top (import writes them beside the bundles): one listing, no request per bundle.
    const { objects } = await listLevel(parseS3Url(dir));
    for (const o of objects) if (/^receipt-.*\.json$/.test(o.name)) candidates.push(bundlePath(dir, o.name));
  }
  const scan = async (d: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isFile() && /^receipt-.*\.json$/.test(e.name)) candidates.push(join(d, e.name));
      else if (e.isDirectory() && depth > 0) await scan(join(d, e.name), depth - 1);
    }
  };
  if (!isS3Url(dir)) await scan(dir, 1);
  let best: { file: string; state: TargetState } | null = null;
  for (const file of candidates) {
    let state: TargetState;
    let text: string;
    try {
      text = await readReceiptText(file, dir);
      state = parseState(text, file);
    } catch {
      continue;
    }
    if (!sameSource(state.source, source) || siteOf(state) !== site) continue;
    if (trust) {
      try {
        const signature = await readSmallAt(file + RECEIPT_SIGNATURE_SUFFIX, { within: dir, maxBytes: 64 * 1024, what: 'receipt signature' });
        checkReceiptSignature(text, signature?.toString('utf8'), trust.key, trust.file, file);
      } catch (err) {
        onUntrusted?.(`${(err as Error).message.split('\n')[0]}: passed over`);
        continue;
      }
    }
    if (best === null || state.takenAt > best.state.takenAt) best = { file, state };
  }
  return best;
}
