/**
 * `zferry relay run`: one scheduled round (systemd timer or cron). Under a
 * lock on the spool: prune what the last receipt confirmed, export what is
 * new (only when nothing is pending, so no two bundles carry the same
 * streams), push every pending bundle oldest first, store the receipt that
 * comes back, prune again. A failed push leaves the bundles for next round.
 */
import { mkdir } from 'node:fs/promises';
import { ZferryError, oneLine } from '../errors.js';
import type { Zfs } from '../zfs/index.js';
import { ensureMbuffer, formatEndpoint } from '../mbuffer/index.js';
import { readRelayConfig, type RelayConfig } from '../relay/config.js';
import { acquireLock, spoolLockFile } from '../state/lock.js';
import { partitionByReceipt, pruneBundles, removeUnfinishedExports, spoolBundles } from '../relay/spool.js';
import { findNewestReceipt } from '../state/receipt.js';
import { runExport, sourceIdentity, type ExportResult } from './export.js';
import { runRelaySend } from './relay-send.js';
import type { Progress } from '../progress.js';
import { siteOf } from '../state/site.js';

/** One line of the round's log: printed as JSON for the journal, or as text on a terminal. */
export interface RelayEvent {
  event: 'start' | 'pruned' | 'export' | 'push' | 'ignored' | 'receipt' | 'done' | 'failed';
  [key: string]: unknown;
}

export interface RelayRunOptions {
  /** The config file, or the config already read (the CLI reads it first for its hooks). */
  config: string | RelayConfig;
  /** Seconds to wait for a round (or receiver) holding the spool's lock; Infinity: as long as it takes; absent: refuse at once. */
  wait?: number;
  /** One line for a person: a stale lock taken over, a wait begun. */
  notice?: (line: string) => void;
  zfs: () => Promise<Zfs>;
  progress?: () => Progress;
  onEvent?: (e: RelayEvent) => void;
}

export interface RelayRunResult {
  exported: string | null;
  pushed: string[];
  confirmed: string[];
  pending: string[];
  /** Bytes the pending bundles hold in the spool. */
  pendingBytes: number;
  receipt: string | null;
  /** Datasets the export left out because they are in conflict (the round is done in part). */
  conflicts: string[];
  /** The round's export: the protections it kept and the receipt it planned from (null when it exported nothing). */
  protection: ExportResult['protection'] | null;
  receiptSeen: ExportResult['confirmed'];
  seconds: number;
}

/** This site's bundles in the spool: a spool shared by two sites never pushes one site's bundle to the other. */
async function siteBundles(cfg: RelayConfig) {
  return (await spoolBundles(cfg.spool)).filter((b) => siteOf(b.manifest) === cfg.site);
}

async function prune(cfg: RelayConfig, zfs: Zfs, emit: (e: RelayEvent) => void) {
  const identity = await sourceIdentity(zfs, cfg.source);
  const receipt = await findNewestReceipt(cfg.spool, identity, cfg.site);
  const { confirmed, pending } = partitionByReceipt(await siteBundles(cfg), receipt?.state ?? null);
  if (confirmed.length > 0) {
    await pruneBundles(confirmed);
    emit({ event: 'pruned', bundles: confirmed.map((b) => b.manifest.bundleId) });
  }
  return { receipt, pending, confirmed };
}

