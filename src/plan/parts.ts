/**
 * One export across several disks (export --max-size/--fill) and the import
 * of streams split across them. Pure: what fits in a bundle, and how the
 * parts found on a disk (and in a stage folder) join into whole streams.
 */
import type { Manifest, StreamEntry } from '../bundle/manifest.js';
import type { ImportRefusal } from './import.js';

/** One planned step, as the fit sees it: whether it carries data, and its planned stored size (null: unknown). */
export interface FitItem {
  data: boolean;
  bytes: number | null;
}

export interface Fit {
  /** How many steps, from the first, go into this bundle. */
  take: number;
  /** The last step taken is planned larger than the whole budget: it is written as part 1 and continues on the next disk. */
  split: boolean;
  /** Planned stored bytes of the steps taken (unknown sizes count 0; the split one counts the budget). */
  plannedBytes: number;
}

/**
 * Steps in plan order, never reordered, up to the first that does not fit
 * in `budget` bytes. The first data stream of a bundle is taken even when
 * it alone exceeds the budget: it is the stream larger than one disk, and is
 * written as parts. A stream of unknown size is taken; the write enforces
 * the budget (a stream that overruns becomes a part there).
 */
export function fitSteps(items: readonly FitItem[], budget: number): Fit {
  let used = 0;
  let data = 0;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (!it.data) continue;
    const bytes = it.bytes ?? 0;
    if (used + bytes <= budget) {
      used += bytes;
      data++;
      continue;
    }
    if (data === 0) return { take: i + 1, split: true, plannedBytes: budget };
    return { take: i, split: false, plannedBytes: used };
  }
  return { take: items.length, split: false, plannedBytes: used };
}

/**
 * Bytes the volumes of one bundle may take under a limit of `limit` bytes:
 * the manifest, SHA256SUMS, RESTORE.txt and signature are kept room for
 * (`reserve`), and parity adds its percentage of the volumes.
 */
export function volumeBudget(limit: number, reserve: number, parityPercent = 0): number {
  return Math.max(0, Math.floor((limit - reserve) / (1 + parityPercent / 100)));
}

/** Room kept under --max-size for the files beside the volumes: twice the manifest's inventories, plus 64 KiB a stream and 1 MiB. */
export function metadataReserve(inventoryJsonBytes: number, streams: number): number {
  return 1024 * 1024 + 2 * inventoryJsonBytes + 64 * 1024 * streams;
}

/** --fill: DEST's free space less the margin the free-space check keeps (2%, at least 1 MiB). */
export function fillLimit(freeBytes: number): number {
  return Math.max(0, freeBytes - Math.max(1024 * 1024, Math.ceil(freeBytes * 0.02)));
}

export interface Segment {
  dir: string;
  bundleId: string;
  stream: StreamEntry;
}

/** The parts of one split stream found, from part 1 on. */
export interface SplitChain {
  parts: Segment[];
  complete: boolean;
}

export interface Assembled {
  /** The bundles for the import planner: a continuing part left out, a last part standing for its whole stream. */
  bundles: Array<{ dir: string; manifest: Manifest }>;
  /** The segments to read for a whole stream, by `dir#index` of its last part's entry. */
  segments: Map<string, Segment[]>;
  /** Split streams whose later parts are not here yet (the target lacks them too). */
  waiting: SplitChain[];
  /** Whole split streams found, all parts here. */
  complete: SplitChain[];
  /** Last parts (`dir#index`) whose earlier parts are gone, of streams the target already holds: never to be read. */
  unreadable: Set<string>;
}

export function segmentKey(dir: string, index: number): string {
  return `${dir}#${index}`;
}

export function partLabel(s: StreamEntry): string {
  const ds = s.dataset === '' ? '(root)' : s.dataset;
  return s.kind === 'full' ? `${ds}@${s.to?.name}` : `${ds} @${s.from?.name}→@${s.to?.name}`;
}

/** Same send step: dataset, kind, base and snapshot. */
function sameStream(a: StreamEntry, b: StreamEntry): boolean {
  return a.dataset === b.dataset && a.kind === b.kind && a.to?.guid === b.to?.guid && (a.from?.guid ?? null) === (b.from?.guid ?? null)
    && a.sendFlags.join(' ') === b.sendFlags.join(' ');
}

/**
 * Joins the parts of split streams across bundles, following each part's
 * `previous`. Refused, naming the part: a part whose previous part is
 * neither here nor received (a disk missing or imported out of order), a
 * part that does not continue the one it names (another stream, a gap or
 * an overlap), two parts claiming the same predecessor. `received` says
 * whether the target already holds a stream's snapshot: such a stream is
 * done, whichever of its parts are still around.
 */
