/**
 * `zferry status`: how stale is each off-site copy? Facts, in one pass: the
 * outcome records and journals under the state folder, the receipts under
 * the destinations and spools (those named and those the last runs used),
 * and what zfs says of the sources and targets on this host. The verdict is
 * src/plan/health.ts; printing and the exit code are the CLI's.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Inventory, SourceIdentity } from '../model.js';
import { joinDataset } from '../model.js';
import { oneLine } from '../errors.js';
import type { Zfs } from '../zfs/index.js';
import { findNewestReceipt } from '../state/receipt.js';
import { readReceiptTrust } from '../trust/receipt-signature.js';
import { keyIdHex } from '../trust/minisign.js';
import { pendingEntries, readJournal, stateDir as defaultStateDir, type Journal } from '../state/journal.js';
import { listOutcomes, type OutcomeRecord } from '../state/outcome.js';
import { DEFAULT_SITE, siteOf } from '../state/site.js';
import {
  assessSite, assessTarget, overall, DEFAULT_THRESHOLDS,
  type Level, type RunFact, type SiteFacts, type SiteHealth, type TargetFacts, type TargetHealth, type Thresholds,
} from '../plan/health.js';
import { newestSnapshot, type Confirmation } from './basis.js';

export interface StatusOptions {
  /** Only this source (pool or dataset). */
  source?: string;
  /** Only this site. */
  site?: string;
  /** Folders to look for receipts in, beside those the last runs used. */
  dests?: string[];
  spool?: string;
  /** Targets (remote side) to report on, beside those with an import record. */
  targets?: string[];
  stateDir?: string;
  /** minisign public key file: a receipt in a folder counts only when signed by it (import --sign). */
  trustReceiver?: string;
  thresholds?: Thresholds;
  /** zfs, when this host has it; null: report from records alone. */
  zfs: Zfs | null;
  now?: number;
}

export interface SiteReport extends SiteFacts {
  health: SiteHealth;
}

export interface TargetReport extends TargetFacts {
  health: TargetHealth;
}

export interface StatusReport {
  level: Level;
  status: 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';
  checkedAt: string;
  stateDir: string;
  thresholds: Thresholds;
  sites: SiteReport[];
  targets: TargetReport[];
  /** What could not be read: the verdict is then UNKNOWN unless something is CRITICAL. */
  problems: string[];
}

const NAMES = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;

function runFact(r: OutcomeRecord | undefined): RunFact | null {
  return r ? { outcome: r.outcome, finishedAt: r.finishedAt, error: r.error, lastSuccessAt: r.lastSuccessAt } : null;
}

async function journals(dir: string, problems: string[]): Promise<Journal[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /^journal-.*\.json$/.test(n)).sort();
  } catch {
    return [];
  }
  const out: Journal[] = [];
  for (const name of names) {
    try {
      // The source passed is only used for a missing file, which readdir just listed.
      out.push(await readJournal(join(dir, name), { host: '', pool: '', root: '', poolGuid: '0' }));
    } catch (err) {
      problems.push(oneLine(err));
    }
  }
  return out;
}

function asConfirmation(x: unknown): Confirmation | null {
  const c = x as Confirmation | null | undefined;
  return c && typeof c.file === 'string' && typeof c.takenAt === 'string' ? { ...c, bundles: Array.isArray(c.bundles) ? c.bundles : [] } : null;
}

/** Kept protections (`ds#bookmark`, `ds@snapshot` held) that are still there. */
async function presentProtections(zfs: Zfs, inv: Inventory, kept: string[]): Promise<string[]> {
  const bookmarks = new Set(inv.datasets.flatMap((d) => d.bookmarks.map((b) => `${joinDataset(inv.root, d.path)}#${b.name}`)));
  const needHolds = kept.some((k) => k.includes('@'));
  const held = needHolds ? new Set(await zfs.heldSnapshots(inv.root)) : new Set<string>();
  return kept.filter((k) => bookmarks.has(k) || held.has(k));
}

