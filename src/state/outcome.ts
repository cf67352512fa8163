/**
 * What the last export, import, relay run and status ended with, one small
 * JSON file per job and subject under the state folder
 * (`last-export-tank.json`, `last-relay-run-tank@vault.json`,
 * `last-import-backup.json`), so `zferry status` reads facts instead of
 * guessing. The record is the event `--notify` receives (one shape), plus
 * the time of the last success, kept across failures.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ZferryError } from '../errors.js';
import { readRegular, writeFileAtomic } from '../fs/safe.js';
import { validateWith } from '../schemas.js';
import type { JobResult } from '../hooks.js';
import { checkSite, isDefaultSite } from './site.js';

export type JobKind = 'export' | 'import' | 'relay-run' | 'status';
export const JOB_KINDS: readonly JobKind[] = ['export', 'import', 'relay-run', 'status'];
/** Records are a few KiB; anything larger is not one zferry wrote. */
export const MAX_OUTCOME_BYTES = 1024 * 1024;

/** One job's end, as recorded and as sent to --notify. No key, identity or passphrase is ever part of it. */
export interface JobEvent {
  format: 'zferry-event';
  kind: JobKind;
  /** ok / partial / failed for jobs; for status, its level (ok, warning, critical, unknown). */
  outcome: JobResult | 'warning' | 'critical' | 'unknown';
  /** Pool or dataset exported (export, relay run, status), or the source of the bundles imported. */
  source: string | null;
  site: string;
  /** Import: the target dataset; export: the destination folder. */
  target: string | null;
  /** The error's one line, when the job failed. */
  error: string | null;
  startedAt: string;
  finishedAt: string;
  host: string;
  /** The job's figures: bundle, bytes, streams, pending, receipt... (per kind). */
  figures: Record<string, unknown>;
}

export interface OutcomeRecord extends JobEvent {
  /** finishedAt of the newest ok or partial run of this job and subject; null when none succeeded yet. */
  lastSuccessAt: string | null;
}

export function makeEvent(e: Omit<JobEvent, 'format' | 'host'>): JobEvent {
  return { format: 'zferry-event', ...e, host: hostname() };
}

/** The record's subject: the target for an import, the source otherwise (`all` for a status of everything). */
export function subjectOf(e: Pick<JobEvent, 'kind' | 'source' | 'target'>): string | null {
  if (e.kind === 'status') return e.source ?? 'all';
  return e.kind === 'import' ? e.target : e.source;
}

/** `@` never appears in the sanitized subject, so no site's file is another's (as journals). */
export function outcomeFileName(kind: JobKind, subject: string, site: string): string {
  return `last-${kind}-${subject.replace(/[^A-Za-z0-9_.-]/g, '_')}${isDefaultSite(site) || kind === 'import' ? '' : `@${site}`}.json`;
}

export function parseOutcome(text: string, file: string): OutcomeRecord {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ZferryError(`${file}: not valid JSON (${(err as Error).message})`, { file });
  }
  const problem = validateWith('outcome', data);
  if (problem) throw new ZferryError(`${file}: ${problem.path || '/'} ${problem.message}`, { file, field: problem.path });
  return data as OutcomeRecord;
}

export async function readOutcome(file: string, within: string): Promise<OutcomeRecord | null> {
  let buf: Buffer;
  try {
    buf = await readRegular(file, { within, maxBytes: MAX_OUTCOME_BYTES, what: 'outcome record' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return parseOutcome(buf.toString('utf8'), file);
}

/** Replaces this job's record; the last success time is carried over from the one replaced. */
export async function recordOutcome(dir: string, event: JobEvent): Promise<string> {
  const subject = subjectOf(event);
  if (subject === null) throw new ZferryError(`cannot record a ${event.kind} without a ${event.kind === 'import' ? 'target' : 'source'}`, {});
  // The site names the file: only a valid one (src/state/site.ts) may.
  const name = outcomeFileName(event.kind, subject, checkSite(event.site, 'site'));
  await mkdir(dir, { recursive: true });
  const previous = await readOutcome(join(dir, name), dir).catch(() => null);
  const succeeded = event.outcome === 'ok' || event.outcome === 'partial';
  const record: OutcomeRecord = { ...event, lastSuccessAt: succeeded ? event.finishedAt : previous?.lastSuccessAt ?? null };
  await writeFileAtomic(dir, name, JSON.stringify(record, null, 2) + '\n');
  return join(dir, name);
}

/** Every record in the state folder; one that cannot be read is reported, not fatal (status says UNKNOWN for it). */
export async function listOutcomes(dir: string): Promise<{ records: OutcomeRecord[]; problems: string[] }> {
  const records: OutcomeRecord[] = [];
  const problems: string[] = [];
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /^last-.*\.json$/.test(n)).sort();
  } catch {
    return { records, problems };
  }
  for (const name of names) {
    try {
      const r = await readOutcome(join(dir, name), dir);
      if (r) records.push(r);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return { records, problems };
}
