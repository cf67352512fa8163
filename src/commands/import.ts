/**
 * `zferry import`: validate every manifest, pre-flight every stream against
 * the target, verify every byte, and only then receive; finally write a
 * receipt beside the bundles for the next export.
 */
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import type { Inventory, SourceIdentity } from '../model.js';
import { joinDataset } from '../model.js';
import { ZferryError } from '../errors.js';
import { checkDatasetName, type Zfs } from '../zfs/index.js';
import { checkApply, checkEncryptionMatch, FULL_SCOPE, planDelete, projectTarget, type ApplyDecision, type DeletePlan, type Step } from '../plan/index.js';
import { findBundles, readManifest, verifyBundle, type Manifest, type StreamEntry } from '../bundle/index.js';
import { readStream } from '../pipeline/index.js';
import { makeState, receiptFileName, writeStateAtomic } from '../state/receipt.js';
import { silentProgress, type Progress } from '../progress.js';
import { checkTrust, readPublicKey } from '../trust/minisign.js';
import { checkIdentityOpens, readIdentities } from '../trust/age.js';
import { testPause } from '../test-hook.js';

/** User property on the target root naming the source it mirrors. */
export const SOURCE_PROPERTY = 'zferry:source';

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
  progress?: Progress;
}

export interface BundleOutcome {
  bundle: string;
  bundleId: string;
  status: 'applied' | 'already-applied' | 'would-apply';
  applied: Array<{ index: number; dataset: string; kind: string; to: string | null; rollbackTo?: string; discards?: string[]; replaces?: string[] }>;
  skipped: Array<{ index: number; dataset: string; reason: string }>;
}

export interface ImportResult {
  target: string;
  bundles: BundleOutcome[];
  /** Bundles not applied because the bundle they were planned on top of is not on the target yet. */
  deferred: Array<{ bundle: string; bundleId: string; needs: string; message: string }>;
  /** What the target holds that the source does not: destroyed with --delete, else only reported. */
  extras: { action: 'destroyed' | 'would-destroy' | 'reported'; snapshots: string[]; datasets: string[]; kept: DeletePlan['kept'] };
  receipt: string | null;
  storedBytes: number;
  seconds: number;
}

export function sourceTag(s: SourceIdentity): string {
  return `${s.poolGuid}:${s.root}`;
}

function label(s: StreamEntry): string {
  const ds = s.dataset === '' ? '(root)' : s.dataset;
  if (s.kind === 'create') return `${ds} (create)`;
  if (s.kind === 'full') return `${ds}@${s.to?.name}`;
  const origin = s.from?.dataset !== undefined ? s.from.dataset || '(root)' : '';
  return `${ds} ${origin}@${s.from?.name}→@${s.to?.name}`;
}

/** All bundles must come from one source; the target must mirror that source. */
async function checkIdentity(zfs: Zfs, target: string, targetInv: Inventory | null, manifests: Manifest[], force: boolean): Promise<void> {
  const first = manifests[0];
  for (const m of manifests) {
    if (sourceTag(m.source) !== sourceTag(first.source)) {
      throw new ZferryError(
        `bundles under one path come from different sources (${first.source.root} on pool guid ${first.source.poolGuid} and ${m.source.root} on pool guid ${m.source.poolGuid}): import them separately`,
        { field: '/source' },
      );
    }
  }
  if (targetInv === null || force) return;
  const recorded = await zfs.getProperty(target, SOURCE_PROPERTY);
  if (recorded !== null && recorded !== sourceTag(first.source)) {
    throw new ZferryError(
      `${target} mirrors source ${recorded}, but the bundle comes from ${sourceTag(first.source)} (${first.source.host}): refusing; use --force to import anyway`,
      { dataset: target, field: '/source' },
    );
  }
  if (recorded === null) {
    // A target seeded by hand (zfs send -R) has no mark yet: it must share snapshots with the source.
    const sourceGuids = new Set(first.inventory.datasets.flatMap((d) => d.snapshots.map((s) => s.guid)));
    const targetGuids = targetInv.datasets.flatMap((d) => d.snapshots.map((s) => s.guid));
    if (targetGuids.length > 0 && !targetGuids.some((g) => sourceGuids.has(g))) {
      throw new ZferryError(
        `${target} holds ${targetGuids.length} snapshots and none of them is in the bundle's source ${first.source.root} (${first.source.host}): it looks like another source's copy; refusing; use --force to import anyway`,
        { dataset: target, field: '/source' },
      );
    }
  }
}

