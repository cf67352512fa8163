/**
 * The sync planner: two inventories in, ordered send steps out. Pure: no zfs,
 * no I/O, no logging, so every case is a unit test over literal inventories.
 *
 * Snapshot identity is the guid (names are for people), order is createtxg
 * within one side. Datasets pair up by path relative to each inventory root.
 */
import type { Dataset, DatasetType, Guid, Inventory, Snapshot, SnapshotRef } from '../model.js';
import { joinDataset } from '../model.js';
import type { CommonBase, Conflict, ConflictNames } from './conflicts.js';
import { noCommonSnapshot, targetAhead, typeMismatch } from './conflicts.js';
import { comparePaths, parentPath, showPath } from './paths.js';
import { ascending, ref } from './snapshots.js';

export interface SendStep {
  kind: 'full' | 'incremental';
  /** Relative path of the dataset. */
  dataset: string;
  type: DatasetType;
  /** Incremental base: a source snapshot, or a source bookmark (`bookmark: true`). */
  from: (SnapshotRef & { bookmark?: boolean }) | null;
  to: SnapshotRef;
  /** `-I` (every snapshot between from and to) rather than `-i`. */
  intermediates: boolean;
  /** Snapshots this step creates on the target, ascending. */
  creates: SnapshotRef[];
  /** The target dataset exists without snapshots: the receive needs `-F`. */
  force: boolean;
}

/** A snapshot-less source filesystem made on the target so its children have a parent. */
export interface CreateStep {
  kind: 'create';
  dataset: string;
  type: 'filesystem';
}

export type Step = SendStep | CreateStep;

export interface Plan {
  /** Parents before children; within a dataset, in the order they must run. */
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
}

/** Reserved for options (rollback, excludes); the planner reads none yet. */
export type PlanOptions = Record<string, never>;

/** What the planner concluded for one dataset that exists on both sides. */
interface DatasetOutcome {
  steps: SendStep[];
  conflict: Conflict | null;
  unreachable: SnapshotRef[];
  extras: SnapshotRef[];
}

/**
 * Plans bringing `target` up to `source`. `target === null` is an empty
 * target (initial seed). Cost is linear in snapshots plus sorting datasets.
 */
export function planSync(source: Inventory, target: Inventory | null, _opts: PlanOptions = {}): Plan {
  const plan: Plan = {
    steps: [],
    conflicts: [],
    current: [],
    skipped: [],
    blocked: [],
    unreachable: [],
    extras: { datasets: [], snapshots: [] },
  };
  const targetByPath = new Map<string, Dataset>();
  for (const d of target?.datasets ?? []) targetByPath.set(d.path, d);
  const sources = [...source.datasets].sort((a, b) => comparePaths(a.path, b.path));
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

  for (const src of sources) {
    const path = src.path;
    const parent = parentPath(path);
    const parentBarrier = parent === null ? undefined : barrier.get(parent);
    if (parentBarrier !== undefined) {
      plan.blocked.push({ dataset: path, reason: parentBarrier });
      barrier.set(path, `parent ${showPath(path)} is blocked (${parentBarrier})`);
      continue;
    }
    const tgt = targetByPath.get(path);

    if (tgt && tgt.type !== src.type) {
      const conflict = typeConflict(names(path), src, tgt);
      plan.conflicts.push(conflict);
      barrier.set(path, `parent ${showPath(path)} is in conflict (${conflict.kind})`);
      continue;
    }

    if (src.snapshots.length === 0) {
      if (!tgt && src.type === 'filesystem') {
        pending.add(path);
      } else {
        plan.skipped.push({ dataset: path, reason: 'no snapshot to send' });
        if (!tgt) barrier.set(path, `parent ${showPath(path)} is not on the target and has no snapshot to send`);
      }
      continue;
    }

    const outcome =
      !tgt || tgt.snapshots.length === 0
        ? { steps: seedSteps(src, Boolean(tgt)), conflict: null, unreachable: [], extras: [] }
        : planExisting(names(path), src, tgt);

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

  for (const src of sources) {
    const path = src.path;
    if (needed.has(path)) plan.steps.push({ kind: 'create', dataset: path, type: 'filesystem' });
    const steps = stepsByPath.get(path);
    if (steps) plan.steps.push(...steps);
  }
  for (const path of pending) {
    if (!needed.has(path)) plan.skipped.push({ dataset: path, reason: 'no snapshot to send' });
  }
  plan.skipped.sort((a, b) => comparePaths(a.dataset, b.dataset));

  const sourcePaths = new Set(sources.map((d) => d.path));
  plan.extras.datasets = [...targetByPath.keys()].filter((p) => !sourcePaths.has(p)).sort(comparePaths);
  return plan;
}

/** Absent (or empty) on the target: a full send of the oldest, then one `-I` to the newest. */
function seedSteps(src: Dataset, force: boolean): SendStep[] {
  const snaps = ascending(src.snapshots);
  const oldest = ref(snaps[0]);
  const steps: SendStep[] = [
    { kind: 'full', dataset: src.path, type: src.type, from: null, to: oldest, intermediates: false, creates: [oldest], force },
  ];
  if (snaps.length > 1) {
    const rest = snaps.slice(1).map(ref);
    steps.push({
      kind: 'incremental',
      dataset: src.path,
      type: src.type,
      from: oldest,
      to: rest[rest.length - 1],
      intermediates: true,
      creates: rest,
      force: false,
    });
  }
  return steps;
}

/** Present on both sides with target snapshots: find the newest common base by guid. */
function planExisting(names: ConflictNames, src: Dataset, tgt: Dataset): DatasetOutcome {
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
  const unreachable = older.filter((s) => !targetGuids.has(s.guid)).map(ref);
  const extras = T.slice(0, ti).filter((t) => !sourceIndex.has(t.guid)).map(ref);

  // Everything after the common base on the target is target-only by construction.
  const targetNewer = T.slice(ti + 1).map(ref);
  if (targetNewer.length > 0) {
    const conflict = targetAhead(names, {
      dataset: src.path,
      source: S.map(ref),
      target: T.map(ref),
      targetOnly,
      common: base,
      targetNewer,
      sourceNewer: newer.map(ref),
    });
    return { steps: [], conflict, unreachable, extras };
  }
  if (newer.length === 0) return { steps: [], conflict: null, unreachable, extras };

  const to = ref(newer[newer.length - 1]);
  if (base.bookmark) {
    // `-I` cannot start at a bookmark: one `-i` to the newest, skipping the rest.
    unreachable.push(...newer.slice(0, -1).map(ref));
    const step: SendStep = {
      kind: 'incremental', dataset: src.path, type: src.type, from: base, to, intermediates: false, creates: [to], force: false,
    };
    return { steps: [step], conflict: null, unreachable, extras };
  }
  const step: SendStep = {
    kind: 'incremental', dataset: src.path, type: src.type, from: base, to, intermediates: true, creates: newer.map(ref), force: false,
  };
  return { steps: [step], conflict: null, unreachable, extras };
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
  if (step.kind === 'full') {
    return `${where}  full @${step.to.name}${step.force ? ' (-F: replaces the empty target dataset)' : ''}`;
  }
  const n = step.creates.length;
  const from = step.from ? `${step.from.bookmark ? '#' : '@'}${step.from.name}` : '?';
  return `${where}  incremental ${step.intermediates ? '-I' : '-i'} ${from} → @${step.to.name} (${n} snapshot${n === 1 ? '' : 's'})`;
}
