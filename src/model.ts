/**
 * The plain data every module shares. No behaviour lives here.
 *
 * GUIDs and createtxg are unsigned 64-bit integers: they are kept as decimal
 * strings and compared as bigint, never passed through a JS `number`.
 */

/** Decimal string of an unsigned 64-bit integer. */
export type Guid = string;

export type DatasetType = 'filesystem' | 'volume';

export interface Snapshot {
  /** Short name, the part after `@`. */
  name: string;
  guid: Guid;
  /** Decimal string (uint64); order within a dataset. */
  createtxg: string;
  /** Creation time, epoch seconds. */
  creation: number;
}

export interface Bookmark {
  /** Short name, the part after `#`. */
  name: string;
  /** Equal to the guid of the snapshot it was made from. */
  guid: Guid;
  createtxg: string;
  creation: number;
}

export interface Dataset {
  /** Path relative to the inventory root: '' for the root itself, 'a/b' below it. */
  path: string;
  type: DatasetType;
  guid: Guid;
  /** Ascending createtxg. */
  snapshots: Snapshot[];
  /** Ascending createtxg; empty where the zfs in use has no bookmarks. */
  bookmarks: Bookmark[];
  /** Name of the origin snapshot (`pool/fs@snap`, absolute) when this dataset is a clone. */
  origin?: string;
  /** Natively encrypted (its data travels as a raw send); absent where the zfs has no encryption. */
  encrypted?: boolean;
  /** The source marks it (or an ancestor) `zferry:skip=on`: out of the sync's scope. Absent = false. */
  skip?: boolean;
}

export interface Inventory {
  /** Full dataset name the inventory was read from, e.g. `tank` or `backup/tank`. */
  root: string;
  /** Parents before children (sorted by path). */
  datasets: Dataset[];
}

/** A snapshot named for people and identified by guid. */
export interface SnapshotRef {
  name: string;
  guid: Guid;
}

/** Joins a root dataset name and a relative path. */
export function joinDataset(root: string, path: string): string {
  return path === '' ? root : `${root}/${path}`;
}

/** Which source a bundle or a target belongs to: a pool by guid and the dataset taken. */
export interface SourceIdentity {
  host: string;
  pool: string;
  /** Full name of the dataset exported, e.g. `tank` or `tank/data`. */
  root: string;
  poolGuid: Guid;
}

/**
 * An incremental base: a snapshot, a bookmark (`bookmark: true`), or, on a
 * clone's first step, the origin snapshot in another dataset (`dataset`: that
 * dataset's relative path): the target receives the step as a clone of its
 * own copy of the origin.
 */
export interface StepFrom extends SnapshotRef {
  bookmark?: boolean;
  dataset?: string;
}

/**
 * One step of a sync, in the one shape the planner makes, a manifest records
 * (a stream entry adds its bytes) and the import checks and applies.
 */
export interface SendStep {
  kind: 'full' | 'incremental';
  /** Relative path of the dataset, '' for the root. */
  dataset: string;
  type: DatasetType;
  from: StepFrom | null;
  to: SnapshotRef;
  /** `-I` (every snapshot between from and to) rather than `-i`. */
  intermediates: boolean;
  /** Snapshots this step creates on the target, ascending, `to` included. */
  creates: SnapshotRef[];
  /** The target dataset exists without snapshots: the receive needs `-F`. */
  force: boolean;
}

/** A snapshot-less source filesystem made on the target so its children have a parent. */
export interface CreateStep {
  kind: 'create';
  dataset: string;
  type: DatasetType;
  from: null;
  to: null;
  intermediates: boolean;
  creates: SnapshotRef[];
  force: boolean;
}

/** A snapshot the target holds under another name than the source's (same guid). */
export interface SnapshotRename {
  guid: Guid;
  /** The target's name (before). */
  from: string;
  /** The source's name (after). */
  to: string;
}

/**
 * A dataset renamed or moved on the source, found on the target by its
 * snapshots' guids and renamed there (`zfs rename -p`) instead of sent again;
 * and/or snapshots renamed on the source, renamed on the target by guid.
 * Runs before every stream of its bundle. A bundle format 2 feature.
 */
export interface RenameStep {
  kind: 'rename';
  /** Relative path after the rename: the source's path. */
  dataset: string;
  type: DatasetType;
  /** Relative path on the target before the rename; equal to `dataset` when only snapshots are renamed. */
  renamedFrom: string;
  /** A snapshot (or the target's snapshot of a source bookmark) both sides hold: the target's dataset is renamed only if it holds this guid. */
  match: SnapshotRef;
  /** Snapshot renames by guid, applied after the dataset rename, at `dataset`. */
  snapshots: SnapshotRename[];
  from: null;
  to: null;
  intermediates: boolean;
  creates: SnapshotRef[];
  force: boolean;
}

export type Step = SendStep | CreateStep | RenameStep;

/** Steps that run no `zfs send`. */
export function carriesData(s: Step): s is SendStep {
  return s.kind === 'full' || s.kind === 'incremental';
}

export function createStep(dataset: string): CreateStep {
  return { kind: 'create', dataset, type: 'filesystem', from: null, to: null, intermediates: false, creates: [], force: false };
}

export function renameStep(dataset: string, type: DatasetType, renamedFrom: string, match: SnapshotRef, snapshots: SnapshotRename[]): RenameStep {
  return {
    kind: 'rename', dataset, type, renamedFrom, match: { name: match.name, guid: match.guid },
    snapshots: snapshots.map((r) => ({ guid: r.guid, from: r.from, to: r.to })),
    from: null, to: null, intermediates: false, creates: [], force: false,
  };
}

/**
 * Exactly a step's own fields, whatever else the value carries: what goes
 * into a manifest is the step and nothing that happened to ride along.
 */
export function stepOf(s: Step): Step {
  if (s.kind === 'create') return { ...createStep(s.dataset), type: s.type };
  if (s.kind === 'rename') {
    return renameStep(s.dataset, s.type, s.renamedFrom, s.match, s.snapshots);
  }
  const from: StepFrom | null = s.from
    ? { name: s.from.name, guid: s.from.guid, ...(s.from.bookmark ? { bookmark: true } : {}), ...(s.from.dataset !== undefined ? { dataset: s.from.dataset } : {}) }
    : null;
  return { kind: s.kind, dataset: s.dataset, type: s.type, from, to: s.to, intermediates: s.intermediates, creates: s.creates, force: s.force };
}
