/**
 * `zferry estimate`: how big the next bundle will be, how long the link takes
 * to move it, and whether the link keeps up with the source's churn.
 * Orchestration only: the plan is export's (commands/basis.ts), sizes come
 * from zfs (send -nvP where it exists, else a counted send), compression from
 * the pipeline's zstd stage on a bounded sample, the verdict from src/estimate.
 */
import { stopAndWait, stopOnFailure } from '../subprocess.js';
import type { Readable } from 'node:stream';
import { carriesData, joinDataset } from '../model.js';
import type { Zfs, SendSpec } from '../zfs/index.js';
import type { Basis } from '../bundle/index.js';
import type { SendStep } from '../plan/index.js';
import { measureStream, type StreamMeasure } from '../pipeline/index.js';
import { silentProgress, type Progress } from '../progress.js';
import { planRound, sendSpecFor, type PlannedRound } from './basis.js';
import { checkSite } from '../state/site.js';
import { dailyChurn, windowChurn, type ChurnMethod, type ChurnSample, type DayChurn, type WindowChurn } from '../estimate/churn.js';
import { keepUpVerdict, type Verdict } from '../estimate/verdict.js';
import { checkSpaceAtRatio, type SpaceCheck } from '../plan/index.js';
import { freeSpace } from '../fs/space.js';
import { isS3Url } from '../store/s3.js';
import { ESTIMATE_LEVELS, levelTable, type LevelRow } from '../plan/level.js';
import { LEVEL_SAMPLE_BYTES, probeLevels, takeSample } from '../pipeline/level-probe.js';

export interface EstimateOptions {
  source: string;
  /** A state or receipt file; without it the newest receipt for SOURCE under `dest`, else an empty target. */
  since?: string;
  dest?: string;
  /** minisign public key file: only receipts under `dest` signed by it (import --sign) count. */
  trustReceiver?: string;
  /** Hears each receipt passed over for want of that signature. */
  notice?: (line: string) => void;
  /** As for export: pending bundles in the journal are planned on top of. */
  journal?: string | false;
  /** As for export: the site's journal and receipts (default: the default site). */
  site?: string;
  level: number;
  linkBytesPerSecond: number;
  /** How often a bundle would be sent. */
  intervalSeconds: number;
  /** Disk size for "a disk every N days". */
  diskBytes: number;
  /** Bytes compressed as a sample, over all streams of the next bundle together. */
  sampleBytes: number;
  sampleSeconds: number;
  /** Where zfs has no `written`: at most this many incremental sends are measured for churn, within churnSeconds. */
  churnSends: number;
  churnSeconds: number;
  /** false: skip the per-level table (it times zstd at four levels, with and without --long, on one sample). */
  levels?: boolean;
  /** Epoch seconds (tests); default now. */
  now?: number;
  progress?: Progress;
}

export interface StreamEstimate {
  dataset: string;
  kind: 'full' | 'incremental';
  from: string | null;
  to: string;
  /** Raw send-stream bytes; null when unknown. */
  rawBytes: number | null;
  /** `send-dry-run`: zfs send -nvP; `measured`: the send run into a byte counter. */
  rawMethod: 'send-dry-run' | 'measured';
  /** Why zfs's own estimate was not used, when it was not. */
  note: string | null;
  /** Expected zstd bytes; exact when the sample was the whole stream. */
  storedBytes: number | null;
  sample: { rawBytes: number; storedBytes: number; whole: boolean };
}

export interface DatasetEstimate {
  dataset: string;
  /** Planned incremental base (null: starts with a full stream). */
  base: string | null;
  newest: string;
  rawBytes: number | null;
  storedBytes: number | null;
}

export interface ChurnReport {
  method: ChurnMethod;
  /** send-size only: incremental sends measured, and those left unknown by the budget. */
  measuredSends: number;
  unmeasuredSends: number;
  days7: WindowChurn;
  days30: WindowChurn;
  daily: DayChurn[];
}

