/**
 * Import's plan: the target's facts (read once) plus the bundles' manifests
 * and the user's flags in; the bundles to apply with a decision per stream,
 * the deferred ones, the view of the source that --delete mirrors and what it
 * destroys out — or a typed refusal. Pure: no zfs, no files.
 */
import type { Guid, Inventory } from '../model.js';
import { joinDataset } from '../model.js';
import { ZferryError } from '../errors.js';
import type { Manifest, StreamEntry } from '../bundle/manifest.js';
import { checkApply, type ApplyDecision } from './apply.js';
import { planDelete, type DeletePlan } from './delete.js';
import { asOfTxg, chooseLatestView, SOURCE_TXG_PROPERTY } from './latest.js';
import { projectTarget } from './project.js';
import { FULL_SCOPE } from './scope.js';
import { checkEncryptionMatch } from './send-flags.js';
import type { Step } from './sync.js';
import { planRetention, type Grid, type RetentionPlan } from './retention.js';

/** User property on the target root naming the source it mirrors (`poolGuid:root`). */
export const SOURCE_PROPERTY = 'zferry:source';

/** Everything the plan needs to know about the target, read in one pass by the command. */
export interface TargetFacts {
  target: string;
  /** What the target holds (less datasets an interrupted first receive left empty); null when it does not exist. */
  inventory: Inventory | null;
  /** Datasets (full names) holding an interrupted `receive -s`'s state. */
  partial: ReadonlySet<string>;
  /** Bytes written since the newest snapshot, by full dataset name; null where zfs has no `written`. */
  written: ReadonlyMap<string, bigint> | null;
  /**
   * Where there is no `written` (zfs-fuse): `referenced` and `used` of every
   * dataset and snapshot under the target, by full name; null otherwise.
   */
  space: ReadonlyMap<string, SpaceFigures> | null;
  /** The target root's zferry:source mark. */
  sourceMark: string | null;
  /** The target root's zferry:source-txg. */
  sourceTxg: bigint | null;
  /**
   * Every snapshot of the target's pool by guid (full names), where a clone
   * is to be received and zfs recv cannot be told its origin; null otherwise.
   */
  poolSnapshots: ReadonlyMap<Guid, string[]> | null;
  /**
   * With --delete-after: each target dataset's zferry:missing-since mark (the
   * createdAt of the first applied bundle that lacked it), by full name;
   * null when not read.
   */
  missingSince?: ReadonlyMap<string, string> | null;
  /**
   * When the target does not exist: its topmost ancestor that does not exist
   * either (the pool itself when the pool is missing); null when the target
   * exists or its parent does.
   */
  missingAncestor: string | null;
  /**
   * Where zfs recv takes no -x/-o (zfs-fuse): filesystems under the target
   * whose mountpoint came with a stream (source "received"), which a kill
   * between a receive and its overrides leaves behind; the executor gives
   * them the overrides with this run's receives. Absent elsewhere.
   */
  receivedMountpoints?: readonly string[];
}

export const MISSING_SINCE_PROPERTY = 'zferry:missing-since';

export interface BundleIn {
  dir: string;
  manifest: Manifest;
}

export interface ImportFlags {
  /** Accept a bundle from a source other than the one the target mirrors. */
  force: boolean;
  delete: boolean;
  rollback: boolean;
  /** A dry run reports the deletion guard's verdict instead of refusing. */
  dryRun?: boolean;
  /** zfs recv takes -o origin= (OpenZFS); without it a clone's origin is found by guid anywhere in the pool. */
  recvNamesOrigin: boolean;
  /** The deletion guard's limits (--max-delete); absent = the defaults. */
  maxDelete?: MaxDelete;
  /** --delete-after: seconds a dataset must have been missing on the source before it is destroyed; absent = at once. */
  deleteAfterSeconds?: number;
  /** --create-parents: create a missing parent of the target (zfs create -p) instead of refusing. */
  createParents?: boolean;
  /** --keep GRID: snapshots are thinned by the grid (and no longer follow --delete). */
  keep?: Grid;
}

