/**
 * Which steps may run side by side. Most of a many-dataset round's time is
 * per stream, not per byte: a `zfs recv` or `zfs send` process to start and
 * a txg to wait for. Receives into unrelated datasets do not touch each
 * other, and ZFS commits concurrent callers' work in the same txg, so they
 * can overlap; everything else keeps the plan's order. (Sends only read the
 * source: export needs no dependencies, only the lane count.)
 */
import { parentPath } from './paths.js';

/** What the scheduling needs to know of one step, in plan order. */
export interface LaneStep {
  /** The dataset the step changes, relative to the target ('' is the target itself). */
  dataset: string;
  /**
   * Runs with nothing beside it, after every step before it and before every
   * step after it: a rename (it moves other datasets' paths), a clone (its
   * origin is another dataset's), a stream in parts or a large one (two
   * large reads at once make a disk seek between them, and one stream keeps
   * the cores busy), a rollback or a replaced snapshot (they destroy).
   */
  alone: boolean;
}

/**
 * For each step, the earlier steps it must wait for: the last earlier step on
 * its own dataset, on each of its ancestors and on each of its descendants
 * (a child cannot be received before its parent exists, and a parent's
 * stream is never received while a child's is). Waiting for the last step of
 * a dataset waits for all of them, since those wait for each other.
 */
export function laneDependencies(steps: readonly LaneStep[]): number[][] {
  const last = new Map<string, number>();
  // Every dataset seen so far below each path, so a parent's step finds its children's without a scan of all.
  const below = new Map<string, Set<string>>();
  return steps.map((step, i) => {
    const p = step.dataset;
    const deps = new Set<number>();
    const mine = last.get(p);
    if (mine !== undefined) deps.add(mine);
    for (let up = parentPath(p); up !== null; up = parentPath(up)) {
      const k = last.get(up);
      if (k !== undefined) deps.add(k);
    }
    for (const d of below.get(p) ?? []) deps.add(last.get(d)!);
    last.set(p, i);
    for (let up = parentPath(p); up !== null; up = parentPath(up)) {
      let set = below.get(up);
      if (!set) below.set(up, (set = new Set()));
      set.add(p);
    }
    return [...deps].sort((a, b) => a - b);
  });
}

/** A stream larger than this is received alone: beyond it the bytes, not the process, are the cost. */
export const LANE_MAX_BYTES = 32 * 1024 * 1024;

/**
 * Receives side by side at most. The 402 small streams of 201 datasets into
 * zfs-fuse (paired runs, medians): one at a time 32.8 s, two 32.5 s, four
 * 26.0 s, eight 21.8 s; the time is txg waits, not CPU (14–17 CPU seconds
 * in every case), and eight lanes' buffers cost under 30 MB.
 */
export const RECEIVE_LANES = 8;

/**
 * Sends side by side at most (export), fewer when --max-memory holds fewer
 * zstd contexts at the level. The 402 small streams from zfs-fuse (medians of
 * 3, rotated): one at a time 30.7 s, four 22.1 s, eight 21.1 s. Sends only
 * read the source, so none waits for another; the main thread (a fork per
 * `zfs send`, compressing the small streams) is then the limit on two cores.
 */
export const SEND_LANES = 8;

/** The scheduling facts of one applied step (see LaneStep.alone). */
export function laneStep(
  stream: { dataset: string; kind: string; storedBytes: number; from?: { name: string; dataset?: string } | null },
  decision: { receive?: { force: boolean; origin?: unknown }; rollbackTo?: unknown; replaces?: readonly unknown[] },
  inParts: boolean,
): LaneStep {
  const alone = stream.kind === 'rename' || inParts || stream.storedBytes > LANE_MAX_BYTES
    || stream.from?.dataset !== undefined || decision.receive?.origin !== undefined || decision.receive?.force === true
    || decision.rollbackTo !== undefined || (decision.replaces?.length ?? 0) > 0;
  return { dataset: stream.dataset, alone };
}
