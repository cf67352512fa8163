/**
 * `zferry import`: validate every manifest, pre-flight every stream against
 * the target, verify every byte, and only then receive; finally write a
 * receipt beside the bundles for the next export.
 */
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import type { Guid, Inventory } from '../model.js';
import { joinDataset } from '../model.js';
import { oneLine, UntrustedBundle, ZferryError } from '../errors.js';
import { stopOnFailure } from '../subprocess.js';
import { leftByRun, runInLanes, type LaneRun } from '../lanes.js';
import { checkDatasetName, PendingOverrides, type Zfs } from '../zfs/index.js';
import {
  laneDependencies, laneStep, lineageOrder, MISSING_SINCE_PROPERTY, RECEIVE_LANES, planImport, receiveOptions, receivesClones, SOURCE_PROPERTY, SOURCE_TXG_PROPERTY,
  type BundleIn, type DeleteGuard, type DeletePlan, type Grid, type ImportPlan, type MaxDelete, type ReceiveOptions, type RetentionEntry, type TargetFacts,
} from '../plan/index.js';
import { checkBundleAtRest, findBundles, readManifest, verifyOrRepair, type Manifest, type StreamEntry } from '../bundle/index.js';
import { readParts, readStream } from '../pipeline/index.js';
import { decompressOutPool, readPool } from '../pipeline/import.js';
import { ReleasingSink, type BufferPool } from '../pipeline/buffer-pool.js';
import { assembleParts, orderParts, partLabel, segmentKey, type Assembled, type Segment, type SplitChain } from '../plan/parts.js';
import { stagePart } from '../bundle/stage.js';
import { removeEntry } from '../fs/safe.js';
import { basename } from 'node:path';
import { makeState, receiptFileName, writeReceipt } from '../state/receipt.js';
import { silentProgress, type Progress } from '../progress.js';
import { checkTrust, readPublicKey, readSecretKey } from '../trust/minisign.js';
import { checkIdentityOpens, readIdentities } from '../trust/age.js';
import { testPause } from '../test-hook.js';
import { assertReplaceable } from '../fs/safe.js';
import { importLockFile, withLock } from '../state/lock.js';
import { stateDir } from '../state/journal.js';
import { siteOf } from '../state/site.js';
import { bundlePath, isS3Url } from '../store/s3.js';

export { SOURCE_PROPERTY, sourceTag } from '../plan/index.js';

export interface ImportOptions {
  path: string;
  target: string;
  dryRun: boolean;
  /** Accept a bundle from a source other than the one the target mirrors. */
  force: boolean;
  /** Destroy under TARGET what the source no longer has (in scope), and replace re-created datasets. */
  delete?: boolean;
  /** Roll back past target-only snapshots and unsnapshotted changes to the common snapshot. */
  rollback?: boolean;
  /** minisign public key file: every bundle must be signed by it. */
  trust?: string;
  /** age identity file, for bundles exported with --encrypt-to. */
  identity?: string;
  /** minisign secret key file (zferry keygen): the receipt is signed, RECEIPT.minisig beside it, for export --trust-receiver. */
  sign?: string;
  /** The deletion guard's limits (--max-delete); the defaults when absent. */
  maxDelete?: MaxDelete;
  /** --delete-after: seconds a dataset must have been missing on the source before --delete destroys it. */
  deleteAfterSeconds?: number;
  /** Check every byte of every bundle before the first receive (two read passes) instead of as each stream is received. */
  verifyFirst?: boolean;
  /** Create the target's missing parent datasets (zfs create -p) instead of refusing. */
  createParents?: boolean;
  /** Seconds to wait for another import into this target to finish (--wait); Infinity: as long as it takes; absent: refuse at once. */
  wait?: number;
  /** One line for a person: --delete without --trust, a stale lock taken over, a wait begun. */
  notice?: (line: string) => void;
  /** --keep GRID: thin the target's snapshots by this grid after the streams are in. */
  keep?: Grid;
  /**
   * --stage DIR: parts of a stream split across disks wait here, verified,
   * until the last part arrives; bundles staged here are read as if under PATH.
   */
  stage?: string;
  progress?: Progress;
}

export interface BundleOutcome {
  bundle: string;
  bundleId: string;
  /** waiting: nothing of it received this time, because its one stream is a part that continues in a bundle not here yet. */
  status: 'applied' | 'already-applied' | 'would-apply' | 'waiting';
  applied: Array<{
    index: number; dataset: string; kind: string; to: string | null; rollbackTo?: string; discards?: string[]; replaces?: string[];
    /** A rename step: the relative path renamed from, and snapshot renames as "old → new". */
    renamedFrom?: string; renamedSnapshots?: string[];
  }>;
  skipped: Array<{ index: number; dataset: string; reason: string }>;
}

