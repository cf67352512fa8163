/**
 * The sync planner: two inventories in, ordered send steps out. Pure: no zfs,
 * no I/O, no logging, so every case is a unit test over literal inventories.
 *
 * Snapshot identity is the guid (names are for people), order is createtxg
 * within one side. Datasets pair up by path relative to each inventory root.
 */
import type { Dataset, DatasetType, Guid, Inventory, RenameStep, SendStep, Snapshot, SnapshotRef, SnapshotRename, Step, StepFrom } from '../model.js';
import { createStep, joinDataset, renameStep } from '../model.js';
import type { CommonBase, Conflict, ConflictNames } from './conflicts.js';
import { noCommonSnapshot, targetAhead, typeMismatch } from './conflicts.js';
import { comparePaths, parentPath, showPath } from './paths.js';
import { ascending, formatRefs, ref } from './snapshots.js';
import { datasetInScope, snapshotInScope, type Scope } from './scope.js';
import { findRenames, snapshotRenames } from './renames.js';

export type { CreateStep, RenameStep, SendStep, Step, StepFrom } from '../model.js';

export interface Plan {
  /** Renames first (in the order they must run), then parents before children; within a dataset, in the order they must run. */
  steps: Step[];
  conflicts: Conflict[];
  /** Datasets whose target already holds the source's newest snapshot. */
  current: string[];
  skipped: { dataset: string; reason: string }[];
  /** Datasets below a conflict or a parent the target will not have. */
  blocked: { dataset: string; reason: string }[];
  /** Source snapshots the target lacks and will never get (older than the base, or skipped by a bookmark send). */
  unreachable: { dataset: string; snapshots: SnapshotRef[] }[];
  /** What the target holds that the source no longer has; nothing here is destroyed by the plan. */
  extras: { datasets: string[]; snapshots: { dataset: string; snapshots: SnapshotRef[] }[] };
  /** Source datasets left out of scope (top-most of each excluded subtree). */
  excluded: string[];
  /** Datasets re-seeded (`reseed`): the target's copy shares no snapshot with the source; the import replaces it only with --delete. */
  reseeded: { dataset: string; targetOnly: SnapshotRef[] }[];
  /** Datasets planned past target-only snapshots (`rollback`): the import rolls back to the common base only with --rollback. */
  rolledBack: { dataset: string; to: CommonBase; discards: SnapshotRef[] }[];
  /**
   * Clones seeded by this plan: sent as a clone of the origin (`clone`: the
   * target shares the space) or, with the reason, as a full stream.
   */
  clones: CloneNote[];
}

export interface CloneNote {
  dataset: string;
  /** The origin snapshot's full source name, e.g. `tank/base@s1`. */
  origin: string;
  sentAs: 'clone' | 'full';
  /** Why a clone goes as a full stream. */
  reason?: string;
}

/** A clone's origin resolved inside the source root. */
interface OriginRef extends SnapshotRef {
  /** Relative path of the origin's dataset. */
  dataset: string;
}

export interface PlanOptions {
  /** Datasets and snapshots left out (default: everything). */
  scope?: Scope;
  /** Plan a full stream for a dataset that shares no snapshot with the target, instead of a conflict. */
  reseed?: boolean;
  /** Plan from the common base past target-only newer snapshots, instead of a conflict. */
  rollback?: boolean;
}

/** What the planner concluded for one dataset that exists on both sides. */
interface DatasetOutcome {
  steps: SendStep[];
  conflict: Conflict | null;
  unreachable: SnapshotRef[];
  extras: SnapshotRef[];
  rolledBack?: { to: CommonBase; discards: SnapshotRef[] };
}

/**
 * Plans bringing `target` up to `source`. `target === null` is an empty
 * target (initial seed). Cost is linear in snapshots plus sorting datasets.
 */
