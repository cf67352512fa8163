/**
 * The source's journal of exported bundles, so a second disk can be planned
 * on top of a bundle whose receipt has not come back yet (disk rotation).
 * One JSON file per source and site under the state folder (`--journal DIR`,
 * else $ZFERRY_STATE_DIR, else /var/lib/zferry); each entry holds the
 * bundle's id and the target inventory it will leave (src/plan's
 * projectTarget). The default site's file keeps its name from before sites.
 * Only export writes it, holding the export lock (src/state/lock.ts) from
 * planning to appendJournal, so a read, extend and atomic replace never
 * interleave.
 */
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Inventory, SourceIdentity } from '../model.js';
import { ZferryError } from '../errors.js';
import { validateWith } from '../schemas.js';
import { readRegular, writeFileAtomic } from '../fs/safe.js';
import { MAX_MANIFEST_BYTES, type StreamEntry } from '../bundle/manifest.js';
import { DEFAULT_SITE, isDefaultSite, siteField } from './site.js';

export const DEFAULT_STATE_DIR = '/var/lib/zferry';
/** Up to 50 projected inventories; refused before reading past this (twice a manifest's limit, well under V8's string limit). */
export const MAX_JOURNAL_BYTES = 2 * MAX_MANIFEST_BYTES;

export interface JournalEntry {
  bundleId: string;
  createdAt: string;
  /** Folder the bundle was written to. */
  bundle: string;
  /** The bundle this one was planned on top of, when it was planned from the journal. */
  after: string | null;
  /** What the target holds once this bundle (and those before it) are applied. */
  projected: Inventory;
  /** The bundle's size on disk (absent in entries written before status existed). */
  storedBytes?: number;
  /**
   * The bundle ends in a part of a stream that continues on the next disk:
   * that entry as written, and the sha256 of the raw send bytes up to its
   * end, which the next export re-sends, checks and skips. `projected`
   * already counts the whole stream.
   */
  split?: { stream: StreamEntry; prefixSha256: string };
}

export interface Journal {
  format: 'zferry-journal';
  source: SourceIdentity;
  /** Absent for the default site. */
  site?: string;
  entries: JournalEntry[];
}

export function stateDir(explicit?: string): string {
  return explicit ?? process.env.ZFERRY_STATE_DIR ?? DEFAULT_STATE_DIR;
}

/** `@` never appears in the sanitized root, so no site's file name is another's. */
export function journalFile(dir: string, source: SourceIdentity, site: string = DEFAULT_SITE): string {
  const suffix = isDefaultSite(site) ? '' : `@${site}`;
  return join(dir, `journal-${source.poolGuid}-${source.root.replace(/[^A-Za-z0-9_.-]/g, '_')}${suffix}.json`);
}

export async function readJournal(file: string, source: SourceIdentity, site: string = DEFAULT_SITE): Promise<Journal> {
  let text: string;
  try {
    text = (await readRegular(file, { maxBytes: MAX_JOURNAL_BYTES, what: 'export journal' })).toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { format: 'zferry-journal', source, ...siteField(site), entries: [] };
    if (err instanceof ZferryError) throw err;
    throw new ZferryError(`${file}: cannot read the export journal (${(err as Error).message})`, { file });
  }
  return parseJournal(text, file);
}

/** Parses the journal with the manifest's bounds (schemas/journal.schema.json, then the uint64 bound). */
export function parseJournal(text: string, file: string): Journal {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ZferryError(`${file}: not valid JSON (${(err as Error).message}); move it away to start a new journal`, { file });
  }
  const problem = validateWith('journal', data);
  if (problem) {
    throw new ZferryError(`${file}: ${problem.path || '/'} ${problem.message}; move it away to start a new journal`, { file, field: problem.path });
  }
  return data as Journal;
}

export async function appendJournal(file: string, dir: string, journal: Journal, entry: JournalEntry): Promise<void> {
  await mkdir(dir, { recursive: true });
  // Bounded: the oldest entries are only needed until a receipt covers them.
  const entries = [...journal.entries, entry].slice(-50);
  await writeFileAtomic(dir, basename(file), JSON.stringify({ ...journal, entries }, null, 2) + '\n');
}

/**
 * Entries the receipt does not cover: those after the newest entry the
 * receipt lists as applied (all of them when it lists none).
 */
export function pendingEntries(journal: Journal, appliedBundles: readonly string[]): JournalEntry[] {
  const applied = new Set(appliedBundles);
  let last = -1;
  journal.entries.forEach((e, i) => {
    if (applied.has(e.bundleId)) last = i;
  });
  return journal.entries.slice(last + 1);
}