export interface ImportResult {
  target: string;
  bundles: BundleOutcome[];
  /** Bundles not applied because the bundle they were planned on top of is not on the target yet. */
  deferred: Array<{ bundle: string; bundleId: string; needs: string; message: string }>;
  /** With --trust: bundles the key does not vouch for, each refusal's line (the others were applied). */
  passedOver: string[];
  /** Old bundles left aside: the target already received a newer state of the source, and their snapshots are gone from it or overtaken. */
  superseded: Array<{ bundle: string; bundleId: string; message: string }>;
  /** What the target holds that the source does not: destroyed with --delete, else only reported. */
  extras: {
    action: 'destroyed' | 'would-destroy' | 'reported'; snapshots: string[]; datasets: string[]; kept: DeletePlan['kept'];
    /** The deletion guard's figures (--max-delete); null when nothing is extra. */
    guard: DeleteGuard | null;
  };
  /** --keep: what the grid thins out (destroyed, or would be on a dry run) and what it would but may not; null without --keep. */
  retention: { grid: string; action: 'destroyed' | 'would-destroy'; destroy: RetentionEntry[]; protected: RetentionEntry[] } | null;
  /** Volumes rebuilt from a bundle's parity/ before anything of it was received. */
  repaired: Array<{ bundle: string; volumes: string[] }>;
  /**
   * Streams split across disks: parts copied (verified) into --stage DIR by
   * this run (or, on a dry run, that would be), staged copies removed once
   * their stream is on the target, and the streams still waiting for a disk.
   */
  parts: {
    staged: string[];
    removed: string[];
    waiting: Array<{ dataset: string; to: string; have: number; next: number; after: string; message: string }>;
  };
  receipt: string | null;
  /** The parent created (or, on a dry run, to be created) by --create-parents; null when none was missing. */
  createdParent: string | null;
  storedBytes: number;
  seconds: number;
}

function label(s: StreamEntry): string {
  const ds = s.dataset === '' ? '(root)' : s.dataset;
  if (s.kind === 'create') return `${ds} (create)`;
  if (s.kind === 'rename') return `${ds} (rename${s.renamedFrom !== s.dataset ? ` from ${s.renamedFrom || '(root)'}` : ''})`;
  if (s.kind === 'full') return `${ds}@${s.to?.name}`;
  const origin = s.from?.dataset !== undefined ? s.from.dataset || '(root)' : '';
  return `${ds} ${origin}@${s.from?.name}→@${s.to?.name}`;
}

function parseTxg(value: string | null): bigint | null {
  return value !== null && /^[0-9]{1,20}$/.test(value) ? BigInt(value) : null;
}

interface ReceiveJob {
  dir: string;
  target: string;
  stream: StreamEntry;
  /** The plan's receive options: nothing here is read from the manifest. */
  receive: ReceiveOptions;
  partial: Set<string>;
  progress: Progress;
  age?: AgeKeys;
  volumesVerified: boolean;
  /** A stream split across disks: its parts, read in order behind one gate on the whole stream. */
  parts?: readonly Segment[];
  /** Where zfs recv takes no -x/-o: the overrides are gathered here and applied together after the last stream. */
  later?: PendingOverrides;
  /** Buffers shared by the import's streams (see receiveStream). */
  pools?: { read: BufferPool; out: BufferPool };
}

/** Receives one stream; the tail gate keeps the end record from zfs recv unless every byte matched. */
async function receiveStream(zfs: Zfs, job: ReceiveJob): Promise<void> {
  const { stream: s, receive } = job;
  const dataset = joinDataset(job.target, s.dataset);
  // A receive -s someone else interrupted blocks every new receive into the dataset.
  if (job.partial.has(dataset)) {
    await zfs.abortReceive(dataset);
    job.partial.delete(dataset);
  }
  const recv = zfs.receive({
    dataset, force: receive.force, exclude: receive.exclude, set: receive.set,
    // Named, not left to zfs recv's search by guid, which may find another copy in the pool.
    ...(receive.origin ? { origin: `${joinDataset(job.target, receive.origin.dataset)}@${receive.origin.name}` } : {}),
  }, job.later);
  // Volumes' sha256 are checked as they are read unless a verify pass just did; the tail gate's raw sha256 guards every byte either way.
  // The decompressed bytes live in reused buffers, each given back once zfs recv's pipe has taken it.
  // A stream in parts reads plain buffers (releasing one the pool does not own is a no-op): its two gates in a row would hold more than the pool has.
  // The import's pools when all their buffers are back (a 402-stream import made 1 MiB buffers per stream,
  // and collected them: 3.3 s of garbage collection); this stream's own otherwise, so nothing one stream kept can stall the next.
  const shared = job.pools && job.pools.out.allBack && job.pools.read.allBack ? job.pools : null;
  const pool = shared?.out ?? decompressOutPool();
  const reading = { onBytes: (n: number) => job.progress.advance(n), ...(job.age ? { age: job.age } : {}) };
  const source = job.parts
    ? readParts(job.parts, { rawBytes: s.rawBytes, rawSha256: s.rawSha256!, label: `stream ${s.index} (${label(s)}, in ${job.parts.length} parts)` }, { ...reading, volumesVerified: false })
    : readStream(job.dir, s, { ...reading, volumesVerified: job.volumesVerified, pool, ...(shared ? { readPool: shared.read } : {}) });
  const tap = pauseTap(`import:stream:${s.index}`);
  // Registered before pipeline's own handler: zfs recv is stopped before its stdin closes.
  source.once('error', () => recv.kill());
  const feed = pipeline(source, tap, new ReleasingSink(recv.stdin, (chunk) => pool.release(chunk)));
  // zfs's own complaint explains more than EPIPE does.
  await stopOnFailure(recv, feed, (err, recvErr) =>
    (err as NodeJS.ErrnoException).code === 'EPIPE' && recvErr ? recvErr : err,
  ).finally(() => {
    if (!shared) pool.close();
  });
  await recv.done.catch((err: unknown) => {
    if (err instanceof ZferryError && /modified\s+since most recent snapshot/.test(err.context.stderr ?? '')) {
      throw new ZferryError(
        `${dataset} has been modified since its newest snapshot, so the incremental cannot be received; use --rollback to discard the changes, and zfs set readonly=on ${job.target} to keep the copy from changing`,
        { ...err.context, dataset },
      );
    }
    throw err;
  });
}

