/**
 * The only module that runs mbuffer. Command lines are built by pure
 * functions (unit-tested) and spawned with execa as argument arrays.
 *
 * mbuffer's direction is fixed by its flags: `-O HOST:PORT` connects and
 * sends what it reads on stdin; `-I [ADDR:]PORT` listens for one connection
 * and writes what arrives to stdout. A listener exits 0 when the peer simply
 * stops, so completeness is never judged from its exit status (the relay's
 * tar framing and manifest checks do that).
 */
import { execa, type ResultPromise } from 'execa';
import type { Readable, Writable } from 'node:stream';
import { ZferryError } from '../errors.js';
import { holdUntilRead } from '../subprocess.js';

export interface MbufferTuning {
  /** `-s`: block size in bytes. */
  blockSize: number;
  /** `-m`: total buffer memory in bytes. */
  memory: number;
  /** `-r`: read rate limit in bytes per second (sending side); none when undefined. */
  rate?: number;
}

/**
 * Defaults for a slow link: 128 KiB blocks keep the socket busy without
 * large latency, 64 MiB of buffer rides out zfs/disk stalls of several seconds
 * at tens of MB/s while staying small on a modest host.
 */
export const SLOW_LINK_TUNING: MbufferTuning = { blockSize: 128 * 1024, memory: 64 * 1024 * 1024 };

export interface Endpoint {
  /** Host name or address; null for a listener on every address. */
  host: string | null;
  port: number;
}

/** `HOST:PORT`, `[v6]:PORT`, or (when a host is optional) `PORT`. */
export function parseEndpoint(text: string, what: string, hostRequired: boolean): Endpoint {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text) ?? (hostRequired ? null : /^()()(\d{1,5})$/.exec(text));
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    const form = hostRequired ? 'HOST:PORT (e.g. backup.example.net:9090)' : '[PEER:]PORT (e.g. 9090, or source.example.net:9090 to accept only that peer)';
    throw new ZferryError(`invalid ${what} '${text}': expected ${form} with a port from 1 to 65535`, {}, 2);
  }
  const host = m[1] || m[2] || null;
  return { host, port };
}

