/**
 * `import --keep GRID`: thin the target's snapshots by a time grid, so the
 * backup keeps a longer, sparser history than the source. Pure: the target
 * as it will be after the streams, the source's inventory and scope, the
 * bases other bundles still need, and the grid in; what goes and why out.
 *
 * The grid (docs/retention.md): `1h x 24 | 1d x 30 | 30d x 12` lays 24
 * one-hour intervals back from each dataset's newest snapshot, then 30 days
 * before those, then 12 thirty-day ones. Each interval keeps its oldest
 * snapshot (`(keep=N)` keeps N, `(keep=all)` all of them); a snapshot older
 * than the whole grid goes. As in zrepl, the grid is anchored at the newest
 * snapshot, not at the clock: a backup that stops receiving is not eaten
 * away by the passing of time.
 *
 * Never destroyed, whatever the grid says: each dataset's newest snapshot
 * and its newest one in common with the source (the next export's base),
 * a base a bundle on the disk still waits to be applied on, a clone's
 * origin, and anything outside the export's scope.
 */
import { ZferryError } from '../errors.js';
import type { Guid, Inventory, Snapshot } from '../model.js';
import { joinDataset } from '../model.js';
import { parseInterval } from '../units.js';
import { datasetInScope, snapshotInScope, type Scope } from './scope.js';

export interface GridPart {
  /** Seconds per interval. */
  interval: number;
  count: number;
  /** Snapshots kept per interval (the oldest ones); null: all of them. */
  keep: number | null;
  /** As the user wrote it, for reasons. */
  text: string;
}

export interface Grid {
  parts: GridPart[];
  text: string;
}

/** A grid longer than this (in intervals) is surely a typo, and would make a plan of millions of buckets. */
const MAX_INTERVALS = 100_000;

/**
 * `INTERVAL x COUNT [(keep=N|all)]`, parts joined by `|`. zrepl's own order,
 * `COUNTxINTERVAL(keep=N)`, is read the same: the part with a unit is the
 * interval.
 */
export function parseGrid(text: string): Grid {
  const bad = (why: string) => new ZferryError(`--keep ${JSON.stringify(text)}: ${why} (example: "1h x 24 | 1d x 30 | 30d x 12")`, { field: 'keep' }, 2);
  const parts: GridPart[] = [];
  let total = 0;
  for (const raw of text.split('|')) {
    const part = raw.trim();
    const m = /^(\S+?)\s*[x×]\s*(\S+?)\s*(?:\(\s*keep\s*=\s*(\d+|all)\s*\))?$/i.exec(part);
    if (!m) throw bad(`part ${JSON.stringify(part)} is not INTERVAL x COUNT`);
    const [a, b] = [m[1]!, m[2]!];
    const [intervalText, countText] = /^\d+$/.test(a) && !/^\d+$/.test(b) ? [b, a] : [a, b];
    if (!/^\d+$/.test(countText) || Number(countText) < 1) throw bad(`count ${JSON.stringify(countText)} in ${JSON.stringify(part)} must be a whole number of at least 1`);
    let interval: number;
    try {
      interval = parseInterval(intervalText, 'grid interval');
    } catch (err) {
      throw bad((err as Error).message);
    }
    const keep = m[3] === undefined ? 1 : m[3].toLowerCase() === 'all' ? null : Number(m[3]);
    if (keep === 0) throw bad(`keep=0 in ${JSON.stringify(part)} keeps nothing; leave the interval out instead`);
    total += Number(countText);
    if (total > MAX_INTERVALS) throw bad(`more than ${MAX_INTERVALS} intervals`);
    parts.push({ interval, count: Number(countText), keep, text: part });
  }
  return { parts, text: parts.map((p) => p.text).join(' | ') };
}