type AgeKeys = { identities: string[]; file: string };

/**
 * The crash tests' hook (src/test-hook.ts): zfs recv is fed exactly
 * ZFERRY_TEST_PAUSE_BYTES (default 1) raw bytes of the stream, then the
 * process pauses, so a kill lands at a chosen byte of the stream.
 */
function pauseTap(point: string): Transform {
  const after = Math.max(1, Number(process.env.ZFERRY_TEST_PAUSE_BYTES ?? '1'));
  let seen = 0;
  let paused = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (paused || process.env.ZFERRY_TEST_PAUSE_AT !== point || seen + chunk.length < after) {
        seen += chunk.length;
        return done(null, chunk);
      }
      paused = true;
      const cut = after - seen;
      // A copy: the chunk's buffer is pooled and goes back once its last byte is written.
      this.push(Buffer.from(chunk.subarray(0, cut)));
      seen += chunk.length;
      // Let go (a lock test resumes it): the rest of the chunk follows, so the stream stays whole.
      testPause(point).then(() => done(null, chunk.subarray(cut)), done);
    },
  });
}

/**
 * Every bundle's manifest. With --trust, a bundle the key does not vouch for
 * (unsigned, signed by another key, or not a manifest) is passed over,
 * named: under a shared prefix anyone who can write could otherwise stop
 * every import with one planted folder. What it would have brought is
 * missing, so the bundles planned on it wait (deferred), and a stale view
 * never speaks for --delete (plan/latest.ts). Without --trust, or when no
 * bundle is left, the first refusal stops the import, as any bad input does.
 */
async function readManifests(dirs: string[], trust: string | undefined): Promise<{ read: Array<{ dir: string; manifest: Manifest }>; passedOver: UntrustedBundle[] }> {
  const pk = trust ? await readPublicKey(trust) : undefined;
  const read = [];
  const passedOver: UntrustedBundle[] = [];
  for (const dir of dirs) {
    if (!trust) {
      read.push({ dir, manifest: await readManifest(dir) });
      continue;
    }
    try {
      read.push({ dir, manifest: await checkTrust(dir, trust, pk) });
    } catch (err) {
      if (!(err instanceof UntrustedBundle)) throw err;
      passedOver.push(err);
    }
  }
  if (read.length === 0 && passedOver.length > 0) throw passedOver[0];
  return { read, passedOver };
}

/**
 * Facts about the target, in one zfs call (zfs.readTarget): inventory,
 * interrupted receives, `written`, the marks import leaves on the root, and
 * received mountpoints; then (only when a clone is to be received and zfs
 * recv cannot name its origin) the pool's snapshots.
 */
async function readFacts(zfs: Zfs, target: string, bundles: readonly BundleIn[]): Promise<TargetFacts> {
  const read = await zfs.readTarget(target, [SOURCE_PROPERTY, SOURCE_TXG_PROPERTY]);
  const exists = read !== null;
  const partial = read?.resumeTokens ?? new Set<string>();
  const inventory = withoutPartial(read?.inventory ?? null, partial);
  const mark = read?.marks[SOURCE_PROPERTY] ?? null;
  const txg = read ? parseTxg(read.marks[SOURCE_TXG_PROPERTY] ?? null) : null;
  const written = inventory ? read!.written : null;
  const space = inventory && written === null ? read!.space : null;
  const missingAncestor = exists ? null : await topmostMissing(zfs, target);
  let poolSnapshots: Map<Guid, string[]> | null = null;
  if (missingAncestor === null && !zfs.caps.recvPropertyOverride && receivesClones(bundles)) {
    const pool = target.split('/')[0];
    poolSnapshots = new Map();
    for (const d of (await zfs.inventory(pool)).datasets) {
      for (const s of d.snapshots) poolSnapshots.set(s.guid, [...(poolSnapshots.get(s.guid) ?? []), `${joinDataset(pool, d.path)}@${s.name}`]);
    }
  }
  const receivedMountpoints = read?.receivedMountpoints ?? [];
  return { target, inventory, partial, written, sourceMark: mark, sourceTxg: txg, poolSnapshots, missingAncestor, space, receivedMountpoints };
}