export function assembleParts(
  bundles: ReadonlyArray<{ dir: string; manifest: Manifest }>,
  received: (dataset: string, guid: string) => boolean,
): Assembled | { refusal: ImportRefusal } {
  const byId = new Map(bundles.map((b) => [b.manifest.bundleId, b]));
  const done = (s: StreamEntry) => s.to !== null && received(s.dataset, s.to.guid);
  // The part continuing each bundle's last stream, by that bundle's id.
  const nextOf = new Map<string, Segment>();
  const unreadable = new Set<string>();
  for (const b of bundles) {
    const s = b.manifest.streams[0];
    if (!s?.part || s.part.number < 2) continue;
    const file = `${b.dir}/manifest.json`;
    const seg: Segment = { dir: b.dir, bundleId: b.manifest.bundleId, stream: s };
    const prevId = s.part.previous!;
    const prev = byId.get(prevId);
    if (!prev) {
      if (done(s)) {
        unreadable.add(segmentKey(b.dir, s.index));
        continue;
      }
      return {
        refusal: {
          message: `${file}: stream 1 (${partLabel(s)}) is part ${s.part.number} of a stream split across disks, and part ${s.part.number - 1} (bundle ${prevId}) is neither here nor staged: import the disk that holds it first (with --stage DIR); nothing was received`,
          file, field: '/streams/0/part/previous',
        },
      };
    }
    const last = prev.manifest.streams[prev.manifest.streams.length - 1];
    const fits = last?.part?.continues === true && last.part.number === s.part.number - 1 && sameStream(last, s)
      && last.part.offset + last.rawBytes === s.part.offset;
    if (!fits) {
      return {
        refusal: {
          message: `${file}: stream 1 (${partLabel(s)}) claims to be part ${s.part.number}, continuing bundle ${prevId} (${prev.dir}) at byte ${s.part.offset}, but that bundle does not end in part ${s.part.number - 1} of the same stream up to that byte: the parts do not belong together; nothing was received`,
          file, field: '/streams/0/part',
        },
      };
    }
    const other = nextOf.get(prevId);
    if (other) {
      return {
        refusal: {
          message: `${file}: part ${s.part.number} of ${partLabel(s)} continues bundle ${prevId}, and so does ${other.dir}: two exports of the same part; keep one of them; nothing was received`,
          file, field: '/streams/0/part/previous',
        },
      };
    }
    nextOf.set(prevId, seg);
  }
  const segments = new Map<string, Segment[]>();
  const waiting: SplitChain[] = [];
  const complete: SplitChain[] = [];
  for (const b of bundles) {
    const s = b.manifest.streams[b.manifest.streams.length - 1];
    if (!s?.part?.continues || s.part.number !== 1) continue;
    const parts: Segment[] = [{ dir: b.dir, bundleId: b.manifest.bundleId, stream: s }];
    for (let next = nextOf.get(b.manifest.bundleId); next; next = nextOf.get(next.bundleId)) {
      parts.push(next);
      if (!next.stream.part!.continues) break;
    }
    const end = parts[parts.length - 1];
    const whole = !end.stream.part!.continues;
    if (whole) {
      segments.set(segmentKey(end.dir, end.stream.index), parts);
      complete.push({ parts, complete: true });
    } else if (!done(s)) {
      waiting.push({ parts, complete: false });
    }
  }
  const planned = bundles.map((b) => ({
    dir: b.dir,
    manifest: {
      ...b.manifest,
      streams: b.manifest.streams.filter((s) => !s.part?.continues).map((s) => (s.part ? wholeEntry(s, segments.get(segmentKey(b.dir, s.index))) : s)),
    },
  }));
  return { bundles: planned, segments, waiting, complete, unreadable };
}

/**
 * Bundles in lineage order, with each later part moved after the part it
 * continues (lineage order alone goes by the source's newest snapshot, which
 * a snapshot destroyed between two exports can set back).
 */
export function orderParts<T extends { manifest: Manifest }>(bundles: readonly T[]): T[] {
  const out = [...bundles];
  for (let pass = 0; pass < out.length; pass++) {
    let moved = false;
    for (let i = 0; i < out.length && !moved; i++) {
      const prev = out[i].manifest.streams[0]?.part?.previous;
      const j = prev ? out.findIndex((b) => b.manifest.bundleId === prev) : -1;
      if (j > i) {
        out.splice(j, 0, ...out.splice(i, 1));
        moved = true;
      }
    }
    if (!moved) break;
  }
  return out;
}

/** The last part's entry standing for its whole stream: the stream's size and sha256, its stored bytes over every part. */
function wholeEntry(s: StreamEntry, parts: Segment[] | undefined): StreamEntry {
  const { part, ...rest } = s;
  return {
    ...rest,
    rawBytes: part!.streamRawBytes!,
    rawSha256: part!.streamRawSha256!,
    storedBytes: parts ? parts.reduce((n, p) => n + p.stream.storedBytes, 0) : s.storedBytes,
  };
}
