/**
 * `import --delete`: what to destroy under the target so it holds nothing the
 * source does not (the rsync --delete of datasets and snapshots). Pure: the
 * source inventory (the newest bundle's), what the target holds after the
 * streams, and the recorded scope in; an ordered list out.
 *
 * Safety by construction: only names under the target root; nothing out of
 * scope (excluded datasets and their children, snapshots left out by name);
 * a dataset is destroyed only when nothing below it is kept; snapshots are
 * destroyed one by one by full name, datasets children first, never `-r`.
 */
import type { Guid, Inventory, SnapshotRef } from '../model.js';
import { joinDataset } from '../model.js';
import { comparePaths, parentPath } from './paths.js';
import { datasetInScope, snapshotInScope, type Scope } from './scope.js';

export interface DeletePlan {
  /** Snapshots to destroy, by full name, in dataset order; a destroyed dataset's snapshots are listed too. */
  snapshots: Array<{ dataset: string; name: string; guid: Guid; full: string }>;
  /** Datasets to destroy (relative paths), children before parents. */
  datasets: Array<{ dataset: string; full: string }>;
  /** Target-only data left in place, and why. */
  kept: Array<{ dataset: string; snapshot?: string; reason: string }>;
}

export function planDelete(source: Inventory, target: Inventory, scope: Scope): DeletePlan {
  const plan: DeletePlan = { snapshots: [], datasets: [], kept: [] };
  const sourceByPath = new Map(source.datasets.map((d) => [d.path, d]));
  const targets = [...target.datasets].sort((a, b) => comparePaths(a.path, b.path));
  const inScope = (path: string) => datasetInScope(path, scope, source.root);

  // A target dataset goes when the source has no dataset at its path (in scope);
  // it stays when anything below it stays.
  const doomed = new Set<string>();
  for (const d of targets) if (d.path !== '' && !sourceByPath.has(d.path) && inScope(d.path)) doomed.add(d.path);
  // Renamed on the source but not (yet) on the target (a rename in conflict):
  // its snapshots live on under the new name, and the next round renames it.
  const renamedAway = new Map<string, string>();
  const sourceDatasetOf = new Map<Guid, string>();
  for (const d of source.datasets) for (const s of [...d.snapshots, ...d.bookmarks]) sourceDatasetOf.set(s.guid, d.path);
  const targetByPath = new Map(targets.map((t) => [t.path, t]));
  const copyAt = (path: string) => {
    const guids = new Set([...(sourceByPath.get(path)?.snapshots ?? []), ...(sourceByPath.get(path)?.bookmarks ?? [])].map((s) => s.guid));
    return targetByPath.get(path)?.snapshots.some((s) => guids.has(s.guid)) ?? false;
  };
  for (const path of doomed) {
    const d = targetByPath.get(path)!;
    const there = d.snapshots.map((s) => sourceDatasetOf.get(s.guid)).find((p) => p !== undefined);
    // Not when the target has that dataset's copy at its own path already: this one is a stale second copy.
    if (there !== undefined && !copyAt(there)) renamedAway.set(path, there);
  }
  for (const [path, there] of renamedAway) {
    doomed.delete(path);
    plan.kept.push({ dataset: path, reason: `not on the source at this path, but its snapshots are, as ${joinDataset(source.root, there)} (renamed there): renamed, not destroyed, once the rename can be made` });
  }
  const keepers = new Set<string>();
  for (const d of targets) {
    if (doomed.has(d.path)) continue;
    for (let p = parentPath(d.path); p !== null; p = parentPath(p)) keepers.add(p);
  }
  for (const d of targets) {
    if (doomed.has(d.path) && keepers.has(d.path)) {
      doomed.delete(d.path);
      plan.kept.push({ dataset: d.path, reason: 'not on the source, but holds out-of-scope datasets below it' });
    }
  }
  // The root's own snapshots are handled below; the root itself is never destroyed.

  for (const d of targets) {
    if (!inScope(d.path)) continue;
    const src = sourceByPath.get(d.path);
    const sourceGuids = new Set<Guid>((src?.snapshots ?? []).map((s) => s.guid));
    for (const s of d.snapshots) {
      if (sourceGuids.has(s.guid)) continue;
      if (!doomed.has(d.path) && !snapshotInScope(s.name, scope)) {
        plan.kept.push({ dataset: d.path, snapshot: s.name, reason: 'snapshot name is out of scope' });
        continue;
      }
      if (!doomed.has(d.path) && keepers.has(d.path) && !src) continue;
      if (renamedAway.has(d.path)) continue;
      plan.snapshots.push(snapRef(target.root, d.path, s));
    }
  }
  plan.datasets = [...doomed]
    .sort((a, b) => comparePaths(b, a))
    .map((p) => ({ dataset: p, full: joinDataset(target.root, p) }));
  return plan;
}

function snapRef(root: string, path: string, s: SnapshotRef) {
  return { dataset: path, name: s.name, guid: s.guid, full: `${joinDataset(root, path)}@${s.name}` };
}

/** The delete plan's destroy count, for messages. */
export function deleteCount(p: DeletePlan): number {
  return p.snapshots.length + p.datasets.length;
}
