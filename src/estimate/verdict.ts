/**
 * Does the link keep up? Pure arithmetic over churn per interval, the
 * compression ratio measured on the next bundle, and the link's rate.
 */
import { formatBytes } from '../cli/units.js';

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
  summary: string;
}

export function keepUpVerdict(v: VerdictInput): Verdict {
  const capacity = v.linkBytesPerSecond * v.intervalSeconds;
  const need = v.averagePerInterval * v.ratio;
  const peakNeed = v.peakPerInterval * v.ratio;
  const keepsUp = need <= capacity;
  const peakFits = peakNeed <= capacity;
  if (keepsUp) {
    const headroom = capacity > 0 ? ((capacity - need) / capacity) * 100 : 0;
    const peakNote = peakFits ? '' : `; the busiest interval (${formatBytes(Math.round(peakNeed))}) does not fit and waits for the next`;
    return {
      keepsUp, capacityPerInterval: capacity, needPerInterval: need, peakNeedPerInterval: peakNeed,
      headroomPercent: headroom, peakFits, behindPerDay: null, diskEveryDays: null,
      summary: `keeps up with ${Math.floor(headroom)}% headroom${peakNote}`,
    };
  }
  const behindPerDay = ((need - capacity) * 86400) / v.intervalSeconds;
  const diskEveryDays = v.diskBytes / behindPerDay;
  const every = diskEveryDays >= 1
    ? `a ${formatBytes(v.diskBytes)} disk every ${Math.floor(diskEveryDays)} day${Math.floor(diskEveryDays) === 1 ? '' : 's'} would carry the rest`
    : `a ${formatBytes(v.diskBytes)} disk would fill in ${(diskEveryDays * 24).toFixed(1)} h: ship ${Math.ceil(1 / diskEveryDays)} disks a day or a faster link`;
  return {
    keepsUp, capacityPerInterval: capacity, needPerInterval: need, peakNeedPerInterval: peakNeed,
    headroomPercent: null, peakFits, behindPerDay, diskEveryDays,
    summary: `falls behind by ${formatBytes(Math.round(behindPerDay))} per day; ${every}`,
  };
}
