/**
 * Which streams of an unfinished export a new run may keep. Pure: the caller
 * has already re-hashed the kept volumes from disk and passes only those that
 * matched; this decides by the step alone.
 */
import { carriesData, stepOf, type Step } from '../model.js';
import { volumeFileName } from '../bundle/manifest.js';
import type { StreamEntry } from '../bundle/manifest.js';

/** What shapes a stream's bytes besides its step: a stream made otherwise is never reused. */
export interface StreamSettings {
  level: number;
  volumeSize: number;
  /** age recipients, in any order; empty when not encrypted. */
  recipients: string[];
}

export interface PlannedStream {
  step: Step;
  /** The send options this run would use, as letters (sendFlagsOf). */
  sendFlags: string[];
}

export interface ReusedStream {
  /** 1-based place in the new plan. */
  index: number;
  /** The kept entry, as the unfinished export recorded it. */
  kept: StreamEntry;
  /** The kept entry renumbered to `index`, volume names included. */
  entry: StreamEntry;
  /** Volume files to rename, old name → new name (empty when the index is unchanged). */
  renames: Array<{ from: string; to: string }>;
}

/** One key for a step and its send options: equal keys make equal bytes from the same pool. */
export function streamKey(step: Step, sendFlags: readonly string[]): string {
  return JSON.stringify([stepOf(step), [...sendFlags]]);
}

export function sameSettings(a: StreamSettings, b: StreamSettings): boolean {
  const r = (x: string[]) => JSON.stringify([...x].sort());
  return a.level === b.level && a.volumeSize === b.volumeSize && r(a.recipients) === r(b.recipients);
}

/** The stream entry `kept` as stream `index` of the new bundle. */
export function renumbered(kept: StreamEntry, index: number, encrypted: boolean): StreamEntry {
  if (!carriesData(kept)) return { ...kept, index };
  const kind = kept.kind;
  return { ...kept, index, volumes: kept.volumes.map((v, n) => ({ ...v, file: volumeFileName(index, kind, n, encrypted) })) };
}

/**
 * For each planned stream, the kept one with the same step and send options,
 * made with the same settings. Create steps carry no bytes and are never
 * "reused". Each kept stream is used at most once.
 */
export function planReuse(planned: PlannedStream[], kept: StreamEntry[], keptSettings: StreamSettings, settings: StreamSettings): ReusedStream[] {
  if (!sameSettings(keptSettings, settings)) return [];
  const byKey = new Map<string, StreamEntry>();
  for (const k of kept) if (carriesData(k)) byKey.set(streamKey(k, k.sendFlags), k);
  const out: ReusedStream[] = [];
  planned.forEach((p, i) => {
    if (!carriesData(p.step)) return;
    const key = streamKey(p.step, p.sendFlags);
    const k = byKey.get(key);
    if (!k) return;
    byKey.delete(key);
    const entry = renumbered(k, i + 1, settings.recipients.length > 0);
    const renames = k.volumes.map((v, n) => ({ from: v.file, to: entry.volumes[n].file })).filter((r) => r.from !== r.to);
    out.push({ index: i + 1, kept: k, entry, renames });
  });
  return out;
}
