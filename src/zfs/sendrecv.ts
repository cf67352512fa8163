/**
 * `zfs send` and `zfs receive` as streams, and the parser for OpenZFS's
 * `zfs send -nvP` size estimate.
 *
 * Streams are never buffered: send's stdout is handed to the caller as a
 * Readable (execa `buffer: false` for stdout), receive's stdin as a Writable.
 * Only stderr is collected, to explain a failure.
 */
import type { Readable, Writable } from 'node:stream';
import { execa } from 'execa';
import { ZferryError } from '../errors.js';
import { holdUntilRead } from '../subprocess.js';
import type { ZfsCapabilities } from './probe.js';
import { commandError, ZFS_SPAWN } from './runner.js';

export type SendFlag = 'props' | 'compressed' | 'raw' | 'largeBlocks' | 'embedded';

export interface SendSpec {
  /** Full dataset name, e.g. tank/a. */
  dataset: string;
  /** Short snapshot name. */
  to: string;
  /**
   * Short name of the incremental base; a bookmark is sent from `dataset#name`.
   * `dataset` (full name) takes the base from another dataset: a clone's
   * origin, `zfs send -i pool/base@s1 pool/clone@c1`.
   */
  from?: { name: string; bookmark?: boolean; dataset?: string } | null;
  /** -I (all intermediate snapshots) instead of -i. */
  intermediates?: boolean;
  flags?: SendFlag[];
}

export interface ReceiveSpec {
  dataset: string;
  /** -F: roll the target back / overwrite it. Never implied. */
  force?: boolean;
  /** -s: keep a partial receive for a resume token. */
  resumable?: boolean;
  /** -x PROP: received properties to ignore (the target inherits them instead). */
  exclude?: string[];
  /** -o PROP=VALUE: properties to set on the received dataset. */
  set?: Record<string, string>;
  /**
   * A clone's origin snapshot (full name). Where zfs recv takes `-o origin=`
   * it is named; elsewhere zfs finds it by guid. Either way the received
   * dataset's origin is checked against it.
   */
  origin?: string;
}

export interface ZfsProcessOut {
  stdout: Readable;
  /** Resolves when zfs exits 0; rejects with a ZferryError (command, exitCode, stderr, dataset). */
  done: Promise<void>;
  kill(): void;
}

export interface ZfsProcessIn {
  /** Errors on this stream (EPIPE when zfs exits early) are only a symptom: `done` carries the cause. */
  stdin: Writable;
  done: Promise<void>;
  kill(): void;
}

const FLAG_LETTERS: Record<SendFlag, string> = {
  props: '-p',
  compressed: '-c',
  raw: '-w',
  largeBlocks: '-L',
  embedded: '-e',
};

/** `zfs send` arguments for a spec; refuses what this zfs cannot do rather than letting zfs misparse it. */
export function buildSendArgs(spec: SendSpec, caps: ZfsCapabilities): string[] {
  const args = ['send'];
  for (const flag of spec.flags ?? []) {
    if (!caps.send[flag]) {
      throw new ZferryError(`zfs on this machine cannot send ${spec.dataset} with ${flag} (${FLAG_LETTERS[flag]})`, {
        dataset: spec.dataset,
      });
    }
    args.push(FLAG_LETTERS[flag]);
  }
  const from = spec.from;
  if (from) {
    if (from.bookmark && !caps.bookmarks) {
      throw new ZferryError(`zfs on this machine has no bookmarks: cannot send ${spec.dataset} from #${from.name}`, {
        dataset: spec.dataset,
      });
    }
    if (from.bookmark && spec.intermediates) {
      throw new ZferryError(`cannot send ${spec.dataset} with intermediates (-I) from bookmark #${from.name}`, {
        dataset: spec.dataset,
      });
    }
    if (from.dataset !== undefined && from.dataset !== spec.dataset && (from.bookmark || spec.intermediates)) {
      // zfs-fuse takes only -i from a clone's origin; -I and bookmarks there are not needed.
      throw new ZferryError(`cannot send ${spec.dataset} from its origin ${from.dataset}@${from.name} with ${from.bookmark ? 'a bookmark' : '-I'}: use -i`, {
        dataset: spec.dataset,
      });
    }
    // Full names: OpenZFS warns on a bare base name ("didn't specify type").
    args.push(spec.intermediates ? '-I' : '-i', `${from.dataset ?? spec.dataset}${from.bookmark ? '#' : '@'}${from.name}`);
  }
  args.push(`${spec.dataset}@${spec.to}`);
  return args;
}

