/**
 * Why a dataset cannot be brought up to date by a plain send/receive. Each
 * conflict is a value carrying both sides, so the CLI (and --json) can show
 * what differs, and `message` says in one line what the user can do about it.
 */
import type { DatasetType, SnapshotRef } from '../model.js';
import { formatNames, formatRefs } from './snapshots.js';

export type CommonBase = SnapshotRef & { bookmark?: boolean };

interface ConflictSides {
  /** Relative path of the dataset. */
  dataset: string;
  /** Source snapshots, ascending. */
  source: SnapshotRef[];
  /** Target snapshots, ascending in target order. */
  target: SnapshotRef[];
  /** Newest snapshot (or source bookmark) both sides share, when there is one. */
  common: CommonBase | null;
  /** Target snapshots whose guid the source does not have. */
  targetOnly: SnapshotRef[];
  /** One line: both sides and what the user can do. */
  message: string;
}

export interface NoCommonSnapshot extends ConflictSides {
  kind: 'no-common-snapshot';
  common: null;
}

export interface TargetAhead extends ConflictSides {
  kind: 'target-ahead';
  common: CommonBase;
  /** Only the target-only snapshots newer than `common`: what --rollback discards. */
  targetNewer: SnapshotRef[];
  /** Source snapshots newer than `common`, which the plan would have sent. */
  sourceNewer: SnapshotRef[];
}

export interface TypeMismatch extends ConflictSides {
  kind: 'type-mismatch';
  sourceType: DatasetType;
  targetType: DatasetType;
}

/**
 * A dataset renamed (or moved) on the source whose snapshots the target holds
 * under its old path, while its new path on the target is held by another
 * dataset: renaming would need that one out of the way first.
 */
export interface RenameTaken extends ConflictSides {
  kind: 'rename-taken';
  common: null;
  /** Relative path on the target of the dataset holding this one's snapshots. */
  renamedFrom: string;
}

export type Conflict = NoCommonSnapshot | TargetAhead | TypeMismatch | RenameTaken;

/** Full dataset names, for messages the user can paste into zfs commands. */
export interface ConflictNames {
  sourceName: string;
  targetName: string;
}

function base(c: CommonBase): string {
  return (c.bookmark ? '#' : '@') + c.name;
}

export function noCommonSnapshot(
  names: ConflictNames,
  sides: Pick<ConflictSides, 'dataset' | 'source' | 'target' | 'targetOnly'>,
): NoCommonSnapshot {
  const message =
    `${names.targetName}: no common snapshot or bookmark with ${names.sourceName} ` +
    `(source: ${formatRefs(sides.source)}; target: ${formatRefs(sides.target)}); ` +
    `destroy ${names.targetName} on the target to re-seed it`;
  return { kind: 'no-common-snapshot', ...sides, common: null, message };
}

export function targetAhead(
  names: ConflictNames,
  sides: Pick<TargetAhead, 'dataset' | 'source' | 'target' | 'targetOnly' | 'common' | 'targetNewer' | 'sourceNewer'>,
): TargetAhead {
  const message =
    `${names.targetName}: target has snapshots newer than the last common ${base(sides.common)} ` +
    `that ${names.sourceName} lacks (target-only: ${formatRefs(sides.targetNewer)}; ` +
    `source-only: ${formatRefs(sides.sourceNewer)}); ` +
    `use --rollback to discard the target-only snapshots ${formatNames(sides.targetNewer)}`;
  return { kind: 'target-ahead', ...sides, message };
}

export function typeMismatch(
  names: ConflictNames,
  sides: Pick<TypeMismatch, 'dataset' | 'source' | 'target' | 'targetOnly' | 'common' | 'sourceType' | 'targetType'>,
): TypeMismatch {
  const message =
    `${names.targetName} is a ${sides.targetType} on the target but ${names.sourceName} is a ${sides.sourceType} ` +
    `(source: ${formatRefs(sides.source)}; target: ${formatRefs(sides.target)}); ` +
    `destroy ${names.targetName} on the target to re-seed it`;
  return { kind: 'type-mismatch', ...sides, message };
}

export function renameTaken(
  names: ConflictNames & { renamedFromName: string },
  sides: Pick<RenameTaken, 'dataset' | 'source' | 'target' | 'targetOnly' | 'renamedFrom'> & { match: SnapshotRef },
): RenameTaken {
  const { match, ...rest } = sides;
  const message =
    `${names.targetName}: ${names.sourceName} was renamed or moved on the source, and the target holds its snapshots as ` +
    `${names.renamedFromName} (@${match.name}, guid ${match.guid}), but ${names.targetName} is taken there by another dataset ` +
    `(target: ${formatRefs(sides.target)}; source: ${formatRefs(sides.source)}); ` +
    `rename or destroy ${names.targetName} on the target (e.g. zfs rename ${names.targetName} ${names.targetName}.old), then export again`;
  return { kind: 'rename-taken', ...rest, common: null, message };
}