/**
 * How much --delete may destroy in one run before it is refused: whole
 * datasets, and the share of snapshots in datasets that receive nothing new
 * in this run (a source wiped or imported empty looks like that; routine
 * rotation deletes old snapshots in datasets that do receive new ones).
 * null lifts a limit.
 */
export interface MaxDelete {
  datasets: number | null;
  /** Percent, 0–100. */
  quietSharePercent: number | null;
}

export const DEFAULT_MAX_DELETE: MaxDelete = { datasets: 2, quietSharePercent: 50 };

/** The guard's figures, shown by --dry-run and named in the refusal. */
export interface DeleteGuard {
  datasets: number;
  datasetLimit: number | null;
  /** Snapshots destroyed in, and held by, datasets that receive nothing newer in this run (destroyed datasets aside). */
  quietDestroyed: number;
  quietHeld: number;
  quietSharePercent: number;
  quietShareLimit: number | null;
  exceeded: boolean;
}

export interface PlannedBundle extends BundleIn {
  /** One per stream applied or skipped, in stream order. */
  decisions: ApplyDecision[];
}

export interface Deferred {
  bundle: string;
  bundleId: string;
  needs: string;
  message: string;
}

/**
 * A bundle older than what the target already received from its source (its
 * as-of txg below the target's zferry:source-txg), of which some stream is
 * not on the target: its snapshots were received and have gone since (--delete
 * followed the source), or the target moved on past them. Nothing of it is
 * applied: a full stream would bring back a dataset the source destroyed, and
 * --rollback would discard the newer snapshots to make room for older ones.
 */
export interface Superseded {
  bundle: string;
  bundleId: string;
  message: string;
}

export interface ImportRefusal {
  message: string;
  file?: string;
  dataset?: string;
  field?: string;
}

export interface ImportPlan {
  bundles: PlannedBundle[];
  deferred: Deferred[];
  /** Old bundles left aside (see Superseded), in apply order. */
  superseded: Superseded[];
  /** The target once every planned stream is in (rollbacks and replacements applied). */
  projected: Inventory | null;
  /** Index into `bundles` of the one that speaks for the source, or why none does. */
  view: { index: number; asOf: bigint; unanchored: string[] } | { index: null; reason: string };
  /** What the target holds that the latest view does not (destroyed with --delete, else reported); null without a view. */
  extras: DeletePlan | null;
  /** The deletion guard's figures for `extras`; null without extras. */
  guard: DeleteGuard | null;
  /** Whether the import marks the target with its source (first import). */
  markSource: string | null;
  /** --delete-after's marks: set on datasets newly found missing, cleared on datasets back on the source. */
  missingMarks: { set: Array<{ full: string; since: string }>; clear: string[] };
  /** The target's parent, to create with `zfs create -p` before the first receive (--create-parents); null when it exists. */
  createParent: string | null;
  /** --keep: the snapshots the grid thins out after the streams (not counted by --max-delete); null without --keep. */
  retention: RetentionPlan | null;
}

export interface SpaceFigures {
  referenced: bigint;
  used: bigint;
}

/**
 * Without `written`: evidence from space figures that a dataset changed since
 * its newest snapshot, or null where they show none (which proves nothing: a
 * change may leave both unchanged, and the receive then refuses).
 * - the live dataset references a different amount than the snapshot did;
 * - the newest snapshot holds blocks of its own: blocks the live dataset
 *   rewrote or freed since (mountpoint folders received children made).
 */
export function changedBySpace(space: ReadonlyMap<string, SpaceFigures>, dataset: string, newest: string): string | null {
  const live = space.get(dataset);
  const snap = space.get(`${dataset}@${newest}`);
  if (!live || !snap) return null;
  if (live.referenced !== snap.referenced) return `it references ${live.referenced} bytes, @${newest} ${snap.referenced}`;
  if (snap.used > 0n) return `@${newest} holds ${snap.used} bytes the live dataset no longer has`;
  return null;
}

export function sourceTag(s: { poolGuid: string; root: string }): string {
  return `${s.poolGuid}:${s.root}`;
}


