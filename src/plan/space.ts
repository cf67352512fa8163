/**
 * Will the bundle fit on DEST? Pure decisions over sizes the caller gathered:
 * each stream's raw size (zfs's `send -nvP`, else the space properties), the
 * zstd ratio (1 until a sample says better), and DEST's free space.
 */
import { joinDataset, type Inventory } from '../model.js';
import type { SendStep } from './sync.js';

/** Head-room kept free: 2% of the bundle, at least 1 MiB (manifest, sums, file-system slack). */
export const SPACE_MARGIN = { fraction: 0.02, minBytes: 1024 * 1024 } as const;

/** `measured`: estimate ran the send into a byte counter (it may; export never does). */
export type SizeMethod = 'send-dry-run' | 'space-properties' | 'measured';

export interface SpaceCheck {
  /** How the raw sizes were found; null when some stream's size is unknown. */
  method: SizeMethod | null;
  rawBytes: number | null;
  /** stored/raw applied to rawBytes: 1 (zstd never grows a stream by more than the margin) or a sampled ratio. */
  ratio: number;
  /** Expected bundle bytes on DEST. */
  plannedBytes: number | null;
  marginBytes: number | null;
  /** DEST's free space for this user (statfs bavail; a quota shows here); null when the file system does not say. */
  freeBytes: number | null;
  /** true: fits with the margin; false: refused; null: not checked (unknown size or free space). */
  fits: boolean | null;
  /** plannedBytes + marginBytes - freeBytes, when positive. */
  shortfallBytes: number;
}

export function spaceMargin(plannedBytes: number): number {
  return Math.max(SPACE_MARGIN.minBytes, Math.ceil(plannedBytes * SPACE_MARGIN.fraction));
}

export function checkSpace(facts: { method: SizeMethod | null; rawBytes: number | null; ratio: number; freeBytes: number | null }): SpaceCheck {
  const plannedBytes = facts.rawBytes === null ? null : Math.ceil(facts.rawBytes * facts.ratio);
  const marginBytes = plannedBytes === null ? null : spaceMargin(plannedBytes);
  const known = plannedBytes !== null && marginBytes !== null && facts.freeBytes !== null;
  const shortfallBytes = known ? Math.max(0, plannedBytes + marginBytes - facts.freeBytes!) : 0;
  return {
    method: facts.method,
    rawBytes: facts.rawBytes,
    ratio: facts.ratio,
    plannedBytes,
    marginBytes,
    freeBytes: facts.freeBytes,
    fits: known ? shortfallBytes === 0 : null,
    shortfallBytes,
  };
}

/**
 * The check at ratio 1 first (zstd never grows a stream by more than the
 * margin), then at the sampled ratio only if that would not fit: export and
 * estimate reach the same verdict from the same figures.
 */
export function checkSpaceAtRatio(facts: { method: SizeMethod | null; rawBytes: number | null; freeBytes: number | null }, sampledRatio: () => number | null): SpaceCheck {
  const plain = checkSpace({ ...facts, ratio: 1 });
  if (plain.fits !== false) return plain;
  const ratio = sampledRatio();
  return ratio !== null && ratio < 1 ? checkSpace({ ...facts, ratio }) : plain;
}

/** Sum of sizes; null when any is unknown. */
export function totalOrNull(sizes: Iterable<number | null>): number | null {
  let n = 0;
  for (const s of sizes) {
    if (s === null) return null;
    n += s;
  }
  return n;
}

/** `used` and `referenced` of each snapshot, by full name (`pool/fs@snap`). */
export type SpaceProperties = Map<string, { used: number; referenced: number }>;

/**
 * A stream's raw size from space properties, where zfs has no `send -nvP`.
 * Full: the snapshot's `referenced`. Incremental from A to B: the larger of
 * the growth (ref B − ref A) and the bytes unique to the snapshots A…B
 * (`used`: blocks B rewrote are unique to A once the head moved on). Both
 * can miss rewrites the head still shares; the out-of-space line at write
 * time is the backstop. A base that is a bookmark or in another dataset
 * (a clone's origin) has no usable figure: B's `referenced` bounds it.
 */
export function rawSizeFromSpace(inventory: Inventory, step: SendStep, props: SpaceProperties): number | null {
  const full = (dataset: string, name: string) => `${joinDataset(inventory.root, dataset)}@${name}`;
  const to = props.get(full(step.dataset, step.to.name));
  if (!to) return null;
  if (step.kind === 'full' || !step.from) return to.referenced;
  const sameDataset = step.from.dataset === undefined || step.from.dataset === step.dataset;
  const from = sameDataset && !step.from.bookmark ? props.get(full(step.dataset, step.from.name)) : undefined;
  if (!from) return to.referenced;
  const snaps = inventory.datasets.find((d) => d.path === step.dataset)?.snapshots ?? [];
  const a = snaps.findIndex((s) => s.guid === step.from!.guid);
  const b = snaps.findIndex((s) => s.guid === step.to.guid);
  let unique = 0;
  if (a >= 0 && b >= a) {
    for (const s of snaps.slice(a, b + 1)) unique += props.get(full(step.dataset, s.name))?.used ?? 0;
  }
  return Math.max(to.referenced - from.referenced, unique);
}

/** The one line export prints when the bundle will not fit (and `--dry-run` and `estimate` print as their verdict). */
export function spaceVerdict(dest: string, check: SpaceCheck, fmt: (n: number) => string): string {
  if (check.fits === null) {
    return check.freeBytes === null
      ? `free space of ${dest} is not reported by its file system: not checked`
      : `size of the bundle unknown (zfs gave no figure for a stream): free space of ${dest} not checked`;
  }
  const needs = `needs about ${fmt(check.plannedBytes! + check.marginBytes!)} (${fmt(check.plannedBytes!)} planned by ${check.method}` +
    `${check.ratio < 1 ? ` at a sampled zstd ratio of ${check.ratio.toFixed(2)}` : ''} + ${fmt(check.marginBytes!)} margin)`;
  return check.fits
    ? `the bundle fits on ${dest}: ${needs}, ${fmt(check.freeBytes!)} free`
    : `not enough space on ${dest}: the bundle ${needs}, ${fmt(check.freeBytes!)} free; ${fmt(check.shortfallBytes)} short`;
}

/** What a write that ran out of space adds to its line: how much more the bundle needed. */
export function spaceMissing(writtenBytes: number, check: SpaceCheck | null, fmt: (n: number) => string): string {
  if (!check || check.plannedBytes === null) return `${fmt(writtenBytes)} of the bundle had been written; its full size is unknown`;
  const missing = check.plannedBytes - writtenBytes;
  return missing > 0
    ? `${fmt(writtenBytes)} of about ${fmt(check.plannedBytes)} written: about ${fmt(missing)} more space is needed`
    : `${fmt(writtenBytes)} written, more than the ${fmt(check.plannedBytes)} planned (${check.method} underestimated this bundle): more space is needed`;
}
