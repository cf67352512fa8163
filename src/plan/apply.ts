/**
 * The import side's pre-flight: given a bundle's streams in order and what the
 * target holds now, decide per stream whether to receive it, skip it (already
 * there) or refuse it, before a byte is received. Pure: the target is
 * simulated, and each stream that would apply is applied to the simulation so
 * later streams see its snapshots.
 */
import type { DatasetType, Guid, Inventory, RenameStep, SnapshotRef, SnapshotRename, Step } from '../model.js';
import { joinDataset } from '../model.js';
import { parentPath, showPath } from './paths.js';
import { ascending, formatRefs, ref } from './snapshots.js';

/** A stream as the import checks it: the step, at its place in the bundle. */
export type ApplyStream = Step & { index: number };

/**
 * How `zfs receive` is run, decided here from the target's facts and the
 * user's flags; manifest fields only select what the plan has checked.
 */
export interface ReceiveOptions {
  /** `-F`: only for a full stream into a dataset the plan verified may be replaced (empty, or replaced with --delete). */
  force: boolean;
  /** A clone's origin: the target's own snapshot with the stream's base guid (its name on the target). */
  origin?: { dataset: string; name: string; guid: Guid };
  /** `-x`: properties whose received value must not take effect (a filesystem's mountpoint). */
  exclude: string[];
  /** `-o`: properties set on what is received (canmount=noauto on a filesystem). */
  set: Record<string, string>;
}

export type ApplyDecision =
  | {
      index: number;
      action: 'apply';
      /** Absent for a create step. */
      receive?: ReceiveOptions;
      rollbackTo?: SnapshotRef;
      /** Target snapshots to destroy before a forced full stream re-seeds the dataset (all unknown to the source). */
      replaces?: SnapshotRef[];
      /** True when rollbackTo discards target-only snapshots (allowed by --rollback), not just an interrupted stream's own. */
      discards?: SnapshotRef[];
      /** A rename step: the dataset's rename (`zfs rename -p`), when it is not done yet. */
      renameDataset?: { from: string; to: string };
      /** A rename step: the snapshot renames still to do, by the target's current names. */
      renameSnapshots?: SnapshotRename[];
    }
  | { index: number; action: 'skip'; reason: string };

export interface ApplyProblem {
  index: number;
  dataset: string;
  message: string;
  /** The stream's base (or its dataset) is not on the target: an earlier bundle may bring it. */
  missingBase?: boolean;
}

export interface ApplyPlan {
  /** One per stream that is applied or skipped, in stream order. */
  decisions: ApplyDecision[];
  /** One per stream that cannot be applied. */
  problems: ApplyProblem[];
}

interface SimDataset {
  type: DatasetType;
  /** Target order. */
  snaps: SnapshotRef[];
  at: Map<Guid, number>;
}

function simDataset(type: DatasetType, snaps: SnapshotRef[]): SimDataset {
  const at = new Map<Guid, number>();
  snaps.forEach((s, i) => at.set(s.guid, i));
  return { type, snaps, at };
}

type Verdict = ApplyDecision | { problem: string; missingBase?: boolean };

export interface ApplyOptions {
  /** Roll back past target-only snapshots newer than a stream's base (--rollback). */
  rollback?: boolean;
  /** Replace a target dataset that shares no snapshot with the source (--delete). */
  replace?: boolean;
  /** Snapshot guids of the source: a dataset is replaced only when none of its snapshots is among them. */
  sourceGuids?: ReadonlySet<Guid>;
}

export function checkApply(streams: readonly ApplyStream[], target: Inventory | null, opts: ApplyOptions = {}): ApplyPlan {
  const sim = new Map<string, SimDataset>();
  for (const d of target?.datasets ?? []) sim.set(d.path, simDataset(d.type, ascending(d.snapshots).map(ref)));
  const name = (path: string) => (target ? joinDataset(target.root, path) : showPath(path));
  const failedAt = new Map<string, number>();
  const plan: ApplyPlan = { decisions: [], problems: [] };

  for (const st of streams) {
    let verdict: Verdict;
    const cause = failedAncestor(st.dataset, failedAt);
    if (cause !== null) {
      verdict = {
        problem: `${name(st.dataset)}: not applied because stream ${failedAt.get(cause)} for ${name(cause)} could not be applied`,
      };
    } else {
      verdict = decide(st, sim, name, opts);
    }
    if ('problem' in verdict) {
      plan.problems.push({ index: st.index, dataset: st.dataset, message: verdict.problem, ...(verdict.missingBase ? { missingBase: true } : {}) });
      if (!failedAt.has(st.dataset)) failedAt.set(st.dataset, st.index);
    } else {
      plan.decisions.push(verdict);
    }
  }
  return plan;
}

/** The dataset itself or its nearest ancestor with a failed stream, if any. */
function failedAncestor(path: string, failedAt: Map<string, number>): string | null {
  for (let p: string | null = path; p !== null; p = parentPath(p)) if (failedAt.has(p)) return p;
  return null;
}