export function planImport(facts: TargetFacts, bundles: readonly BundleIn[], flags: ImportFlags): ImportPlan | { refusal: ImportRefusal } {
  const parents = checkParents(facts, flags.createParents ?? false);
  if ('refusal' in parents) return parents;
  const identity = checkIdentity(facts, bundles, flags.force);
  if (identity) return { refusal: identity };
  const current = facts.inventory;

  // Each bundle on a simulated target, in order: one planned on a bundle that is
  // not here is deferred, not refused.
  const planned: PlannedBundle[] = [];
  const deferred: Deferred[] = [];
  const superseded: Superseded[] = [];
  const accepted = new Set<string>();
  let simulated = current;
  const discarded = new Map<string, Set<Guid>>();
  for (const { dir, manifest } of bundles) {
    const file = `${dir}/manifest.json`;
    const mismatch = checkEncryptionMatch(manifest.inventory, current);
    if (mismatch) return { refusal: { message: `${file}: ${mismatch.message}; nothing was received`, dataset: joinDataset(facts.target, mismatch.dataset) } };
    const sourceGuids = new Set(manifest.inventory.datasets.flatMap((d) => d.snapshots.map((x) => x.guid)));
    const old = supersededBy(facts, manifest, simulated, sourceGuids);
    if (old !== null) {
      superseded.push({ bundle: dir, bundleId: manifest.bundleId, message: `${dir}: superseded: ${old}; nothing of it was received` });
      continue;
    }
    const ap = checkApply(manifest.streams, simulated, { rollback: flags.rollback, replace: flags.delete, sourceGuids });
    if (ap.problems.length > 0) {
      const after = manifest.basis.origin === 'journal' ? manifest.basis.bundleId : undefined;
      if (after !== undefined && !accepted.has(after) && ap.problems[0].missingBase) {
        deferred.push({ bundle: dir, bundleId: manifest.bundleId, needs: after, message: `${dir}: deferred: it was planned on top of bundle ${after}, which must be imported first` });
        continue;
      }
      const p = ap.problems[0];
      const more = ap.problems.length > 1 ? ` (and ${ap.problems.length - 1} more)` : '';
      return { refusal: { message: `${file}: stream ${p.index}: ${p.message}${more}; nothing was received`, file, dataset: joinDataset(facts.target, p.dataset) } };
    }
    accepted.add(manifest.bundleId);
    planned.push({ dir, manifest, decisions: ap.decisions });
    for (const d of ap.decisions) {
      if (d.action !== 'apply' || !d.discards) continue;
      const path = manifest.streams[d.index - 1].dataset;
      discarded.set(path, new Set([...(discarded.get(path) ?? []), ...d.discards.map((x) => x.guid)]));
    }
    const applied = new Set(ap.decisions.filter((d) => d.action === 'apply').map((d) => d.index));
    simulated = projectTarget(simulated, manifest.streams.filter((s) => applied.has(s.index)), manifest.inventory, facts.target);
  }

  const modified = planModified(facts, planned, flags.rollback);
  if ('refusal' in modified) return modified;
  const clone = checkCloneOrigins(facts, modified, flags.recvNamesOrigin);
  if (clone) return { refusal: clone };

  // Rollbacks discard what they pass over: the projection must not keep it.
  const projected = simulated && discarded.size > 0
    ? { ...simulated, datasets: simulated.datasets.map((d) => ({ ...d, snapshots: d.snapshots.filter((s) => !discarded.get(d.path)?.has(s.guid)) })) }
    : simulated;
  const view = chooseLatestView(
    modified.map((p) => ({ label: `${p.dir}/manifest.json`, inventory: p.manifest.inventory, scope: p.manifest.scope ?? FULL_SCOPE })),
    projected,
    facts.sourceTxg,
  );
  if (view.index === null && flags.delete && modified.length > 0) {
    return { refusal: { message: `--delete: no bundle here can speak for the source's current state: ${view.reason}; nothing was received`, dataset: facts.target } };
  }
  const newest = view.index === null ? null : modified[view.index].manifest;
  // Datasets whose newest snapshot is in a bundle still to come are not spoken for this round:
  // left alone, with what is below them, and said to be (--delete prints why they stand).
  const unanchored = view.index === null ? [] : view.unanchored;
  const scope = newest?.scope ?? FULL_SCOPE;
  const fromView = newest && projected ? planDelete(newest.inventory, projected, { ...scope, skipped: [...scope.skipped, ...unanchored] }) : null;
  const missing = fromView && unanchored.length > 0
    ? { ...fromView, kept: [...fromView.kept, ...unanchored.map((dataset) => ({ dataset, reason: 'its newest snapshot on the source does not arrive with this import (a bundle still to come, or the export left the dataset out as a conflict): --delete leaves it, and what is below it, alone until it does' }))] }
    : fromView;
  const waiting = missing && newest && flags.deleteAfterSeconds !== undefined
    ? deferMissing(missing, facts, modified.map((p) => p.manifest), newest, flags.deleteAfterSeconds, pathsAfterRenames(current, projected))
    : null;
  const mirrored = waiting ? waiting.extras : missing;
  // With a grid, snapshots follow the grid; --delete still takes the datasets the source lost.
  const extras = mirrored && flags.keep ? datasetsOnly(mirrored) : mirrored;
  const guard = extras && projected ? deleteGuard(extras, projected, modified, flags.maxDelete ?? DEFAULT_MAX_DELETE) : null;
  if (guard?.exceeded && flags.delete && !flags.dryRun) return { refusal: { message: guardRefusal(guard), dataset: facts.target } };
  const first = modified[0]?.manifest;
  return {
    bundles: modified,
    deferred,
    superseded,
    projected,
    view,
    extras,
    guard,
    markSource: first && facts.sourceMark === null ? sourceTag(first.source) : null,
    missingMarks: waiting?.marks ?? { set: [], clear: [] },
    createParent: parents.createParent,
    retention: flags.keep && projected ? retentionOf(projected, newest ?? modified[modified.length - 1]?.manifest ?? null, bundles, deferred, extras, flags.keep) : null,
  };
}

