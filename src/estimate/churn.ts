/**
 * Churn: how many bytes the source writes over time, from one sample per
 * snapshot (the bytes written between the previous snapshot of its dataset
 * and this one). Pure: samples in, window statistics and daily buckets out.
 */

export type ChurnMethod =
  /** OpenZFS `written` of each snapshot (on-disk bytes since the previous snapshot). */
  | 'written'
  /** zfs-fuse and others without `written`: `zfs send -i PREV SNAP` measured into a byte counter. */
  | 'send-size';

export interface ChurnSample {
  /** Dataset path relative to the source root ('' for the root). */
  dataset: string;
  snapshot: string;
  /** Creation of the dataset's previous snapshot, epoch seconds. */
  since: number;
  /** Creation of this snapshot, epoch seconds. */
  at: number;
  /** Bytes written between the two; null when unknown (absurd value, not measured within the budget). */
  bytes: number | null;
}

export interface WindowChurn {
  days: number;
  /** Seconds of history the samples in the window cover (≤ the window). */
  coveredSeconds: number;
  totalBytes: number;
  /** Samples with a known size, and without one. */
  samples: number;
  unknown: number;
  /** Bytes per interval, averaged over the covered time (at least one interval). */
  averagePerInterval: number;
  /** The busiest interval, counting back from `now` in steps of one interval. */
  peakPerInterval: number;
}

/** Statistics of the samples created in the `days` before `now`. */
export function windowChurn(samples: readonly ChurnSample[], now: number, days: number, intervalSeconds: number): WindowChurn {
  const start = now - days * 86400;
  const inside = samples.filter((s) => s.at > start && s.at <= now);
  const known = inside.filter((s): s is ChurnSample & { bytes: number } => s.bytes !== null);
  const totalBytes = known.reduce((n, s) => n + s.bytes, 0);
  const earliest = inside.reduce((t, s) => Math.min(t, s.since), now);
  const coveredSeconds = inside.length === 0 ? 0 : now - Math.max(start, earliest);
  const buckets = new Map<number, number>();
  for (const s of known) {
    const k = Math.floor((now - s.at) / intervalSeconds);
    buckets.set(k, (buckets.get(k) ?? 0) + s.bytes);
  }
  return {
    days,
    coveredSeconds,
    totalBytes,
    samples: known.length,
    unknown: inside.length - known.length,
    averagePerInterval: totalBytes / Math.max(1, coveredSeconds / intervalSeconds),
    peakPerInterval: Math.max(0, ...buckets.values()),
  };
}

export interface DayChurn {
  /** UTC date, YYYY-MM-DD. */
  date: string;
  bytes: number;
  /** Snapshots that day whose size is unknown. */
  unknown: number;
}

/** One row per UTC day from the first sample in the window to the day of `now` (empty days included). */
export function dailyChurn(samples: readonly ChurnSample[], now: number, days: number): DayChurn[] {
  const start = now - days * 86400;
  const inside = samples.filter((s) => s.at > start && s.at <= now);
  if (inside.length === 0) return [];
  const dayOf = (t: number) => Math.floor(t / 86400);
  const first = Math.min(...inside.map((s) => dayOf(s.at)));
  const last = dayOf(now);
  const rows: DayChurn[] = [];
  for (let d = first; d <= last; d++) rows.push({ date: new Date(d * 86400 * 1000).toISOString().slice(0, 10), bytes: 0, unknown: 0 });
  for (const s of inside) {
    const row = rows[dayOf(s.at) - first]!;
    if (s.bytes === null) row.unknown++;
    else row.bytes += s.bytes;
  }
  return rows;
}
