/**
 * `--level auto`: the zstd level for a link, from speeds measured on this
 * machine. Pure: the caller measures (pipeline/level-probe.ts).
 *
 * zferry compresses first (export writes the bundle) and moves it after
 * (relay push, or the disk's own link), so a bundle costs
 * raw / compress speed + stored / link rate. A higher level pays while the
 * link time it saves exceeds the compress time it adds: on a slow link that
 * is the highest level, on a fast one a low one. The level chosen is the one
 * with the least total, the higher level on a tie (a smaller bundle), among
 * those that fit the memory bound; so it is never slower than -3 on the
 * sample it was measured on.
 */

export interface LevelSample {
  level: number;
  /** zstd --long (128 MiB window); absent: off. */
  long?: boolean;
  /** Raw bytes zstd took per second at this level on this machine (all its workers). */
  rawPerSecond: number;
  /** Stored bytes per raw byte on the sample. */
  ratio: number;
  /** zstd's working memory at this level with the workers used (estimate). */
  memoryBytes: number;
}

export interface LevelChoice {
  level: number;
  /** One line: which level and why. */
  reason: string;
  /** Seconds per raw GiB for every level measured (null: over the memory bound). */
  secondsPerGiB: Array<{ level: number; seconds: number | null; ratio: number; rawPerSecond: number }>;
}

/**
 * zstd's memory by level with 2 workers, rounded up from its compression
 * parameters (window and tables per worker plus job buffers): -19 with two
 * threads measured about 390 MB (issue 14).
 */
export function zstdMemoryEstimate(level: number, workers = 2, long = false): number {
  const perWorkerMiB = level <= 2 ? 6 : level <= 5 ? 14 : level <= 9 ? 40 : level <= 12 ? 70 : level <= 15 ? 110 : level <= 17 ? 150 : 195;
  // --long: each worker's job sees the 128 MiB window, and the input keeps one window more.
  const longMiB = long ? 128 * (workers + 1) : 0;
  return (perWorkerMiB * workers + longMiB) * 1024 * 1024;
}

export function chooseLevel(all: LevelSample[], linkBytesPerSecond: number, maxMemory: number): LevelChoice {
  // export writes without --long: those samples are for estimate's table only.
  const samples = all.filter((s) => !s.long);
  const GiB = 1024 ** 3;
  const time = (s: LevelSample) => GiB / s.rawPerSecond + (GiB * s.ratio) / linkBytesPerSecond;
  const table = samples.map((s) => ({ level: s.level, seconds: s.memoryBytes <= maxMemory ? time(s) : null, ratio: s.ratio, rawPerSecond: s.rawPerSecond }));
  const fit = samples.filter((s) => s.memoryBytes <= maxMemory).sort((a, b) => a.level - b.level);
  if (fit.length === 0) {
    return { level: 1, reason: `level 1: no level measured fits --max-memory ${Math.round(maxMemory / 2 ** 20)} MiB`, secondsPerGiB: table };
  }
  let fastest = fit[0];
  for (const s of fit) if (time(s) < time(fastest)) fastest = s;
  // 2% slack: a level that costs no measurable time is worth its smaller bundle; never past -3's time, though.
  const three = fit.find((s) => s.level === 3);
  const limit = Math.min(time(fastest) * 1.02, three ? Math.max(time(three), time(fastest)) : Infinity);
  let best = fastest;
  for (const s of fit) if (s.level > best.level && time(s) <= limit) best = s;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB/s`;
  const per = (s: LevelSample) => `${time(s).toFixed(1)} s/GiB`;
  const higher = samples.filter((s) => s.level > best.level).sort((a, b) => a.level - b.level)[0];
  const why = `compresses ${mib(best.rawPerSecond)} to ${(best.ratio * 100).toFixed(0)}% here; compressing and moving take ${per(best)} over a ${mib(linkBytesPerSecond)} link`
    + (three && three !== best ? ` (-3: ${per(three)})` : '');
  const next = higher
    ? higher.memoryBytes > maxMemory
      ? `; level ${higher.level} needs about ${Math.round(higher.memoryBytes / 2 ** 20)} MiB, over --max-memory`
      : `; level ${higher.level} (${mib(higher.rawPerSecond)}) would take ${per(higher)}: it compresses slower than the link gains`
    : '';
  return { level: best.level, reason: `level ${best.level}: ${why}${next}`, secondsPerGiB: table };
}

/** The levels estimate shows (issue 14): zstd's fast end, export's default, a middle one and the highest. */
export const ESTIMATE_LEVELS = [1, 3, 9, 19] as const;
/** --long is shown only where it makes the bundle at least this much smaller than the same level without it. */
export const LONG_HELPS = 0.02;

export interface LevelRow {
  level: number;
  long: boolean;
  /** Stored bytes per raw byte, on the sample. */
  ratio: number;
  /** The bundle at this setting: raw bytes × ratio; null when the raw size is unknown. */
  storedBytes: number | null;
  /** Moving it over the link. */
  linkSeconds: number | null;
  /** Compressing it on this machine, at the sample's speed. */
  compressSeconds: number | null;
  memoryBytes: number;
}

/**
 * estimate's per-level table: each level's bundle size and its time at the
 * link, from the same sample; a --long row follows its level only where it
 * helps (LONG_HELPS smaller). With `anchor` (the headline's level and its
 * bundle), sizes are scaled so that row equals the headline.
 */
export function levelTable(samples: LevelSample[], rawBytes: number | null, linkBytesPerSecond: number, anchor?: { level: number; storedBytes: number | null }): LevelRow[] {
  // The headline estimate samples every stream; this table one. Scaled so that the headline's level
  // shows the headline's bundle, the table keeps its relative sizes and never contradicts it.
  const at = samples.find((s) => !s.long && s.level === anchor?.level);
  const scale = rawBytes !== null && anchor?.storedBytes != null && at && at.ratio > 0 ? anchor.storedBytes / (rawBytes * at.ratio) : 1;
  const row = (s: LevelSample): LevelRow => {
    const storedBytes = rawBytes === null ? null : Math.round(rawBytes * s.ratio * scale);
    return {
      level: s.level, long: s.long === true, ratio: s.ratio, storedBytes,
      linkSeconds: storedBytes === null ? null : storedBytes / linkBytesPerSecond,
      compressSeconds: rawBytes === null ? null : rawBytes / s.rawPerSecond,
      memoryBytes: s.memoryBytes,
    };
  };
  const out: LevelRow[] = [];
  for (const plain of samples.filter((s) => !s.long).sort((a, b) => a.level - b.level)) {
    out.push(row(plain));
    const long = samples.find((s) => s.long && s.level === plain.level);
    if (long && long.ratio <= plain.ratio * (1 - LONG_HELPS)) out.push(row(long));
  }
  return out;
}