/**
 * Why a bundle is superseded (see Superseded), or null. Only a bundle from the
 * source the target is marked with is compared (txgs of another pool say
 * nothing), and only one not already on the target whole: that one is still
 * reported as already applied.
 */
export function supersededBy(facts: Pick<TargetFacts, 'target' | 'sourceMark' | 'sourceTxg'>, manifest: Manifest, simulated: Inventory | null, sourceGuids: ReadonlySet<Guid>): string | null {
  if (facts.sourceTxg === null || facts.sourceMark !== sourceTag(manifest.source)) return null;
  const asOf = asOfTxg(manifest.inventory);
  if (asOf === null || asOf >= facts.sourceTxg) return null;
  const there = checkApply(manifest.streams, simulated, { sourceGuids });
  if (there.problems.length === 0 && there.decisions.every((d) => d.action === 'skip')) return null;
  return `it shows the source as of txg ${asOf}, older than what ${facts.target} already received (${SOURCE_TXG_PROPERTY}=${facts.sourceTxg}), and what it carries is gone from the target or was overtaken there`;
}

/**
 * --delete-after: a dataset missing on the source is destroyed only once it
 * has been missing for `seconds`, counted on the source's clock from the
 * first applied bundle that lacked it (its zferry:missing-since mark, else
 * the first bundle of this run without it) to the newest bundle: transit
 * time of a disk and the two hosts' clocks do not enter. A dataset that
 * waits keeps its snapshots and its parents; one back on the source loses
 * its mark.
 */
