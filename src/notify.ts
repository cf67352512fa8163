/**
 * --notify CMD: after a job, CMD runs with one JSON event on stdin (kind,
 * source, site, outcome, error line, figures: src/state/outcome.ts), so mail
 * and webhooks are one-liners (contrib/notify-*). A notifier that fails or
 * hangs is reported on stderr and never changes the job's exit code.
 */
import { execa } from 'execa';
import { oneLine } from './errors.js';
import type { JobEvent } from './state/outcome.js';

/** A notifier gets this long; a mail server that hangs must not hold the next round. */
export const NOTIFY_TIMEOUT_MS = 60_000;

/**
 * Secrets never leave in an event, even where an error line quoted one: age
 * identities, and minisign key material (a run of 100+ base64 characters, which no
 * path or name zferry reports contains).
 */
export function redact(text: string): string {
  return text
    .replace(/AGE-SECRET-KEY-1[0-9A-Z]+/gi, 'AGE-SECRET-KEY-(redacted)')
    .replace(/[A-Za-z0-9+/]{100,}={0,2}/g, '(redacted)');
}

export function eventText(event: JobEvent): string {
  return redact(JSON.stringify(event)) + '\n';
}

/** Runs the notifier; returns the problem's one line, or null when it took the event. Never throws. */
export async function notify(words: readonly string[], event: JobEvent): Promise<string | null> {
  const [file, ...args] = words;
  try {
    const r = await execa(file!, args, {
      input: eventText(event),
      reject: false,
      stdout: ['pipe'],
      stderr: ['pipe'],
      timeout: NOTIFY_TIMEOUT_MS,
    });
    if (r.stdout) process.stderr.write(`${String(r.stdout).trimEnd()}\n`);
    if (r.exitCode === 0 && !r.failed) return null;
    const last = String(r.stderr ?? '').trim().split('\n').pop() ?? '';
    const why = r.timedOut ? `no answer in ${NOTIFY_TIMEOUT_MS / 1000} s` : r.exitCode !== undefined ? `exit ${r.exitCode}` : oneLine(r.cause ?? r.shortMessage);
    return `--notify ${JSON.stringify(words.join(' '))} failed (${why})${last ? `: ${last}` : ''}`;
  } catch (err) {
    return `--notify ${JSON.stringify(words.join(' '))} failed: ${oneLine(err)}`;
  }
}
