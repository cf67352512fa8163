/**
 * One job at a time: a lock file per thing two runs must not share (an
 * export of a source, an import into a target, a relay spool). It records
 * who holds it, so a refusal can name the pid and command; a lock whose
 * holder is gone (killed, or from before a reboot) is taken over with one
 * line. The journal and receipts are read, changed and replaced only while
 * the lock that guards them is held.
 *
 * Where the files live: export and import locks in the state folder
 * ($ZFERRY_STATE_DIR, default /var/lib/zferry, or export's --journal DIR),
 * beside the journal they guard; the relay's in its spool.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ZferryError } from '../errors.js';
import { createComplete, readRegular } from '../fs/safe.js';
import { fileError } from '../fs/errors.js';

/** The site a source is exported to, until sites exist (issue 15): the name that keeps today's files. */
export const DEFAULT_SITE = 'default';
/** relay run and relay receive: one per spool, in the spool. */
export const SPOOL_LOCK_FILE = '.zferry-relay.lock';

/**
 * A dataset name as part of a file name, reversibly: `/` becomes `+`, which
 * no dataset name holds, and anything else outside [A-Za-z0-9_.:-] is %XX.
 */
function fileKey(name: string): string {
  return name.replace(/[^A-Za-z0-9_.:/-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/\//g, '+');
}

/** `export-tank+data@default.lock`: `@` cannot occur in a dataset name, so the site part never collides. */
export function exportLockFile(stateDir: string, source: string, site = DEFAULT_SITE): string {
  return join(stateDir, `export-${fileKey(source)}@${fileKey(site)}.lock`);
}

export function importLockFile(stateDir: string, target: string): string {
  return join(stateDir, `import-${fileKey(target)}.lock`);
}

export function spoolLockFile(spool: string): string {
  return join(spool, SPOOL_LOCK_FILE);
}

interface Holder {
  pid: number;
  command: string;
  started: string;
  host: string;
  /** /proc/sys/kernel/random/boot_id: a pid from before a reboot is no holder, whatever runs under it now. */
  boot: string | null;
  /** The pid's start time (clock ticks since boot, /proc/PID/stat): a reused pid is not the holder. */
  pidStart: string | null;
  /** Tells two holds by the same process apart. */
  token: string;
}

function readProc(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function bootId(): string | null {
  return readProc('/proc/sys/kernel/random/boot_id')?.trim() ?? null;
}

function startTimeOf(pid: number): string | null {
  const stat = readProc(`/proc/${pid}/stat`);
  // Field 22; the command name (field 2) may hold spaces and parentheses, so count from the last ')'.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
}

function commandLine(): string {
  return ['zferry', ...process.argv.slice(2)].join(' ');
}

function me(): Holder {
  return {
    pid: process.pid, command: commandLine(), started: new Date().toISOString(), host: hostname(),
    boot: bootId(), pidStart: startTimeOf(process.pid), token: randomBytes(8).toString('hex'),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the holder may still be running; when this host cannot tell (another host's lock), it may. */
function running(h: Holder): boolean {
  if (h.host !== hostname()) return true;
  const boot = bootId();
  if (h.boot !== null && boot !== null && h.boot !== boot) return false;
  if (!alive(h.pid)) return false;
  const start = h.pidStart !== null ? startTimeOf(h.pid) : null;
  return start === null || start === h.pidStart;
}

/** The holder a lock file names; null when the file is gone; 'unreadable' when it names none. */
async function readHolder(file: string): Promise<Holder | null | 'unreadable'> {
  let text: string;
  try {
    text = (await readRegular(file, { maxBytes: 4096, what: 'lock file' })).toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return 'unreadable';
  }
  // Before the lock recorded more, it held the pid alone.
  if (/^\d+\s*$/.test(text)) {
    return { pid: Number(text), command: 'a relay round', started: '?', host: hostname(), boot: null, pidStart: null, token: text.trim() };
  }
  try {
    const h = JSON.parse(text) as Partial<Holder>;
    if (typeof h.pid === 'number' && Number.isInteger(h.pid) && h.pid > 0 && typeof h.command === 'string' && typeof h.token === 'string') {
      return {
        pid: h.pid, command: h.command, token: h.token, started: String(h.started ?? '?'), host: String(h.host ?? hostname()),
        boot: typeof h.boot === 'string' ? h.boot : null, pidStart: typeof h.pidStart === 'string' ? h.pidStart : null,
      };
    }
  } catch {
    // named below
  }
  return 'unreadable';
}

const same = (a: Holder, b: Holder) => a.pid === b.pid && a.token === b.token;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Lock {
  file: string;
  release(): Promise<void>;
}

export interface LockOptions {
  /** What the lock guards, for the refusal: "an export of tank", "an import into backup". */
  what: string;
  /** Seconds to wait for the holder to finish (--wait); Infinity waits as long as it takes; absent: refuse at once. */
  waitSeconds?: number;
  /** One line for a person: a stale lock taken over, or a wait begun. */
  notice?: (line: string) => void;
}

/**
 * Takes the lock at `file` (its folder is made if missing). A live holder
 * makes this refuse at once, naming its pid and command, or wait up to
 * `waitSeconds`; a dead holder's lock is taken over.
 */
export async function acquireLock(file: string, opts: LockOptions): Promise<Lock> {
  const dir = dirname(file);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    const e = fileError(err, 'creating the lock folder', dir);
    throw new ZferryError(`${e.message}; set $ZFERRY_STATE_DIR (or export's --journal DIR) to a folder this user can write`, e.context);
  }
  const self = me();
  const text = JSON.stringify(self) + '\n';
  const deadline = opts.waitSeconds === undefined ? 0 : Date.now() + opts.waitSeconds * 1000;
  let waiting = false;
  for (;;) {
    if (await createComplete(dir, basename(file), text)) return held(file, self);
    const holder = await readHolder(file);
    if (holder === null) continue;
    if (holder !== 'unreadable' && !running(holder)) {
      if (await takeOver(file, holder, text)) {
        opts.notice?.(`${file}: took over the lock of pid ${holder.pid} (${holder.command}), which is no longer running`);
        return held(file, self);
      }
      continue;
    }
    const who = holder === 'unreadable'
      ? 'a holder its lock file does not name (remove the file if no zferry is running)'
      : `pid ${holder.pid} (${holder.command}, since ${holder.started}${holder.host !== hostname() ? ` on ${holder.host}` : ''})`;
    if (opts.waitSeconds === undefined || Date.now() >= deadline) {
      const after = opts.waitSeconds === undefined ? '; --wait [SECONDS] waits for it' : ` after waiting ${opts.waitSeconds} s`;
      throw new ZferryError(`${file}: ${opts.what} is already running, by ${who}; this run did nothing${after}`, { file });
    }
    if (!waiting) {
      waiting = true;
      opts.notice?.(`${file}: waiting for ${who} to finish ${opts.what}`);
    }
    await sleep(Math.max(10, Math.min(250, deadline - Date.now())));
  }
}

/**
 * Replaces a dead holder's lock with ours. Two runs may find the same stale
 * lock at once: only the one that creates `FILE.takeover` may remove it, and
 * only while it still names that dead holder, so neither removes the lock
 * the other has just taken.
 */
async function takeOver(file: string, stale: Holder, text: string): Promise<boolean> {
  const dir = dirname(file);
  const guard = `${basename(file)}.takeover`;
  if (!(await createComplete(dir, guard, text))) {
    const other = await readHolder(join(dir, guard));
    // A takeover lasts milliseconds: a guard whose owner died is removed, a live one waited for.
    if (other === 'unreadable' || (other !== null && !running(other))) await rm(join(dir, guard), { force: true });
    else await sleep(20);
    return false;
  }
  try {
    const now = await readHolder(file);
    if (now === 'unreadable' || (now !== null && !same(now, stale))) return false;
    await rm(file, { force: true });
    return await createComplete(dir, basename(file), text);
  } finally {
    await rm(join(dir, guard), { force: true });
  }
}

/** Every lock this process holds, removed if it exits without releasing them (an error path that skipped a finally). */
const holding = new Map<string, Holder>();
let exitHook = false;

function held(file: string, self: Holder): Lock {
  holding.set(file, self);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const [f, h] of holding) if (ownedBy(f, h)) rmSyncQuiet(f);
    });
  }
  return {
    file,
    async release() {
      if (holding.get(file) !== self) return;
      holding.delete(file);
      const now = await readHolder(file);
      // Never remove a lock another run took over (it judged this one dead).
      if (now !== null && now !== 'unreadable' && same(now, self)) await rm(file, { force: true });
    },
  };
}

function ownedBy(file: string, h: Holder): boolean {
  const text = readProc(file);
  try {
    return text !== null && same(JSON.parse(text) as Holder, h);
  } catch {
    return false;
  }
}

function rmSyncQuiet(file: string): void {
  try {
    rmSync(file, { force: true });
  } catch {
    // the process is ending; a left lock is stale and taken over next time
  }
}

/** Runs `work` holding the lock at `file`, and releases it however the work ends. */
export async function withLock<T>(file: string, opts: LockOptions, work: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(file, opts);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}