export function deferMissing(
  planned: DeletePlan,
  facts: Pick<TargetFacts, 'target' | 'missingSince'>,
  manifests: readonly Manifest[],
  newest: Manifest,
  seconds: number,
  renamedTo: ReadonlyMap<string, string> = new Map(),
): { extras: DeletePlan; marks: ImportPlan['missingMarks'] } {
  const marks: ImportPlan['missingMarks'] = { set: [], clear: [] };
  const onSource = new Set(newest.inventory.datasets.map((d) => d.path));
  // A mark is a property of the dataset, so a rename carries it along: read and cleared under the name it has after this import.
  const missingSince = new Map<string, string>();
  for (const [full, since] of facts.missingSince ?? []) {
    const rel = full === facts.target ? '' : full.startsWith(`${facts.target}/`) ? full.slice(facts.target.length + 1) : null;
    const now = rel === null ? undefined : renamedTo.get(rel);
    missingSince.set(now === undefined ? full : joinDataset(facts.target, now), since);
    if (rel !== null && onSource.has(now ?? rel)) marks.clear.push(now === undefined ? full : joinDataset(facts.target, now));
  }
  const now = Date.parse(newest.createdAt);
  const waiting = new Set<string>();
  const kept: DeletePlan['kept'] = [];
  for (const d of planned.datasets) {
    const marked = missingSince.get(d.full);
    const firstLacking = manifests.find((m) => !m.inventory.datasets.some((x) => x.path === d.dataset)) ?? newest;
    const since = marked !== undefined && Number.isFinite(Date.parse(marked)) ? marked : firstLacking.createdAt;
    const missingFor = Math.max(0, (now - Date.parse(since)) / 1000);
    if (missingFor >= seconds) continue;
    waiting.add(d.dataset);
    if (marked === undefined) marks.set.push({ full: d.full, since });
    kept.push({ dataset: d.dataset, reason: `missing on the source since ${since}; destroyed once missing for ${formatAge(seconds)} (--delete-after)` });
  }
  // A parent of a waiting dataset waits with it: it cannot go while a child stays.
  for (const d of planned.datasets) {
    if (waiting.has(d.dataset)) continue;
    if ([...waiting].some((w) => w.startsWith(`${d.dataset}/`))) {
      waiting.add(d.dataset);
      kept.push({ dataset: d.dataset, reason: 'holds datasets waiting for --delete-after' });
    }
  }
  return {
    extras: {
      datasets: planned.datasets.filter((d) => !waiting.has(d.dataset)),
      snapshots: planned.snapshots.filter((s) => !waiting.has(s.dataset)),
      kept: [...planned.kept, ...kept],
    },
    marks,
  };
}

/**
 * The paths of target datasets this import's renames move: old path → new
 * path, matched by the dataset's own guid (a rename keeps it). Guids that are
 * not unique, or unknown ('0'), are left out.
 */
export function pathsAfterRenames(current: Inventory | null, projected: Inventory | null): Map<string, string> {
  const moved = new Map<string, string>();
  if (!current || !projected) return moved;
  const unique = (inv: Inventory) => {
    const seen = new Map<string, string | null>();
    for (const d of inv.datasets) if (d.guid !== '0') seen.set(d.guid, seen.has(d.guid) ? null : d.path);
    return seen;
  };
  const after = unique(projected);
  for (const [guid, path] of unique(current)) {
    const now = after.get(guid);
    if (path !== null && now !== undefined && now !== null && now !== path) moved.set(path, now);
  }
  return moved;
}

function formatAge(seconds: number): string {
  const units: Array<[number, string]> = [[86400, 'd'], [3600, 'h'], [60, 'm']];
  for (const [size, unit] of units) if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  return `${seconds}s`;
}

/** A delete plan with only the datasets the source lost (and their snapshots). */
function datasetsOnly(p: DeletePlan): DeletePlan {
  const doomed = new Set(p.datasets.map((d) => d.dataset));
  return { ...p, snapshots: p.snapshots.filter((x) => doomed.has(x.dataset)) };
}

