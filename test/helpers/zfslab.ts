/**
 * Test harness for everything that touches ZFS. Two lanes, chosen by
 * ZFERRY_LANE: `fuse` (default; zfs-fuse on this machine, started here when
 * it is not answering) and `openzfs` (inside the QEMU guest with the kernel
 * module, where zfs simply works and zfs-fuse must never be started).
 *
 * Fixtures may call zfs directly through `run`; code under src/ goes through
 * the adapter.
 */
import { spawn } from 'node:child_process';
import { mkdir, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

export const lane: 'fuse' | 'openzfs' = process.env.ZFERRY_LANE === 'openzfs' ? 'openzfs' : 'fuse';

export interface RunOptions {
  /** Bytes or text for stdin. */
  input?: string | Uint8Array;
  /** Return stdout even when the command fails (stderr then goes nowhere). */
  allowFailure?: boolean;
}

/** Runs a fixture command (argument array, C locale); throws with its stderr when it fails. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const once = () => execa(cmd, args, {
    env: { LC_ALL: 'C', LANG: 'C' },
    reject: false,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
  });
  let result = await once();
  // zfs-fuse answers "dataset is busy" to a destroy while it still flushes a
  // mount the test just wrote to (as it answers "pool is busy" below); a
  // fixture's destroy tries again a few times before it fails the test.
  for (let attempt = 0; lane === 'fuse' && cmd === 'zfs' && args[0] === 'destroy' && result.exitCode !== 0 && /dataset is busy/.test(String(result.stderr)) && attempt < 5; attempt++) {
    await new Promise((r) => setTimeout(r, 500));
    result = await once();
  }
  if (result.exitCode !== 0 && !opts.allowFailure) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${result.exitCode ?? result.signal}): ${String(result.stderr).trim()}`);
  }
  return String(result.stdout);
}

async function zfsAnswers(): Promise<boolean> {
  const r = await execa('zpool', ['list', '-H', '-o', 'name'], { reject: false, timeout: 5000, stdin: 'ignore' });
  return r.exitCode === 0;
}

let ready: Promise<void> | null = null;

/** Makes sure `zpool list` answers; in the fuse lane starts zfs-fuse if needed (≤15 s). */
export function ensureZfs(): Promise<void> {
  ready ??= (async () => {
    if (await zfsAnswers()) return;
    if (lane === 'openzfs') throw new Error('ZFERRY_LANE=openzfs but `zpool list` does not answer');
    // Plain `zfs-fuse` daemonizes and was seen to exit silently; setsid keeps
    // it out of the test runner's process group so it outlives the tests.
    const child = spawn('setsid', ['zfs-fuse', '--no-daemon'], { detached: true, stdio: 'ignore' });
    child.unref();
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      if (await zfsAnswers()) return;
    }
    throw new Error('zfs-fuse did not answer `zpool list` within 15 s');
  })();
  ready.catch(() => {
    ready = null;
  });
  return ready;
}

export interface TestPool {
  name: string;
  mountRoot: string;
  destroy(): Promise<void>;
}

let counter = 0;
/**
 * Pools are created one at a time, whoever asks, and the next waits until
 * this one's root answers. zfs-fuse mounts a new pool's root as a FUSE
 * connection of its own, and the deadlock the runner meets is a first
 * `zfs create` asleep in fuse_get_req: a connection whose INIT was never
 * answered. All five in two CI runs (2026-12-03) were in the first of two
 * pools made side by side (twoPools, hostile-held's pair), so two mounts
 * at once are the suspect. A suspect only: that pool also always takes a
 * file's first `zfs create`, and 30 side-by-side pairs on an idle machine
 * hung none. It costs a few milliseconds a pool.
 */
let creating: Promise<unknown> = Promise.resolve();

/** Creates a pool on a sparse file with a unique name (prefix + pid + counter). */
export async function makePool(prefix: string, sizeMiB = 128): Promise<TestPool> {
  await ensureZfs();
  // Pool names must start with a letter; keep them short for readable output.
  // Starting and ending in a letter: the digits before the last 'n' are then the pid (test/run.mjs destroys orphans by it).
  const clean = prefix.toLowerCase().replace(/[^a-z0-9]/g, '') || 'p';
  const name = `${/^[a-z]/.test(clean) ? '' : 'p'}${clean}${/[a-z]$/.test(clean) ? '' : 'p'}${process.pid}n${++counter}`;
  const dir = path.join(os.tmpdir(), 'zferry-test');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.img`);
  const fh = await open(file, 'w');
  try {
    await fh.truncate(Math.max(64, sizeMiB) * 1024 * 1024);
  } finally {
    await fh.close();
  }
  const mountRoot = path.join('/tmp/zferry-mnt', name);
  // The next pool waits until this one's root answers (a stat through its FUSE connection: INIT done).
  const created = creating.then(async () => {
    await run('zpool', ['create', '-m', mountRoot, name, file]);
    await run('stat', ['-c', '%i', mountRoot]);
  });
  creating = created.catch(() => undefined);
  try {
    await created;
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  }
  return {
    name,
    mountRoot,
    async destroy() {
      // zfs-fuse sometimes answers "pool is busy" to the first destroy; removing
      // the file of a pool that still exists would leave it FAULTED in the cache.
      let lastError: unknown;
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          await run('zpool', ['destroy', '-f', name]);
          lastError = undefined;
          break;
        } catch (err) {
          lastError = err;
          if (/no such pool/.test(String(err))) {
            lastError = undefined;
            break;
          }
          await new Promise((r) => setTimeout(r, 300));
        }
      }
      if (lastError) throw lastError;
      await rm(file, { force: true });
      await rm(mountRoot, { recursive: true, force: true }).catch(() => {});
    },
  };
}

export async function mountpointOf(dataset: string): Promise<string> {
  return (await run('zfs', ['get', '-H', '-o', 'value', 'mountpoint', dataset])).trim();
}

/** "relpath@snap" → guid for every snapshot under root ('' path for root itself: "@snap"). */
export async function snapshotGuids(root: string): Promise<Map<string, string>> {
  const out = await run('zfs', ['get', '-H', '-p', '-r', '-o', 'name,value', 'guid', root]);
  const map = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [name, guid] = line.split('\t');
    if (!name || guid === undefined || !name.includes('@')) continue;
    const [ds, snap] = name.split('@') as [string, string];
    const rel = ds === root ? '' : ds.slice(root.length + 1);
    map.set(`${rel}@${snap}`, guid);
  }
  return map;
}
