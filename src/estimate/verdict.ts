/**
 * Does the link keep up? Pure arithmetic over churn per interval, the
 * compression ratio measured on the next bundle, and the link's rate. The
 * verdict is numbers only; the CLI puts them into words.
 */

export interface VerdictInput {
  /** How often a bundle would be sent, seconds. */
  intervalSeconds: number;
  linkBytesPerSecond: number;
  /** Raw churn per interval: the larger of the 7- and 30-day averages is used, to be on the safe side. */
  averagePerInterval: number;
  peakPerInterval: number;
  /** Stored/raw bytes measured on the sample of the next bundle; 1 when nothing was sampled. */
  ratio: number;
  /** Size of the disk that would carry what the link cannot. */
  diskBytes: number;
}

export interface Verdict {
  keepsUp: boolean;
  /** What the link moves in one interval. */
  capacityPerInterval: number;
  /** Compressed bytes a bundle must carry per interval, on average and at the peak. */
  needPerInterval: number;
  peakNeedPerInterval: number;
  /** Share of the capacity left over on average; null when falling behind. */
  headroomPercent: number | null;
  /** Whether even the busiest interval fits. */
  peakFits: boolean;
  /** Compressed bytes per day the link leaves behind; null when keeping up. */
  behindPerDay: number | null;
  /** Days one disk of `diskBytes` covers of what is left behind; null when keeping up. */
  diskEveryDays: number | null;
  /** The disk size the verdict was asked about. */
  diskBytes: number;
}

export function keepUpVerdict(v: VerdictInput): Verdict {
  const capacity = v.linkBytesPerSecond * v.intervalSeconds;
  const need = v.averagePerInterval * v.ratio;
  const peakNeed = v.peakPerInterval * v.ratio;
  const keepsUp = need <= capacity;
  const peakFits = peakNeed <= capacity;
  const base = { keepsUp, capacityPerInterval: capacity, needPerInterval: need, peakNeedPerInterval: peakNeed, peakFits, diskBytes: v.diskBytes };
  if (keepsUp) {
    const headroom = capacity > 0 ? ((capacity - need) / capacity) * 100 : 0;
    return { ...base, headroomPercent: headroom, behindPerDay: null, diskEveryDays: null };
  }
  const behindPerDay = ((need - capacity) * 86400) / v.intervalSeconds;
  return { ...base, headroomPercent: null, behindPerDay, diskEveryDays: v.diskBytes / behindPerDay };
}
