/** Processes and facts the relay tests share: zferry children killed by their handle, bounded waits, spool contents, source ids. */
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { CLI, STATE_DIR, stopZferry, within } from './cli.js';
import { run } from './zfslab.js';

export const LOOP = '127.0.0.1';

/** Every zferry this test file started, for `after` to stop. */
export const started: ResultPromise[] = [];

export function startZferry(args: string[]): ResultPromise {
  const p = execa(process.execPath, [CLI, ...args], { reject: false, stdin: 'ignore', env: { LC_ALL: 'C', ZFERRY_STATE_DIR: STATE_DIR } });
  started.push(p);
  return p;
}

/** SIGTERM lets zferry stop its mbuffer child (execa's cleanup); SIGKILL after 5 s, or at once with `hard`. */
export const stop = stopZferry;

export async function stopAll(): Promise<void> {
  for (const p of started) await stop(p);
}

/** The process's result, or null when it has not ended within `ms`. */
export function finished<T>(p: Promise<T>, ms = 30_000): Promise<T | null> {
  return within(p, ms);
}

export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Bundle folders (holding manifest.json) directly under dir. */
export async function bundlesIn(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: string[] = [];
  for (const n of names.sort()) if ((await readdir(path.join(dir, n)).catch(() => [] as string[])).includes('manifest.json')) out.push(n);
  return out;
}

/** The id `relay receive --source` takes for bundles exported from `root`: POOLGUID:ROOT, as import marks targets. */
export async function sourceId(root: string): Promise<string> {
  const guid = (await run('zpool', ['list', '-H', '-o', 'guid', root.split('/')[0]])).trim();
  return `${guid}:${root}`;
}

/** Whether something listens on 127.0.0.1's or every address's TCP `port` (ss, as a user would check). */
export async function listening(port: number): Promise<boolean> {
  const out = await run('ss', ['-Hltn', `sport = :${port}`], { allowFailure: true });
  return out.trim() !== '';
}

/** Starts `server` listening on TCP `port` (0: one the kernel picks) on every address; rejects when it cannot. */
export function listenOn(server: net.Server, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, resolve));
}

/**
 * A TCP port nothing listens on now, as the kernel picks it (bound to every
 * address and released): no range to share or collide with another file's.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await listenOn(server, 0);
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * The first of `n` consecutive TCP ports that nothing listens on now (each
 * bound on every address and released), for a test file's BASE + k: files
 * run one at a time, and no range is shared by formula with another file.
 * The range lies outside the kernel's ports for outgoing connections: a
 * file opens its ports many times over, and each connection mbuffer makes
 * in between takes (and, closed, keeps for a minute) one of those.
 */
export async function freePortRange(n: number): Promise<number> {
  const [from, to] = await portsOutsideEphemeral(n);
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = from + Math.floor(Math.random() * (to - from));
    const held: net.Server[] = [];
    try {
      for (let k = 0; k < n; k++) {
        const server = net.createServer();
        await listenOn(server, base + k);
        held.push(server);
      }
      return base;
    } catch {
      // taken: another base
    } finally {
      for (const s of held) await new Promise((r) => s.close(r));
    }
  }
  throw new Error(`no ${n} consecutive free TCP ports found in 50 tries`);
}

/** Bases [from, to) for `n` ports below the kernel's outgoing-connection range (above it when too little is below). */
async function portsOutsideEphemeral(n: number): Promise<[number, number]> {
  const text = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '32768 60999');
  const [low, high] = text.trim().split(/\s+/).map(Number);
  if (low - n > 10_000 + 1000) return [10_000, low - n];
  if (65_535 - n > high + 1000) return [high + 1, 65_536 - n];
  return [20_000, 60_000 - n];
}

/** Waits until a receiver started on `port` listens, so a sender never races its start-up. */
export function untilListening(port: number, ms = 30_000): Promise<void> {
  return waitFor(`a listener on port ${port}`, () => listening(port), ms);
}

/**
 * For a test's catch: stops the long-running peers (a receiver started by
 * startZferry) and adds the end of each one's stderr and stdout to `err`, so
 * that a reply that never came says what the other side did.
 */
export async function withPeerOutput(err: unknown, peers: Record<string, ResultPromise>): Promise<unknown> {
  const tail = (s: unknown) => String(s ?? '').trim().slice(-2000) || '(nothing)';
  const told: string[] = [];
  for (const [name, p] of Object.entries(peers)) {
    await stop(p);
    const r = await p;
    told.push(`${name} (exit ${r.exitCode ?? r.signal}) stderr: ${tail(r.stderr)}\n${name} stdout: ${tail(r.stdout)}`);
  }
  if (err instanceof Error) err.message += `\n${told.join('\n')}`;
  return err;
}
