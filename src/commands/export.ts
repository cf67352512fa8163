/**
 * `zferry export`: plan against what the target is known to hold, run the
 * sends, write one verified bundle. Orchestration only: the plan comes from
 * src/plan, the bytes go through src/pipeline, the format is src/bundle.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ZferryError } from '../errors.js';
import { stopOnFailure } from '../subprocess.js';
import { chooseLevel, zstdMemoryEstimate, type LevelChoice } from '../plan/level.js';
import { LANE_MAX_BYTES, SEND_LANES } from '../plan/lanes.js';
import { runInLanes } from '../lanes.js';
import { LEVEL_SAMPLE_BYTES, probeLevels } from '../pipeline/level-probe.js';
import { sendSample } from './estimate.js';
import type { SnapshotSpace, Zfs } from '../zfs/index.js';
import { carriesData, stepOf, type Inventory } from '../model.js';
import { describeStep, projectTarget, sendFlagsOf, spaceMissing, spaceVerdict, type Plan, type Scope, type SendStep, type SpaceCheck } from '../plan/index.js';
import { FORMAT_VERSION, finishBundle, ZFERRY_VERSION, type Basis, type FormatVersion, type Manifest, type StreamEntry } from '../bundle/index.js';
import { syncStreamsFolder, writeStream } from '../pipeline/index.js';
import { SyncBatch } from '../fs/sync-batch.js';
import { appendJournal, journalFile, readJournal, stateDir } from '../state/journal.js';
import { markerKey } from '../state/marker-key.js';
import { planRound, sendSpecFor, sourceIdentity, type Confirmation } from './basis.js';
import { protectBases } from './protect.js';
import { silentProgress, type Progress } from '../progress.js';
import { readSecretKey, signManifest } from '../trust/minisign.js';
import { readRecipients } from '../trust/age.js';
import { testPause } from '../test-hook.js';
import { fsyncDir, makeFreshFolder } from '../fs/safe.js';
import { checkKept, findPartials, folderPartial, sealPartial, unfinishedFolders, type DroppedStream, type FoundPartial, type PartialExport, type PartialPlace } from '../bundle/partial.js';
import { planReuse, type PlannedStream, type ReusedStream, type StreamSettings } from '../plan/reuse.js';
import { sourceTag } from '../plan/index.js';
import { exportLockFile, withLock } from '../state/lock.js';
import { createParity, PARITY_DIR, type ParityEntry } from '../parity/par2.js';
import { bytesUnder } from '../fs/space.js';
import { errnoName, fileError, isOutOfSpace } from '../fs/errors.js';
import { formatBytes } from '../units.js';
import { dryRuns, exportSpaceCheck, plannedRawSizes, sampledRatio, type PlannedSizes } from './space.js';
import { checkSpace, fillLimit, fitSteps, metadataReserve, volumeBudget } from '../plan/index.js';
import { freeSpace } from '../fs/space.js';
import { joinDataset, type SourceIdentity } from '../model.js';
import { stopAndWait } from '../subprocess.js';
import { checkSite, holdTag, isDefaultSite, siteField } from '../state/site.js';
import { abortUploads, childPlace, isS3Url, listUploads, parseS3Url, PART_SIZE, type S3Place } from '../store/s3.js';
import { bucketPartial, finishBundleInBucket, foldersInBucket, type UnfinishedInBucket } from '../bundle/bucket.js';

export interface ExportOptions {
  source: string;
  dest: string;
  /** A state or receipt file; without it the newest matching receipt under dest is used. */
  since?: string;
  /** zstd level, or 'auto': measured on a sample of the first stream against linkBytesPerSecond (see chooseLevel). */
  level: number | 'auto';
  /** With level 'auto': the link the bundle crosses, bytes per second. */
  linkBytesPerSecond?: number;
  /** With level 'auto': the most memory zstd may take (default 512 MiB). */
  maxMemory?: number;
  volumeSize: number;
  dryRun: boolean;
  /** Dataset globs to leave out (relative path or full name); children go with them. */
  exclude?: string[];
  /** Snapshot-name globs to send (default: all). */
  snapshots?: string[];
  /** Snapshot-name globs not to send. */
  excludeSnapshots?: string[];
  /** Plan past target-only snapshots from the common base (the import then needs --rollback too). */
  rollback?: boolean;
  /** Journal folder (default $ZFERRY_STATE_DIR or /var/lib/zferry); false: neither read nor write a journal. */
  journal?: string | false;
  /** Secret key file (zferry keygen): the manifest is signed, manifest.json.minisig. */
  sign?: string;
  /** age recipients or recipients files: every stream is encrypted to them. */
  encryptTo?: string[];
  /** Bundle format to write (default FORMAT_VERSION); 1 for a remote whose zferry predates 2, RESTORE.txt then unchecked. */
  bundleFormat?: FormatVersion;
  /** Seconds to wait for another export of this source to finish (--wait); Infinity: as long as it takes; absent: refuse at once. */
  wait?: number;
  /** One line for a person: a stale lock taken over, a wait begun. */
  notice?: (line: string) => void;
  /** minisign public key file: only receipts under DEST signed by it (import --sign) are planned from. */
  trustReceiver?: string;
  /** Percent of par2 recovery data to write in parity/ (export --parity); absent: none. */
  parity?: number;
  /** false: do not compare the planned size with DEST's free space (a file system that misreports it). */
  spaceCheck?: boolean;
  /** The site exported for (src/state/site.ts); default: the default site. */
  site?: string;
  /** --max-size: the bundle takes at most this many bytes; streams in plan order up to the first that does not fit, a stream larger than that is written in parts. */
  maxSize?: number;
  /** --fill: the same, with DEST's free space less the margin as the limit. */
  fill?: boolean;
  progress?: Progress;
  /**
   * Called with the plan (bundle and streams still empty) before anything is
   * written: the CLI prints it ahead of the progress bars. A throw stops the
   * export there, with nothing written.
   */
  onPlan?: (planned: ExportResult) => void | Promise<void>;
}