export function formatEndpoint(e: Endpoint): string {
  if (e.host === null) return String(e.port);
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** mbuffer takes sizes with a unit suffix; whole KiB are exact for every sane value. */
function kib(bytes: number): string {
  return `${Math.max(1, Math.ceil(bytes / 1024))}k`;
}

function tuningArgs(t: MbufferTuning, sending: boolean): string[] {
  const args = ['-q', '-s', kib(t.blockSize), '-m', kib(t.memory)];
  if (sending && t.rate !== undefined) args.push('-r', kib(t.rate));
  return args;
}

/**
 * `-W SECONDS`, mbuffer's watchdog: it ends mbuffer when no whole block moved
 * in or out for that long. Placed after -I/-O, it starts once the connection
 * is made (measured with R20230301: a listener waits for its peer as long as
 * it takes), so it cuts an idle or stalled peer, never a quiet listener. It
 * counts blocks, not bytes: a link is cut only when it moves less than one
 * block (-s) per period, 437 B/s with the defaults (128k, 300 s).
 */
function watchdogArgs(seconds: number | undefined): string[] {
  return seconds === undefined ? [] : ['-W', String(seconds)];
}

/** `mbuffer -q -s … -m … [-r …] -O HOST:PORT [-W secs]`: stdin → network. */
export function sendArgs(to: Endpoint, t: MbufferTuning, watchdogSeconds?: number): string[] {
  if (to.host === null) throw new ZferryError(`mbuffer needs a host to connect to (got port ${to.port} alone)`, {}, 2);
  return [...tuningArgs(t, true), '-O', formatEndpoint(to), ...watchdogArgs(watchdogSeconds)];
}

/** `mbuffer -q -s … -m … -I [ADDR:]PORT [-W secs] -o -`: one connection → stdout. */
export function listenArgs(on: Endpoint, t: MbufferTuning, watchdogSeconds?: number): string[] {
  return [...tuningArgs(t, false), '-I', formatEndpoint(on), ...watchdogArgs(watchdogSeconds), '-o', '-'];
}

/**
 * Seconds without a block moving before a relay connection is dropped:
 * long enough for a link of a few kB/s and for a disk that stalls, short
 * enough that a peer that connects and says nothing frees the port soon.
 */
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 300;

export const MBUFFER = 'mbuffer';

function missing(): ZferryError {
  return new ZferryError('mbuffer is not installed or not on PATH: install it (Debian: apt-get install mbuffer)', { command: [MBUFFER] });
}

/**
 * How mbuffer is started: through `setpriv --pdeathsig TERM --` where
 * util-linux's setpriv has that option (Linux), so that a zferry killed
 * outright (SIGKILL, the OOM killer) takes its mbuffer with it. A listener
 * left behind holds the port until some peer connects, and the next receiver
 * could not listen. Elsewhere (FreeBSD, illumos, an old setpriv) mbuffer runs
 * directly; a SIGTERM or Ctrl-C stops it either way (execa's cleanup).
 * Decided by ensureMbuffer, which every relay command awaits first.
 */
let launcher: string[] = [];

const PDEATHSIG = ['setpriv', '--pdeathsig', 'TERM', '--'];

/** The program and arguments that start `mbuffer args`. */
function mbufferCommand(args: string[]): [string, string[]] {
  const [file, ...pre] = [...launcher, MBUFFER];
  return [file, [...pre, ...args]];
}

/** Fails with one clear line when mbuffer cannot be run at all; learns whether setpriv can tie its life to ours. */
export async function ensureMbuffer(): Promise<void> {
  const guarded = await execa(PDEATHSIG[0], [...PDEATHSIG.slice(1), MBUFFER, '-V'], { reject: false, stdin: 'ignore', timeout: 10_000 });
  if (guarded.exitCode === 0) {
    launcher = PDEATHSIG;
    return;
  }
  launcher = [];
  const r = await execa(MBUFFER, ['-V'], { reject: false, stdin: 'ignore', timeout: 10_000 });
  if ((r as { code?: string }).code === 'ENOENT' || r.exitCode === undefined || r.exitCode === 127) throw missing();
}

/**
 * A listener that could not take its port (in use, not permitted): the
 * transfer never began, and listening again at once would fail the same way.
 */
export class ListenError extends ZferryError {}

/** Marks the error of an mbuffer that its watchdog (-W) ended: the peer went idle. */
export const IDLE_TIMEOUT = 'idle timeout';

export interface MbufferProcess {
  /** Resolves when mbuffer exited 0; rejects with a ZferryError carrying its stderr (message containing IDLE_TIMEOUT when its watchdog ended it). */
  done: Promise<void>;
  kill(): void;
}

function wrap(sub: ResultPromise, args: string[], what: string): Promise<void> {
  return sub.then(
    () => undefined,
    (err: { code?: string; exitCode?: number; signal?: string; stderr?: unknown; isTerminated?: boolean; timedOut?: boolean }) => {
      if (err.code === 'ENOENT') throw missing();
      const lines = String(err.stderr ?? '').split('\n').filter((l) => l && !/warning: (No controlling terminal|HOME)/.test(l));
      const stderr = lines.join(' | ').trim();
      if (args.includes('-I') && /Unable to initialize network input/.test(stderr)) {
        // One line per address family, usually the same reason twice.
        const reasons = [...new Set(lines.map((l) => /could not bind to socket for \S+: (.+)$/.exec(l)?.[1]?.trim()).filter((r): r is string => !!r))];
        const on = args[args.indexOf('-I') + 1];
        const port = on.replace(/^.*:/, '');
        throw new ListenError(
          `mbuffer cannot listen on ${on}: ${reasons.join('; ') || stderr}${reasons.some((r) => /in use/i.test(r)) ? ` (another process holds the port; \`ss -ltnp 'sport = :${port}'\` names it)` : ''}`,
          { command: [MBUFFER, ...args], exitCode: err.exitCode, stderr },
        );
      }
      const w = args.indexOf('-W');
      if (w >= 0 && /watchdog timeout/.test(stderr)) {
        throw new ZferryError(`mbuffer ${what}: nothing moved for ${args[w + 1]} s (${IDLE_TIMEOUT}); the connection was dropped`, {
          command: [MBUFFER, ...args], exitCode: err.exitCode, stderr,
        });
      }
      const how = err.timedOut ? 'timed out' : err.isTerminated ? `was stopped (${err.signal})` : `exited ${err.exitCode}`;
      throw new ZferryError(`mbuffer ${what} ${how}${stderr ? `: ${stderr}` : ''}`, {
        command: [MBUFFER, ...args], exitCode: err.exitCode, stderr,
      });
    },
  );
}

/** Starts a sender; write the payload to `stdin` and end it, then await `done`. */
export function mbufferOut(to: Endpoint, t: MbufferTuning, opts: { watchdogSeconds?: number } = {}): MbufferProcess & { stdin: Writable } {
  const args = sendArgs(to, t, opts.watchdogSeconds);
  const sub = execa(...mbufferCommand(args), { stdin: 'pipe', stdout: 'ignore', stderr: 'pipe', buffer: { stderr: true } });
  const done = wrap(sub, args, `to ${formatEndpoint(to)}`);
  done.catch(() => undefined);
  return { stdin: sub.stdin!, done, kill: () => void sub.kill('SIGTERM') };
}

/** Starts a listener for one connection; read `stdout` to its end, then await `done`. */
export function mbufferIn(on: Endpoint, t: MbufferTuning, opts: { timeoutMs?: number; watchdogSeconds?: number } = {}): MbufferProcess & { stdout: Readable } {
  const args = listenArgs(on, t, opts.watchdogSeconds);
  const sub = execa(...mbufferCommand(args), {
    stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', buffer: { stdout: false, stderr: true },
    ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
  });
  const done = wrap(sub, args, `listening on ${formatEndpoint(on)}`);
  done.catch(() => undefined);
  // Nothing that arrives before the caller starts reading may be dropped.
  holdUntilRead(sub.stdout!);
  return { stdout: sub.stdout!, done, kill: () => void sub.kill('SIGTERM') };
}