/** The grid over the projected target; bases the deferred bundles wait for are kept. */
function retentionOf(projected: Inventory, speaker: Manifest | null, bundles: readonly BundleIn[], deferred: readonly Deferred[], extras: DeletePlan | null, grid: Grid): RetentionPlan {
  const waiting = new Set(deferred.map((d) => d.bundleId));
  const needed = bundles
    .filter((b) => waiting.has(b.manifest.bundleId))
    .flatMap((b) => b.manifest.streams.flatMap((s) => (s.from ? [{ dataset: s.from.dataset ?? s.dataset, guid: s.from.guid, bundle: b.dir }] : [])));
  return planRetention({
    target: projected,
    source: speaker?.inventory ?? null,
    // Without a bundle's scope nothing says what is the source's: everything counts as in scope.
    scope: speaker?.scope ?? FULL_SCOPE,
    needed,
    alreadyDestroyed: new Set(extras?.snapshots.map((x) => x.full) ?? []),
  }, grid);
}

/** All bundles must come from one source; the target must mirror that source. */
/**
 * A target with no pool or no parent to receive into: zfs recv would fail
 * with two lines of its own after the bundles were read. Refused up front,
 * naming the missing dataset and the command that fixes it; a missing parent
 * is created instead with --create-parents. A pool is never created.
 */
export function checkParents(facts: Pick<TargetFacts, 'target' | 'missingAncestor'>, createParents: boolean): { createParent: string | null } | { refusal: ImportRefusal } {
  const missing = facts.missingAncestor;
  if (missing === null) return { createParent: null };
  const target = facts.target;
  if (!missing.includes('/')) {
    return { refusal: { message: `import target ${target}: pool ${missing} does not exist (zpool list shows the pools here): create or import it first; nothing was received`, dataset: missing } };
  }
  const parent = target.slice(0, target.lastIndexOf('/'));
  if (createParents) return { createParent: parent };
  return {
    refusal: {
      message: `import target ${target}: ${missing} does not exist: create it with \`zfs create -p ${parent}\`, or import with --create-parents; nothing was received`,
      dataset: missing,
    },
  };
}

function checkIdentity(facts: TargetFacts, bundles: readonly BundleIn[], force: boolean): ImportRefusal | null {
  if (bundles.length === 0) return null;
  const first = bundles[0].manifest;
  for (const { manifest: m } of bundles) {
    if (sourceTag(m.source) !== sourceTag(first.source)) {
      return {
        message: `bundles under one path come from different sources (${first.source.root} on pool guid ${first.source.poolGuid} and ${m.source.root} on pool guid ${m.source.poolGuid}): import them separately`,
        field: '/source',
      };
    }
  }
  const inv = facts.inventory;
  if (inv === null || force) return null;
  const target = facts.target;
  if (facts.sourceMark !== null && facts.sourceMark !== sourceTag(first.source)) {
    return {
      message: `${target} mirrors source ${facts.sourceMark}, but the bundle comes from ${sourceTag(first.source)} (${first.source.host}): refusing; use --force to import anyway`,
      dataset: target, field: '/source',
    };
  }
  if (facts.sourceMark === null) {
    // A target seeded by hand (zfs send -R) has no mark yet: it must share snapshots with the source.
    const sourceGuids = new Set(first.inventory.datasets.flatMap((d) => d.snapshots.map((s) => s.guid)));
    const targetGuids = inv.datasets.flatMap((d) => d.snapshots.map((s) => s.guid));
    if (targetGuids.length > 0 && !targetGuids.some((g) => sourceGuids.has(g))) {
      return {
        message: `${target} holds ${targetGuids.length} snapshots and none of them is in the bundle's source ${first.source.root} (${first.source.host}): it looks like another source's copy; refusing; use --force to import anyway`,
        dataset: target, field: '/source',
      };
    }
  }
  return null;
}

/**
 * A target dataset written to since its newest snapshot cannot take an
 * incremental. Where zfs has `written`, this is found here, before anything is
 * received: refused, or with --rollback rolled back to that snapshot first.
 * Without `written` (zfs-fuse), --rollback rolls back to the newest snapshot
 * before the first incremental into each dataset (a no-op when unchanged),
 * and without it the receive's own error is turned into one line.
 */