export async function runStatus(opts: StatusOptions): Promise<StatusReport> {
  const now = opts.now ?? Date.now() / 1000;
  const dir = opts.stateDir ?? defaultStateDir();
  const thresholds = opts.thresholds ?? DEFAULT_THRESHOLDS;
  // What the last runs recorded they read counts, with --trust-receiver, only where they checked that key's signature on it.
  const trust = await readReceiptTrust(opts.trustReceiver);
  const trustedId = trust ? keyIdHex(trust.key.keyId) : null;
  const problems: string[] = [];
  const { records, problems: unreadable } = await listOutcomes(dir);
  problems.push(...unreadable);
  const js = await journals(dir, problems);

  // Which sources and sites: those the records and journals speak of, or the one named.
  const pairs = new Map<string, { source: string; site: string; identity: SourceIdentity | null }>();
  const add = (source: string, site: string, identity: SourceIdentity | null) => {
    const key = `${source}\0${site}`;
    const had = pairs.get(key);
    if (!had) pairs.set(key, { source, site, identity });
    else if (!had.identity && identity) had.identity = identity;
  };
  for (const j of js) add(j.source.root, siteOf(j), j.source);
  for (const r of records) if ((r.kind === 'export' || r.kind === 'relay-run') && r.source) add(r.source, r.site, null);
  if (opts.source !== undefined && ![...pairs.values()].some((p) => p.source === opts.source && (opts.site === undefined || p.site === opts.site))) {
    add(opts.source, opts.site ?? DEFAULT_SITE, null);
  }
  const chosen = [...pairs.values()]
    .filter((p) => (opts.source === undefined || p.source === opts.source) && (opts.site === undefined || p.site === opts.site))
    .sort((a, b) => a.source.localeCompare(b.source) || a.site.localeCompare(b.site));

  const sites: SiteReport[] = [];
  const inventories = new Map<string, Inventory | null>();
  for (const p of chosen) {
    const zfs = opts.zfs;
    let inv: Inventory | null = null;
    if (zfs) {
      if (!inventories.has(p.source)) {
        inventories.set(p.source, await zfs.inventory(p.source).catch((err: unknown) => {
          // A source named on the command line must be readable; others may live on another host.
          if (opts.source !== undefined) problems.push(`source ${p.source}: ${oneLine(err)}`);
          return null;
        }));
      }
      inv = inventories.get(p.source) ?? null;
      if (!p.identity && inv) {
        const pool = p.source.split('/')[0]!;
        const guid = await zfs.poolGuid(pool).catch(() => null);
        if (guid) p.identity = { host: '', pool, root: p.source, poolGuid: guid };
      }
    }
    const rec = (kind: string) => records.find((r) => r.kind === kind && r.source === p.source && r.site === p.site);
    const lastExport = rec('export');
    const lastRelay = rec('relay-run');

    // The newest receipt: on the folders named, those the last runs used, and the one the last export read.
    const candidates: Confirmation[] = [];
    for (const r of [lastExport, lastRelay]) {
      const remembered = asConfirmation(r?.figures.receiptSeen);
      if (remembered && (trustedId === null || remembered.signedBy === trustedId)) candidates.push(remembered);
    }
    const folders = new Set<string>([...(opts.dests ?? []), ...(opts.spool ? [opts.spool] : [])]);
    for (const f of [lastExport?.figures.dest, lastRelay?.figures.spool]) if (typeof f === 'string') folders.add(f);
    if (p.identity) {
      for (const folder of folders) {
        const found = await findNewestReceipt(folder, p.identity, p.site, trust);
        if (found) candidates.push({ file: found.file, takenAt: found.state.takenAt, newest: newestSnapshot(found.state.inventory), bundles: found.state.bundles.slice(-50) });
      }
    }
    const receipt = candidates.reduce<Confirmation | null>((a, b) => (a === null || b.takenAt > a.takenAt ? b : a), null);

    const journal = js.find((j) => j.source.root === p.source && siteOf(j) === p.site && (!p.identity || j.source.poolGuid === p.identity.poolGuid));
    const pending = journal ? pendingEntries(journal, receipt?.bundles ?? []) : [];
    // The newest run that exported something says what protects the next incremental.
    const protecting = [lastExport, lastRelay]
      .filter((r): r is OutcomeRecord => r !== undefined && Array.isArray((r.figures.protection as { kept?: unknown } | undefined)?.kept))
      .sort((a, b) => b.finishedAt.localeCompare(a.finishedAt))[0];
    const kept = protecting ? ((protecting.figures.protection as { kept: unknown[] }).kept.filter((k) => typeof k === 'string') as string[]) : [];
    let present: string[] | null = null;
    if (zfs && inv && kept.length > 0) present = await presentProtections(zfs, inv, kept).catch(() => null);

    const facts: SiteFacts = {
      source: p.source,
      site: p.site,
      sourceNewest: newestSnapshot(inv),
      receipt: receipt ? { file: receipt.file, takenAt: receipt.takenAt, newest: receipt.newest } : null,
      pending: pending.map((e) => ({ bundleId: e.bundleId, createdAt: e.createdAt, bundle: e.bundle, storedBytes: e.storedBytes ?? null })),
      firstExportAt: journal?.entries[0]?.createdAt ?? lastExport?.lastSuccessAt ?? null,
      protections: { kept, present },
      lastExport: runFact(lastExport),
      lastRelay: runFact(lastRelay),
    };
    sites.push({ ...facts, health: assessSite(facts, now, thresholds) });
  }

  // The remote side: targets named, else (when no source was named) every target with an import record.
  const targetNames = new Set<string>(opts.targets ?? []);
  if (opts.source === undefined && targetNames.size === 0) for (const r of records) if (r.kind === 'import' && r.target) targetNames.add(r.target);
  const targets: TargetReport[] = [];
  for (const target of [...targetNames].sort()) {
    let exists: boolean | null = null;
    let newest = null;
    if (opts.zfs) {
      try {
        exists = await opts.zfs.exists(target);
        newest = exists ? newestSnapshot(await opts.zfs.inventory(target)) : null;
      } catch (err) {
        problems.push(`target ${target}: ${oneLine(err)}`);
      }
    } else if (opts.targets?.includes(target)) {
      problems.push(`target ${target}: zfs is not available on this host`);
    }
    const facts: TargetFacts = { target, exists, newest, lastImport: runFact(records.find((r) => r.kind === 'import' && r.target === target)) };
    targets.push({ ...facts, health: assessTarget(facts, now, thresholds) });
  }
  if (sites.length === 0 && targets.length === 0) {
    problems.push(`nothing to check: no journal or outcome record in ${dir}; name a SOURCE, --target or --state-dir`);
  }
  const level = overall([...sites.map((s) => s.health.level), ...targets.map((t) => t.health.level)], problems);
  return { level, status: NAMES[level], checkedAt: new Date(now * 1000).toISOString(), stateDir: dir, thresholds, sites, targets, problems };
}