export interface EstimateResult {
  source: string;
  /** The site estimated for (export --site). */
  site: string;
  basis: { origin: Basis['origin']; file: string | null };
  zfs: { flavour: string; version: string | null; sendDryRun: boolean };
  current: string[];
  conflicts: string[];
  datasets: DatasetEstimate[];
  streams: StreamEstimate[];
  total: {
    rawBytes: number | null;
    storedBytes: number | null;
    /** stored/raw over every sample; null when nothing was sampled. */
    ratio: number | null;
    sample: { rawBytes: number; storedBytes: number; limitBytes: number; limitSeconds: number };
  };
  link: { bytesPerSecond: number; intervalSeconds: number; transferSeconds: number | null };
  churn: ChurnReport;
  /** With --dest: the next bundle against that disk's free space, as export checks it; else null. */
  space: (SpaceCheck & { dest: string }) | null;
  /** The verdict judges by the busier of the 7- and 30-day averages; null without history. */
  verdict: (Verdict & { window: 7 | 30; ratioApplied: number }) | null;
  /**
   * The next bundle at zstd levels 1, 3, 9 and 19 (and --long where it
   * helps): its size and time at the link, from one sample of the largest
   * stream (the sampler --level auto uses); null when nothing is sent.
   */
  levels: { dataset: string; sampleBytes: number; rows: LevelRow[] } | null;
  seconds: number;
}

/** The first `bytes` of a send, the sample --level auto and estimate's table time zstd on; zfs is stopped after. */
export async function sendSample(zfs: Zfs, spec: SendSpec, bytes: number): Promise<Buffer> {
  const send = zfs.send(spec);
  const sample = await stopOnFailure(send, takeSample(send.stdout as Readable, bytes));
  await stopAndWait(send);
  return sample;
}

/** Runs one send into measureStream; stops zfs once the measure has what it needs. */
export async function measureSend(zfs: Zfs, spec: SendSpec, opts: Parameters<typeof measureStream>[1]): Promise<StreamMeasure> {
  const send = zfs.send(spec);
  const m = await stopOnFailure(send, measureStream(send.stdout as Readable, opts));
  // A send that died early still ends its stdout cleanly: only its exit status tells.
  if (m.complete) await send.done;
  else await stopAndWait(send);
  return m;
}

async function estimateStream(zfs: Zfs, round: Pick<PlannedRound, 'inventory'>, step: SendStep, opts: EstimateOptions, share: { bytes: number; seconds: number }, progress: Progress): Promise<StreamEstimate> {
  // The very send export will run: same options (-c, -w, -p…), so sizes agree.
  const spec = sendSpecFor(zfs, round, step);
  let zfsEstimate: number | null = null;
  let note: string | null = null;
  if (zfs.caps.sendDryRun) {
    const dry = await zfs.sendDryRun(spec);
    const sum = dry.streams.every((s) => s.size !== null) && dry.streams.length > 0
      ? dry.streams.reduce((n, s) => n + s.size!, 0n) : null;
    const size = dry.total ?? sum;
    if (size !== null && size <= BigInt(Number.MAX_SAFE_INTEGER)) zfsEstimate = Number(size);
    else note = 'zfs send -nvP gave no usable size (an absurd value is treated as unknown); measured instead';
  } else {
    note = 'this zfs has no send -nvP; measured by running the send into a byte counter';
  }
  const measured = zfsEstimate === null;
  progress.stream(`${step.dataset || '(root)'} @${step.to.name}`, zfsEstimate ?? 0);
  const m = await measureSend(zfs, spec, {
    level: opts.level, sampleBytes: share.bytes, sampleSeconds: share.seconds, readAll: measured,
    onBytes: (n) => progress.advance(n),
  });
  progress.endStream();
  const rawBytes = measured ? m.rawBytes : zfsEstimate;
  let storedBytes: number | null = null;
  if (m.sampleIsWhole) storedBytes = m.sampleStoredBytes;
  else if (rawBytes !== null && m.sampleRawBytes > 0) storedBytes = Math.round((rawBytes * m.sampleStoredBytes) / m.sampleRawBytes);
  return {
    dataset: step.dataset,
    kind: step.kind,
    from: step.from?.name ?? null,
    to: step.to.name,
    rawBytes,
    rawMethod: measured ? 'measured' : 'send-dry-run',
    note,
    storedBytes,
    sample: { rawBytes: m.sampleRawBytes, storedBytes: m.sampleStoredBytes, whole: m.sampleIsWhole },
  };
}

function sumOrNull(values: Array<number | null>): number | null {
  return values.some((v) => v === null) ? null : values.reduce((n: number, v) => n + v!, 0);
}