export async function runRelayRound(opts: RelayRunOptions): Promise<RelayRunResult> {
  const started = Date.now();
  const emit = opts.onEvent ?? (() => undefined);
  const cfg = typeof opts.config === 'string' ? await readRelayConfig(opts.config) : opts.config;
  await ensureMbuffer();
  await mkdir(cfg.spool, { recursive: true });
  const lock = await acquireLock(spoolLockFile(cfg.spool), {
    what: `a relay round on ${cfg.spool}`, notice: opts.notice, ...(opts.wait !== undefined ? { waitSeconds: opts.wait } : {}),
  });
  const result: RelayRunResult = { exported: null, pushed: [], confirmed: [], pending: [], pendingBytes: 0, receipt: null, conflicts: [], protection: null, receiptSeen: null, seconds: 0 };
  try {
    emit({ event: 'start', source: cfg.source, site: cfg.site, spool: cfg.spool, to: formatEndpoint(cfg.to) });
    const zfs = await opts.zfs();
    await removeUnfinishedExports(cfg.spool);
    let { receipt, pending, confirmed } = await prune(cfg, zfs, emit);
    result.confirmed.push(...confirmed.map((b) => b.manifest.bundleId));

    if (pending.length === 0) {
      const exp = await runExport(zfs, {
        source: cfg.source,
        dest: cfg.spool,
        // A receipt in the spool is found by export itself; the state file only seeds the first round.
        since: receipt === null && cfg.initialState !== null ? cfg.initialState : undefined,
        level: cfg.level,
        ...(cfg.linkBytesPerSecond !== null ? { linkBytesPerSecond: cfg.linkBytesPerSecond } : {}),
        maxMemory: cfg.maxMemory,
        volumeSize: cfg.volumeSize,
        dryRun: false,
        notice: opts.notice,
        site: cfg.site,
        ...(cfg.sign ? { sign: cfg.sign } : {}),
        progress: opts.progress?.(),
      });
      emit({
        event: 'export', bundle: exp.bundle, bundleId: exp.bundleId, basis: exp.basis.origin, streams: exp.streams.length,
        storedBytes: exp.storedBytes, ...(exp.levelChoice ? { level: exp.levelChoice.level, levelReason: exp.levelChoice.reason } : {}),
        ...(exp.resumed ? { resumed: exp.resumed.reused.length } : {}), conflicts: exp.plan.conflicts.map((c) => c.message),
      });
      result.exported = exp.bundle;
      if (exp.bundle) result.protection = exp.protection;
      result.receiptSeen = exp.confirmed;
      result.conflicts = exp.plan.conflicts.map((c) => c.message);
      if (exp.plan.conflicts.length > 0) {
        // The bundle still goes: it carries every dataset not in conflict.
        emit({ event: 'failed', stage: 'export', message: `${exp.plan.conflicts.length} dataset(s) in conflict were left out` });
      }
      pending = (await siteBundles(cfg)).filter((b) => !result.confirmed.includes(b.manifest.bundleId));
    }

    if (pending.length > 0) {
      const send = await runRelaySend({
        paths: pending.map((b) => b.dir),
        to: cfg.to,
        tuning: cfg.tuning,
        replyListen: cfg.replyListen,
        receiptTimeoutSeconds: cfg.receiptTimeoutSeconds,
        receiptDir: cfg.spool,
        idleTimeoutSeconds: cfg.idleTimeoutSeconds,
        ...(cfg.trustReceiver ? { trustReceiver: cfg.trustReceiver } : {}),
        onIgnored: (message) => emit({ event: 'ignored', message }),
        progress: opts.progress?.(),
      });
      result.pushed = send.bundles.map((b) => b.bundleId);
      emit({ event: 'push', to: send.to, bundles: result.pushed, bytes: send.bytes, seconds: send.seconds, rate: send.seconds > 0 ? Math.round(send.bytes / send.seconds) : null });
      if (send.receipt) {
        result.receipt = send.receipt;
        emit({ event: 'receipt', file: send.receipt, bundles: send.reply?.receipt?.bundles ?? [] });
        // Only what this accepted receipt confirms goes, never on another file's word.
        confirmed = pending.filter((b) => send.confirmed.includes(b.manifest.bundleId));
        pending = pending.filter((b) => !send.confirmed.includes(b.manifest.bundleId));
        if (confirmed.length > 0) {
          await pruneBundles(confirmed);
          emit({ event: 'pruned', bundles: confirmed.map((b) => b.manifest.bundleId) });
        }
        result.confirmed.push(...confirmed.map((b) => b.manifest.bundleId));
      }
    }
    result.pending = pending.map((b) => b.manifest.bundleId);
    result.pendingBytes = pending.reduce((n, b) => n + b.manifest.streams.reduce((k, st) => k + st.storedBytes, 0), 0);
    result.seconds = (Date.now() - started) / 1000;
    emit({ event: 'done', exported: result.exported, pushed: result.pushed.length, confirmed: result.confirmed.length, pending: result.pending.length, seconds: result.seconds });
    return result;
  } catch (err) {
    emit({ event: 'failed', message: oneLine(err) });
    if (err instanceof ZferryError) throw err;
    throw new ZferryError(`relay round failed: ${oneLine(err)}`, {});
  } finally {
    await lock.release();
  }
}