export function planSync(source: Inventory, target: Inventory | null, opts: PlanOptions = {}): Plan {
  const plan: Plan = {
    steps: [],
    conflicts: [],
    current: [],
    skipped: [],
    blocked: [],
    unreachable: [],
    extras: { datasets: [], snapshots: [] },
    excluded: [],
    reseeded: [],
    rolledBack: [],
    clones: [],
  };
  const scope = opts.scope;
  const included = (s: Snapshot) => (scope ? snapshotInScope(s.name, scope) : true);
  const inScope = (path: string) => (scope ? datasetInScope(path, scope, source.root) : true);
  const sources = [...source.datasets].sort((a, b) => comparePaths(a.path, b.path)).filter((d) => {
    if (inScope(d.path)) return true;
    const parent = parentPath(d.path);
    if (parent === null || inScope(parent)) plan.excluded.push(d.path);
    return false;
  });
  // Datasets pair up by path on the target as it will be once the datasets
  // renamed on the source are renamed there too.
  const renamed = findRenames(sources, new Map(source.datasets.map((d) => [d.path, d])), target, inScope, source.root);
  const targetByPath = renamed.view;
  const snapshotRenamesAt = new Map<string, SnapshotRename[]>();
  const names = (path: string): ConflictNames => ({
    sourceName: joinDataset(source.root, path),
    targetName: target ? joinDataset(target.root, path) : path,
  });

  // Why a child may not be received under this dataset; absent = fine.
  const barrier = new Map<string, string>();
  // Snapshot-less, absent filesystems: created only if a descendant sends something.
  const pending = new Set<string>();
  const needed = new Set<string>();
  const stepsByPath = new Map<string, SendStep[]>();
  const reseeded = new Set<string>();

  // A clone seeded on the target goes as an incremental from its origin, so
  // the origin's dataset must be planned (and sent) before it.
  const origins = resolveOrigins(source, sources, inScope);
  const ordered = dependencyOrder(sources, origins);
  // Guids the target will hold in a dataset once the steps planned so far are received.
  const willHold = (path: string, guid: Guid): boolean =>
    (!reseeded.has(path) && (targetByPath.get(path)?.snapshots.some((s) => s.guid === guid) ?? false)) ||
    (stepsByPath.get(path)?.some((st) => st.creates.some((c) => c.guid === guid)) ?? false);

  for (const src of ordered) {
    const path = src.path;
    const parent = parentPath(path);
    const parentBarrier = parent === null ? undefined : barrier.get(parent);
    if (parentBarrier !== undefined) {
      plan.blocked.push({ dataset: path, reason: parentBarrier });
      barrier.set(path, `parent ${showPath(path)} is blocked (${parentBarrier})`);
      continue;
    }
    // An empty parent a rename would make (-p) is not there yet when the
    // source has snapshots of it: it arrives by its own full stream, which the
    // rename then waits for (orderSteps).
    const tgt = renamed.madeParents.has(path) ? undefined : targetByPath.get(path);

    const taken = renamed.conflicts.get(path);
    if (taken) {
      plan.conflicts.push(taken);
      barrier.set(path, `parent ${showPath(path)} is in conflict (${taken.kind})`);
      continue;
    }
    if (tgt && tgt.type !== src.type) {
      const conflict = typeConflict(names(path), src, tgt);
      plan.conflicts.push(conflict);
      barrier.set(path, `parent ${showPath(path)} is in conflict (${conflict.kind})`);
      continue;
    }

    if (!src.snapshots.some(included)) {
      // An empty parent a rename makes (-p): nothing more to do for it.
      if (renamed.madeParents.has(path)) continue;
      // Only bookmarks left on the source, and the target moved on past the
      // newest one both share: the two have diverged (zrepl's planner says
      // the same), which is a conflict to show, not a dataset to skip.
      const diverged = tgt && src.bookmarks.length > 0 ? bookmarkOnlyDivergence(names(path), src, tgt, included) : null;
      if (diverged) {
        plan.conflicts.push(diverged);
        barrier.set(path, `parent ${showPath(path)} is in conflict (${diverged.kind})`);
      } else if (!tgt && src.type === 'filesystem') {
        pending.add(path);
      } else {
        plan.skipped.push({ dataset: path, reason: 'no snapshot to send' });
        if (!tgt) barrier.set(path, `parent ${showPath(path)} is not on the target and has no snapshot to send`);
      }
      continue;
    }

    let outcome: DatasetOutcome;
    if (!tgt || tgt.snapshots.length === 0) {
      const origin = src.origin !== undefined ? cloneOrigin(src, origins.get(path), Boolean(tgt), willHold) : null;
      if (origin && src.origin !== undefined) {
        plan.clones.push({ dataset: path, origin: src.origin, ...origin.note });
      }
      const steps = origin?.from ? cloneSteps(src, origin.from, included) : seedSteps(src, Boolean(tgt), included);
      outcome = { steps, conflict: null, unreachable: [], extras: [] };
    } else {
      outcome = planExisting(names(path), src, tgt, included, opts.rollback === true);
    }
    if (outcome.conflict?.kind === 'no-common-snapshot' && opts.reseed) {
      reseeded.add(path);
      plan.reseeded.push({ dataset: path, targetOnly: outcome.conflict.targetOnly });
      outcome = { steps: seedSteps(src, true, included), conflict: null, unreachable: [], extras: [] };
    }
    if (outcome.rolledBack) plan.rolledBack.push({ dataset: path, ...outcome.rolledBack });

    if (!outcome.conflict && tgt && !reseeded.has(path)) {
      const r = snapshotRenames(src, tgt, included);
      if (r.length > 0) snapshotRenamesAt.set(path, r);
    }
    if (outcome.conflict) {
      plan.conflicts.push(outcome.conflict);
      barrier.set(path, `parent ${showPath(path)} is in conflict (${outcome.conflict.kind})`);
    } else if (outcome.steps.length === 0) {
      plan.current.push(path);
    } else {
      stepsByPath.set(path, outcome.steps);
      for (let p = parent; p !== null && pending.has(p) && !needed.has(p); p = parentPath(p)) needed.add(p);
    }
    if (outcome.unreachable.length > 0) plan.unreachable.push({ dataset: path, snapshots: outcome.unreachable });
    if (outcome.extras.length > 0) plan.extras.snapshots.push({ dataset: path, snapshots: outcome.extras });
  }

  // A parent that arrives by a stream needs its own parents first: the empty
  // ones a rename would have made (-p) are created before it instead.
  for (const path of stepsByPath.keys()) {
    if (!renamed.madeParents.has(path)) continue;
    for (let p = parentPath(path); p !== null && renamed.madeParents.has(p) && !stepsByPath.has(p); p = parentPath(p)) needed.add(p);
  }
  const groups: StepGroup[] = [];
  for (const src of ordered) {
    const path = src.path;
    const steps: Step[] = needed.has(path) ? [createStep(path)] : [];
    steps.push(...(stepsByPath.get(path) ?? []));
    const origin = origins.get(path);
    if (steps.length > 0) groups.push({ path, steps, origin: origin && 'dataset' in origin ? origin.dataset : null });
  }
  const renameList = renameSteps(renamed.renames, snapshotRenamesAt, new Map(sources.map((d) => [d.path, d.type])));
  plan.steps.push(...orderSteps(renameList, groups, renamed.madeParents));
  for (const path of pending) {
    if (!needed.has(path)) plan.skipped.push({ dataset: path, reason: 'no snapshot to send' });
  }
  plan.skipped.sort((a, b) => comparePaths(a.dataset, b.dataset));

  const sourcePaths = new Set(sources.map((d) => d.path));
  plan.extras.datasets = [...targetByPath.keys()].filter((p) => !sourcePaths.has(p) && inScope(p)).sort(comparePaths);
  return plan;
}