/** One sample per snapshot that has a predecessor in its dataset (the first snapshot's `written` is the whole dataset). */
async function churnSamples(
  zfs: Zfs, opts: EstimateOptions, inventory: Awaited<ReturnType<typeof planRound>>['inventory'], now: number,
  /** No planned stream was sampled (nothing new to send): take zstd's ratio from the churn sends instead. */
  sampleRatio: boolean,
): Promise<Omit<ChurnReport, 'days7' | 'days30' | 'daily'> & { samples: ChurnSample[]; sample: { raw: number; stored: number } }> {
  const pairs = inventory.datasets.flatMap((d) =>
    d.snapshots.slice(1).map((s, i) => ({ dataset: d.path, prev: d.snapshots[i]!, snap: s })),
  );
  const written = await zfs.snapshotWritten(opts.source);
  if (written !== null) {
    const byName = new Map(written.map((r) => [r.name, r.written]));
    const samples = pairs.map((p) => ({
      dataset: p.dataset, snapshot: p.snap.name, since: p.prev.creation, at: p.snap.creation,
      bytes: byName.get(`${joinDataset(opts.source, p.dataset)}@${p.snap.name}`) ?? null,
    }));
    return { method: 'written', measuredSends: 0, unmeasuredSends: 0, samples, sample: { raw: 0, stored: 0 } };
  }
  // No `written`: measure `zfs send -i PREV SNAP` for the newest pairs of the
  // last 30 days, within a budget; the rest stay unknown and are counted.
  const recent = pairs.filter((p) => p.snap.creation > now - 30 * 86400).sort((a, b) => b.snap.creation - a.snap.creation);
  const deadline = Date.now() + opts.churnSeconds * 1000;
  const samples: ChurnSample[] = [];
  const sample = { raw: 0, stored: 0 };
  const perSend = sampleRatio ? Math.max(64 * 1024, Math.floor(opts.sampleBytes / Math.max(1, Math.min(recent.length, opts.churnSends)))) : 0;
  let measuredSends = 0;
  for (const p of recent) {
    let bytes: number | null = null;
    if (measuredSends < opts.churnSends && Date.now() < deadline) {
      const m = await measureSend(zfs, {
        dataset: joinDataset(opts.source, p.dataset), from: { name: p.prev.name }, to: p.snap.name, intermediates: false,
      }, { level: opts.level, sampleBytes: perSend, sampleSeconds: perSend ? opts.sampleSeconds / opts.churnSends : 0, readAll: true });
      bytes = m.rawBytes;
      sample.raw += m.sampleRawBytes;
      sample.stored += m.sampleStoredBytes;
      measuredSends++;
    }
    samples.push({ dataset: p.dataset, snapshot: p.snap.name, since: p.prev.creation, at: p.snap.creation, bytes });
  }
  return { method: 'send-size', measuredSends, unmeasuredSends: recent.length - measuredSends, samples, sample };
}