/** The pool, or the highest parent of a missing target, that does not exist; null when its parent does. */
export async function topmostMissing(zfs: Zfs, target: string): Promise<string | null> {
  const parts = target.split('/');
  // The pool, then each parent down to the target's own (the pool alone when the target is the pool).
  for (let i = 1; i <= Math.max(1, parts.length - 1); i++) {
    const name = parts.slice(0, i).join('/');
    if (!(await zfs.exists(name))) return name;
  }
  return null;
}

/**
 * The target as it will be once interrupted `receive -s` states are aborted:
 * a dataset whose first (full) receive was cut holds no snapshot and goes
 * away with `zfs receive -A`, so the plan must not see it.
 */
function withoutPartial(inv: Inventory | null, partial: ReadonlySet<string>): Inventory | null {
  if (!inv || partial.size === 0) return inv;
  const gone = (path: string) => partial.has(joinDataset(inv.root, path)) && inv.datasets.find((d) => d.path === path)?.snapshots.length === 0;
  if (gone('')) return null;
  return { root: inv.root, datasets: inv.datasets.filter((d) => !gone(d.path)) };
}

function outcomesOf(plan: ImportPlan, dryRun: boolean, waitingDirs: ReadonlySet<string>): BundleOutcome[] {
  return plan.bundles.map(({ dir, manifest, decisions }) => {
    const applied: BundleOutcome['applied'] = [];
    const skipped: BundleOutcome['skipped'] = [];
    for (const d of decisions) {
      const s = manifest.streams[d.index - 1];
      if (d.action === 'skip') skipped.push({ index: d.index, dataset: s.dataset, reason: d.reason });
      else {
        applied.push({
          index: d.index, dataset: s.dataset, kind: s.kind, to: s.to?.name ?? null,
          ...(d.rollbackTo ? { rollbackTo: d.rollbackTo.name } : {}),
          ...(d.discards ? { discards: d.discards.map((x) => x.name) } : {}),
          ...(d.replaces ? { replaces: d.replaces.map((x) => x.name) } : {}),
          ...(d.renameDataset ? { renamedFrom: d.renameDataset.from } : {}),
          ...(d.renameSnapshots ? { renamedSnapshots: d.renameSnapshots.map((r) => `${r.from} → ${r.to}`) } : {}),
        });
      }
    }
    const idle = waitingDirs.has(dir) ? 'waiting' : 'already-applied';
    return { bundle: dir, bundleId: manifest.bundleId, status: applied.length === 0 ? idle : dryRun ? 'would-apply' : 'applied', applied, skipped };
  });
}

function extrasOf(p: DeletePlan | null, action: ImportResult['extras']['action']): Omit<ImportResult['extras'], 'guard'> {
  return { action, snapshots: p?.snapshots.map((x) => x.full) ?? [], datasets: p?.datasets.map((x) => x.full) ?? [], kept: p?.kept ?? [] };
}

/**
 * One import into a target at a time: the lock (in the state folder, keyed
 * by the target) is held from reading the target's facts to writing its
 * receipt, so two runs never plan on the same facts or race in zfs recv.
 * A dry run changes nothing and takes no lock.
 */
export async function runImport(zfs: Zfs, opts: ImportOptions): Promise<ImportResult> {
  checkDatasetName(opts.target, 'import target');
  if (opts.delete && !opts.trust) {
    opts.notice?.(`warning: --delete without --trust: whoever wrote the bundles under ${opts.path} decides what is destroyed under ${opts.target}; sign exports (export --sign) and pass --trust KEY.pub`);
  }
  if (opts.dryRun) return importLocked(zfs, opts);
  return withLock(importLockFile(stateDir(), opts.target), {
    what: `an import into ${opts.target}`, notice: opts.notice, ...(opts.wait !== undefined ? { waitSeconds: opts.wait } : {}),
  }, () => importLocked(zfs, opts));
}