function decide(st: ApplyStream, sim: Map<string, SimDataset>, name: (path: string) => string, opts: ApplyOptions): Verdict {
  const ds = sim.get(st.dataset);
  const at = name(st.dataset);
  const parent = parentPath(st.dataset);
  // The root's parent lies outside the inventory; receiving checks it.
  const parentMissing = parent !== null && !sim.has(parent);

  if (st.kind === 'rename') return decideRename(st, sim, name);
  if (st.kind === 'create') {
    if (ds) return { index: st.index, action: 'skip', reason: 'already exists' };
    if (parentMissing) return { problem: `${at}: cannot create it, parent ${name(parent!)} does not exist on the target` };
    sim.set(st.dataset, simDataset('filesystem', []));
    return { index: st.index, action: 'apply' };
  }

  // Typed non-null for a send; a manifest is a stranger's JSON.
  if (!(st.to as SnapshotRef | null)) return { problem: `${at}: stream ${st.index} (${st.kind}) names no snapshot to receive` };
  if (ds?.at.has(st.to.guid)) return { index: st.index, action: 'skip', reason: 'already applied' };

  let replaces: SnapshotRef[] | undefined;
  if (st.kind === 'full') {
    if (ds) {
      const known = ds.snaps.filter((s) => opts.sourceGuids?.has(s.guid));
      if (ds.snaps.length > 0 && (!st.force || !opts.sourceGuids || known.length > 0)) {
        return {
          problem: `${at}: refusing a full stream into an existing dataset that holds ${formatRefs(ds.snaps)}; destroy it on the target to re-seed it`,
        };
      }
      if (ds.snaps.length > 0 && !opts.replace) {
        return {
          problem: `${at}: the source's dataset was re-created: the target's ${formatRefs(ds.snaps)} share nothing with it; use --delete to replace the target's copy`,
        };
      }
      if (ds.snaps.length > 0) replaces = ds.snaps;
      if (!st.force) return { problem: `${at}: refusing a full stream into an existing dataset (the stream is not marked force)` };
      if (ds.type !== st.type) return { problem: `${at}: is a ${ds.type} on the target but the stream carries a ${st.type}` };
    } else if (parentMissing) {
      return { problem: `${at}: cannot receive a full stream, parent ${name(parent!)} does not exist on the target` };
    }
    sim.set(st.dataset, simDataset(st.type, [...st.creates]));
    const receive = receiveOptions(st.type, ds !== undefined);
    return replaces ? { index: st.index, action: 'apply', receive, replaces } : { index: st.index, action: 'apply', receive };
  }

  const from = st.from;
  if (!from) return { problem: `${at}: incremental stream ${st.index} names no base` };
  // -F on an incremental rolls back whatever the target holds past its newest
  // snapshot; a bundle cannot ask for that, only the user can (--rollback,
  // which rolls back explicitly to the verified base).
  if (st.force && !opts.rollback) {
    return { problem: `${at}: incremental stream ${st.index} is marked force (zfs receive -F would discard changes on the target); refusing; use --rollback to allow rolling back to the base` };
  }
  if (from.dataset !== undefined) return decideClone(st, from as CloneFrom, sim, name);
  const base = `${from.bookmark ? '#' : '@'}${from.name} (guid ${from.guid})`;
  if (!ds) return { problem: `${at}: does not exist on the target, so the incremental from ${base} cannot be received`, missingBase: true };
  const fi = ds.at.get(from.guid);
  if (fi === undefined) {
    const newest = ds.snaps[ds.snaps.length - 1];
    const has = newest ? `its newest snapshot is @${newest.name} (guid ${newest.guid})` : 'it has no snapshots';
    return { problem: `${at}: base ${base} is not on the target; ${has}`, missingBase: true };
  }

  const after = ds.snaps.slice(fi + 1);
  let rollbackTo: SnapshotRef | undefined;
  let discards: SnapshotRef[] | undefined;
  if (after.length > 0) {
    // An interrupted -I stream leaves the intermediates it committed; this very
    // stream re-creates them, so rolling back to the base loses nothing.
    const created = new Set(st.creates.map((c) => c.guid));
    const foreign = after.filter((s) => !created.has(s.guid));
    if (foreign.length > 0 && !opts.rollback) {
      return {
        problem:
          `${at}: target has snapshots newer than the base ${base} that the source lacks ` +
          `(target-only: ${formatRefs(foreign)}; source sends: ${formatRefs(st.creates)}); ` +
          `use --rollback to roll back to @${ds.snaps[fi].name} and discard them`,
      };
    }
    if (foreign.length > 0) discards = foreign;
    rollbackTo = ds.snaps[fi];
  }
  sim.set(st.dataset, simDataset(ds.type, [...ds.snaps.slice(0, fi + 1), ...st.creates]));
  const receive = receiveOptions(ds.type, false);
  if (!rollbackTo) return { index: st.index, action: 'apply', receive };
  return discards ? { index: st.index, action: 'apply', receive, rollbackTo, discards } : { index: st.index, action: 'apply', receive, rollbackTo };
}