/** A manifest stream as the planner's step, to project what the target will hold. */
function asStep(s: StreamEntry): Step {
  if (s.kind === 'create') return { kind: 'create', dataset: s.dataset, type: 'filesystem' };
  if (s.to === null) throw new ZferryError(`stream ${s.index} has no "to" snapshot`, { field: `/streams/${s.index - 1}/to` });
  return { kind: s.kind, dataset: s.dataset, type: s.type, from: s.from, to: s.to, intermediates: s.intermediates, creates: s.creates, force: s.force };
}

async function readTarget(zfs: Zfs, target: string): Promise<Inventory | null> {
  return (await zfs.exists(target)) ? zfs.inventory(target) : null;
}

/**
 * The target as it will be once interrupted `receive -s` states are aborted:
 * a dataset whose first (full) receive was cut holds no snapshot and goes
 * away with `zfs receive -A`, so the pre-flight must not see it.
 */
function withoutPartial(inv: Inventory | null, partial: Set<string>): Inventory | null {
  if (!inv || partial.size === 0) return inv;
  const gone = (path: string) => partial.has(joinDataset(inv.root, path)) && inv.datasets.find((d) => d.path === path)?.snapshots.length === 0;
  if (gone('')) return null;
  return { root: inv.root, datasets: inv.datasets.filter((d) => !gone(d.path)) };
}

/**
 * What a received filesystem must not do on the backup host: mount itself at
 * boot (a mount dirties it and the next incremental is refused), or mount
 * over the host's own paths (a mountpoint sent with -p). Received
 * filesystems get canmount=noauto and inherit their mountpoint from TARGET.
 */
function receivedOverrides(s: StreamEntry): { exclude: string[]; set: Record<string, string> } {
  const props = s.sendFlags.includes('-p');
  return {
    exclude: props ? ['mountpoint'] : [],
    set: s.type === 'filesystem' ? { canmount: 'noauto' } : {},
  };
}

/** Where zfs recv cannot take -x/-o, the same result is set after the receive. */
async function applyOverridesAfter(zfs: Zfs, dataset: string, s: StreamEntry): Promise<void> {
  const o = receivedOverrides(s);
  for (const p of o.exclude) await zfs.inherit(dataset, p);
  // Without -p a property set once stays: only a stream that makes the dataset (full, or a clone's first) needs it.
  if (s.kind === 'full' || s.from?.dataset !== undefined || o.exclude.length > 0) {
    for (const [p, v] of Object.entries(o.set)) await zfs.setProperty(dataset, p, v);
  }
}

/** Receives one stream; the tail gate keeps the end record from zfs recv unless every byte matched. */
async function receiveStream(zfs: Zfs, dir: string, target: string, s: StreamEntry, partial: Set<string>, progress: Progress, age: AgeKeys | undefined, volumesVerified: boolean): Promise<void> {
  const dataset = joinDataset(target, s.dataset);
  // A receive -s someone else interrupted blocks every new receive into the dataset.
  if (partial.has(dataset)) await zfs.abortReceive(dataset);
  const overrides: { exclude?: string[]; set?: Record<string, string> } = zfs.caps.recvPropertyOverride ? receivedOverrides(s) : {};
  const origin = s.from?.dataset !== undefined ? `${joinDataset(target, s.from.dataset)}@${s.from.name}` : null;
  // Named, not left to zfs recv's search by guid, which may find another copy in the pool.
  if (origin && zfs.caps.recvPropertyOverride) overrides.set = { ...overrides.set, origin };
  const recv = zfs.receive({ dataset, force: s.force, ...overrides });
  // After the verify pass the volumes' sha256 is not computed again; the tail gate's raw sha256 still guards every byte.
  const source = readStream(dir, s, { onBytes: (n) => progress.advance(n), volumesVerified, ...(age ? { age } : {}) });
  const tap = pauseTap(`import:stream:${s.index}`);
  // Registered before pipeline's own handler: zfs recv is stopped before its stdin closes.
  source.once('error', () => recv.kill());
  try {
    await pipeline(source, tap, recv.stdin);
  } catch (err) {
    recv.kill();
    await recv.done.catch(() => undefined);
    // zfs's own complaint explains more than EPIPE does.
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') await recv.done;
    throw err;
  }
  await recv.done.catch((err: unknown) => {
    if (err instanceof ZferryError && /modified\s+since most recent snapshot/.test(err.context.stderr ?? '')) {
      throw new ZferryError(
        `${dataset} has been modified since its newest snapshot, so the incremental cannot be received; use --rollback to discard the changes`,
        { ...err.context, dataset },
      );
    }
    throw err;
  });
  if (!zfs.caps.recvPropertyOverride) await applyOverridesAfter(zfs, dataset, s);
  if (origin) {
    const got = await zfs.getProperty(dataset, 'origin');
    if (got !== origin) {
      throw new ZferryError(`${dataset} was received as a clone of ${got ?? 'nothing'}, not of ${origin}: zfs recv picked another snapshot with guid ${s.from!.guid}`, { dataset });
    }
  }
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
      this.push(chunk.subarray(0, after - seen));
      seen = after;
      testPause(point).then(() => done(), done);
    },
  });
}