export async function runEstimate(zfs: Zfs, opts: EstimateOptions): Promise<EstimateResult> {
  const started = Date.now();
  const progress = opts.progress ?? silentProgress;
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const { inventory, basis, plan } = await planRound(zfs, { source: opts.source, since: opts.since, receiptsIn: opts.dest, journal: opts.journal, site: checkSite(opts.site), trustReceiver: opts.trustReceiver, notice: opts.notice });

  const sends = plan.steps.filter(carriesData);
  // The sample budget is shared evenly, so a tree of many datasets stays bounded.
  const share = {
    bytes: sends.length ? Math.max(64 * 1024, Math.floor(opts.sampleBytes / sends.length)) : 0,
    seconds: sends.length ? opts.sampleSeconds / sends.length : 0,
  };
  const streams: StreamEstimate[] = [];
  progress.begin(`estimate ${opts.source}`, 0, sends.length);
  try {
    for (const step of sends) streams.push(await estimateStream(zfs, { inventory }, step, opts, share, progress));
  } finally {
    progress.end();
  }

  const datasets: DatasetEstimate[] = [];
  for (const s of streams) {
    const last = datasets[datasets.length - 1];
    if (last && last.dataset === s.dataset) {
      last.newest = s.to;
      last.rawBytes = sumOrNull([last.rawBytes, s.rawBytes]);
      last.storedBytes = sumOrNull([last.storedBytes, s.storedBytes]);
    } else {
      datasets.push({ dataset: s.dataset, base: s.kind === 'full' ? null : s.from, newest: s.to, rawBytes: s.rawBytes, storedBytes: s.storedBytes });
    }
  }
  const sampleRaw = streams.reduce((n, s) => n + s.sample.rawBytes, 0);
  const sampleStored = streams.reduce((n, s) => n + s.sample.storedBytes, 0);
  const storedTotal = sumOrNull(streams.map((s) => s.storedBytes));

  const churnRaw = await churnSamples(zfs, opts, inventory, now, sampleRaw === 0);
  const ratio = sampleRaw > 0 ? sampleStored / sampleRaw : churnRaw.sample.raw > 0 ? churnRaw.sample.stored / churnRaw.sample.raw : null;
  const days7 = windowChurn(churnRaw.samples, now, 7, opts.intervalSeconds);
  const days30 = windowChurn(churnRaw.samples, now, 30, opts.intervalSeconds);
  const churn: ChurnReport = {
    method: churnRaw.method, measuredSends: churnRaw.measuredSends, unmeasuredSends: churnRaw.unmeasuredSends,
    days7, days30, daily: dailyChurn(churnRaw.samples, now, 30),
  };
  // Measured sends are raw stream bytes: zstd shrinks them by the sampled ratio.
  // `written` counts on-disk bytes, already compressed where the dataset is:
  // applying zstd's ratio on top would count compression twice.
  const ratioApplied = churn.method === 'send-size' ? ratio ?? 1 : 1;
  const busier = days7.averagePerInterval >= days30.averagePerInterval ? days7 : days30;
  const verdict = days30.samples === 0 ? null : {
    window: busier.days as 7 | 30,
    ...keepUpVerdict({
      intervalSeconds: opts.intervalSeconds,
      linkBytesPerSecond: opts.linkBytesPerSecond,
      averagePerInterval: busier.averagePerInterval,
      peakPerInterval: Math.max(days7.peakPerInterval, days30.peakPerInterval),
      ratio: ratioApplied,
      diskBytes: opts.diskBytes,
    }),
    ratioApplied,
  };

  const rawTotal = sumOrNull(streams.map((s) => s.rawBytes));
  const space = opts.dest && streams.length > 0
    ? checkSpaceAtRatio(
      { method: rawTotal === null ? null : streams.some((s) => s.rawMethod === 'measured') ? 'measured' : 'send-dry-run', rawBytes: rawTotal, freeBytes: isS3Url(opts.dest) ? null : await freeSpace(opts.dest) },
      () => (storedTotal !== null && rawTotal ? storedTotal / rawTotal : null),
    )
    : null;
  const spaceOnDest = space && opts.dest ? { ...space, dest: opts.dest } : null;

  let levels: EstimateResult['levels'] = null;
  const largest = streams.map((s, i) => ({ s, step: sends[i] })).sort((a, b) => (b.s.rawBytes ?? 0) - (a.s.rawBytes ?? 0))[0];
  if (opts.levels !== false && largest && rawTotal !== null) {
    const sample = await sendSample(zfs, sendSpecFor(zfs, { inventory }, largest.step), Math.min(opts.sampleBytes, LEVEL_SAMPLE_BYTES));
    const settings = ESTIMATE_LEVELS.flatMap((level) => [{ level }, { level, long: true }]);
    levels = { dataset: largest.s.dataset, sampleBytes: sample.length, rows: levelTable(await probeLevels(sample, settings), rawTotal, opts.linkBytesPerSecond, { level: opts.level, storedBytes: storedTotal }) };
  }

  return {
    source: opts.source,
    site: checkSite(opts.site),
    basis: { origin: basis.origin, file: basis.file },
    zfs: { flavour: zfs.caps.flavour, version: zfs.caps.version, sendDryRun: zfs.caps.sendDryRun },
    current: plan.current,
    conflicts: plan.conflicts.map((c) => c.message),
    datasets,
    streams,
    total: {
      rawBytes: sumOrNull(streams.map((s) => s.rawBytes)),
      storedBytes: storedTotal,
      ratio,
      sample: { rawBytes: sampleRaw, storedBytes: sampleStored, limitBytes: opts.sampleBytes, limitSeconds: opts.sampleSeconds },
    },
    link: {
      bytesPerSecond: opts.linkBytesPerSecond,
      intervalSeconds: opts.intervalSeconds,
      transferSeconds: storedTotal === null ? null : storedTotal / opts.linkBytesPerSecond,
    },
    churn,
    space: spaceOnDest,
    verdict,
    levels,
    seconds: (Date.now() - started) / 1000,
  };
}
