/** Runs the built zferry CLI the way a user's script does: a process, its exit code, its output. */
import { execa, type ResultPromise } from 'execa';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The CLI as installed: the bundle in dist/cli/ (scripts/build-cli.mjs), which is what package.json's bin names. */
export const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

/**
 * The state folder (journal, outcomes, locks) of this test process: never the
 * machine's /var/lib/zferry, nor a $ZFERRY_STATE_DIR the developer's own jobs use.
 */
export const STATE_DIR = path.join(os.tmpdir(), 'zferry-test-state', String(process.pid));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function zferry(...args: string[]): Promise<CliResult> {
  return zferryWith({}, ...args);
}

/** zferry with more in its environment. */
export async function zferryWith(env: Record<string, string>, ...args: string[]): Promise<CliResult> {
  const r = await execa(process.execPath, [CLI, ...args], { reject: false, stdin: 'ignore', env: { LC_ALL: 'C', ZFERRY_STATE_DIR: STATE_DIR, ...env } });
  return { code: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Runs zferry and fails the test with its stderr unless it exits 0. */
export async function zferryOk(...args: string[]): Promise<CliResult> {
  return zferryOkWith({}, ...args);
}

/** zferryOk with more in its environment. */
export async function zferryOkWith(env: Record<string, string>, ...args: string[]): Promise<CliResult> {
  const r = await zferryWith(env, ...args);
  if (r.code !== 0) throw new Error(`zferry ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

/** Starts zferry in the background (a relay receiver); end it with stopZferry. */
export function startZferry(...args: string[]): ResultPromise {
  return execa(process.execPath, [CLI, ...args], { reject: false, stdin: 'ignore', env: { LC_ALL: 'C', ZFERRY_STATE_DIR: STATE_DIR } });
}

/** SIGTERM lets zferry stop its own children (execa's cleanup); SIGKILL after 5 s, or at once with `hard`. */
export async function stopZferry(p: ResultPromise, hard = false): Promise<void> {
  if (p.exitCode !== undefined && p.exitCode !== null) return;
  p.kill(hard ? 'SIGKILL' : 'SIGTERM');
  if ((await within(p.then(() => true), 5_000)) === null) {
    p.kill('SIGKILL');
    await within(p, 5_000);
  }
}

/** The process's result, or null when it is still running after `ms`. */
export function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  // The timer is not what keeps a test file alive once its tests are done.
  return Promise.race([p, new Promise<null>((r) => setTimeout(() => r(null), ms).unref())]);
}