/** The create step and streams of one dataset, in the order they run. */
interface StepGroup {
  path: string;
  steps: Step[];
  /** The dataset of a clone's origin, whose streams come first. */
  origin: string | null;
}

/** `path` is `at` or below it. */
const within = (path: string, at: string) => at === '' || path === at || path.startsWith(at + '/');

/**
 * Renames first and datasets parents first, as far as each one's needs allow:
 * a rename waits for the stream (or create step) of every new parent on its
 * path that arrives in this bundle, since `zfs rename -p` would make that
 * parent empty and its full stream would then find it taken. A dataset's
 * steps wait for its parents' and its origin's steps, and for each rename
 * that moves it, moves a dataset to or from its path, or makes one of its
 * parents. Pure; linear in steps times renames.
 */
export function orderSteps(renames: readonly RenameStep[], groups: readonly StepGroup[], madeParents: ReadonlySet<string>): Step[] {
  const groupAt = new Map(groups.map((g, i) => [g.path, i]));
  const ancestors = (path: string): string[] => {
    const out: string[] = [];
    for (let p = parentPath(path); p !== null; p = parentPath(p)) out.push(p);
    return out;
  };
  // Each rename's new parents that arrive by their own steps, and those the rename itself makes.
  const waitsFor = renames.map((r) => ancestors(r.dataset).filter((p) => madeParents.has(p) && groupAt.has(p)).map((p) => groupAt.get(p)!));
  const makes = renames.map((r) => ancestors(r.dataset).filter((p) => madeParents.has(p) && !groupAt.has(p)));
  const groupNeeds = groups.map((g) => {
    const needs = { groups: [] as number[], renames: [] as number[] };
    for (const p of [...ancestors(g.path), ...(g.origin !== null ? [g.origin] : [])]) {
      const i = groupAt.get(p);
      if (i !== undefined) needs.groups.push(i);
    }
    renames.forEach((r, i) => {
      // Snapshot renames alone touch only their own dataset.
      const touches = r.renamedFrom === r.dataset ? g.path === r.dataset
        : within(g.path, r.dataset) || within(g.path, r.renamedFrom) || makes[i].some((m) => within(g.path, m));
      if (touches) needs.renames.push(i);
    });
    return needs;
  });

  const out: Step[] = [];
  const renameDone = renames.map(() => false);
  const groupDone = groups.map(() => false);
  let nextRename = 0;
  for (let left = renames.length + groups.length; left > 0; left--) {
    // Renames keep their order among themselves: each names the paths of its moment.
    if (nextRename < renames.length && waitsFor[nextRename].every((i) => groupDone[i])) {
      out.push(renames[nextRename]);
      renameDone[nextRename++] = true;
      continue;
    }
    let g = groups.findIndex((_, i) => !groupDone[i] && groupNeeds[i].groups.every((j) => groupDone[j]) && groupNeeds[i].renames.every((j) => renameDone[j]));
    // A cycle only a contrived layout makes: fall back to renames first, the order zfs tolerates most often.
    if (g < 0 && nextRename < renames.length) {
      out.push(renames[nextRename]);
      renameDone[nextRename++] = true;
      continue;
    }
    if (g < 0) g = groupDone.indexOf(false);
    out.push(...groups[g].steps);
    groupDone[g] = true;
  }
  return out;
}