function planModified(facts: TargetFacts, planned: readonly PlannedBundle[], rollback: boolean): PlannedBundle[] | { refusal: ImportRefusal } {
  const current = facts.inventory;
  if (current === null) return [...planned];
  const newestOf = new Map(current.datasets.map((d) => [d.path, d.snapshots[d.snapshots.length - 1]]));
  // Where each dataset is on the target now, for one renamed before its incremental: `written` is read by today's names.
  const nowAt = new Map<string, string>();
  const seen = new Set<string>();
  const out: PlannedBundle[] = [];
  for (const p of planned) {
    const decisions: ApplyDecision[] = [];
    for (const d of p.decisions) {
      const s = p.manifest.streams[d.index - 1];
      if (d.action === 'apply' && d.renameDataset) renameWithin(nowAt, d.renameDataset.from, d.renameDataset.to, current.datasets.map((x) => x.path));
      if (d.action !== 'apply' || s.kind === 'rename' || seen.has(s.dataset)) {
        decisions.push(d);
        continue;
      }
      seen.add(s.dataset);
      const was = nowAt.get(s.dataset) ?? s.dataset;
      const newest = newestOf.get(was);
      if (s.kind !== 'incremental' || d.rollbackTo || !newest) {
        decisions.push(d);
        continue;
      }
      const name = joinDataset(facts.target, s.dataset);
      // Read under the name the dataset has now, before a rename step of this import moves it.
      const before = joinDataset(facts.target, was);
      const bytes = facts.written?.get(before);
      // What is known before anything is received: `written`, else the space figures' evidence.
      const evidence = facts.written !== null
        ? (bytes !== undefined && bytes !== 0n ? `${bytes} bytes written` : null)
        : facts.space ? changedBySpace(facts.space, before, newest.name) : null;
      // Without `written`, no evidence is no proof: --rollback still rolls back (a no-op when unchanged).
      const mayBeDirty = evidence !== null || facts.written === null;
      if (!mayBeDirty || (!rollback && evidence === null)) {
        decisions.push(d);
        continue;
      }
      if (!rollback) {
        return {
          refusal: {
            message: `${name} has been modified since its newest snapshot @${newest.name} (${evidence}); nothing was received; use --rollback to roll it back to @${newest.name} first, and zfs set readonly=on ${facts.target} to keep the copy from changing`,
            dataset: name,
          },
        };
      }
      decisions.push({ ...d, rollbackTo: { name: newest.name, guid: newest.guid } });
    }
    out.push({ ...p, decisions });
  }
  return out;
}

/** Records that what was at `from` (and below) is now at `to`: `nowAt` maps today's paths after the renames to the paths the facts were read under. */
function renameWithin(nowAt: Map<string, string>, from: string, to: string, original: readonly string[]): void {
  const inside = (p: string) => p === from || p.startsWith(from + '/');
  const moved: Array<[string, string]> = [];
  for (const [now, was] of nowAt) if (inside(now)) moved.push([now, was]);
  for (const p of original) if (inside(p) && !nowAt.has(p) && ![...nowAt.values()].includes(p)) moved.push([p, p]);
  for (const [now] of moved) nowAt.delete(now);
  for (const [now, was] of moved) nowAt.set(to + now.slice(from.length), was);
}

/**
 * A clone's first stream names its origin by guid only. Where zfs recv cannot
 * be told the origin (`-o origin=`, missing in zfs-fuse), it takes the first
 * snapshot with that guid anywhere in the pool: a second copy of the source in
 * the same pool would become the clone's origin. Refused before anything is
 * received.
 */
function checkCloneOrigins(facts: TargetFacts, planned: readonly PlannedBundle[], recvNamesOrigin: boolean): ImportRefusal | null {
  if (recvNamesOrigin) return null;
  const pool = facts.target.split('/')[0];
  for (const { manifest, decisions } of planned) {
    for (const d of decisions) {
      if (d.action !== 'apply' || !d.receive?.origin) continue;
      const s = manifest.streams[d.index - 1];
      const o = d.receive.origin;
      const want = `${joinDataset(facts.target, o.dataset)}@${o.name}`;
      const others = (facts.poolSnapshots?.get(o.guid) ?? []).filter((n) => n !== want);
      if (others.length > 0) {
        return {
          message: `${joinDataset(facts.target, s.dataset)} is sent as a clone of ${want}, but pool ${pool} also holds that snapshot (guid ${o.guid}) as ${others[0]}, ` +
            'and this zfs cannot be told which one to use (no zfs recv -o origin=): it could become a clone of the wrong copy; nothing was received',
          dataset: joinDataset(facts.target, s.dataset),
        };
      }
    }
  }
  return null;
}