export interface ExportResult {
  /** Path of the written bundle; null on a dry run or when there was nothing to send. */
  bundle: string | null;
  bundleId: string | null;
  basis: { origin: Basis['origin']; file: string | null };
  plan: Plan;
  scope: Scope;
  /** Where the next incremental base is kept: hold or bookmark per dataset, and the older ones released. */
  protection: { kept: string[]; released: string[] };
  /** The planned size against DEST's free space (freeBytes null with --no-space-check); null when nothing is sent. */
  space: SpaceCheck | null;
  streams: Array<Pick<StreamEntry, 'index' | 'dataset' | 'kind' | 'rawBytes' | 'storedBytes'> & { from: string | null; to: string | null }>;
  rawBytes: number;
  storedBytes: number;
  seconds: number;
  /** The site exported for. */
  site: string;
  /** The receipt (or --since state file) the round was planned from, for zferry status; null when none. */
  confirmed: Confirmation | null;
  /** With --level auto: the level chosen and why (null otherwise). */
  levelChoice: LevelChoice | null;
  /**
   * With --max-size or --fill, or when this bundle continues a stream split
   * across disks: the limit, how many of the plan's steps this bundle takes
   * and how many are left for the next disk, and the split stream's part.
   */
  limit: ExportLimit | null;
  /**
   * An unfinished export of this source found under dest (null: none): the
   * streams of it this run keeps (re-hashed from disk) and those it cannot.
   */
  resumed: {
    folder: string;
    reused: Array<{ index: number; dataset: string; kind: StreamEntry['kind']; from: string | null; to: string | null; storedBytes: number }>;
    dropped: DroppedStream[];
  } | null;
}


export interface ExportLimit {
  /** The bundle's limit in bytes (--max-size, or DEST's free space less the margin with --fill); null: none (a continuation only). */
  maxBytes: number | null;
  /** Of it, what the volumes may take (the manifest and other files kept room for, parity's share taken off). */
  volumeBytes: number | null;
  /** Steps of the plan (with the continued stream first) and how many this bundle takes; planned before, written after. */
  planned: number;
  taken: number;
  /** Steps left for the next export (to the next disk). */
  left: number;
  /** This bundle continues a stream split across disks: the part it holds. */
  continued: { dataset: string; to: string; part: number; offset: number } | null;
  /** This bundle ends in a part that continues on the next disk. */
  split: { dataset: string; to: string; part: number; rawBytes: number } | null;
}

/** What every bundle folder of `source` starts with. */
function folderHead(source: string): string {
  return `zferry-${source.replace(/[^A-Za-z0-9_.-]/g, '_')}-`;
}

