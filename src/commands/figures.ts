/**
 * Each job's figures for its outcome record and --notify event
 * (src/state/outcome.ts): what an administrator reads at 8 a.m. Built field
 * by field from the result, never from the options, so no key file,
 * identity or passphrase can slip in.
 */
import { readManifest } from '../bundle/index.js';
import type { JobSummary } from '../job.js';
import { DEFAULT_SITE, siteOf } from '../state/site.js';
import type { ExportResult } from './export.js';
import type { ImportResult } from './import.js';
import type { RelayRunResult } from './relay-run.js';
import type { TransferResult } from './relay-receive.js';
import { makeEvent, recordOutcome } from '../state/outcome.js';

/** Protections listed in a record: enough to see them, bounded for a pool of thousands of datasets. */
const MAX_LISTED = 100;

function conflictsLeftOut(n: number): string {
  return `${n} dataset(s) in conflict were left out`;
}

/**
 * Why an import was done in part, in one line (what status says the morning
 * after); no `partial` when it was done whole. The one rule for an import's
 * partial outcome and exit code 3.
 */
export function partialImport(r: Pick<ImportResult, 'deferred' | 'passedOver' | 'parts'>): { partial?: string } {
  const why = [
    r.passedOver.length > 0 ? `${r.passedOver.length} bundle(s) passed over, not vouched for by the --trust key` : null,
    r.deferred.length > 0 ? `${r.deferred.length} bundle(s) deferred until the bundle they were planned on is imported` : null,
    r.parts.waiting.length > 0 ? `${r.parts.waiting.length} stream(s) split across disks wait for their next part` : null,
  ].filter((x) => x !== null);
  return why.length > 0 ? { partial: why.join('; ') } : {};
}

export function exportSummary(r: ExportResult, dest: string): JobSummary {
  return {
    result: r.plan.conflicts.length > 0 ? 'partial' : 'ok',
    ...(r.plan.conflicts.length > 0 ? { partial: conflictsLeftOut(r.plan.conflicts.length) } : {}),
    bundle: r.bundle ?? dest,
    site: r.site,
    figures: {
      dest,
      bundle: r.bundle,
      bundleId: r.bundleId,
      basis: r.basis.origin,
      streams: r.streams.length,
      rawBytes: r.rawBytes,
      storedBytes: r.storedBytes,
      seconds: r.seconds,
      conflicts: r.plan.conflicts.map((c) => c.message).slice(0, MAX_LISTED),
      receiptSeen: r.confirmed,
      protection: {
        kept: r.protection.kept.slice(0, MAX_LISTED),
        keptCount: r.protection.kept.length,
        releasedCount: r.protection.released.length,
      },
    },
  };
}

export async function importSummary(r: ImportResult, path: string): Promise<JobSummary> {
  const last = r.bundles[r.bundles.length - 1];
  // The source and site are the bundles' word; the result names only their folders.
  const manifest = last ? await readManifest(last.bundle).catch(() => null) : null;
  const applied = r.bundles.filter((b) => b.status === 'applied').length;
  const why = partialImport(r);
  return {
    result: why.partial !== undefined ? 'partial' : 'ok',
    ...why,
    source: manifest?.source.root ?? null,
    site: manifest ? siteOf(manifest) : DEFAULT_SITE,
    bundle: path,
    figures: {
      path,
      applied,
      alreadyApplied: r.bundles.filter((b) => b.status === 'already-applied').length,
      superseded: r.superseded.map((x) => x.message).slice(0, MAX_LISTED),
      deferred: r.deferred.map((d) => d.message).slice(0, MAX_LISTED),
      passedOver: r.passedOver.slice(0, MAX_LISTED),
      storedBytes: r.storedBytes,
      seconds: r.seconds,
      receipt: r.receipt,
      destroyed: r.extras.action === 'destroyed' ? { snapshots: r.extras.snapshots.length, datasets: r.extras.datasets.length } : null,
      sourcePoolGuid: manifest?.source.poolGuid ?? null,
    },
  };
}

export function relaySummary(r: RelayRunResult, spool: string, site: string): JobSummary {
  return {
    result: r.conflicts.length > 0 ? 'partial' : 'ok',
    ...(r.conflicts.length > 0 ? { partial: conflictsLeftOut(r.conflicts.length) } : {}),
    site,
    bundle: r.exported,
    figures: {
      spool,
      exported: r.exported,
      pushed: r.pushed.length,
      confirmed: r.confirmed.length,
      pending: r.pending.length,
      pendingBytes: r.pendingBytes,
      receipt: r.receipt,
      conflicts: r.conflicts.slice(0, MAX_LISTED),
      seconds: r.seconds,
      receiptSeen: r.receiptSeen,
      ...(r.protection ? { protection: { kept: r.protection.kept.slice(0, MAX_LISTED), keptCount: r.protection.kept.length, releasedCount: r.protection.released.length } } : {}),
    },
  };
}

/**
 * A relay receiver's import, recorded as `zferry import` records its own, so
 * `zferry status --target` on the receiving side reads both alike. A transfer
 * that failed before its import is recorded as a failed import.
 */
export async function recordTransfer(dir: string, t: TransferResult, target: string, spool: string): Promise<void> {
  const finished = new Date();
  const started = new Date(finished.getTime() - t.seconds * 1000);
  const summary = t.import ? await importSummary(t.import, spool) : null;
  await recordOutcome(dir, makeEvent({
    kind: 'import',
    outcome: !t.ok ? 'failed' : summary!.result,
    source: summary?.source ?? null,
    site: summary?.site ?? DEFAULT_SITE,
    target,
    error: t.ok ? null : t.error,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    figures: { ...(summary?.figures ?? {}), relay: { bundles: t.bundles.length, bytes: t.bytes, replied: t.replied, replyError: t.replyError } },
  }));
}