/** Whether any stream of these bundles is a clone's first (the facts then include the pool's snapshots). */
export function receivesClones(bundles: readonly BundleIn[]): boolean {
  return bundles.some((b) => b.manifest.streams.some((s) => s.from?.dataset !== undefined));
}

/** The deletion guard over a planned deletion on the projected target. */
export function deleteGuard(extras: DeletePlan, projected: Inventory, planned: readonly PlannedBundle[], limits: MaxDelete): DeleteGuard {
  const fresh = new Set<string>();
  for (const p of planned) {
    for (const d of p.decisions) {
      const s = p.manifest.streams[d.index - 1];
      if (d.action === 'apply' && s.creates.length > 0) fresh.add(s.dataset);
    }
  }
  const doomed = new Set(extras.datasets.map((d) => d.dataset));
  const quiet = projected.datasets.filter((d) => !fresh.has(d.path) && !doomed.has(d.path));
  const quietPaths = new Set(quiet.map((d) => d.path));
  const quietHeld = quiet.reduce((n, d) => n + d.snapshots.length, 0);
  const quietDestroyed = extras.snapshots.filter((x) => quietPaths.has(x.dataset)).length;
  const share = quietHeld === 0 ? 0 : (quietDestroyed / quietHeld) * 100;
  const exceeded = (limits.datasets !== null && extras.datasets.length > limits.datasets)
    || (limits.quietSharePercent !== null && share > limits.quietSharePercent);
  return {
    datasets: extras.datasets.length, datasetLimit: limits.datasets,
    quietDestroyed, quietHeld, quietSharePercent: Math.round(share * 10) / 10, quietShareLimit: limits.quietSharePercent,
    exceeded,
  };
}

/** One line: the counts, the limits, and the option that raises them. */
export function guardRefusal(g: DeleteGuard): string {
  const raise: string[] = [];
  if (g.datasetLimit !== null && g.datasets > g.datasetLimit) raise.push(`--max-delete ${g.datasets}`);
  if (g.quietShareLimit !== null && g.quietSharePercent > g.quietShareLimit) raise.push(`--max-delete ${Math.ceil(g.quietSharePercent)}%`);
  return `--delete would destroy ${g.datasets} dataset(s) (limit ${g.datasetLimit ?? 'none'}) and ${g.quietDestroyed} of the ${g.quietHeld} snapshots ` +
    `(${g.quietSharePercent}%, limit ${g.quietShareLimit === null ? 'none' : `${g.quietShareLimit}%`}) in datasets that receive nothing new in this run: ` +
    `refusing before anything is received or destroyed, in case the source was wiped or imported empty; ` +
    `check with --dry-run, then allow it with ${raise.join(' ')} (or --max-delete all)`;
}

/** `--max-delete` values: N (datasets), P% (share of quiet datasets' snapshots), or all; later ones override earlier ones. */
export function parseMaxDelete(values: readonly string[]): MaxDelete {
  const out: MaxDelete = { ...DEFAULT_MAX_DELETE };
  for (const v of values) {
    if (v === 'all') {
      out.datasets = null;
      out.quietSharePercent = null;
    } else if (/^\d{1,9}$/.test(v)) {
      out.datasets = Number(v);
    } else if (/^\d{1,3}(\.\d+)?%$/.test(v) && Number(v.slice(0, -1)) <= 100) {
      out.quietSharePercent = Number(v.slice(0, -1));
    } else {
      throw new ZferryError(`--max-delete ${JSON.stringify(v)}: expected a number of datasets (2), a share of snapshots (50%) or all`, {}, 2);
    }
  }
  return out;
}