async function importLocked(zfs: Zfs, opts: ImportOptions): Promise<ImportResult> {
  const progress = opts.progress ?? silentProgress;
  const started = Date.now();
  const elapsed = () => (Date.now() - started) / 1000;

  // Facts: the bundles (manifests, signatures, keys) and the target.
  const dirs = await findBundles(opts.path);
  // Parts staged by earlier runs count as if they were under PATH.
  const stagedDirs = opts.stage ? await findBundles(opts.stage) : [];
  if (dirs.length === 0 && stagedDirs.length === 0) {
    throw new ZferryError(`${opts.path}: no zferry bundle here (no manifest.json in it or its sub-folders)`, { file: opts.path });
  }
  // A link or folder where the receipt goes was put there by someone else:
  // refused now, before anything is received, rather than after.
  if (!isS3Url(opts.path)) await assertReplaceable(join(opts.path, receiptFileName(opts.target)));
  // The same bundle on the disk and in the stage: the disk's copy, which is whole.
  const seen = new Set<string>();
  const { read, passedOver } = await readManifests([...dirs, ...stagedDirs], opts.trust);
  for (const e of passedOver) opts.notice?.(`${oneLine(e)}; passed over`);
  const found = read.filter((b) => !seen.has(b.manifest.bundleId) && !!seen.add(b.manifest.bundleId));
  const staged = new Set(found.filter((b) => !dirs.includes(b.dir)).map((b) => b.dir));
  // Every staged copy, those PATH also holds included (a bucket keeps its parts; a disk still attached): each goes once its stream is in.
  const stagedCopies = new Map(read.filter((b) => !dirs.includes(b.dir)).map((b) => [b.dir, b.manifest]));
  // In the source's own order (txg), never by the bundle's word about its date; a later part after the one it continues.
  const bundles = orderParts(lineageOrder(found.map((b) => ({ ...b, inventory: b.manifest.inventory }))));
  // Each manifest as exported, by folder. Files at rest are checked against these: the plan's copy
  // leaves out a part that continues elsewhere (its stream is received with the last part), but its
  // volumes, lines in SHA256SUMS and parity are still this bundle's.
  const asExported = new Map(bundles.map((b) => [b.dir, b.manifest]));
  const encrypted = bundles.find((b) => b.manifest.encryption !== undefined);
  if (encrypted && !opts.identity) {
    const file = join(encrypted.dir, 'manifest.json');
    throw new ZferryError(`${file}: the bundle is encrypted with age (to ${encrypted.manifest.encryption?.recipients.join(', ')}): pass --identity FILE`, { file });
  }
  const age: AgeKeys | undefined = opts.identity ? { identities: await readIdentities(opts.identity), file: opts.identity } : undefined;
  // Read before anything is received: a key that does not open fails the import, not its receipt.
  const receiptKey = opts.sign ? await readSecretKey(opts.sign) : null;
  // In a bucket the key is first tried on the receive itself, whose tail gate still keeps a wrong stream out.
  for (const b of bundles) if (b.manifest.encryption && age && !isS3Url(b.dir)) await checkIdentityOpens(b.dir, b.manifest, age);
  const facts = await readFacts(zfs, opts.target, bundles);
  if (opts.delete && opts.deleteAfterSeconds !== undefined && facts.inventory) {
    facts.missingSince = await zfs.localProperties(opts.target, MISSING_SINCE_PROPERTY);
  }

  // Streams split across disks: their parts joined, or waiting for the next disk.
  const holds = (dataset: string, guid: string) => facts.inventory?.datasets.some((d) => d.path === dataset && d.snapshots.some((x) => x.guid === guid)) ?? false;
  const joined = assembleParts(bundles, holds);
  if ('refusal' in joined) {
    const { message, ...context } = joined.refusal;
    throw new ZferryError(message, context);
  }
  // In a bucket the parts wait where they are, as in a stage: the next part is
  // uploaded beside them, and a later run (a timer) receives the whole stream.
  const parkedInBucket = isS3Url(opts.path) && !opts.stage;
  const waiting = joined.waiting.map((c) => waitingLine(c, opts.stage, parkedInBucket ? opts.path : undefined));
  if (waiting.length > 0 && !opts.stage && !parkedInBucket) {
    throw new ZferryError(`${waiting[0].message.replace(/: import it with --stage .*$/, '')}; import with --stage DIR to keep the parts here (verified) until then; nothing was received`, { file: `${joined.waiting[0].parts[0].dir}/manifest.json` });
  }
  for (const c of joined.complete) {
    // The parts other than the last, read at receive time: present and of the right size now, before anything is received.
    for (const p of c.parts.slice(0, -1)) {
      const m = asExported.get(p.dir)!;
      await checkBundleAtRest(p.dir, m, { streams: new Set([p.stream.index]) });
    }
  }

  // Plan: pure, every refusal before anything is touched.
  const planned = planImport(facts, joined.bundles, {
    force: opts.force, delete: opts.delete ?? false, rollback: opts.rollback ?? false, dryRun: opts.dryRun, recvNamesOrigin: zfs.caps.recvPropertyOverride,
    ...(opts.maxDelete ? { maxDelete: opts.maxDelete } : {}), createParents: opts.createParents ?? false,
    ...(opts.deleteAfterSeconds !== undefined ? { deleteAfterSeconds: opts.deleteAfterSeconds } : {}),
    ...(opts.keep ? { keep: opts.keep } : {}),
  });
  if ('refusal' in planned) {
    const { message, ...context } = planned.refusal;
    throw new ZferryError(message, context);
  }
  const plan = planned;
  // A bundle whose part waits for the next disk is not done: it is staged, not applied.
  const waitingDirs = new Set(joined.waiting.flatMap((c) => c.parts.map((p) => p.dir)));
  const outcomes = outcomesOf(plan, opts.dryRun, waitingDirs);
  const result: ImportResult = {
    target: opts.target, bundles: outcomes, deferred: plan.deferred, passedOver: passedOver.map((e) => oneLine(e)), superseded: plan.superseded,
    extras: { ...extrasOf(plan.extras, opts.delete ? (opts.dryRun ? 'would-destroy' : 'destroyed') : 'reported'), guard: plan.guard },
    retention: plan.retention ? { ...plan.retention, action: opts.dryRun ? 'would-destroy' : 'destroyed' } : null,
    repaired: [], receipt: null, createdParent: plan.createParent, storedBytes: 0, seconds: 0,
    parts: { staged: [], removed: [], waiting },
  };
  const toStage = opts.stage ? joined.waiting.flatMap((c) => c.parts.filter((p) => !staged.has(p.dir))) : [];
  if (opts.dryRun) result.parts.staged = toStage.map((p) => join(opts.stage!, basename(p.dir)));
  if (plan.bundles.length === 0) {
    result.extras = { ...extrasOf(null, 'reported'), guard: null };
    result.retention = null;
    result.createdParent = null;
    result.seconds = elapsed();
    return result;
  }
  const todo = plan.bundles.filter((_, i) => outcomes[i].status !== 'already-applied' && outcomes[i].status !== 'waiting');
  result.storedBytes = todo.reduce((n, p) => n + p.manifest.streams.reduce((k, s) => k + s.storedBytes, 0), 0);
  if (opts.dryRun) {
    result.seconds = elapsed();
    return result;
  }

  // Act. An earlier part on this disk with parity is repaired where it lies, as a whole bundle with parity is below.
  const todoDirs = new Set(todo.map((b) => b.dir));
  const partsHere = [...joined.waiting, ...joined.complete].flatMap((c) => c.parts).filter((p) => !staged.has(p.dir) && !todoDirs.has(p.dir));
  for (const dir of new Set(partsHere.map((p) => p.dir))) {
    const manifest = asExported.get(dir)!;
    if (manifest.parity === undefined || isS3Url(dir)) continue;
    const r = await verifyOrRepair(dir, { manifest });
    if (r.repaired.length > 0) result.repaired.push({ bundle: dir, volumes: r.repaired });
  }
  // The waiting parts, each volume checked as it is copied: a bad part is refused before anything is received.
  for (const p of toStage) {
    progress.begin(`stage ${basename(p.dir)}`, p.stream.storedBytes, 1);
    try {
      result.parts.staged.push(await stagePart(p.dir, p.stream, opts.stage!, (n) => progress.advance(n)));
    } catch (err) {
      throw err instanceof ZferryError ? new ZferryError(`${err.message}; part ${p.stream.part!.number} of ${label(p.stream)} was not staged; nothing was received`, err.context, err.exitCode) : err;
    } finally {
      progress.end();
    }
  }
  const verified = new Set<string>();
  // A bundle with parity is read whole first: a damaged volume is rebuilt before zfs recv sees a byte of its stream.
  const first = todo.filter((b) => !staged.has(b.dir) && (opts.verifyFirst || b.manifest.parity !== undefined));
  if (first.length > 0) {
    progress.begin('verify', first.reduce((n, p) => n + p.manifest.streams.reduce((k, s) => k + s.storedBytes, 0), 0), first.length);
    for (const { dir, manifest } of first) {
      progress.stream(`verify ${dir.split('/').pop()}`, 0);
      const r = await verifyOrRepair(dir, { onBytes: (n) => progress.advance(n), manifest: asExported.get(dir) ?? manifest });
      if (r.repaired.length > 0) result.repaired.push({ bundle: dir, volumes: r.repaired });
      verified.add(dir);
      progress.endStream();
    }
    progress.end();
  }
  // Everything but the volume bytes, which are checked as they stream into zfs recv.
  for (const { dir, manifest } of todo) {
    if (verified.has(dir)) continue;
    // A staged copy holds only its part's volumes.
    const part = staged.has(dir) ? { streams: new Set(manifest.streams.filter((x) => joined.segments.has(segmentKey(dir, x.index))).map((x) => x.index)) } : null;
    await checkBundleAtRest(dir, part ? manifest : asExported.get(dir) ?? manifest, part);
  }
  if (plan.createParent !== null) await zfs.create(plan.createParent, { parents: true });
  await applyPlan(zfs, plan, { opts, age, progress, verified, total: result.storedBytes, todo: todo.length, partial: facts.partial, joined, receivedMountpoints: facts.receivedMountpoints ?? [] });

  const extras = plan.extras;
  if (opts.delete && extras) {
    // Snapshots by full name first, then datasets children first: never -r.
    await zfs.destroySnapshots(extras.snapshots.map((x) => x.full));
    for (const x of extras.datasets) await zfs.destroy(x.full);
    // --delete-after's clock: started on datasets newly missing, stopped on datasets back.
    for (const m of plan.missingMarks.set) await zfs.setProperty(m.full, MISSING_SINCE_PROPERTY, m.since);
    for (const full of plan.missingMarks.clear) await zfs.inherit(full, MISSING_SINCE_PROPERTY);
  }
  // By full name, one by one, after the streams that might have needed them as bases.
  await zfs.destroySnapshots((plan.retention?.destroy ?? []).map((x) => x.full));
  // Only parts staged (or left waiting in the bucket) for a target that does not exist yet (the first disk of a seed): nothing to mark, no receipt to write.
  if (facts.inventory === null && (result.parts.staged.length > 0 || (parkedInBucket && waiting.length > 0)) && !(await zfs.exists(opts.target))) {
    result.seconds = elapsed();
    return result;
  }
  if (plan.view.index !== null && (facts.sourceTxg === null || plan.view.asOf > facts.sourceTxg)) {
    await zfs.setProperty(opts.target, SOURCE_TXG_PROPERTY, String(plan.view.asOf));
  }
  const finalInv = await zfs.inventory(opts.target);
  // A staged part whose stream is now on the target has done its work.
  for (const [dir, copy] of stagedCopies) {
    const s = (asExported.get(dir) ?? copy).streams.find((x) => x.part);
    if (s?.to && finalInv.datasets.some((d) => d.path === s.dataset && d.snapshots.some((x) => x.guid === s.to!.guid))) {
      await removeEntry(dir);
      result.parts.removed.push(dir);
    }
  }
  const last = plan.bundles[plan.bundles.length - 1].manifest;
  // The receipt speaks for the newest bundle's site: the source lets it release that site's bases only.
  // A bundle whose part waits is not listed: the source still counts it in transit, and continues after it.
  // A superseded one is: the target needs nothing of it, so its sender may let it go (a relay confirms a push by this list).
  const dealtWith = [...plan.superseded.map((x) => x.bundleId), ...plan.bundles.filter((p) => !waitingDirs.has(p.dir)).map((p) => p.manifest.bundleId)];
  const state = makeState(opts.target, finalInv, last.source, dealtWith, siteOf(last));
  // Beside the bundles, so the disk that brought them carries the receipt back.
  result.receipt = bundlePath(opts.path, receiptFileName(opts.target));
  await writeReceipt(result.receipt, state, receiptKey);
  result.seconds = elapsed();
  return result;
}

