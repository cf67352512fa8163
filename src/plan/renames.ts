/**
 * Renames, not resends: a source dataset that has no copy at its own path on
 * the target, but whose snapshot guids the target holds in a dataset the
 * source no longer has at that path, was renamed or moved on the source. The
 * target's copy is renamed (`zfs rename -p`) and then brought up to date
 * incrementally, instead of being sent again in full and the old copy
 * destroyed as an "extra". Snapshots renamed on the source are renamed on
 * the target by guid. Pure: inventories in, renames and the target as it
 * will look after them out.
 */
import type { Dataset, Guid, Inventory, Snapshot, SnapshotRef, SnapshotRename } from '../model.js';
import { joinDataset } from '../model.js';
import { renameTaken, type RenameTaken } from './conflicts.js';
import { parentPath } from './paths.js';
import { ascending, ref } from './snapshots.js';

export interface DatasetRename {
  /** Path after (the source's). */
  dataset: string;
  /** Path on the target before. */
  renamedFrom: string;
  /** The target snapshot (its target name) whose guid the source holds. */
  match: SnapshotRef;
}

export interface RenameFindings {
  /** The target by path once the renames ran, parents `rename -p` makes included (empty filesystems). */
  view: Map<string, Dataset>;
  /** In the order they must run: each names the paths as they are at that moment. */
  renames: DatasetRename[];
  /** Paths of the empty parents the renames create. */
  madeParents: Set<string>;
  /** Source paths whose target copy was found elsewhere, but whose own path on the target is taken. */
  conflicts: Map<string, RenameTaken>;
}

interface TargetRecord {
  path: string;
  ds: Dataset;
  /** An empty parent made by `rename -p`. */
  made: boolean;
}

/**
 * `sources`: the in-scope source datasets, parents first. `sourceByPath`:
 * every source dataset (a target path with a source dataset that shares its
 * guids is that dataset's copy, never a rename's origin). `inScope`: only
 * target datasets in scope may be renamed away.
 */
export function findRenames(
  sources: readonly Dataset[],
  sourceByPath: ReadonlyMap<string, Dataset>,
  target: Inventory | null,
  inScope: (path: string) => boolean,
  sourceRoot: string,
): RenameFindings {
  const records: TargetRecord[] = (target?.datasets ?? []).map((ds) => ({ path: ds.path, ds, made: false }));
  const view = new Map<string, TargetRecord>(records.map((r) => [r.path, r]));
  const findings: RenameFindings = { view: new Map(), renames: [], madeParents: new Set(), conflicts: new Map() };
  if (!target) return { ...findings, view: new Map(records.map((r) => [r.path, r.ds])) };

  // A guid names one snapshot, but a pool can hold copies of it (a local send | recv).
  const byGuid = new Map<Guid, TargetRecord[]>();
  for (const r of records) for (const s of r.ds.snapshots) byGuid.set(s.guid, [...(byGuid.get(s.guid) ?? []), r]);
  const guidCache = new Map<Dataset, Set<Guid>>();
  const guidsOf = (d: Dataset): Set<Guid> => {
    let g = guidCache.get(d);
    if (!g) guidCache.set(d, (g = new Set([...d.snapshots.map((s) => s.guid), ...d.bookmarks.map((b) => b.guid)])));
    return g;
  };
  const shares = (r: TargetRecord, src: Dataset) => r.ds.snapshots.some((s) => guidsOf(src).has(s.guid));
  // A target dataset may be renamed away when the source has nothing at its path that it is a copy of.
  const movable = (r: TargetRecord) => {
    if (r.path === '' || r.made || !inScope(r.path)) return false;
    const there = sourceByPath.get(r.path);
    return there === undefined || !shares(r, there);
  };
  // The target copy of `src` elsewhere, newest common guid first; never an ancestor (zfs cannot move a dataset below itself).
  const candidate = (src: Dataset): { record: TargetRecord; match: SnapshotRef } | null => {
    const guids: Guid[] = [...ascending(src.snapshots)].reverse().map((s) => s.guid);
    for (const b of [...ascending(src.bookmarks)].reverse()) guids.push(b.guid);
    for (const g of guids) {
      for (const r of byGuid.get(g) ?? []) {
        if (r.path === src.path || src.path.startsWith(r.path + '/') || r.ds.type !== src.type || !movable(r)) continue;
        return { record: r, match: ref(r.ds.snapshots.find((s) => s.guid === g)!) };
      }
    }
    return null;
  };
  const move = (r: TargetRecord, to: string) => {
    const from = r.path;
    const moved = records.filter((x) => x.path === from || x.path.startsWith(from + '/'));
    for (const x of moved) view.delete(x.path);
    for (const x of moved) {
      x.path = to + x.path.slice(from.length);
      view.set(x.path, x);
    }
    for (let p = parentPath(to); p !== null && !view.has(p); p = parentPath(p)) {
      const made: TargetRecord = { path: p, ds: { path: p, type: 'filesystem', guid: '0', snapshots: [], bookmarks: [] }, made: true };
      records.push(made);
      view.set(p, made);
    }
  };

  // Until nothing changes: a rename can free a path another rename needs (a → b, then c → a).
  for (let pass = 0, changed = true; changed && pass <= sources.length; pass++) {
    changed = false;
    for (const src of sources) {
      if (src.path === '' || view.has(src.path)) continue;
      const c = candidate(src);
      if (!c) continue;
      findings.renames.push({ dataset: src.path, renamedFrom: c.record.path, match: c.match });
      move(c.record, src.path);
      changed = true;
    }
  }
  for (const src of sources) {
    const here = view.get(src.path);
    if (src.path === '' || !here || shares(here, src)) continue;
    const c = candidate(src);
    if (!c) continue;
    const S = ascending(src.snapshots).map(ref);
    const T = ascending(here.ds.snapshots).map(ref);
    const sourceGuids = guidsOf(src);
    findings.conflicts.set(src.path, renameTaken(
      {
        sourceName: joinDataset(sourceRoot, src.path),
        targetName: joinDataset(target.root, src.path),
        renamedFromName: joinDataset(target.root, c.record.path),
      },
      { dataset: src.path, source: S, target: T, targetOnly: T.filter((t) => !sourceGuids.has(t.guid)), renamedFrom: c.record.path, match: c.match },
    ));
  }
  for (const r of records) if (r.made) findings.madeParents.add(r.path);
  // Moved datasets carry their new path, as a target inventory read after the renames would.
  findings.view = new Map([...view].map(([p, r]) => [p, r.ds.path === p ? r.ds : { ...r.ds, path: p }]));
  return findings;
}

/**
 * Snapshots the target holds under another name than the source's (same
 * guid), to be renamed to the source's name. A rename is left out when the
 * target already has another snapshot by the new name (it would fail;
 * names are only for people, the sync goes by guid).
 */
export function snapshotRenames(src: Dataset, tgt: Dataset, included: (s: Snapshot) => boolean): SnapshotRename[] {
  const sourceByGuid = new Map(src.snapshots.map((s) => [s.guid, s]));
  const targetNames = new Set(tgt.snapshots.map((t) => t.name));
  const out: SnapshotRename[] = [];
  for (const t of ascending(tgt.snapshots)) {
    const s = sourceByGuid.get(t.guid);
    if (!s || s.name === t.name || !included(s) || targetNames.has(s.name)) continue;
    out.push({ guid: t.guid, from: t.name, to: s.name });
  }
  return out;
}
