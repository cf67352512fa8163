/**
 * Which bundle speaks for the source's current state (the view `--delete`
 * mirrors), and in which order bundles apply. Pure: manifests' inventories
 * and the target's facts in, a choice or a typed refusal out.
 *
 * A bundle's own `createdAt` decides nothing: anyone who can edit an unsigned
 * manifest can date it 2099. The source's own clock is the pool's txg, which
 * only grows: a bundle is as new as the newest createtxg in its inventory
 * ("as of" txg). A bundle may speak for the source only when
 * - its inventory holds a snapshot at all;
 * - it is anchored: each in-scope dataset's newest snapshot it lists will be
 *   on the target once the import is done (by guid), so its view is at least
 *   as new as what it delivers;
 * - it is not older than what the target already received from that source:
 *   the as-of txg recorded on the target by the last import
 *   (`zferry:source-txg`), or, on a target that has no record yet, no dataset
 *   on the target will hold a snapshot the bundle does not know after the
 *   newest one it does know there.
 */
import type { Guid, Inventory } from '../model.js';
import { joinDataset } from '../model.js';
import { datasetInScope, snapshotInScope, type Scope } from './scope.js';
import { ascending } from './snapshots.js';

/** User property on the target root: the as-of txg of the newest source view applied. */
export const SOURCE_TXG_PROPERTY = 'zferry:source-txg';

export interface ViewCandidate {
  /** Where the bundle is, for messages. */
  label: string;
  inventory: Inventory;
  scope: Scope;
}

/** The newest createtxg in an inventory, or null when it lists no snapshot. */
export function asOfTxg(inv: Inventory): bigint | null {
  let best: bigint | null = null;
  for (const d of inv.datasets) {
    for (const s of d.snapshots) {
      const t = BigInt(s.createtxg);
      if (best === null || t > best) best = t;
    }
  }
  return best;
}

/**
 * Apply order: by the source's clock (as-of txg), then by folder name, never
 * by createdAt. Bundles planned on top of each other follow from it, since a
 * later bundle lists newer snapshots; a lying txg only changes the order in
 * which the pre-flight checks streams' bases, which it does for each anyway.
 */
export function lineageOrder<T extends { dir: string; inventory: Inventory }>(bundles: readonly T[]): T[] {
  const key = (b: T) => asOfTxg(b.inventory) ?? -1n;
  return [...bundles].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0;
  });
}

/**
 * `unanchored`: in-scope datasets whose newest listed snapshot the target will
 * not hold after this import (its stream is in a bundle still to come: a
 * stream left for the next disk by --max-size, or deferred). The view does not
 * speak for them this round: --delete leaves them (and what is below them)
 * alone, and their snapshots do not count towards the as-of txg.
 */
export type ViewVerdict = { ok: true; asOf: bigint; unanchored: string[] } | { ok: false; reason: string };

/**
 * Whether `c` may speak for the source. `after` is the target as the import
 * will leave it (rollbacks and receives applied; null when it will not exist),
 * `recordedTxg` the target's SOURCE_TXG_PROPERTY (null when unset).
 */
export function judgeView(c: ViewCandidate, after: Inventory | null, recordedTxg: bigint | null): ViewVerdict {
  const listedAsOf = asOfTxg(c.inventory);
  if (listedAsOf === null) return { ok: false, reason: `${c.label} lists no snapshot of the source` };
  const root = after?.root ?? '';
  const onTarget = new Map<string, Set<Guid>>((after?.datasets ?? []).map((d) => [d.path, new Set(d.snapshots.map((s) => s.guid))]));
  // Anchored datasets: the newest snapshot listed will be on the target. The
  // view speaks only for those; the others' snapshots (forged, or still to
  // come) do not date it.
  const unanchored: string[] = [];
  let anchored = 0;
  let firstReason: string | null = null;
  for (const d of c.inventory.datasets) {
    if (!datasetInScope(d.path, c.scope, c.inventory.root)) continue;
    const newest = ascending(d.snapshots.filter((s) => snapshotInScope(s.name, c.scope))).at(-1);
    if (!newest) continue;
    if (onTarget.get(d.path)?.has(newest.guid)) {
      anchored++;
      continue;
    }
    unanchored.push(d.path);
    firstReason ??= `${c.label} says the newest snapshot of ${joinDataset(c.inventory.root, d.path)} is @${newest.name} (guid ${newest.guid}), which ${joinDataset(root, d.path)} will not hold after this import`;
  }
  if (firstReason !== null && anchored === 0) return { ok: false, reason: firstReason };
  // Dated as before (every snapshot listed, in scope or not), less the unanchored datasets; an anchored one is left, so it lists a snapshot.
  const asOf = unanchored.length === 0 ? listedAsOf : asOfTxg({ ...c.inventory, datasets: c.inventory.datasets.filter((d) => !unanchored.includes(d.path)) }) ?? listedAsOf;
  if (recordedTxg !== null) {
    if (asOf < recordedTxg) {
      return { ok: false, reason: `${c.label} shows the source as of txg ${asOf}, older than what ${root} already received (${SOURCE_TXG_PROPERTY}=${recordedTxg})` };
    }
    return { ok: true, asOf, unanchored };
  }
  // No record yet: the target's own lineage must not run past the bundle's.
  const known = new Map(c.inventory.datasets.map((d) => [d.path, d]));
  for (const t of after?.datasets ?? []) {
    const k = known.get(t.path);
    if (!k || k.snapshots.length === 0 || !datasetInScope(t.path, c.scope, c.inventory.root) || unanchored.includes(t.path)) continue;
    const guids = new Set(k.snapshots.map((s) => s.guid));
    const snaps = ascending(t.snapshots.filter((s) => snapshotInScope(s.name, c.scope)));
    let lastKnown = -1;
    snaps.forEach((s, i) => {
      if (guids.has(s.guid)) lastKnown = i;
    });
    if (lastKnown < 0) continue;
    const newer = snaps.slice(lastKnown + 1).find((s) => !guids.has(s.guid));
    if (newer) {
      return { ok: false, reason: `${joinDataset(root, t.path)} already holds @${newer.name} (guid ${newer.guid}), newer than anything ${c.label} lists there` };
    }
  }
  return { ok: true, asOf, unanchored };
}

/**
 * The bundle that speaks for the source: the eligible one with the newest
 * as-of txg (the later in apply order on a tie), or, when none is eligible,
 * the reason the newest one was not.
 */
export function chooseLatestView(
  candidates: readonly ViewCandidate[],
  after: Inventory | null,
  recordedTxg: bigint | null,
): { index: number; asOf: bigint; unanchored: string[] } | { index: null; reason: string } {
  let best: { index: number; asOf: bigint; unanchored: string[] } | null = null;
  let lastReason = 'no bundle to take the source\'s state from';
  candidates.forEach((c, i) => {
    const v = judgeView(c, after, recordedTxg);
    if (!v.ok) {
      lastReason = v.reason;
      return;
    }
    if (best === null || v.asOf >= best.asOf) best = { index: i, asOf: v.asOf, unanchored: v.unanchored };
  });
  return best ?? { index: null, reason: lastReason };
}