interface ApplyContext {
  opts: ImportOptions;
  age: AgeKeys | undefined;
  progress: Progress;
  verified: ReadonlySet<string>;
  total: number;
  todo: number;
  partial: ReadonlySet<string>;
  joined: Assembled;
  receivedMountpoints: readonly string[];
}

/**
 * Runs the plan's decisions in order and decides nothing new. A stream that
 * fails (a volume that does not match, zfs refusing) stops the import: the
 * streams before it stay received, each a whole snapshot, and the error says
 * which were and which were not, so a re-run after the fix continues there.
 */
async function applyPlan(zfs: Zfs, plan: ImportPlan, ctx: ApplyContext): Promise<void> {
  const { opts, progress } = ctx;
  const steps = plan.bundles.flatMap((b) => b.decisions.filter((d) => d.action === 'apply').map((d) => ({ b, d, s: b.manifest.streams[d.index - 1] })));
  const partial = new Set(ctx.partial);
  // zfs-fuse: two zfs processes per stream less (the receive-time -x/-o that zfs recv cannot take, applied together below).
  const later = zfs.caps.recvPropertyOverride ? undefined : new PendingOverrides();
  // What a kill between an earlier run's receive and its overrides left (facts.receivedMountpoints) is fixed with this run's.
  const asReceived = receiveOptions('filesystem', false);
  if (later) for (const ds of ctx.receivedMountpoints) later.add(ds, asReceived.exclude, asReceived.set);
  progress.begin(`import → ${opts.target}`, ctx.total, ctx.todo);
  const lanes = steps.map(({ b, d, s }) => laneStep(s, d, ctx.joined.segments.has(segmentKey(b.dir, s.index))));
  // Each lane its own buffers: two streams at once never wait for each other's to come back.
  const lanePools: Array<{ read: BufferPool; out: BufferPool }> = [];
  let marked = false;
  const runStep = async (i: number): Promise<void> => {
    const { b, d, s } = steps[i];
    if (d.action !== 'apply') return;
    const dataset = joinDataset(opts.target, s.dataset);
    if (d.rollbackTo) await zfs.rollback(`${dataset}@${d.rollbackTo.name}`, { destroyNewer: true });
    for (const x of d.replaces ?? []) await zfs.destroy(`${dataset}@${x.name}`);
    if (s.kind === 'rename') {
      // Only what the plan found still to do: a re-run after a cut import finds the rest done.
      if (d.renameDataset) await zfs.rename(joinDataset(opts.target, d.renameDataset.from), dataset, { parents: true });
      for (const r of d.renameSnapshots ?? []) await zfs.rename(`${dataset}@${r.from}`, `${dataset}@${r.to}`);
    } else if (s.kind === 'create') {
      await zfs.create(dataset, { parents: true });
    } else {
      const key = segmentKey(b.dir, s.index);
      if (ctx.joined.unreadable.has(key)) {
        throw new ZferryError(`${b.dir}/manifest.json: stream ${s.index} (${label(s)}) is the last part of a stream split across disks whose earlier parts are gone`, { file: `${b.dir}/manifest.json` });
      }
      const parts = ctx.joined.segments.get(key);
      // A bar of its own only for a stream received alone; small ones side by side count in the overall bar.
      const bar = lanes[i].alone;
      if (bar) progress.stream(label(s), s.storedBytes);
      const pools = lanePools.pop() ?? { read: readPool(), out: decompressOutPool() };
      try {
        await receiveStream(zfs, {
          ...(parts ? { parts } : {}),
          dir: b.dir, target: opts.target, stream: s, receive: d.receive!, partial, progress,
          ...(b.manifest.encryption && ctx.age ? { age: ctx.age } : {}), volumesVerified: ctx.verified.has(b.dir),
          ...(later ? { later } : {}), pools,
        });
      } finally {
        lanePools.push(pools);
      }
      if (bar) progress.endStream();
    }
    if (plan.markSource !== null && !marked) {
      marked = true;
      await zfs.setProperty(opts.target, SOURCE_PROPERTY, plan.markSource);
    }
    await testPause(`import:between:${s.index}`);
  };
  try {
    const run = await runInLanes(laneDependencies(lanes), lanes.map((l) => l.alone), RECEIVE_LANES, runStep);
    if (run.failed) {
      const { b, s } = steps[run.failed.index];
      throw stoppedAt(run.failed.error, s, b.dir, run, steps.length);
    }
  } catch (err) {
    // Every filesystem received before the failure gets its overrides too; a failure of that is told in the same line.
    if (later && !later.empty) {
      const fixErr = await zfs.applyOverrides(later).then(() => null, (e: unknown) => e as Error);
      if (fixErr && err instanceof ZferryError) throw new ZferryError(`${err.message}; also, setting the received filesystems' mountpoint and canmount failed: ${fixErr.message}`, err.context, err.exitCode);
    }
    throw err;
  } finally {
    progress.end();
    for (const p of lanePools) {
      p.read.close();
      p.out.close();
    }
  }
  // Before the import says anything: each filesystem received gets the target's mountpoint and canmount=noauto.
  if (later && !later.empty) await zfs.applyOverrides(later);
}