/** `zfs receive` arguments: always -u where supported (nothing gets mounted behind the user's back). */
export function buildReceiveArgs(spec: ReceiveSpec, caps: ZfsCapabilities): string[] {
  if (spec.resumable && !caps.resumable) {
    throw new ZferryError(`zfs on this machine cannot receive ${spec.dataset} resumably (-s)`, { dataset: spec.dataset });
  }
  const overrides = [
    ...(spec.exclude ?? []).flatMap((p) => ['-x', p]),
    ...Object.entries(spec.set ?? {}).flatMap(([p, v]) => ['-o', `${p}=${v}`]),
  ];
  if (overrides.length > 0 && !caps.recvPropertyOverride) {
    throw new ZferryError(`zfs on this machine cannot override received properties (-x/-o) of ${spec.dataset}`, { dataset: spec.dataset });
  }
  return [
    'receive',
    ...(caps.recvNoMount ? ['-u'] : []),
    ...(spec.force ? ['-F'] : []),
    ...(spec.resumable ? ['-s'] : []),
    ...overrides,
    spec.dataset,
  ];
}

function settle(
  subprocess: PromiseLike<{ exitCode?: number; stderr: unknown; isTerminated?: boolean; signal?: string }>,
  what: string,
  name: string,
  command: string[],
): Promise<void> {
  return Promise.resolve(subprocess).then((result) => {
    if (result.exitCode === 0) return;
    const stderr = String(result.stderr ?? '');
    if (result.exitCode === undefined) {
      const why = result.signal ? `killed by ${result.signal}` : 'could not run';
      throw new ZferryError(`${what} ${name} failed: ${why}${stderr ? `: ${stderr.trim().split('\n')[0]}` : ''}`, {
        dataset: name,
        command,
        stderr,
      });
    }
    throw commandError(what, name, command, result.exitCode, stderr);
  });
}

export function spawnSend(zfs: string, args: string[], dataset: string): ZfsProcessOut {
  const subprocess = execa(zfs, args, {
    ...ZFS_SPAWN,
    stdin: 'ignore',
    buffer: { stdout: false, stderr: true },
    reject: false,
  });
  const snapshot = args[args.length - 1] ?? dataset;
  holdUntilRead(subprocess.stdout);
  return {
    stdout: subprocess.stdout,
    done: settle(subprocess, 'zfs send', snapshot, [zfs, ...args]),
    kill: () => {
      subprocess.kill();
    },
  };
}

export function spawnReceive(zfs: string, args: string[], dataset: string): ZfsProcessIn {
  const subprocess = execa(zfs, args, {
    ...ZFS_SPAWN,
    stdin: 'pipe',
    stdout: 'ignore',
    buffer: { stderr: true },
    reject: false,
  });
  // A write after zfs has exited raises EPIPE here; without a listener that
  // would crash the process before `done` can report zfs's own message.
  subprocess.stdin.on('error', () => {});
  return {
    stdin: subprocess.stdin,
    done: settle(subprocess, 'zfs receive into', dataset, [zfs, ...args]),
    kill: () => {
      subprocess.kill();
    },
  };
}

/** One stream in a `zfs send -nvP` estimate. */
export interface SendDryRunStream {
  kind: 'full' | 'incremental';
  /** Base as zfs printed it: full `ds@s`, `ds#bm`, or a short `s`/`@s` in -R/-I forms; null for full. */
  from: string | null;
  to: string;
  /** Estimated bytes; null when zfs printed nothing usable or a value ≥ 2^63 (seen: 18446744073614344448, an underflow). */
  size: bigint | null;
}

export interface SendDryRun {
  streams: SendDryRunStream[];
  /** The `size` line; null when absent or not trustworthy. */
  total: bigint | null;
}

const INT63 = 1n << 63n;

/** A zfs byte count, or null when absent, not an integer, or ≥ 2^63 (an underflow, never a real size). */
export function parseTrustedSize(text: string | undefined): bigint | null {
  if (text === undefined || !/^\d+$/.test(text.trim())) return null;
  const n = BigInt(text.trim());
  return n >= INT63 ? null : n;
}

/**
 * Parses `zfs send -nvP` (OpenZFS): tab-separated `full SNAP SIZE`,
 * `incremental FROM TO SIZE`, `size TOTAL`. Anything else is skipped, which
 * covers the "resume token contents:" nvlist dump printed for `-t TOKEN` and
 * human-readable lines some versions add to -v.
 */
export function parseSendDryRun(text: string): SendDryRun {
  const streams: SendDryRunStream[] = [];
  let total: bigint | null = null;
  for (const raw of text.split('\n')) {
    const cols = raw.replace(/\r$/, '').split('\t');
    const kind = cols[0];
    if (kind === 'full' && cols.length >= 3) {
      streams.push({ kind: 'full', from: null, to: cols[1]!, size: parseTrustedSize(cols[2]) });
    } else if (kind === 'incremental' && cols.length >= 4) {
      streams.push({ kind: 'incremental', from: cols[1]!, to: cols[2]!, size: parseTrustedSize(cols[3]) });
    } else if (kind === 'size' && cols.length >= 2) {
      total = parseTrustedSize(cols[1]);
    }
  }
  return { streams, total };
}
