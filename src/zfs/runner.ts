/**
 * How the adapter runs `zfs` and `zpool`: argument arrays through execa, the C
 * locale (the probe and error handling read zfs's English messages), and a
 * call counter so tests can pin "one call for the whole tree".
 */
import { accessSync, constants, statSync } from 'node:fs';
import { basename, delimiter, isAbsolute, join } from 'node:path';
import { execa } from 'execa';
import { ZferryError } from '../errors.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs a program to completion; resolves on any exit code, rejects only when it cannot start. */
export interface Runner {
  run(cmd: string, args: string[]): Promise<RunResult>;
}

/**
 * The absolute path of a program found on PATH, looked up once. Spawning a
 * bare name makes every start walk PATH again (an export of 200 datasets
 * made 4,340 failed execve calls, each while the parent waits for the
 * child's exec); the first executable file wins, as in the shell. A name
 * with a slash, or one found nowhere, is returned as it is: the spawn then
 * fails with the usual message.
 */
export function resolveProgram(name: string, searchPath = process.env.PATH ?? ''): string {
  if (name.includes('/')) return name;
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '' || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return name;
}

/** zfs prints translated messages otherwise; the probe matches the English ones. */
export const ZFS_ENV = { LC_ALL: 'C', LANG: 'C' } as const;

/**
 * execa options every zfs/zpool process gets. No `cleanup`: execa's kill of
 * children at exit installs and removes a dozen signal handlers around every
 * process (a profile of a 402-stream export had that among its larger costs),
 * and zfs needs none of it: a send whose reader is gone dies of the closed
 * pipe, a receive whose writer is gone sees the stream cut and keeps nothing,
 * and the other commands end by themselves.
 */
export const ZFS_SPAWN = { env: ZFS_ENV, cleanup: false } as const;

export class ExecaRunner implements Runner {
  async run(cmd: string, args: string[]): Promise<RunResult> {
    const result = await execa(cmd, args, { ...ZFS_SPAWN, stdin: 'ignore', reject: false });
    if ((result as { code?: string }).code === 'ENOENT') throw notInstalled(cmd, args);
    if (result.exitCode === undefined) {
      // Spawn failure (EACCES) or a signal: there is no zfs answer to read.
      throw new ZferryError(`cannot run ${cmd}: ${result.originalMessage ?? result.shortMessage}`, {
        command: [cmd, ...args],
      });
    }
    return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode };
  }
}

/** zfs or zpool found nowhere on PATH: the one line names the Debian packages that provide them. */
export function notInstalled(cmd: string, args: readonly string[] = []): ZferryError {
  return new ZferryError(
    `${basename(cmd)} is not installed or not on PATH: install OpenZFS (Debian: apt-get install zfsutils-linux) or zfs-fuse (apt-get install zfs-fuse)`,
    { command: [cmd, ...args] },
  );
}

/** The first lines of zfs's stderr, joined, for a one-line error message. */
export function stderrSummary(stderr: string, maxLines = 3): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^usage:/i.test(l));
  return lines.slice(0, maxLines).join(' | ') || '(no message on stderr)';
}

/** The ZferryError for a zfs/zpool command that exited non-zero. */
export function commandError(
  what: string,
  dataset: string,
  command: string[],
  exitCode: number | undefined,
  stderr: string,
): ZferryError {
  return new ZferryError(`${what} ${dataset} failed: ${stderrSummary(stderr)}`, {
    dataset,
    command,
    exitCode,
    stderr,
  });
}

/** zfs's wording for a dataset, snapshot or bookmark that is not there (all versions). */
export function isNotFound(stderr: string): boolean {
  return /does not exist/.test(stderr);
}
