/**
 * `zferry status`'s verdict, a pure function of facts read elsewhere
 * (src/commands/status.ts): per source and site, how old the newest receipt
 * is, what is still in transit, whether the last export or relay round
 * failed; per target, the last import and the newest snapshot. Levels are
 * Nagios's: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
 */

export const LEVELS = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;
export type Level = 0 | 1 | 2 | 3;

export interface Thresholds {
  /** Seconds without a confirmed receipt before WARNING (default 2 days). */
  warn: number;
  /** ... before CRITICAL (default 7 days). */
  crit: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = { warn: 2 * 86400, crit: 7 * 86400 };

export interface SnapshotFact {
  name: string;
  /** Epoch seconds. */
  creation: number;
}

/** A job's last run, as its outcome record says. */
export interface RunFact {
  outcome: string;
  finishedAt: string;
  error: string | null;
  lastSuccessAt: string | null;
}

export interface SiteFacts {
  source: string;
  site: string;
  /** The source's newest snapshot; null when the pool is not on this host or has none. */
  sourceNewest: SnapshotFact | null;
  receipt: { file: string; takenAt: string; newest: SnapshotFact | null } | null;
  /** Bundles exported and not yet confirmed (in transit), oldest first. */
  pending: Array<{ bundleId: string; createdAt: string; bundle: string; storedBytes: number | null }>;
  /** When the first bundle of this site was exported (the journal's oldest entry); null when unknown. */
  firstExportAt: string | null;
  /** The protections the last export kept; present: those still there (null: not checked). */
  protections: { kept: string[]; present: string[] | null };
  lastExport: RunFact | null;
  lastRelay: RunFact | null;
}

export interface TargetFacts {
  target: string;
  /** False when the dataset does not exist; null when zfs could not be asked. */
  exists: boolean | null;
  newest: SnapshotFact | null;
  lastImport: RunFact | null;
}

export interface SiteHealth {
  level: Level;
  reasons: string[];
  receiptAgeSeconds: number | null;
  pendingBundles: number;
  pendingBytes: number;
}

export interface TargetHealth {
  level: Level;
  reasons: string[];
  newestAgeSeconds: number | null;
}

const max = (a: Level, b: Level): Level => (a > b ? a : b) as Level;

/** "3 d 4 h", "5 h 10 min", "40 s": the age an administrator reads. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 86400) return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min`;
  return `${s} s`;
}

function byAge(age: number, t: Thresholds): Level {
  return age >= t.crit ? 2 : age >= t.warn ? 1 : 0;
}

function runProblem(what: string, run: RunFact | null, now: number): { level: Level; reason: string } | null {
  if (!run) return null;
  const ago = formatAge(now - Date.parse(run.finishedAt) / 1000);
  if (run.outcome === 'failed') return { level: 1, reason: `last ${what} failed ${ago} ago: ${run.error ?? 'no error line'}` };
  if (run.outcome === 'partial') return { level: 1, reason: `last ${what} ${ago} ago was done in part: ${run.error ?? 'datasets in conflict were left out'}` };
  return null;
}

export function assessSite(f: SiteFacts, now: number, t: Thresholds): SiteHealth {
  let level: Level = 0;
  const reasons: string[] = [];
  const pendingBytes = f.pending.reduce((n, p) => n + (p.storedBytes ?? 0), 0);
  let receiptAgeSeconds: number | null = null;
  if (f.receipt) {
    receiptAgeSeconds = Math.max(0, now - Date.parse(f.receipt.takenAt) / 1000);
    const l = byAge(receiptAgeSeconds, t);
    if (l > 0) reasons.push(`newest receipt is ${formatAge(receiptAgeSeconds)} old (${l === 2 ? 'critical' : 'warning'} at ${formatAge(l === 2 ? t.crit : t.warn)})`);
    level = max(level, l);
  } else if (f.firstExportAt) {
    // Nothing confirmed yet: the first disk's journey counts from its export.
    const age = Math.max(0, now - Date.parse(f.firstExportAt) / 1000);
    const l = byAge(age, t);
    reasons.push(`no receipt yet; the first bundle left ${formatAge(age)} ago`);
    level = max(level, l);
  } else {
    reasons.push('nothing exported for this site yet');
    level = 2;
  }
  for (const p of [runProblem('export', f.lastExport, now), runProblem('relay round', f.lastRelay, now)]) {
    if (p) {
      level = max(level, p.level);
      reasons.push(p.reason);
    }
  }
  if (f.protections.present !== null) {
    const present = new Set(f.protections.present);
    const gone = f.protections.kept.filter((k) => !present.has(k));
    if (gone.length > 0) {
      level = max(level, 1);
      reasons.push(`${gone.length} incremental base(s) kept by the last export are gone (the next export may resend in full): ${gone.slice(0, 3).join(', ')}${gone.length > 3 ? ', …' : ''}`);
    }
  }
  return { level, reasons, receiptAgeSeconds, pendingBundles: f.pending.length, pendingBytes };
}

export function assessTarget(f: TargetFacts, now: number, t: Thresholds): TargetHealth {
  let level: Level = 0;
  const reasons: string[] = [];
  let newestAgeSeconds: number | null = null;
  if (f.exists === false) {
    level = 2;
    reasons.push(`target ${f.target} does not exist`);
  } else if (f.newest) {
    newestAgeSeconds = Math.max(0, now - f.newest.creation);
    const l = byAge(newestAgeSeconds, t);
    if (l > 0) reasons.push(`newest snapshot @${f.newest.name} is ${formatAge(newestAgeSeconds)} old`);
    level = max(level, l);
  } else if (f.exists === true) {
    level = 2;
    reasons.push(`target ${f.target} holds no snapshot`);
  }
  const p = runProblem('import', f.lastImport, now);
  if (p) {
    level = max(level, p.level);
    reasons.push(p.reason);
  }
  return { level, reasons, newestAgeSeconds };
}

/** CRITICAL outranks UNKNOWN (a stale copy matters more than an unreadable record); nothing to check is UNKNOWN. */
export function overall(levels: readonly Level[], problems: readonly string[]): Level {
  if (levels.includes(2)) return 2;
  if (problems.length > 0 || levels.length === 0 || levels.includes(3)) return 3;
  return levels.reduce<Level>((a, b) => max(a, b), 0);
}
