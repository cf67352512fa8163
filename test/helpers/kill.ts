/**
 * Stopping zferry at an exact point: the ZFERRY_TEST_PAUSE_AT hook
 * (src/test-hook.ts) makes the process announce the point in a file and
 * wait, so a signal lands exactly there, without timing guesses.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { CLI, STATE_DIR } from './cli.js';

export interface KillAtOptions {
  /** Folder for the hook's announcement file. */
  dir: string;
  /** Extra environment, e.g. ZFERRY_TEST_PAUSE_BYTES. */
  env?: Record<string, string>;
  /** What must have happened before the signal (default: nothing). */
  settle?: () => Promise<void>;
  /** Default SIGKILL (a power cut). */
  signal?: NodeJS.Signals;
  /** Signal zferry's whole process group, its zfs children included, as Ctrl-C in a terminal does. */
  group?: boolean;
}

export interface Paused {
  child: ResultPromise;
  /** Lets the paused zferry go on (the hook waits until its announcement file is gone). */
  resume(): Promise<void>;
}

/**
 * Runs zferry until it reaches `point` and holds it there (the process waits,
 * its locks held, its zfs children open); resolves once it is there.
 */
export async function pauseAt(point: string, opts: Pick<KillAtOptions, 'dir' | 'env' | 'group'>, ...args: string[]): Promise<Paused> {
  const flag = path.join(opts.dir, `reached-${point.replace(/:/g, '_')}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
  const child = execa(process.execPath, [CLI, ...args], {
    reject: false, stdin: 'ignore', detached: opts.group === true,
    env: { LC_ALL: 'C', ZFERRY_STATE_DIR: STATE_DIR, ...opts.env, ZFERRY_TEST_PAUSE_AT: point, ZFERRY_TEST_PAUSE_FILE: flag },
  });
  const deadline = Date.now() + 60_000;
  while (!existsSync(flag)) {
    if (child.exitCode !== null) throw new Error(`zferry ${args.join(' ')} ended before ${point}: ${(await child).stderr}`);
    if (Date.now() > deadline) throw new Error(`${point} not reached in 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, resume: () => rm(flag, { force: true }) };
}

/** Runs zferry until it reaches `point`, then signals it; resolves once it and its children are gone. */
export async function killAt(point: string, opts: KillAtOptions, ...args: string[]): Promise<void> {
  const signal = opts.signal ?? 'SIGKILL';
  const { child } = await pauseAt(point, opts, ...args);
  let orphans: number[] = [];
  try {
    await opts.settle?.();
  } finally {
    orphans = child.pid === undefined ? [] : await childrenOf(child.pid);
    if (opts.group && child.pid !== undefined) process.kill(-child.pid, signal);
    else child.kill(signal);
  }
  const r = await child;
  if (signal === 'SIGKILL') assert.equal(r.signal, 'SIGKILL');
  else assert.ok(r.signal !== undefined || (r.exitCode ?? 0) !== 0, `zferry ended with exit 0 after ${signal} at ${point}`);
  // A zfs send/recv the killed process started outlives it for a moment (its pipe closes, it fails): let it finish.
  for (const pid of orphans) await waitGone(pid);
}

export async function childrenOf(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const out: number[] = [];
  for (const t of tasks) {
    const text = await readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '');
    out.push(...text.split(/\s+/).filter(Boolean).map(Number));
  }
  return out;
}

export async function waitGone(pid: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