export interface RetentionFacts {
  /** The target once every planned stream is in. */
  target: Inventory;
  /** The source as the newest bundle saw it; null when no bundle speaks for it. */
  source: Inventory | null;
  scope: Scope;
  /** Bases (by dataset path and guid) bundles on the disk are still to be applied on. */
  needed: ReadonlyArray<{ dataset: string; guid: Guid; bundle: string }>;
  /** Snapshots (full names) something else already destroys (--delete of a whole dataset). */
  alreadyDestroyed: ReadonlySet<string>;
}

export interface RetentionEntry {
  dataset: string;
  name: string;
  guid: Guid;
  full: string;
  reason: string;
}

export interface RetentionPlan {
  grid: string;
  /** Snapshots to destroy, by full name, oldest first within each dataset. */
  destroy: RetentionEntry[];
  /** Snapshots the grid would drop but which stay, and why. */
  protected: RetentionEntry[];
}

function stamp(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** The grid's verdict on one dataset's snapshots (ascending): name → why it goes; absent = kept. */
function thin(snaps: readonly Snapshot[], grid: Grid): Map<Snapshot, string> {
  const out = new Map<Snapshot, string>();
  if (snaps.length === 0) return out;
  const anchor = snaps[snaps.length - 1]!.creation;
  // Newest first: each snapshot falls in the interval (end - interval, end].
  const pending = [...snaps].reverse();
  let end = anchor;
  let i = 0;
  for (const part of grid.parts) {
    for (let n = 0; n < part.count; n++) {
      const start = end - part.interval;
      const inside: Snapshot[] = [];
      while (i < pending.length && pending[i]!.creation > start) inside.push(pending[i++]!);
      // Oldest first: the one kept stays the oldest of its interval as the grid moves on.
      inside.reverse();
      const keep = part.keep ?? inside.length;
      for (const s of inside.slice(keep)) {
        out.set(s, `interval ${part.text} (${stamp(start)} to ${stamp(end)}) keeps @${inside.slice(0, keep).map((k) => k.name).join(', @')}`);
      }
      end = start;
    }
  }
  for (; i < pending.length; i++) out.set(pending[i]!, `older than the grid (before ${stamp(end)})`);
  return out;
}

export function planRetention(facts: RetentionFacts, grid: Grid): RetentionPlan {
  const plan: RetentionPlan = { grid: grid.text, destroy: [], protected: [] };
  const { target, source, scope } = facts;
  const sourceRoot = source?.root ?? target.root;
  const sourceGuids = new Map((source?.datasets ?? []).map((d) => [d.path, new Set(d.snapshots.map((s) => s.guid))]));
  const origins = new Set(target.datasets.map((d) => d.origin).filter((o): o is string => o !== undefined));
  for (const d of target.datasets) {
    if (!datasetInScope(d.path, scope, sourceRoot)) continue;
    const full = (s: Snapshot) => `${joinDataset(target.root, d.path)}@${s.name}`;
    const candidates = d.snapshots.filter((s) => snapshotInScope(s.name, scope) && !facts.alreadyDestroyed.has(full(s)));
    const verdict = thin(candidates, grid);
    if (verdict.size === 0) continue;
    const common = sourceGuids.get(d.path);
    const newestCommon = common ? [...d.snapshots].reverse().find((s) => common.has(s.guid)) : undefined;
    const newest = d.snapshots[d.snapshots.length - 1];
    for (const s of candidates) {
      const why = verdict.get(s);
      if (why === undefined) continue;
      const entry = { dataset: d.path, name: s.name, guid: s.guid, full: full(s) };
      const need = facts.needed.find((n) => n.dataset === d.path && n.guid === s.guid);
      const keptFor = s === newestCommon ? 'newest snapshot in common with the source (the next export\'s base)'
        : s === newest ? 'newest snapshot of the dataset'
          : need ? `base of bundle ${need.bundle}, not applied yet`
            : origins.has(entry.full) ? 'origin of a clone on the target'
              : null;
      if (keptFor) plan.protected.push({ ...entry, reason: `${keptFor}; the grid would drop it: ${why}` });
      else plan.destroy.push({ ...entry, reason: why });
    }
  }
  return plan;
}