/**
 * The failing stream's error, plus what was and was not received, in the one
 * line. Streams side by side: some after it in the plan may be in (they do
 * not depend on it), and are counted.
 */
function stoppedAt(err: unknown, s: StreamEntry, dir: string, run: LaneRun, steps: number): unknown {
  if (!(err instanceof ZferryError)) return err;
  const what = `stream ${s.index} (${label(s)}) of ${dir} was not received`;
  const { rest, received } = leftByRun(run, steps);
  return new ZferryError(`${err.message}; ${what}${rest}; ${received}`, err.context, err.exitCode);
}

/** The line for a split stream whose next part is on a disk not here yet. */
function waitingLine(c: SplitChain, stage: string | undefined, bucket: string | undefined): ImportResult['parts']['waiting'][number] {
  const last = c.parts[c.parts.length - 1];
  const s = last.stream;
  const have = s.part!.number;
  const parts = `part${have > 1 ? `s 1-${have}` : ' 1'}`;
  const message = bucket
    ? `${partLabel(s)} is split across bundles: ${parts} in ${bucket}; part ${have + 1} is not there yet (the bundle exported after ${last.bundleId}): import again once it is`
    : `${partLabel(s)} is split across disks: ${parts} ${stage ? `staged in ${stage}` : 'here'}; part ${have + 1} is in the bundle exported after ${last.bundleId}, on the next disk: import it with --stage ${stage ?? 'DIR'}`;
  return { dataset: s.dataset, to: s.to!.name, have, next: have + 1, after: last.bundleId, message };
}