/** The time in a folder name: to the second, fixed width, so names sort by it. */
function folderStamp(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** A folder name that sorts by time and says what it holds. */
export function bundleFolderName(root: string, id: string, at: Date): string {
  return `${folderHead(root)}${folderStamp(at)}-${id.slice(0, 8)}`;
}

/**
 * Milliseconds to wait before naming a new bundle of `source` at `now`, so
 * that its name sorts after every bundle of that source in `folders` named
 * in the same second: names carry the time to the second, and two exports
 * within one second would sort by their random ids (a person restoring with
 * RESTORE.txt in `ls` order would apply them in the wrong order). A name
 * further ahead (a clock set back) is not waited for.
 */
export function waitToSortAfter(folders: readonly string[], source: string, now: Date): number {
  const head = folderHead(source);
  const stamp = folderStamp(now);
  const taken = folders.some((f) => isBundleFolderOf(f, source) && f.slice(head.length, head.length + 16) === stamp);
  return taken ? 1000 - (now.getTime() % 1000) : 0;
}

/** What namingTime reads the time from and sleeps by (a test gives it its own). */
export interface NamingClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const systemClock: NamingClock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

/**
 * The time a new bundle of `source` is named by: now, or the start of the
 * next second when a name in `folders` already carries this one
 * (waitToSortAfter). Past this second and no further: a name of a later
 * second (a clock set back, or a stranger's in a shared bucket) is not
 * waited for, so a run of names planted for the seconds ahead holds an
 * export up for one second at most. The time is read again after each
 * sleep, since a timer may fire a millisecond early.
 */
export async function namingTime(folders: readonly string[], source: string, clock: NamingClock = systemClock): Promise<Date> {
  const at = clock.now();
  for (const until = at + waitToSortAfter(folders, source, new Date(at)); clock.now() < until; ) await clock.sleep(until - clock.now());
  return new Date(clock.now());
}

/** A folder bundleFolderName made for this source (not for one whose name merely starts the same). */
export function isBundleFolderOf(folder: string, source: string): boolean {
  const head = folderHead(source);
  return folder.startsWith(head) && /^\d{8}T\d{6}Z-[0-9a-f]{8}$/.test(folder.slice(head.length));
}

function sendLabel(step: SendStep): string {
  const name = step.dataset === '' ? '(root)' : step.dataset;
  if (step.kind === 'full') return `${name}@${step.to.name}`;
  const origin = step.from?.dataset !== undefined ? `${step.from.dataset || '(root)'}` : '';
  return `${name} ${origin}@${step.from?.name}→@${step.to.name}`;
}


/**
 * zfs's own estimate of each send, for the progress bars' totals and ETA: only
 * for a person at a terminal, and only where zfs has `send -nvP` (one quick
 * call a stream). Unknown sizes stay 0: the bar then shows bytes and rate.
 */
async function expectedSizes(zfs: Zfs, inventory: Inventory, sends: SendStep[], progress: Progress, planned: PlannedSizes | null): Promise<Map<SendStep, number>> {
  const sizes = new Map<SendStep, number>();
  if (progress === silentProgress || !zfs.caps.sendDryRun) return sizes;
  if (planned?.method === 'send-dry-run') {
    for (const [step, n] of planned.raw) if (n !== null) sizes.set(step, n);
    return sizes;
  }
  const dries = await dryRuns(zfs, inventory, sends);
  sends.forEach((step, i) => {
    const total = dries[i]?.total;
    if (total !== null && total !== undefined) sizes.set(step, Number(total));
  });
  return sizes;
}

/** zstd -19 with 2 threads takes about 390 MB: 512 MiB allows every level by default. */
export const DEFAULT_MAX_MEMORY = 512 * 1024 * 1024;
/** Sends whose first bytes make up the sample at most: a pool's root stream alone is often a few KiB. */
const AUTO_SAMPLE_SENDS = 8;

/** Measures zstd on the first bytes of the real streams, in plan order, and picks the level for the link. */
async function autoLevel(zfs: Zfs, inventory: Inventory, sends: SendStep[], link: number, maxMemory: number): Promise<LevelChoice> {
  const parts: Buffer[] = [];
  let n = 0;
  for (const step of sends.slice(0, AUTO_SAMPLE_SENDS)) {
    if (n >= LEVEL_SAMPLE_BYTES) break;
    const part = await sendSample(zfs, sendSpecFor(zfs, { inventory }, step), LEVEL_SAMPLE_BYTES - n);
    parts.push(part);
    n += part.length;
  }
  return chooseLevel(await probeLevels(Buffer.concat(parts)), link, maxMemory);
}

/**
 * One export of a source (per site) at a time: the lock, in the state folder
 * beside the journal, is held from planning to the journal's update, so two
 * runs never plan on the same journal entry or race on holds. A dry run
 * writes nothing and takes no lock. An unfinished export is resumed under
 * the same lock, so two runs never adopt the same folder.
 */
export async function runExport(zfs: Zfs, opts: ExportOptions): Promise<ExportResult> {
  if (opts.dryRun) return exportLocked(zfs, opts);
  const dir = stateDir(typeof opts.journal === 'string' ? opts.journal : undefined);
  return withLock(exportLockFile(dir, opts.source, checkSite(opts.site)), {
    what: `an export of ${opts.source}`, notice: opts.notice, ...(opts.wait !== undefined ? { waitSeconds: opts.wait } : {}),
  }, () => exportLocked(zfs, opts));
}

async function exportLocked(zfs: Zfs, opts: ExportOptions): Promise<ExportResult> {
  const progress = opts.progress ?? silentProgress;
  const started = Date.now();
  const site = checkSite(opts.site);
  if (!isDefaultSite(site) && opts.bundleFormat === 1) {
    throw new ZferryError(`--site ${site}: a site is recorded in the bundle, which format 1 cannot carry; drop --bundle-format 1`, { field: '--bundle-format' });
  }
  // Keys are read before zfs is asked anything: a bad key file fails in a second, not after the sends.
  if (opts.parity && opts.bundleFormat === 1) throw new ZferryError('--parity needs bundle format 2 (format 1 has no place for parity files)', { field: 'bundleFormat' }, 2);
  const bucket = isS3Url(opts.dest) ? parseS3Url(opts.dest) : null;
  if (bucket && opts.parity) throw new ZferryError(`--parity: ${opts.dest} is a bucket, whose objects are not repaired from parity; drop --parity (the store keeps its own redundancy)`, { field: '--parity' }, 2);
  const secretKey = opts.sign ? await readSecretKey(opts.sign) : null;
  const recipients = opts.encryptTo && opts.encryptTo.length > 0 ? await readRecipients(opts.encryptTo) : null;
  const { inventory, identity, basis, proved, confirmed, scope, plan, snapshotSpace } = await planRound(zfs, {
    source: opts.source, since: opts.since, receiptsIn: opts.dest, journal: opts.journal, site, trustReceiver: opts.trustReceiver, notice: opts.notice,
    exclude: opts.exclude, snapshots: opts.snapshots, excludeSnapshots: opts.excludeSnapshots, rollback: opts.rollback,
  });
  const limited = opts.maxSize !== undefined || opts.fill === true;
  if (limited && opts.bundleFormat === 1) {
    throw new ZferryError(`${opts.maxSize !== undefined ? '--max-size' : '--fill'} may split a stream into parts across disks, which bundle format 1 cannot carry; drop --bundle-format 1`, { field: '--bundle-format' }, 2);
  }
  if (opts.fill && bucket) throw new ZferryError(`--fill: ${opts.dest} is a bucket, which has no free space to fill; use --max-size`, { field: '--fill' }, 2);
  // The newest bundle in the journal may end in a part of a stream that continues here.
  const continuing = await continuationOf(opts, identity, site, basis, inventory);
  if (continuing && opts.bundleFormat === 1) {
    throw new ZferryError(`${continuing.file}: the bundle ${basis.bundleId} ends in part ${continuing.split.stream.part!.number} of a stream that continues in this export, which bundle format 1 cannot carry; drop --bundle-format 1`, { field: '--bundle-format' }, 2);
  }
  if (continuing) plan.steps = [continuing.step, ...plan.steps];
  const rename = (opts.bundleFormat ?? FORMAT_VERSION) < 2 ? plan.steps.find((s) => s.kind === 'rename') : undefined;
  if (rename) {
    const dataset = `${opts.source}${rename.dataset === '' ? '' : '/' + rename.dataset}`;
    throw new ZferryError(`${dataset}: --bundle-format 1 cannot carry a rename (found on the target's copy by guid; a version-1 reader refuses the step): export with --bundle-format 2, or update zferry on the remote`, { dataset });
  }
  const result: ExportResult = {
    bundle: null,
    bundleId: null,
    basis: { origin: basis.origin, file: basis.file },
    plan,
    scope,
    protection: { kept: [], released: [] },
    space: null,
    streams: [],
    rawBytes: 0,
    storedBytes: 0,
    seconds: 0,
    site,
    confirmed,
    resumed: null,
    levelChoice: null,
    limit: null,
  };
  if (opts.level === 'auto' && !(opts.linkBytesPerSecond && opts.linkBytesPerSecond > 0)) {
    throw new ZferryError('--level auto needs the link\'s rate: --link RATE (e.g. 10Mbit) on export, link or mbuffer.rate in the config', { field: 'level' }, 2);
  }
  const allSends = plan.steps.filter(carriesData);
  // An export cut part way (killed, disk full, link down, Ctrl-C) left its finished streams: keep what this plan still needs.
  const listed = bucket ? await foldersInBucket(bucket) : null;
  const inBucket = listed?.unfinished ?? [];
  // Only folders named for this source: a marker anyone wrote into another source's folder (a shared bucket) never makes it ours to resume or remove.
  const candidates = (bucket ? inBucket.filter((u) => u.marked).map((u) => u.partial) : await unfinishedFolders(opts.dest))
    .filter((p) => isBundleFolderOf(p.where.slice(p.where.lastIndexOf('/') + 1), opts.source));
  const key = await markerKey(stateDir(typeof opts.journal === 'string' ? opts.journal : undefined), !opts.dryRun);
  const { found: partials, unsealed } = await findPartials(candidates, sourceTag(identity), site, key);
  for (const u of unsealed) {
    opts.notice?.(`${u.where}: an unfinished export of ${opts.source} whose marker this host did not seal (a stranger's, another host's, or one from before markers were sealed): not resumed and left as it is; remove it once you know it is not being written`);
  }
  // Its streams are matched to this plan by position: a plan cut to a limit, or led by a continued part, is not the plan it was written for.
  const adopted: FoundPartial | null = limited || continuing ? null : partials[0] ?? null;
  if (opts.level === 'auto' && adopted && adopted.marker.streams.length > 0) {
    // A level measured again may differ by noise alone and would void every finished stream.
    const level = adopted.marker.settings.level;
    result.levelChoice = { level, reason: `level ${level}: kept from the unfinished export ${adopted.place.where}, so its finished streams can be reused`, secondsPerGiB: [] };
  } else if (opts.level === 'auto' && allSends.length > 0) {
    result.levelChoice = await autoLevel(zfs, inventory, allSends, opts.linkBytesPerSecond!, opts.maxMemory ?? DEFAULT_MAX_MEMORY);
  }
  const level = opts.level === 'auto' ? (result.levelChoice?.level ?? 3) : opts.level;

  const settings: StreamSettings = { level, volumeSize: opts.volumeSize, recipients: recipients ?? [] };
  const planned: PlannedStream[] = plan.steps.map((step) => ({
    step,
    sendFlags: carriesData(step) ? sendFlagsOf(sendSpecFor(zfs, { inventory }, step as SendStep).flags ?? [], step as SendStep) : [],
  }));
  let reuse: ReusedStream[] = [];
  if (adopted) {
    const { kept, dropped } = await checkKept(adopted.place, adopted.marker.streams);
    reuse = planReuse(planned, kept, adopted.marker.settings, settings);
    const used = new Set(reuse.map((r) => r.kept.index));
    result.resumed = {
      folder: adopted.place.where,
      reused: reuse.map((r) => ({
        index: r.index, dataset: r.entry.dataset, kind: r.entry.kind, from: r.entry.from?.name ?? null, to: r.entry.to?.name ?? null, storedBytes: r.entry.storedBytes,
      })),
      dropped: [
        ...dropped,
        ...kept.filter((k) => !used.has(k.index)).map((k) => ({ index: k.index, dataset: k.dataset, reason: 'not in this plan (new snapshots, basis or options changed it)' })),
      ],
    };
  }
  const reusedAt = new Map(reuse.map((r) => [r.index, r.entry]));
  const keptBytes = reuse.reduce((n, r) => n + r.entry.storedBytes, 0);
  // Under a limit, the plan's steps up to the first that does not fit (planned sizes, as the space check plans them).
  const fit = limited || continuing
    ? await fitToLimit(zfs, inventory, plan.steps, opts, level, continuing, JSON.stringify([inventory, basis.inventory]).length, snapshotSpace)
    : null;
  const taken = fit ? plan.steps.slice(0, fit.take) : plan.steps;
  if (fit) {
    result.limit = {
      maxBytes: fit.maxBytes, volumeBytes: fit.volumeBytes, planned: plan.steps.length, taken: taken.length, left: plan.steps.length - taken.length,
      continued: continuing ? { dataset: continuing.step.dataset, to: continuing.step.to.name, part: continuing.split.stream.part!.number + 1, offset: continuing.offset } : null,
      split: null,
    };
  }
  // Only what is still to be written is sized and checked: the reused streams are already on the disk.
  const sends = taken.filter((s, i): s is SendStep => carriesData(s) && !reusedAt.has(i + 1));
  // Checked before anything is written: a bundle that cannot fit leaves the disk as it was.
  // With the check off the size is still planned (no sample): an out-of-space line can then say what was missing.
  // A bucket has no free-space figure: its quota speaks when an upload is refused.
  const sized = sends.length > 0
    ? await exportSpaceCheck(zfs, inventory, sends, opts.spaceCheck === false || bucket ? null : opts.dest, level, opts.parity ?? 0, keptBytes,
      fit ? fit.sizesOf(sends) : await plannedRawSizes(zfs, inventory, sends, snapshotSpace))
    : null;
  // A bundle under a limit takes no more than the limit, whatever its streams would.
  result.space = sized && fit?.maxBytes != null && (sized.check.plannedBytes ?? 0) > fit.maxBytes
    ? checkSpace({ method: sized.check.method, rawBytes: fit.maxBytes, ratio: 1, freeBytes: sized.check.freeBytes })
    : sized?.check ?? null;
  await opts.onPlan?.(result);
  if (opts.dryRun) {
    result.seconds = (Date.now() - started) / 1000;
    return result;
  }
  // Older unfinished exports of this source are superseded by the newest one; with nothing to send, that one too.
  for (const p of partials) if (p !== adopted || plan.steps.length === 0) await p.place.remove();
  // What an export of this source killed before its first marker left in the bucket (no marker, so no resume).
  if (bucket) await clearUnmarked(bucket, opts.source, inBucket);
  if (plan.steps.length === 0) {
    result.resumed = null;
    result.seconds = (Date.now() - started) / 1000;
    return result;
  }
  if (result.space?.fits === false) {
    throw new ZferryError(spaceVerdict(opts.dest, result.space, formatBytes), { file: opts.dest });
  }

  const id = adopted?.marker.bundleId ?? randomUUID();
  let createdAt = new Date();
  if (!adopted) {
    // A bucket's folders come from the listing above (another listing would cost one request per 1,000 keys).
    const folders = listed?.names ?? await readdir(opts.dest).catch(() => []);
    await testPause('export:name');
    createdAt = await namingTime(folders, opts.source);
  }
  const name = bundleFolderName(opts.source, id, createdAt);
  const place = bucket ? (adopted ? parseS3Url(adopted.place.where) : childPlace(bucket, name)) : null;
  const target: PartialPlace = adopted?.place ?? (place ? bucketPartial(place) : folderPartial(join(opts.dest, name)));
  const dir = target.where;
  const marker: PartialExport = {
    format: 'zferry-export-partial', formatVersion: 1, bundleId: id, createdAt: createdAt.toISOString(), source: sourceTag(identity),
    host: hostname(), pid: process.pid, site, settings, streams: [],
  };
  // A folder's volumes are synced together, before the closing files (fs/sync-batch.ts); a bucket's are complete when uploaded.
  const syncBatch = place ? null : new SyncBatch();
  if (adopted) {
    // Written before the renames: a crash during them leaves a marker listing nothing, not one that lies.
    await target.writeMarker(sealPartial(marker, key));
    await target.arrange(reuse);
    // The killed run left them to its own batch: they may be in the page cache only.
    for (const r of syncBatch ? reuse : []) for (const v of r.entry.volumes) await syncBatch!.addFile(join(dir, v.file), dir);
  } else if (!place) {
    // The destination is the user's choice; the bundle folder and streams/ are
    // made fresh, so nothing already on the disk (a planted link) is written through.
    await mkdir(opts.dest, { recursive: true });
    await makeFreshFolder(dir);
    await makeFreshFolder(join(dir, 'streams'));
  }
  const streams: StreamEntry[] = [];
  marker.streams = [...reusedAt.values()];
  const expected = await expectedSizes(zfs, inventory, sends, progress, sized?.sizes ?? null);
  progress.begin(`export ${opts.source}`, [...expected.values()].reduce((a, b) => a + b, 0), sends.length);
  // The steps this bundle holds: `taken`, less any after a stream the limit cut.
  const written: typeof plan.steps = [];
  // Set inside the lanes' closure, hence the cast: TypeScript would narrow it to null here.
  let split = null as { stream: StreamEntry; prefixSha256: string } | null;
  try {
    // In a bucket too, before the first volume: a kill from here on leaves a marked prefix the next run resumes or clears.
    await target.writeMarker(sealPartial(marker, key));
    // Small sends side by side where nothing depends on the order they end in: no limit to fit (each
    // stream's room is what the ones before it left). Each stream keeps its place (index) in the plan
    // whichever lane wrote it. Into a bucket, only streams of at most one part: each is one PUT, whose
    // body lib-storage holds whole, so eight lanes hold at most eight parts.
    const sideBySide = !fit;
    const laneMaxBytes = place ? PART_SIZE : LANE_MAX_BYTES;
    // Each lane compresses with a context of its own: as many as --max-memory holds at this level.
    const sendLanes = sideBySide ? Math.max(1, Math.min(SEND_LANES, Math.floor((opts.maxMemory ?? DEFAULT_MAX_MEMORY) / zstdMemoryEstimate(level)))) : 1;
    const alone = taken.map((step, i) => {
      // Nothing to send (a create step, a stream kept from a killed run): nothing to keep apart.
      if (!carriesData(step) || reusedAt.has(i + 1)) return false;
      const size = sized?.sizes.raw.get(step);
      return sendLanes === 1 || size === null || size === undefined || size > laneMaxBytes;
    });
    const done = new Map<number, { step: (typeof taken)[number]; entry: StreamEntry }>();
    const inOrder = () => [...done.keys()].sort((a, b) => a - b).map((i) => done.get(i)!);
    // One marker write at a time (they replace one file), each with every stream finished when it starts:
    // a stream finished while one is waiting to start is in that one (402 streams wrote a growing list 402 times).
    let lastWrite: Promise<void> = Promise.resolve();
    let waiting: Promise<void> | null = null;
    const saveMarker = (): Promise<void> => {
      waiting ??= lastWrite.then(() => {
        waiting = null;
        // After a kill the marker lists the stream (its volumes are written and closed); after a power cut
        // it may list one whose bytes were not yet on disk, which the next run's check of every volume drops.
        // The kept streams not reached yet stay listed: their volumes are on the disk, whole.
        // Built when the write starts, not per stream: once for all the streams finished meanwhile.
        const listed = new Map([...reusedAt, ...[...done].map(([k, x]) => [k, x.entry] as const)]);
        marker.streams = [...listed.keys()].sort((a, b) => a - b).map((k) => listed.get(k)!).filter(carriesData);
        return target.writeMarker(sealPartial(marker, key), { durable: false });
      });
      lastWrite = waiting;
      return waiting;
    };
    // Set when the limit is reached: the steps after it wait for the next disk.
    let stop = false;
    const sendOne = async (i: number): Promise<void> => {
      const step = taken[i];
      const index = i + 1;
      if (stop) return;
      if (!carriesData(step)) {
        done.set(index, { step, entry: { index, ...stepOf(step), sendFlags: [], rawBytes: 0, storedBytes: 0, rawSha256: null, volumes: [] } });
        return;
      }
      const kept = reusedAt.get(index);
      if (kept) {
        done.set(index, { step, entry: kept });
        return;
      }
      const spec = sendSpecFor(zfs, { inventory }, step);
      const options = spec.flags ?? [];
      const isContinued = continuing !== null && step === continuing.step;
      if (isContinued && sendFlagsOf(options, step).join(' ') !== continuing.split.stream.sendFlags.join(' ')) {
        throw new ZferryError(`${joinDataset(opts.source, step.dataset)}: the stream split across disks was sent with ${continuing.split.stream.sendFlags.join(' ') || 'no options'}, and would now be sent with ${sendFlagsOf(options, step).join(' ') || 'none'}: it cannot be continued; export with --no-journal to start over`, { dataset: joinDataset(opts.source, step.dataset) });
      }
      // Under a limit the steps run one at a time, in order: what is done is everything before this one.
      const before = fit ? inOrder().map((x) => x.entry) : [];
      const usedBytes = before.reduce((n, x) => n + x.storedBytes, 0);
      const room = fit?.volumeBytes != null ? fit.volumeBytes - usedBytes : undefined;
      // No room for even the start of another stream: it goes to the next disk.
      if (room !== undefined && room < MIN_PART_BYTES && before.some(carriesData)) {
        stop = true;
        return;
      }
      const send = zfs.send(spec);
      // A bar of its own only for a send that runs alone; small ones side by side count in the overall bar.
      const bar = alone[i];
      if (bar) progress.stream(sendLabel(step), expected.get(step) ?? 0);
      const out = await stopOnFailure(
        send,
        writeStream(send.stdout, {
          dir, index, kind: step.kind, volumeSize: opts.volumeSize, level,
          ...(recipients ? { encryptTo: recipients } : {}),
          onBytes: (n) => progress.advance(n),
          // Once for the bundle, below: a folder fsync per stream was half of an export's fsyncs.
          syncFolder: false,
          ...(syncBatch ? { syncBatch } : {}),
          ...(place ? { place } : {}),
          ...(room !== undefined ? { maxStored: room } : {}),
          ...(isContinued ? { skip: { bytes: continuing.offset, sha256: continuing.split.prefixSha256 } } : {}),
          label: `stream ${index} (${sendLabel(step)})`,
        }),
      );
      const cut = out.segment?.cut === true;
      // A cut part let go of the send's output: the rest is not wanted. Otherwise a send that died early still
      // ends its stdout cleanly: only its exit status tells.
      if (cut) await stopAndWait(send);
      else await send.done;
      if (bar) progress.endStream();
      if (cut && out.rawBytes === 0) {
        // Not one byte of it fit: it goes whole to the next disk.
        await target.dropUnlisted(before.filter(carriesData)).catch(() => undefined);
        if (!before.some(carriesData)) throw new ZferryError(`${opts.dest}: the limit of ${formatBytes(fit!.maxBytes ?? 0)} leaves no room for any of ${sendLabel(step)}: raise --max-size`, { file: opts.dest, field: '--max-size' }, 2);
        stop = true;
        return;
      }
      const entry: StreamEntry = {
        index,
        ...stepOf(step),
        sendFlags: sendFlagsOf(options, step),
        rawBytes: out.rawBytes,
        storedBytes: out.storedBytes,
        rawSha256: out.rawSha256,
        volumes: out.volumes,
      };
      if (isContinued || cut) {
        const seg = out.segment!;
        entry.part = {
          number: isContinued ? continuing.split.stream.part!.number + 1 : 1,
          offset: seg.offset,
          previous: isContinued ? basis.bundleId! : null,
          continues: cut,
          streamRawBytes: cut ? null : seg.endBytes,
          streamRawSha256: cut ? null : seg.endSha256,
        };
      }
      done.set(index, { step, entry });
      if (cut) {
        stop = true;
        split = { stream: entry, prefixSha256: out.segment!.endSha256 };
        if (result.limit) result.limit.split = { dataset: step.dataset, to: step.to.name, part: entry.part!.number, rawBytes: out.segment!.endBytes };
      }
      await saveMarker();
      await testPause(`export:between:${index}`);
    };
    // Sends only read the source: none waits for another.
    const run = await runInLanes(taken.map(() => []), alone, sendLanes, sendOne);
    // What the plan would say with these streams and no others (those after a limit wait for the next disk).
    for (const { step, entry } of inOrder()) {
      streams.push(entry);
      written.push(step);
    }
    if (run.failed) throw run.failed.error;
    // The volumes, and their names, are durable before the manifest says the bundle is complete.
    await syncBatch?.flush();
    if (!place) await syncStreamsFolder(dir);
    const volumes = streams.flatMap((s) => s.volumes.map((v) => v.file));
    let parity: ParityEntry | undefined;
    if (opts.parity && volumes.length > 0) {
      await makeFreshFolder(join(dir, PARITY_DIR));
      parity = await createParity(dir, volumes, opts.parity);
      await fsyncDir(join(dir, PARITY_DIR));
    }
    const manifest: Manifest = {
      format: 'zferry-bundle',
      formatVersion: opts.bundleFormat ?? FORMAT_VERSION,
      bundleId: id,
      createdAt: createdAt.toISOString(),
      zferryVersion: ZFERRY_VERSION,
      source: identity,
      basis,
      inventory,
      scope,
      compression: { algorithm: 'zstd', level },
      ...(recipients ? { encryption: { algorithm: 'age' as const, recipients } } : {}),
      ...(parity ? { parity } : {}),
      ...siteField(site),
      streams,
    };
    const signing = secretKey ? { sign: (bytes: Buffer) => signManifest(bytes, secretKey, manifest) } : {};
    if (place) await finishBundleInBucket(dir, manifest, signing);
    else await finishBundle(dir, manifest, signing);
    // A bundle now: the marker only said it was not one yet.
    await target.removeMarker();
    if (!place) await fsyncDir(dir);
    if (opts.journal !== false) {
      const jdir = stateDir(opts.journal);
      const file = journalFile(jdir, identity, site);
      // A stream cut into parts counts as whole: the next export plans after it, and continues it first.
      const projected = projectTarget(basis.inventory, written, inventory, basis.target ?? opts.source);
      await appendJournal(file, jdir, await readJournal(file, identity, site), {
        bundleId: id, createdAt: createdAt.toISOString(), bundle: dir, after: basis.bundleId ?? null, projected,
        storedBytes: streams.reduce((n, s) => n + s.storedBytes, 0),
        ...(split ? { split } : {}),
      });
    }
  } catch (err) {
    progress.end();
    await syncBatch?.discard();
    // Counted before anything goes: the line says how much more the disk needed (this run's bytes, as planned).
    const full = !place && (err instanceof ZferryError ? isOutOfSpace(err.context.errno) : isOutOfSpace(errnoName(err)));
    const written = full ? Math.max(0, (await bytesUnder(dir)) - keptBytes) : null;
    // Nothing half-written may look like a bundle: the manifest is written last.
    // The streams written whole stay, with the marker, for the next run to
    // reuse; the half-written one goes (it holds space and can never be reused).
    // In a bucket its multipart uploads are aborted too: none is left to the store.
    const finished = marker.streams;
    if (finished.length === 0) await target.remove().catch(() => undefined);
    else await target.dropUnlisted(finished).catch(() => undefined);
    if (written !== null) {
      const e = fileError(err, 'writing', dir);
      const kept = finished.length > 0 ? `; the ${finished.length} stream(s) written whole are kept in ${dir} for the next run` : '';
      throw new ZferryError(`${e.message}: ${spaceMissing(written, result.space, formatBytes)}${kept}`, e.context);
    }
    if (err instanceof ZferryError) throw err;
    throw new ZferryError(`export to ${dir} failed: ${(err as Error).message}`, { file: dir });
  }
  progress.end();
  if (result.limit) {
    result.limit.taken = written.length;
    result.limit.left = plan.steps.length - written.length;
  }
  // Bases of what this bundle carries only: the steps left for the next disk still need theirs.
  result.protection = await protectBases(zfs, opts.source, inventory, { ...plan, steps: written }, proved, site);
  // A stream in parts is sent again for each part: its snapshot must outlive rotation (a bookmark alone would not do) until the last part is out.
  const splitSnapshot = (step: SendStep) => `${joinDataset(opts.source, step.dataset)}@${step.to.name}`;
  if (split) {
    await zfs.hold([splitSnapshot(split.stream as SendStep)], partsHoldTag(site));
    result.protection.kept.push(splitSnapshot(split.stream as SendStep));
  } else if (continuing) {
    await zfs.release([splitSnapshot(continuing.step)], partsHoldTag(site));
  }
  result.bundle = dir;
  result.bundleId = id;
  result.streams = streams.map((s) => ({
    index: s.index, dataset: s.dataset, kind: s.kind, rawBytes: s.rawBytes, storedBytes: s.storedBytes,
    from: s.from?.name ?? null, to: s.to?.name ?? null,
  }));
  result.rawBytes = streams.reduce((n, s) => n + s.rawBytes, 0);
  result.storedBytes = streams.reduce((n, s) => n + s.storedBytes, 0);
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

/**
 * What an export of this source into the bucket left when it was killed
 * before it wrote its marker (no manifest, no marker): its multipart
 * uploads are aborted and its objects deleted, so nothing leaks. Only this
 * source's folders: the export lock makes sure none is being written now;
 * other sources' prefixes are theirs. Marked ones are resumed or superseded
 * through findPartials.
 */
async function clearUnmarked(bucket: S3Place, source: string, unfinished: UnfinishedInBucket[]): Promise<void> {
  const mine = (f: string) => isBundleFolderOf(f, source);
  const seen = new Set(unfinished.map((u) => u.name));
  for (const u of unfinished) if (!u.marked && mine(u.name)) await u.partial.remove();
  // An upload begun before its bundle's first object existed is not under a listed folder.
  const finished = new Set<string>();
  for (const u of await listUploads(bucket)) {
    const folder = u.key.slice(bucket.prefix.length).split('/')[0]!;
    if (mine(folder) && !seen.has(folder) && !finished.has(folder)) {
      finished.add(folder);
      await abortUploads(childPlace(bucket, folder));
    }
  }
}

/** The hold on a snapshot whose stream is in parts, until its last part is written: `:` never appears in a site's tag. */
export function partsHoldTag(site: string): string {
  return `${holdTag(site)}:parts`;
}

/** A part smaller than this is not started: the stream goes to the next disk whole. */
const MIN_PART_BYTES = 64 * 1024;

interface Continuation {
  /** The journal file that says so. */
  file: string;
  split: { stream: StreamEntry; prefixSha256: string };
  step: SendStep;
  /** Raw bytes of the stream the earlier parts hold. */
  offset: number;
}

/**
 * The stream this export continues: the bundle it is planned on top of (the
 * newest in the journal) ended in a part of it. Its snapshot must still be
 * on the source (the export's hold keeps it there).
 */
async function continuationOf(opts: ExportOptions, identity: SourceIdentity, site: string, basis: Basis, inventory: Inventory): Promise<Continuation | null> {
  if (basis.origin !== 'journal' || opts.journal === false || !basis.bundleId) return null;
  const file = journalFile(stateDir(opts.journal), identity, site);
  const entry = (await readJournal(file, identity, site)).entries.find((e) => e.bundleId === basis.bundleId);
  if (!entry?.split) return null;
  const s = entry.split.stream;
  const step = stepOf(s) as SendStep;
  const dataset = joinDataset(opts.source, s.dataset);
  const snaps = inventory.datasets.find((d) => d.path === s.dataset)?.snapshots ?? [];
  const missing = [step.to, ...(step.from && step.from.dataset === undefined && !step.from.bookmark ? [step.from] : [])].find((x) => !snaps.some((y) => y.guid === x.guid));
  if (missing) {
    throw new ZferryError(`${dataset}@${missing.name}: bundle ${basis.bundleId} ended in part ${s.part!.number} of a stream of this snapshot, and the snapshot is gone from the source: the stream cannot be continued; export with --no-journal to plan from the target's receipt`, { dataset, file });
  }
  return { file, split: entry.split, step, offset: s.part!.offset + s.rawBytes };
}

/**
 * What of the plan goes into this bundle under the limit: the planned raw
 * sizes (zfs send -nvP, else space properties), at the sampled zstd ratio
 * when they would not fit as they are; the continued stream counts what is
 * left of it. The limit itself is kept at write time.
 */
async function fitToLimit(
  zfs: Zfs, inventory: Inventory, steps: Plan['steps'], opts: ExportOptions, level: number, continuing: Continuation | null, inventoryBytes: number,
  space: SnapshotSpace | null,
): Promise<{ take: number; maxBytes: number | null; volumeBytes: number | null; sizesOf: (sends: SendStep[]) => PlannedSizes }> {
  const sends = steps.filter(carriesData);
  const sizes = await plannedRawSizes(zfs, inventory, sends, space);
  const rest = (step: SendStep) => {
    const n = sizes.raw.get(step) ?? null;
    return continuing && step === continuing.step && n !== null ? Math.max(0, n - continuing.offset) : n;
  };
  const sizesOf = (list: SendStep[]): PlannedSizes => ({ method: sizes.method, raw: new Map(list.map((x) => [x, rest(x)])) });
  let maxBytes = opts.maxSize ?? null;
  if (opts.fill) {
    const free = await freeSpace(opts.dest);
    if (free === null) throw new ZferryError(`--fill: the file system of ${opts.dest} does not report its free space; use --max-size`, { file: opts.dest, field: '--fill' }, 2);
    maxBytes = Math.min(maxBytes ?? Infinity, fillLimit(free));
  }
  if (maxBytes === null) return { take: steps.length, maxBytes: null, volumeBytes: null, sizesOf };
  const volumeBytes = volumeBudget(maxBytes, metadataReserve(inventoryBytes, steps.length), opts.parity ?? 0);
  if (volumeBytes < MIN_PART_BYTES) {
    throw new ZferryError(`${opts.dest}: a limit of ${formatBytes(maxBytes)} leaves ${formatBytes(volumeBytes)} for volumes once the manifest and the other files are kept room for: raise it`, { file: opts.dest, field: opts.maxSize !== undefined ? '--max-size' : '--fill' }, 2);
  }
  const raw = sends.map(rest);
  const total = raw.reduce<number>((a, b) => a + (b ?? 0), 0);
  const ratio = total > volumeBytes ? ((await sampledRatio(zfs, inventory, sizesOf(sends), level)) ?? 1) : 1;
  const items = steps.map((step) => (carriesData(step) ? { data: true, bytes: ((n) => (n === null ? null : Math.ceil(n * Math.min(1, ratio))))(rest(step)) } : { data: false, bytes: 0 }));
  return { take: fitSteps(items, volumeBytes).take, maxBytes, volumeBytes, sizesOf };
}

export { describeStep, sourceIdentity };