/**
 * The rename steps: datasets in the order found (each
 * names the paths of its moment), each with its own snapshot renames; then
 * snapshot renames of datasets that stay where they are, in path order.
 */
function renameSteps(
  renames: readonly { dataset: string; renamedFrom: string; match: SnapshotRef }[],
  snapshotsAt: Map<string, SnapshotRename[]>,
  typeOf: Map<string, DatasetType>,
): RenameStep[] {
  const steps: RenameStep[] = [];
  const done = new Set<string>();
  const lastMove = new Map(renames.map((r) => [r.dataset, r]));
  for (const r of renames) {
    // A dataset moved twice gets its snapshot renames once, with its last move.
    const last = lastMove.get(r.dataset) === r;
    steps.push(renameStep(r.dataset, typeOf.get(r.dataset) ?? 'filesystem', r.renamedFrom, r.match, last ? snapshotsAt.get(r.dataset) ?? [] : []));
    if (last) done.add(r.dataset);
  }
  for (const [path, snaps] of [...snapshotsAt].sort((a, b) => comparePaths(a[0], b[0]))) {
    if (done.has(path)) continue;
    const first = snaps[0];
    steps.push(renameStep(path, typeOf.get(path) ?? 'filesystem', path, { name: first.from, guid: first.guid }, snaps));
  }
  return steps;
}

/**
 * Each in-scope clone's origin as a source dataset path and snapshot, or why
 * it cannot be sent as a clone. An origin outside the source root, in an
 * excluded dataset, or missing from the inventory cannot.
 */
