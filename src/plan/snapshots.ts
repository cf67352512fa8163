/**
 * Small helpers over snapshot lists: ordering by createtxg and printing.
 */
import type { Bookmark, Snapshot, SnapshotRef } from '../model.js';

export function ref(s: SnapshotRef): SnapshotRef {
  return { name: s.name, guid: s.guid };
}

/**
 * The list in ascending createtxg (as bigint). Inventories are documented as
 * sorted, so the common case is one linear check and no copy.
 */
export function ascending<T extends Snapshot | Bookmark>(list: readonly T[]): readonly T[] {
  let sorted = true;
  let prev = -1n;
  const keys: bigint[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const txg = BigInt(list[i].createtxg);
    keys[i] = txg;
    if (txg < prev) sorted = false;
    prev = txg;
  }
  if (sorted) return list;
  const order = list.map((_, i) => i);
  order.sort((i, j) => (keys[i] < keys[j] ? -1 : keys[i] > keys[j] ? 1 : 0));
  return order.map((i) => list[i]);
}

/** First few and last few names: a conflict message stays one readable line. */
export function formatRefs(list: readonly SnapshotRef[], sigil = '@'): string {
  if (list.length === 0) return 'none';
  const names = (xs: readonly SnapshotRef[]) => xs.map((s) => sigil + s.name).join(', ');
  if (list.length <= 6) return names(list);
  return `${names(list.slice(0, 3))}, …, ${names(list.slice(-2))} (${list.length} snapshots)`;
}

/** Bare names for a command suggestion ("--rollback to discard s5, s6"). */
export function formatNames(list: readonly SnapshotRef[]): string {
  if (list.length <= 6) return list.map((s) => s.name).join(', ');
  const names = (xs: readonly SnapshotRef[]) => xs.map((s) => s.name).join(', ');
  return `${names(list.slice(0, 3))}, …, ${names(list.slice(-2))} (${list.length})`;
}
