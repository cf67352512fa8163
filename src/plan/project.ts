/**
 * What the target will hold once a list of steps has been received, so a
 * second bundle can be planned before the first one's receipt comes back.
 *
 * Projected snapshots carry the source's name, guid and creation. Their
 * createtxg is only good for ordering within one dataset: a dataset the steps
 * create gets the source's txgs as they are; snapshots appended to an existing
 * target dataset get the source's txg shifted to follow the target's newest
 * (target and source txgs come from different pools and must not be mixed).
 * Projected datasets have guid '0' (unknown: the receive makes a new one; '0' keeps the inventory valid for the schemas).
 */
import type { Dataset, Guid, Inventory, RenameStep, Snapshot, SnapshotRef } from '../model.js';
import { ZferryError } from '../errors.js';
import { comparePaths, parentPath } from './paths.js';
import type { Step } from './sync.js';

export function projectTarget(
  target: Inventory | null,
  steps: readonly Step[],
  source: Inventory,
  /** Root name for the projection when `target` is null (an empty target). */
  targetRoot = '',
): Inventory {
  const datasets = new Map<string, Dataset>();
  for (const d of target?.datasets ?? []) datasets.set(d.path, { ...d, snapshots: [...d.snapshots], bookmarks: [...d.bookmarks] });
  const sourceByPath = new Map<string, Dataset>();
  for (const d of source.datasets) sourceByPath.set(d.path, d);
  const sourceTxgs = new Map<string, Map<Guid, string>>();
  const txgsOf = (path: string): Map<Guid, string> => {
    let m = sourceTxgs.get(path);
    if (!m) {
      m = new Map();
      const src = sourceByPath.get(path);
      for (const b of src?.bookmarks ?? []) m.set(b.guid, b.createtxg);
      for (const s of src?.snapshots ?? []) m.set(s.guid, s.createtxg);
      sourceTxgs.set(path, m);
    }
    return m;
  };

  for (const step of steps) {
    if (step.kind === 'rename') {
      projectRename(datasets, step);
      continue;
    }
    if (step.kind === 'create') {
      if (!datasets.has(step.dataset)) {
        datasets.set(step.dataset, { path: step.dataset, type: 'filesystem', guid: '0', snapshots: [], bookmarks: [] });
      }
      continue;
    }
    const txgs = txgsOf(step.dataset);
    const creations = new Map<Guid, number>();
    for (const s of sourceByPath.get(step.dataset)?.snapshots ?? []) creations.set(s.guid, s.creation);
    const made = (r: SnapshotRef, createtxg: string): Snapshot => ({
      name: r.name,
      guid: r.guid,
      createtxg,
      creation: creations.get(r.guid) ?? 0,
    });

    // A clone's first step makes a new dataset just as a full stream does.
    const cloneOf = step.from?.dataset;
    if (step.kind === 'full' || cloneOf !== undefined) {
      const existing = datasets.get(step.dataset);
      const root = target?.root ?? targetRoot;
      datasets.set(step.dataset, {
        path: step.dataset,
        type: step.type,
        guid: existing?.guid ?? '0',
        snapshots: step.creates.map((r) => made(r, txgs.get(r.guid) ?? '0')),
        bookmarks: existing?.bookmarks ?? [],
        ...(cloneOf !== undefined ? { origin: `${cloneOf === '' ? root : `${root}/${cloneOf}`}@${step.from!.name}` } : {}),
      });
      continue;
    }

    const ds = datasets.get(step.dataset);
    if (!ds) {
      throw new ZferryError(`cannot project an incremental step into ${step.dataset || '(root)'}: the target does not have it`, {
        dataset: step.dataset,
      });
    }
    const last = ds.snapshots.length > 0 ? BigInt(ds.snapshots[ds.snapshots.length - 1].createtxg) : 0n;
    const baseTxg = step.from ? txgs.get(step.from.guid) : undefined;
    step.creates.forEach((r, i) => {
      const srcTxg = txgs.get(r.guid);
      const offset = srcTxg !== undefined && baseTxg !== undefined ? BigInt(srcTxg) - BigInt(baseTxg) : BigInt(i + 1);
      ds.snapshots.push(made(r, String(last + (offset > 0n ? offset : BigInt(i + 1)))));
    });
  }

  return {
    root: target?.root ?? targetRoot,
    datasets: [...datasets.values()].sort((a, b) => comparePaths(a.path, b.path)),
  };
}

/**
 * A rename on the projection as the import applies it: the dataset and
 * everything below it move (missing parents made, as `zfs rename -p` does),
 * then its snapshots take the source's names by guid. Already done (old path
 * gone, new path there): only the snapshot names.
 */
function projectRename(datasets: Map<string, Dataset>, step: RenameStep): void {
  const { renamedFrom: from, dataset: to } = step;
  if (from !== to && datasets.has(from) && !datasets.has(to)) {
    for (const [p, d] of [...datasets]) {
      if (p !== from && !p.startsWith(from + '/')) continue;
      datasets.delete(p);
      const moved = to + p.slice(from.length);
      datasets.set(moved, { ...d, path: moved });
    }
    for (let p = parentPath(to); p !== null && !datasets.has(p); p = parentPath(p)) {
      datasets.set(p, { path: p, type: 'filesystem', guid: '0', snapshots: [], bookmarks: [] });
    }
  }
  const ds = datasets.get(to);
  if (!ds) return;
  for (const r of step.snapshots) {
    if (ds.snapshots.some((x) => x.name === r.to)) continue;
    ds.snapshots = ds.snapshots.map((x) => (x.guid === r.guid ? { ...x, name: r.to } : x));
  }
}