/** Manifests of every bundle, each checked against the trusted key when there is one. */
async function readManifests(dirs: string[], trust: string | undefined): Promise<Array<{ dir: string; manifest: Manifest }>> {
  const pk = trust ? await readPublicKey(trust) : undefined;
  const out = [];
  for (const dir of dirs) out.push({ dir, manifest: trust ? await checkTrust(dir, trust, pk) : await readManifest(dir) });
  return out;
}

export async function runImport(zfs: Zfs, opts: ImportOptions): Promise<ImportResult> {
  checkDatasetName(opts.target, 'import target');
  const progress = opts.progress ?? silentProgress;
  const started = Date.now();
  const dirs = await findBundles(opts.path);
  if (dirs.length === 0) {
    throw new ZferryError(`${opts.path}: no zferry bundle here (no manifest.json in it or its sub-folders)`, { file: opts.path });
  }
  const bundles = await readManifests(dirs, opts.trust);
  bundles.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt));
  const encrypted = bundles.find((b) => b.manifest.encryption !== undefined);
  if (encrypted && !opts.identity) {
    const file = join(encrypted.dir, 'manifest.json');
    throw new ZferryError(`${file}: the bundle is encrypted with age (to ${encrypted.manifest.encryption?.recipients.join(', ')}): pass --identity FILE`, { file });
  }
  const age: AgeKeys | undefined = opts.identity ? { identities: await readIdentities(opts.identity), file: opts.identity } : undefined;
  for (const b of bundles) if (b.manifest.encryption && age) await checkIdentityOpens(b.dir, b.manifest, age);

  const partial = await zfs.resumeTokens(opts.target);
  let current = withoutPartial(await readTarget(zfs, opts.target), partial);
  await checkIdentity(zfs, opts.target, current, bundles.map((b) => b.manifest), opts.force);

  // Pre-flight every bundle on a simulated target before anything is touched.
  // Bundles are in lineage order (each planned on top of the one before);
  // one planned on a bundle that is not here is deferred, not refused.
  const plans: Array<{ dir: string; manifest: Manifest; decisions: ApplyDecision[] }> = [];
  const deferred: ImportResult['deferred'] = [];
  const accepted = new Set<string>();
  let simulated = current;
  for (const { dir, manifest } of bundles) {
    const mismatch = checkEncryptionMatch(manifest.inventory, current);
    if (mismatch) throw new ZferryError(`${join(dir, 'manifest.json')}: ${mismatch.message}; nothing was received`, { dataset: joinDataset(opts.target, mismatch.dataset) });
    const sourceGuids = new Set(manifest.inventory.datasets.flatMap((d) => d.snapshots.map((x) => x.guid)));
    const ap = checkApply(manifest.streams, simulated, { rollback: opts.rollback, replace: opts.delete, sourceGuids });
    if (ap.problems.length > 0) {
      const after = manifest.basis.origin === 'journal' ? manifest.basis.bundleId : undefined;
      if (after !== undefined && !accepted.has(after) && ap.problems[0].missingBase) {
        const message = `${dir}: deferred: it was planned on top of bundle ${after}, which must be imported first`;
        deferred.push({ bundle: dir, bundleId: manifest.bundleId, needs: after, message });
        continue;
      }
      const p = ap.problems[0];
      const more = ap.problems.length > 1 ? ` (and ${ap.problems.length - 1} more)` : '';
      throw new ZferryError(`${join(dir, 'manifest.json')}: stream ${p.index}: ${p.message}${more}; nothing was received`, {
        file: join(dir, 'manifest.json'),
        dataset: joinDataset(opts.target, p.dataset),
      });
    }
    accepted.add(manifest.bundleId);
    plans.push({ dir, manifest, decisions: ap.decisions });
    const applied = new Set(ap.decisions.filter((d) => d.action === 'apply').map((d) => d.index));
    simulated = projectTarget(simulated, manifest.streams.filter((s) => applied.has(s.index)).map(asStep), manifest.inventory, opts.target);
  }
  if (simulated !== null && current !== null) await checkModified(zfs, opts, current, plans);
  await checkCloneOrigins(zfs, opts.target, plans);

  const outcomes: BundleOutcome[] = plans.map(({ dir, manifest, decisions }) => {
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
        });
      }
    }
    return {
      bundle: dir, bundleId: manifest.bundleId,
      status: applied.length === 0 ? 'already-applied' : opts.dryRun ? 'would-apply' : 'applied',
      applied, skipped,
    };
  });
  if (plans.length === 0) {
    return {
      target: opts.target, bundles: [], deferred, extras: { action: 'reported', snapshots: [], datasets: [], kept: [] },
      receipt: null, storedBytes: 0, seconds: (Date.now() - started) / 1000,
    };
  }
  const todo = plans.filter((_, i) => outcomes[i].status !== 'already-applied');
  const storedBytes = todo.reduce((n, p) => n + p.manifest.streams.reduce((k, s) => k + s.storedBytes, 0), 0);
  // The newest bundle's inventory is the truth about the source.
  const newest = plans.length > 0 ? plans[plans.length - 1].manifest : null;
  const deletion = (inv: Inventory | null): DeletePlan | null =>
    newest && inv ? planDelete(newest.inventory, inv, newest.scope ?? FULL_SCOPE) : null;
  const extrasOf = (p: DeletePlan | null, action: ImportResult['extras']['action']): ImportResult['extras'] => ({
    action,
    snapshots: p?.snapshots.map((x) => x.full) ?? [],
    datasets: p?.datasets.map((x) => x.full) ?? [],
    kept: p?.kept ?? [],
  });
  if (opts.dryRun) {
    return {
      target: opts.target, bundles: outcomes, deferred, extras: extrasOf(deletion(simulated), opts.delete ? 'would-destroy' : 'reported'),
      receipt: null, storedBytes, seconds: (Date.now() - started) / 1000,
    };
  }

  // Every byte of every bundle still to apply is checked before the first receive.
  progress.begin('verify', storedBytes, todo.length);
  const verified = new Set<string>();
  for (const { dir } of todo) {
    progress.stream(`verify ${dir.split('/').pop()}`, 0);
    await verifyBundle(dir, { onBytes: (n) => progress.advance(n), manifest: plans.find((p) => p.dir === dir)?.manifest });
    verified.add(dir);
    progress.endStream();
  }
  progress.end();

  progress.begin(`import → ${opts.target}`, storedBytes, todo.length);
  try {
    for (const { dir, manifest, decisions } of plans) {
      for (const d of decisions) {
        if (d.action !== 'apply') continue;
        const s = manifest.streams[d.index - 1];
        const dataset = joinDataset(opts.target, s.dataset);
        if (d.rollbackTo) await zfs.rollback(`${dataset}@${d.rollbackTo.name}`, { destroyNewer: true });
        for (const x of d.replaces ?? []) await zfs.destroy(`${dataset}@${x.name}`);
        if (s.kind === 'create') {
          await zfs.create(dataset, { parents: true });
          continue;
        }
        progress.stream(label(s), s.storedBytes);
        await receiveStream(zfs, dir, opts.target, s, partial, progress, manifest.encryption ? age : undefined, verified.has(dir));
        progress.endStream();
        await testPause(`import:between:${s.index}`);
      }
      if ((await zfs.getProperty(opts.target, SOURCE_PROPERTY)) === null) {
        await zfs.setProperty(opts.target, SOURCE_PROPERTY, sourceTag(manifest.source));
      }
      current = await zfs.inventory(opts.target);
    }
  } finally {
    progress.end();
  }

  let finalInv = current ?? (await zfs.inventory(opts.target));
  const extras = deletion(finalInv);
  if (opts.delete && extras) {
    // Snapshots by full name first, then datasets children first: never -r.
    for (const x of extras.snapshots) await zfs.destroy(x.full);
    for (const x of extras.datasets) await zfs.destroy(x.full);
    finalInv = await zfs.inventory(opts.target);
  }
  const state = makeState(opts.target, finalInv, newest!.source, plans.map((p) => p.manifest.bundleId));
  // Beside the bundles, so the disk that brought them carries the receipt back.
  const receipt = join(opts.path, receiptFileName(opts.target));
  await writeStateAtomic(receipt, state);
  return {
    target: opts.target, bundles: outcomes, deferred, extras: extrasOf(extras, opts.delete ? 'destroyed' : 'reported'),
    receipt, storedBytes, seconds: (Date.now() - started) / 1000,
  };
}