function resolveOrigins(
  source: Inventory,
  sources: readonly Dataset[],
  inScope: (path: string) => boolean,
): Map<string, OriginRef | { reason: string }> {
  const byPath = new Map(sources.map((d) => [d.path, d]));
  const out = new Map<string, OriginRef | { reason: string }>();
  for (const d of sources) {
    if (d.origin === undefined) continue;
    const at = d.origin.lastIndexOf('@');
    const dsName = d.origin.slice(0, at);
    const name = d.origin.slice(at + 1);
    const rel = dsName === source.root ? '' : dsName.startsWith(source.root + '/') ? dsName.slice(source.root.length + 1) : null;
    if (at < 0 || rel === null) {
      out.set(d.path, { reason: `its origin ${d.origin} lies outside ${source.root}` });
      continue;
    }
    const originDs = byPath.get(rel);
    if (!originDs || !inScope(rel)) {
      out.set(d.path, { reason: `its origin's dataset ${dsName} is out of the sync's scope` });
      continue;
    }
    const snap = originDs.snapshots.find((s) => s.name === name);
    if (!snap) {
      out.set(d.path, { reason: `its origin ${d.origin} is not in the source inventory` });
      continue;
    }
    out.set(d.path, { dataset: rel, name, guid: snap.guid });
  }
  return out;
}

/**
 * The datasets in path order, except that a clone comes after its origin's
 * dataset (and that dataset's parents); parents always come before children.
 * An origin edge that would close a cycle (possible after `zfs rename` moved
 * an origin below its clone) is dropped and reported in `origins`, so that
 * clone goes as a full stream.
 */