/**
 * What a received filesystem must not do on the backup host: mount itself at
 * boot (a mount dirties it and the next incremental is refused), or mount over
 * the host's own paths (a mountpoint carried in the stream, whatever the
 * manifest says about -p). So a filesystem always inherits its mountpoint
 * from the target and gets canmount=noauto.
 */
export function receiveOptions(type: DatasetType, force: boolean, origin?: ReceiveOptions['origin']): ReceiveOptions {
  return {
    force,
    ...(origin ? { origin } : {}),
    exclude: type === 'filesystem' ? ['mountpoint'] : [],
    set: type === 'filesystem' ? { canmount: 'noauto' } : {},
  };
}

type CloneFrom = NonNullable<ApplyStream['from']> & { dataset: string };

/**
 * A clone's first stream: it creates the dataset as a clone of the target's
 * copy of the origin, which zfs recv finds by guid. The origin must be there
 * (on the target already, or from an earlier stream) and the dataset must not.
 */
function decideClone(st: ApplyStream, from: CloneFrom, sim: Map<string, SimDataset>, name: (path: string) => string): Verdict {
  const at = name(st.dataset);
  const parent = parentPath(st.dataset);
  const origin = `${name(from.dataset)}@${from.name} (guid ${from.guid})`;
  if (sim.has(st.dataset)) {
    return { problem: `${at}: already exists on the target without @${st.to!.name}, so it cannot be received as a clone of ${origin}; destroy it on the target to re-seed it` };
  }
  if (parent !== null && !sim.has(parent)) {
    return { problem: `${at}: cannot receive it as a clone, parent ${name(parent)} does not exist on the target`, missingBase: true };
  }
  const od = sim.get(from.dataset);
  const oi = od?.at.get(from.guid);
  if (od === undefined || oi === undefined) {
    return { problem: `${at}: is sent as a clone of ${origin}, which is not on the target`, missingBase: true };
  }
  sim.set(st.dataset, simDataset(st.type, [...st.creates]));
  // The target's name for that guid: a snapshot renamed on either side is still the origin.
  const receive = receiveOptions(st.type, false, { dataset: from.dataset, name: od.snaps[oi].name, guid: from.guid });
  return { index: st.index, action: 'apply', receive };
}

/**
 * A rename step: the dataset is renamed only when the target holds it at the
 * old path with the guid it was recognised by, and the new path is free;
 * missing parents are made (`zfs rename -p`). A re-run finds it done.
 * Snapshots are renamed by guid where the new name is free.
 */
function decideRename(st: RenameStep & { index: number }, sim: Map<string, SimDataset>, name: (path: string) => string): Verdict {
  const from = st.renamedFrom;
  const to = st.dataset;
  let renameDataset: { from: string; to: string } | undefined;
  if (from !== to) {
    const old = sim.get(from);
    const now = sim.get(to);
    const match = `@${st.match.name} (guid ${st.match.guid})`;
    if (!old && now?.at.has(st.match.guid)) {
      // Renamed already (a re-run after a cut import).
    } else if (!old) {
      return { problem: `${name(from)}: not on the target, so it cannot be renamed to ${name(to)}`, missingBase: true };
    } else if (!old.at.has(st.match.guid)) {
      return { problem: `${name(from)}: does not hold ${match}, the snapshot it was recognised by as the copy of ${name(to)}; refusing to rename it`, missingBase: true };
    } else if (now) {
      return { problem: `${name(to)}: already exists on the target, so ${name(from)} cannot be renamed there; rename or destroy ${name(to)} on the target, then import again` };
    } else if (to.startsWith(from + '/')) {
      return { problem: `${name(from)}: cannot be renamed below itself to ${name(to)}` };
    } else {
      renameDataset = { from, to };
      for (const [p, d] of [...sim]) {
        if (p !== from && !p.startsWith(from + '/')) continue;
        sim.delete(p);
        sim.set(to + p.slice(from.length), d);
      }
      for (let p = parentPath(to); p !== null && !sim.has(p); p = parentPath(p)) sim.set(p, simDataset('filesystem', []));
    }
  }
  const ds = sim.get(to);
  if (!ds) return { problem: `${name(to)}: not on the target, so its snapshots cannot be renamed`, missingBase: true };
  const renameSnapshots: SnapshotRename[] = [];
  for (const r of st.snapshots) {
    const i = ds.at.get(r.guid);
    // Gone on the target, done already, or the name is taken: names are for people, the sync goes by guid.
    if (i === undefined || ds.snaps[i].name === r.to || ds.snaps.some((x) => x.name === r.to)) continue;
    renameSnapshots.push({ guid: r.guid, from: ds.snaps[i].name, to: r.to });
    ds.snaps[i] = { name: r.to, guid: r.guid };
  }
  if (!renameDataset && renameSnapshots.length === 0) return { index: st.index, action: 'skip', reason: 'already renamed' };
  return {
    index: st.index, action: 'apply',
    ...(renameDataset ? { renameDataset } : {}),
    ...(renameSnapshots.length > 0 ? { renameSnapshots } : {}),
  };
}