/**
 * A clone's first stream names its origin by guid only. Where zfs recv cannot
 * be told the origin (`-o origin=`, missing in zfs-fuse), it takes the first
 * snapshot with that guid anywhere in the pool: a second copy of the source
 * in the same pool would become the clone's origin. Refused before anything
 * is received.
 */
async function checkCloneOrigins(zfs: Zfs, target: string, plans: Array<{ manifest: Manifest; decisions: ApplyDecision[] }>): Promise<void> {
  if (zfs.caps.recvPropertyOverride) return;
  const clones = plans.flatMap(({ manifest, decisions }) =>
    decisions.filter((d) => d.action === 'apply').map((d) => manifest.streams[d.index - 1]).filter((s) => s.from?.dataset !== undefined));
  if (clones.length === 0) return;
  const pool = target.split('/')[0];
  const byGuid = new Map<string, string[]>();
  for (const d of (await zfs.inventory(pool)).datasets) {
    for (const s of d.snapshots) byGuid.set(s.guid, [...(byGuid.get(s.guid) ?? []), `${joinDataset(pool, d.path)}@${s.name}`]);
  }
  for (const s of clones) {
    const want = `${joinDataset(target, s.from!.dataset!)}@${s.from!.name}`;
    const others = (byGuid.get(s.from!.guid) ?? []).filter((n) => n !== want);
    if (others.length > 0) {
      throw new ZferryError(
        `${joinDataset(target, s.dataset)} is sent as a clone of ${want}, but pool ${pool} also holds that snapshot (guid ${s.from!.guid}) as ${others[0]}, ` +
          `and this zfs cannot be told which one to use (no zfs recv -o origin=): it could become a clone of the wrong copy; nothing was received`,
        { dataset: joinDataset(target, s.dataset) },
      );
    }
  }
}