function dependencyOrder(sources: readonly Dataset[], origins: Map<string, OriginRef | { reason: string }>): Dataset[] {
  const byPath = new Map(sources.map((d) => [d.path, d]));
  for (;;) {
    const order: Dataset[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    // The edge each dataset on the stack was reached by: its parent's or a clone's origin.
    const stack: { path: string; viaOriginOf: string | null }[] = [];
    let cut: string | null = null;
    const visit = (path: string, viaOriginOf: string | null): boolean => {
      const st = state.get(path);
      if (st === 'done') return true;
      if (st === 'visiting') {
        // The cycle is the stack from `path` up; it holds at least one origin edge (parent edges alone cannot loop).
        const from = stack.findIndex((e) => e.path === path);
        const edges = [...stack.slice(from + 1).map((e) => e.viaOriginOf), viaOriginOf].filter((c): c is string => c !== null);
        cut = edges[edges.length - 1];
        return false;
      }
      state.set(path, 'visiting');
      stack.push({ path, viaOriginOf });
      const parent = parentPath(path);
      if (parent !== null && byPath.has(parent) && !visit(parent, null)) return false;
      const origin = origins.get(path);
      if (origin && 'dataset' in origin && !visit(origin.dataset, path)) return false;
      stack.pop();
      state.set(path, 'done');
      order.push(byPath.get(path)!);
      return true;
    };
    let ok = true;
    for (const d of sources) if (!(ok = visit(d.path, null))) break;
    if (ok) return order;
    origins.set(cut!, { reason: 'its origin lies below it (an origin renamed under its clone)' });
  }
}

/**
 * What a clone absent (or empty) on the target is sent as. `from` set: an
 * incremental from the origin, which the target will hold by then; null: a
 * full stream, with the reason in the note.
 */
function cloneOrigin(
  src: Dataset,
  origin: OriginRef | { reason: string } | undefined,
  targetHasDataset: boolean,
  willHold: (path: string, guid: Guid) => boolean,
): { from: OriginRef | null; note: Pick<CloneNote, 'sentAs' | 'reason'> } {
  const full = (reason: string) => ({ from: null, note: { sentAs: 'full' as const, reason } });
  if (origin === undefined) return full('its origin could not be resolved');
  if (!('dataset' in origin)) return full(origin.reason);
  if (targetHasDataset) return full('the target already has an empty dataset there, which only a full stream (-F) replaces');
  if (!willHold(origin.dataset, origin.guid)) {
    return full(`the target will not hold its origin ${src.origin} (guid ${origin.guid})`);
  }
  return { from: origin, note: { sentAs: 'clone' } };
}

/** A clone absent on the target: `-i ORIGIN clone@first` (received as a clone of the target's copy of ORIGIN), then the rest. */
function cloneSteps(src: Dataset, origin: OriginRef, included: (s: Snapshot) => boolean): SendStep[] {
  const snaps = ascending(src.snapshots);
  const first = snaps.findIndex(included);
  const oldest = ref(snaps[first]);
  const step: SendStep = {
    kind: 'incremental', dataset: src.path, type: src.type,
    from: { name: origin.name, guid: origin.guid, dataset: origin.dataset },
    to: oldest, intermediates: false, creates: [oldest], force: false,
  };
  return [step, ...chainSteps(src, oldest, snaps.slice(first + 1), included)];
}

/** Absent (or empty) on the target: a full send of the oldest included snapshot, then the rest. */
function seedSteps(src: Dataset, force: boolean, included: (s: Snapshot) => boolean): SendStep[] {
  const snaps = ascending(src.snapshots);
  const first = snaps.findIndex(included);
  const oldest = ref(snaps[first]);
  const full: SendStep = { kind: 'full', dataset: src.path, type: src.type, from: null, to: oldest, intermediates: false, creates: [oldest], force };
  return [full, ...chainSteps(src, oldest, snaps.slice(first + 1), included)];
}

/**
 * Incremental steps from `base` through the included snapshots of `newer`
 * (ascending). `-I` sends every snapshot in between, excluded ones too, so a
 * run of included snapshots goes as one `-I`, and an excluded snapshot in
 * between is stepped over with a `-i` to the next included one. A bookmark
 * base cannot start `-I`: the first step from it is always `-i`.
 */
export function chainSteps(
  src: Pick<Dataset, 'path' | 'type'>,
  base: SnapshotRef & { bookmark?: boolean },
  newer: readonly Snapshot[],
  included: (s: Snapshot) => boolean,
): SendStep[] {
  const steps: SendStep[] = [];
  let from: SnapshotRef & { bookmark?: boolean } = base;
  let run: SnapshotRef[] = [];
  let gap = Boolean(base.bookmark);
  const step = (to: SnapshotRef, creates: SnapshotRef[], intermediates: boolean): SendStep => ({
    kind: 'incremental', dataset: src.path, type: src.type, from, to, intermediates, creates, force: false,
  });
  const flush = () => {
    if (run.length === 0) return;
    const to = run[run.length - 1];
    steps.push(step(to, run, true));
    from = to;
    run = [];
  };
  for (const s of newer) {
    if (!included(s)) {
      flush();
      gap = true;
      continue;
    }
    if (gap) {
      steps.push(step(ref(s), [ref(s)], false));
      from = ref(s);
      gap = false;
    } else {
      run.push(ref(s));
    }
  }
  flush();
  return steps;
}

/** Present on both sides with target snapshots: find the newest common base by guid. */
/**
 * A source dataset holding only bookmarks (its snapshots rotated away) whose
 * target has snapshots newer than the newest guid both share: diverged. Null
 * where the target is not ahead (nothing to send, nothing lost).
 */
function bookmarkOnlyDivergence(names: ConflictNames, src: Dataset, tgt: Dataset, included: (s: Snapshot) => boolean): Conflict | null {
  const outcome = planExisting(names, src, tgt, included, false);
  if (outcome.conflict?.kind !== 'target-ahead') return null;
  const c = outcome.conflict;
  const message =
    `${names.targetName}: diverged: target has snapshots newer than the last common #${c.common.name} that ${names.sourceName} lacks ` +
    `(target-only: ${formatRefs(c.targetNewer)}; the source holds only bookmarks, so there is nothing to send); ` +
    `take a new snapshot of ${names.sourceName} and run again with --rollback to discard ${formatRefs(c.targetNewer)}, or keep the target as it is`;
  return { ...c, message };
}

function planExisting(
  names: ConflictNames,
  src: Dataset,
  tgt: Dataset,
  included: (s: Snapshot) => boolean,
  rollback: boolean,
): DatasetOutcome {
  const S = ascending(src.snapshots);
  const T = ascending(tgt.snapshots);
  const sourceIndex = new Map<Guid, number>();
  S.forEach((s, i) => sourceIndex.set(s.guid, i));
  const bookmarkByGuid = new Map<Guid, (typeof src.bookmarks)[number]>();
  for (const b of src.bookmarks) bookmarkByGuid.set(b.guid, b);

  // Walk the target from its newest: the first guid the source still knows,
  // as a snapshot (preferred) or a bookmark, is the newest common base.
  let ti = T.length - 1;
  while (ti >= 0 && !sourceIndex.has(T[ti].guid) && !bookmarkByGuid.has(T[ti].guid)) ti--;

  const targetOnly = T.filter((t) => !sourceIndex.has(t.guid)).map(ref);
  if (ti < 0) {
    return {
      steps: [],
      conflict: noCommonSnapshot(names, { dataset: src.path, source: S.map(ref), target: T.map(ref), targetOnly }),
      unreachable: [],
      extras: [],
    };
  }

  const common = T[ti];
  const si = sourceIndex.get(common.guid);
  let base: CommonBase;
  let older: readonly Snapshot[];
  let newer: readonly Snapshot[];
  if (si !== undefined) {
    base = ref(S[si]);
    older = S.slice(0, si);
    newer = S.slice(si + 1);
  } else {
    const bm = bookmarkByGuid.get(common.guid)!;
    base = { ...ref(bm), bookmark: true };
    const txg = BigInt(bm.createtxg);
    let cut = 0;
    while (cut < S.length && BigInt(S[cut].createtxg) <= txg) cut++;
    older = S.slice(0, cut);
    newer = S.slice(cut);
  }

  const targetGuids = new Set(T.map((t) => t.guid));
  const unreachable = older.filter((s) => !targetGuids.has(s.guid) && included(s)).map(ref);
  const extras = T.slice(0, ti).filter((t) => !sourceIndex.has(t.guid)).map(ref);

  // Everything after the common base on the target is target-only by construction.
  const targetNewer = T.slice(ti + 1).map(ref);
  let rolledBack: DatasetOutcome['rolledBack'];
  if (targetNewer.length > 0) {
    if (!rollback) {
      const conflict = targetAhead(names, {
        dataset: src.path,
        source: S.map(ref),
        target: T.map(ref),
        targetOnly,
        common: base,
        targetNewer,
        sourceNewer: newer.filter(included).map(ref),
      });
      return { steps: [], conflict, unreachable, extras };
    }
    rolledBack = { to: base, discards: targetNewer };
  }
  const steps = chainSteps(src, base, newer, included);
  return { steps, conflict: null, unreachable, extras, ...(rolledBack ? { rolledBack } : {}) };
}

function typeConflict(names: ConflictNames, src: Dataset, tgt: Dataset): Conflict {
  const S = ascending(src.snapshots);
  const T = ascending(tgt.snapshots);
  const sourceGuids = new Set(S.map((s) => s.guid));
  return typeMismatch(names, {
    dataset: src.path,
    source: S.map(ref),
    target: T.map(ref),
    common: null,
    targetOnly: T.filter((t) => !sourceGuids.has(t.guid)).map(ref),
    sourceType: src.type,
    targetType: tgt.type,
  });
}

/** One human line, e.g. "a/b  incremental -I @s1 → @s9 (8 snapshots)". */
export function describeStep(step: Step): string {
  const where = showPath(step.dataset);
  if (step.kind === 'create') return `${where}  create filesystem`;
  if (step.kind === 'rename') return describeRename(step);
  if (step.kind === 'full') {
    return `${where}  full @${step.to.name}${step.force ? ' (-F: received over the dataset the target already has)' : ''}`;
  }
  const n = step.creates.length;
  if (step.from?.dataset !== undefined) {
    return `${where}  clone of ${showPath(step.from.dataset)}@${step.from.name}: incremental -i → @${step.to.name} (${n} snapshot${n === 1 ? '' : 's'})`;
  }
  const from = step.from ? `${step.from.bookmark ? '#' : '@'}${step.from.name}` : '?';
  return `${where}  incremental ${step.intermediates ? '-I' : '-i'} ${from} → @${step.to.name} (${n} snapshot${n === 1 ? '' : 's'})`;
}

/** "a2  rename from a (found by @s3's guid), @old → @new": no stream. */
export function describeRename(step: RenameStep): string {
  const where = showPath(step.dataset);
  const parts: string[] = [];
  if (step.renamedFrom !== step.dataset) parts.push(`rename from ${showPath(step.renamedFrom)} (the target's copy, found by @${step.match.name}'s guid; no stream)`);
  const snaps = step.snapshots.map((r) => `@${r.from} → @${r.to}`);
  if (snaps.length > 0) parts.push(`rename snapshot${snaps.length === 1 ? '' : 's'} ${snaps.length <= 6 ? snaps.join(', ') : `${snaps.slice(0, 3).join(', ')}, … (${snaps.length})`}`);
  return `${where}  ${parts.join('; ')}`;
}
