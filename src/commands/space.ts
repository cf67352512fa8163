/**
 * Facts for the free-space check (src/plan/space.ts), gathered without an
 * extra full send: zfs's `send -nvP` where it has one, else the snapshots'
 * space properties; zstd's ratio is sampled from a bounded prefix of the
 * largest streams, and only when the uncompressed size would not fit.
 */
import type { Inventory } from '../model.js';
import type { SendDryRun, SnapshotSpace, Zfs } from '../zfs/index.js';
import { runInLanes } from '../lanes.js';
import { checkSpaceAtRatio, rawSizeFromSpace, totalOrNull, type SendStep, type SizeMethod, type SpaceCheck } from '../plan/index.js';
import { freeSpace } from '../fs/space.js';
import { sendSpecFor } from './basis.js';
import { measureSend } from './estimate.js';

/** The ratio sample: at most this much of each of the largest few streams, within this long. */
const SAMPLE = { streams: 4, bytesEach: 4 * 1024 * 1024, seconds: 10 } as const;

export interface PlannedSizes {
  method: SizeMethod;
  /** Raw send-stream bytes per step; null where zfs gave no usable figure. */
  raw: Map<SendStep, number | null>;
}

/** `space`: the snapshots' figures when the caller read them with its inventory (zfs.inventoryWithSpace); else read here. */
export async function plannedRawSizes(zfs: Zfs, inventory: Inventory, sends: SendStep[], space: SnapshotSpace | null = null): Promise<PlannedSizes> {
  const raw = new Map<SendStep, number | null>();
  if (zfs.caps.sendDryRun) {
    const dries = await dryRuns(zfs, inventory, sends);
    sends.forEach((step, i) => {
      const dry = dries[i];
      const sum = dry && dry.streams.length > 0 && dry.streams.every((s) => s.size !== null)
        ? dry.streams.reduce((n, s) => n + s.size!, 0n) : null;
      const size = dry?.total ?? sum;
      raw.set(step, size !== null && size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : null);
    });
    return { method: 'send-dry-run', raw };
  }
  const props = sends.length === 0 ? new Map() : space ?? await zfs.snapshotSpace(inventory.root);
  for (const step of sends) raw.set(step, rawSizeFromSpace(inventory, step, props));
  return { method: 'space-properties', raw };
}

/** `zfs send -nvP` processes at once: each mostly waits for zfs (a 200-dataset pool plans 400 of them). */
const DRY_RUN_LANES = 4;

/** zfs's dry run of each send, DRY_RUN_LANES at a time, in the order of `sends`; null where zfs gave none. */
export async function dryRuns(zfs: Zfs, inventory: Inventory, sends: readonly SendStep[]): Promise<Array<SendDryRun | null>> {
  const out = new Array<SendDryRun | null>(sends.length).fill(null);
  const run = await runInLanes(sends.map(() => []), sends.map(() => false), DRY_RUN_LANES, async (i) => {
    const spec = sendSpecFor(zfs, { inventory }, sends[i]!);
    out[i] = await zfs.sendDryRun(spec).catch(() => null);
  });
  // Only a step the inventory cannot send fails here (sendSpecFor): that is a planning error, not a missing figure.
  if (run.failed) throw run.failed.error;
  return out;
}

/** stored/raw over prefixes of the largest streams, through export's own zstd stage; null when nothing was read. */
export async function sampledRatio(zfs: Zfs, inventory: Inventory, sizes: PlannedSizes, level: number): Promise<number | null> {
  const largest = [...sizes.raw.entries()].sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0)).slice(0, SAMPLE.streams);
  let raw = 0;
  let stored = 0;
  for (const [step] of largest) {
    const m = await measureSend(zfs, sendSpecFor(zfs, { inventory }, step), {
      level, sampleBytes: SAMPLE.bytesEach, sampleSeconds: SAMPLE.seconds / largest.length, readAll: false,
    });
    raw += m.sampleRawBytes;
    stored += m.sampleStoredBytes;
  }
  return raw > 0 ? stored / raw : null;
}

/**
 * Sizes the plan and checks it against DEST's free space. The uncompressed
 * size is tried first (zstd never grows a stream by more than the margin);
 * only a bundle that would not fit that way costs a sample.
 */
export async function exportSpaceCheck(
  /** null: size the plan only, against no free space (the check is off). */
  zfs: Zfs, inventory: Inventory, sends: SendStep[], dest: string | null, level: number,
  /** export --parity: recovery data adds this percentage of the volumes. */
  parityPercent = 0,
  /** A resumed export: stored bytes of the streams it keeps; only their parity is still to be written. */
  keptBytes = 0,
  /** The sizes already planned (export --max-size sized the plan to choose what fits). */
  known: PlannedSizes | null = null,
): Promise<{ check: SpaceCheck; sizes: PlannedSizes }> {
  const sizes = known ?? await plannedRawSizes(zfs, inventory, sends);
  const streamBytes = totalOrNull(sizes.raw.values());
  const rawBytes = streamBytes === null ? null : Math.ceil(streamBytes * (1 + parityPercent / 100) + keptBytes * (parityPercent / 100));
  const freeBytes = dest === null ? null : await freeSpace(dest);
  const facts = { method: rawBytes === null ? null : sizes.method, rawBytes, freeBytes };
  // Sampling runs sends (bounded): only a bundle that would not fit uncompressed pays for it.
  const plain = checkSpaceAtRatio(facts, () => null);
  const ratio = plain.fits === false ? await sampledRatio(zfs, inventory, sizes, level) : null;
  return { check: checkSpaceAtRatio(facts, () => ratio), sizes };
}