/**
 * A target dataset written to since its newest snapshot cannot take an
 * incremental. Where zfs has `written`, this is found before anything is
 * received: refused, or with --rollback rolled back to that snapshot first.
 * Without `written` (zfs-fuse), --rollback rolls back to the newest snapshot
 * before the first incremental into each dataset (a no-op when unchanged),
 * and without it the receive's own error is turned into one line.
 */
async function checkModified(
  zfs: Zfs,
  opts: ImportOptions,
  current: Inventory,
  plans: Array<{ manifest: Manifest; decisions: ApplyDecision[] }>,
): Promise<void> {
  const written = await zfs.writtenSinceSnapshot(opts.target);
  const newestOf = new Map(current.datasets.map((d) => [d.path, d.snapshots[d.snapshots.length - 1]]));
  const seen = new Set<string>();
  for (const { manifest, decisions } of plans) {
    for (const d of decisions) {
      if (d.action !== 'apply') continue;
      const s = manifest.streams[d.index - 1];
      if (seen.has(s.dataset)) continue;
      seen.add(s.dataset);
      if (s.kind !== 'incremental' || d.rollbackTo) continue;
      const newest = newestOf.get(s.dataset);
      if (!newest) continue;
      const name = joinDataset(opts.target, s.dataset);
      const bytes = written?.get(name);
      if (written !== null && (bytes === undefined || bytes === 0n)) continue;
      if (!opts.rollback) {
        if (written === null) continue;
        throw new ZferryError(
          `${name} has been modified since its newest snapshot @${newest.name} (${bytes} bytes written); nothing was received; use --rollback to roll it back to @${newest.name} first`,
          { dataset: name },
        );
      }
      d.rollbackTo = { name: newest.name, guid: newest.guid };
    }
  }
}
