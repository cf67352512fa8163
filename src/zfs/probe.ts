/**
 * Capability probe: what this machine's zfs accepts, found by running
 * harmless commands, never by guessing from a version string.
 *
 * Each probe passes one option and no operand, so every zfs stops in its
 * argument check before touching a pool: getopt answers "invalid option 'X'"
 * when the flag is unknown, otherwise the command complains about the missing
 * operand ("missing snapshot argument", "missing size argument", ...) and
 * prints its usage. The usage text alone is not trusted: zfs-fuse accepts
 * `recv -u` although its usage does not list it.
 *
 * Coverage (same option letters and messages in all of them, checked against
 * the sources of cmd/zfs/zfs_main.c):
 * - OpenZFS 0.8–2.3 (Linux, FreeBSD 13+): all probes answer "accepted";
 *   `zfs version` gives the version. `send -w` is 0.8+, `send -c` and
 *   `recv -s` 0.7+, so older builds show as not having them.
 * - ZFS on Linux 0.6/0.7: no `zfs version`; the version is read from
 *   /sys/module/zfs/version.
 * - zfs-fuse 0.7.0 (measured): send -n/-P/-c/-w/-L/-e, recv -s, list -p,
 *   get -t, bookmark, destroy -n are rejected; send -p and recv -u are accepted; `create -V`
 *   is accepted by the parser but volumes abort with ENOSYS, so volumes are
 *   reported absent for zfs-fuse.
 * - FreeBSD <13 / illumos (legacy ZFS): same flags and messages; flavour 'other'.
 */
import { access, readFile } from 'node:fs/promises';
import { ZferryError } from '../errors.js';
import type { Runner } from './runner.js';
import { stderrSummary } from './runner.js';

export interface ZfsCapabilities {
  flavour: 'openzfs' | 'zfs-fuse' | 'other';
  /** From `zfs version` (or /sys/module/zfs/version on old ZoL); null where neither exists. */
  version: string | null;
  /** `zfs list -p` */
  listParsable: boolean;
  /** `zfs get -t` */
  getTypeFilter: boolean;
  bookmarks: boolean;
  /** `zfs send -nvP` parsable */
  sendDryRun: boolean;
  /** `recv -s` / `send -t` */
  resumable: boolean;
  volumes: boolean;
  send: { compressed: boolean; raw: boolean; largeBlocks: boolean; embedded: boolean; props: boolean };
  /** `recv -u` */
  recvNoMount: boolean;
  /** `recv -x PROP` and `recv -o PROP=VALUE` (OpenZFS 0.7.12/0.8+): keep received properties off the target host's paths. */
  recvPropertyOverride: boolean;
  /**
   * `zfs destroy FS@a,b,c`: many snapshots of a dataset in one call. It came
   * with `destroy -n` (illumos 1647, 2011; ZoL 0.6), which is what is probed;
   * zfs-fuse has neither.
   */
  destroySnapshotList: boolean;
}

/** One probe: zfs arguments, and the option letter whose acceptance it tests ('' = the subcommand itself). */
export interface FlagProbe {
  args: string[];
  letter: string;
}

export const FLAG_PROBES = {
  listParsable: { args: ['list', '-p', '-H', '-o'], letter: 'p' },
  getTypeFilter: { args: ['get', '-t', 'snapshot'], letter: 't' },
  bookmarks: { args: ['bookmark'], letter: '' },
  sendDryRun: { args: ['send', '-n', '-P'], letter: 'nP' },
  resumable: { args: ['receive', '-s'], letter: 's' },
  recvNoMount: { args: ['receive', '-u'], letter: 'u' },
  volumes: { args: ['create', '-V'], letter: 'V' },
  compressed: { args: ['send', '-c'], letter: 'c' },
  raw: { args: ['send', '-w'], letter: 'w' },
  largeBlocks: { args: ['send', '-L'], letter: 'L' },
  embedded: { args: ['send', '-e'], letter: 'e' },
  props: { args: ['send', '-p'], letter: 'p' },
  recvExclude: { args: ['receive', '-x'], letter: 'x' },
  recvOption: { args: ['receive', '-o'], letter: 'o' },
  destroyDryRun: { args: ['destroy', '-n'], letter: 'n' },
} satisfies Record<string, FlagProbe>;

export type ProbeName = keyof typeof FLAG_PROBES;

