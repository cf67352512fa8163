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
