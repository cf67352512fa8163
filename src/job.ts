/**
 * The frame every unattended job runs in (export, import, relay run): the
 * pre hook, the job, the post hook (after failures too), the outcome record
 * zferry status reads, the --notify event. The job's own error or exit code
 * is what the caller sees; a post hook failing after a good job fails it, a
 * failing notifier or record only warns on stderr.
 */
import { ZferryError, oneLine } from './errors.js';
import { runHook, type HookFacts, type JobResult } from './hooks.js';
import { notify } from './notify.js';
import { makeEvent, recordOutcome, type JobKind } from './state/outcome.js';

export interface JobSpec {
  kind: Exclude<JobKind, 'status'>;
  source: string | null;
  /** Import: the target dataset; export: the destination folder. */
  target: string | null;
  /** Export: the destination folder (the bundle's path once written); import: the path imported. */
  bundle: string | null;
  site: string;
  pre: string[] | null;
  post: string[] | null;
  notify: string[] | null;
  /** Seconds each hook may run (--hook-timeout). */
  hookTimeoutS: number;
  /** State folder the outcome is recorded in; null: not recorded (a dry run). */
  stateDir: string | null;
}

export interface JobSummary {
  result: Exclude<JobResult, 'failed'>;
  figures: Record<string, unknown>;
  /** Facts learned by the job itself (the bundle written, the source of the bundles imported). */
  source?: string | null;
  site?: string;
  bundle?: string | null;
  /** With result 'partial': why, in one line (it is the event's error line, which zferry status quotes). */
  partial?: string;
}

function warn(line: string): void {
  process.stderr.write(`zferry: ${line}\n`);
}

export async function runJob<T>(spec: JobSpec, work: () => Promise<T>, summarize: (r: T) => Promise<JobSummary> | JobSummary): Promise<T> {
  const started = new Date();
  const facts: HookFacts = { kind: spec.kind, source: spec.source, target: spec.target, bundle: spec.bundle, site: spec.site };
  let value: T | undefined;
  let error: unknown = null;
  let summary: JobSummary | null = null;
  try {
    // Before anything is touched: a pool not imported or a key not loaded stops the job here.
    if (spec.pre) await runHook('pre', spec.pre, facts, undefined, spec.hookTimeoutS);
    value = await work();
    summary = await summarize(value);
  } catch (err) {
    error = err;
  }
  const result: JobResult = error !== null ? 'failed' : summary!.result;
  const after: HookFacts = { ...facts, source: summary?.source ?? facts.source, site: summary?.site ?? facts.site, bundle: summary?.bundle ?? facts.bundle };
  if (spec.post) {
    try {
      await runHook('post', spec.post, after, result, spec.hookTimeoutS);
    } catch (err) {
      // The job's own failure is the one to report; a post hook failing after a good job fails it.
      if (error === null) error = err;
      else warn(oneLine(err));
    }
  }
  const event = makeEvent({
    kind: spec.kind,
    outcome: error !== null ? 'failed' : result,
    source: after.source,
    site: after.site,
    target: spec.target,
    error: error !== null ? oneLine(error) : result === 'partial' ? summary?.partial ?? null : null,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    figures: summary?.figures ?? {},
  });
  if (spec.stateDir !== null && (event.kind === 'import' ? event.target : event.source) !== null) {
    await recordOutcome(spec.stateDir, event).catch((err: unknown) => warn(`the outcome was not recorded for zferry status: ${oneLine(err)}`));
  }
  if (spec.notify) {
    const problem = await notify(spec.notify, event);
    if (problem) warn(problem);
  }
  if (error !== null) throw error instanceof Error ? error : new ZferryError(oneLine(error));
  return value as T;
}