/**
 * Reads zfs's stderr after a probe. true: the option was parsed (zfs went on
 * to complain about the missing operand); false: rejected; null: zfs did not
 * answer at all (daemon down, module not loaded), which the caller reports.
 */
export function classifyFlagProbe(stderr: string, letters: string): boolean | null {
  for (const letter of letters) {
    if (new RegExp(`invalid option (-- )?'${escapeRegExp(letter)}'`).test(stderr)) return false;
  }
  if (/unrecognized command/.test(stderr)) return false;
  if (/usage:|missing .*argument|requires an argument|too many arguments/i.test(stderr)) return true;
  return null;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `zfs version` prints `zfs-2.3.2-2~bpo12+2` then `zfs-kmod-…`: the userland version. */
export function parseZfsVersion(text: string): string | null {
  for (const line of text.split('\n')) {
    const m = /^zfs-(?!kmod-)(\d\S*)/.exec(line.trim());
    if (m) return m[1] ?? null;
  }
  return null;
}

/** zfs-fuse's zfs talks to its daemon over this socket; kernel ZFS uses /dev/zfs. */
export const ZFS_FUSE_SOCKET = '/var/run/zfs/zfs_socket';

async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * What the zfs program itself answers: which probed options it parses, and
 * the version `zfs version` prints. These depend on the program file alone
 * (the kernel side is not asked), so they may be kept while it is unchanged
 * (probe-cache.ts).
 */
export interface ProbeAnswers {
  has: Record<ProbeName, boolean>;
  /** Userland version from `zfs version`; null where it has no such command. */
  version: string | null;
}

/** Runs every probe (in parallel; each is a read-only argument check). */
export async function probeAnswers(runner: Runner, zfs: string): Promise<ProbeAnswers> {
  const names = Object.keys(FLAG_PROBES) as ProbeName[];
  const [versionResult, ...flagResults] = await Promise.all([
    runner.run(zfs, ['version']),
    ...names.map((n) => runner.run(zfs, FLAG_PROBES[n].args)),
  ]);
  const has = {} as Record<ProbeName, boolean>;
  names.forEach((name, i) => {
    const probe = FLAG_PROBES[name];
    const stderr = flagResults[i]!.stderr;
    const accepted = classifyFlagProbe(stderr, probe.letter);
    if (accepted === null) {
      throw new ZferryError(`cannot probe zfs (${zfs} ${probe.args.join(' ')}): ${stderrSummary(stderr)}`, {
        command: [zfs, ...probe.args],
        exitCode: flagResults[i]!.exitCode,
        stderr,
      });
    }
    has[name] = accepted;
  });
  return { has, version: versionResult!.exitCode === 0 ? parseZfsVersion(versionResult!.stdout) : null };
}

/** Runs every probe and assembles the capabilities. */
export async function probeCapabilities(runner: Runner, zfs: string): Promise<ZfsCapabilities> {
  return capabilitiesFrom(await probeAnswers(runner, zfs));
}

/** The capabilities from the program's answers, and what this machine's files say about the kernel side (old ZoL's version, zfs-fuse's socket). */
export async function capabilitiesFrom(answers: ProbeAnswers): Promise<ZfsCapabilities> {
  const { has } = answers;
  let version = answers.version;
  let flavour: ZfsCapabilities['flavour'] = version !== null ? 'openzfs' : 'other';
  if (version === null) {
    const sysVersion = await readFile('/sys/module/zfs/version', 'utf8').catch(() => null);
    if (sysVersion !== null && sysVersion.trim() !== '') {
      version = sysVersion.trim();
      flavour = 'openzfs';
    } else if ((await fileExists(ZFS_FUSE_SOCKET)) && !(await fileExists('/dev/zfs'))) {
      flavour = 'zfs-fuse';
    }
  }

  return {
    flavour,
    version,
    listParsable: has.listParsable,
    getTypeFilter: has.getTypeFilter,
    bookmarks: has.bookmarks,
    sendDryRun: has.sendDryRun,
    resumable: has.resumable,
    // zfs-fuse parses `create -V` but has no zvol device layer (measured: ENOSYS abort).
    volumes: has.volumes && flavour !== 'zfs-fuse',
    send: {
      compressed: has.compressed,
      raw: has.raw,
      largeBlocks: has.largeBlocks,
      embedded: has.embedded,
      props: has.props,
    },
    recvNoMount: has.recvNoMount,
    recvPropertyOverride: has.recvExclude && has.recvOption,
    destroySnapshotList: has.destroyDryRun,
  };
}
