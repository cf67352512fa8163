/**
 * The probe's answers kept between runs. Probing starts 13 zfs processes, a
 * third of a second of every command on the machines measured, and the
 * answers cannot change while the zfs program file is the same one: they
 * come from its argument parser. So they are kept in the state folder under
 * the program's identity (path, device, inode, size, modification and change
 * times), and probed afresh whenever any of it differs, the file is
 * unreadable, or what it holds is not exactly what this module writes.
 * Failing to keep them is never an error: the next run probes again.
 *
 * How long: an upgrade replaces the program file, which changes its identity,
 * so a binary's answers are kept for 30 days. A script in front of the real
 * zfs (`#!`) keeps its identity while what it runs is upgraded: a day bounds
 * that.
 */
import { open, realpath, stat } from 'node:fs/promises';
import { ensureFolder, readRegular, writeFileAtomic } from '../fs/safe.js';
import { FLAG_PROBES, type ProbeAnswers, type ProbeName } from './probe.js';

export const PROBE_CACHE_FILE = 'zfs-probe.json';
/** A wrapper script in front of the real zfs keeps its identity across an upgrade of what it runs: a day bounds that. */
export const PROBE_CACHE_MAX_AGE_MS = 24 * 3600 * 1000;
/**
 * The program itself (not a script): its identity changes with every upgrade.
 * A day had a daily job (cron, a timer) find the answers a few minutes too old
 * about every other run, and probe with 13 processes again.
 */
export const PROBE_CACHE_BINARY_MAX_AGE_MS = 30 * 24 * 3600 * 1000;
const FORMAT = 'zferry-zfs-probe';

interface CacheFile {
  format: typeof FORMAT;
  program: string;
  probedAt: string;
  answers: ProbeAnswers;
}

/** The zfs program file as it is now, or null when it cannot be looked at (then nothing is kept). */
export async function programIdentity(zfs: string): Promise<string | null> {
  try {
    const real = await realpath(zfs);
    const st = await stat(real, { bigint: true });
    if (!st.isFile()) return null;
    return [real, st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].join(' ');
  } catch {
    return null;
  }
}

/** How long answers for the program file at `path` are kept: a day for a script (`#!`), 30 days for a binary. */
export async function probeCacheMaxAge(path: string): Promise<number> {
  let fh;
  try {
    fh = await open(path, 'r');
    const head = Buffer.alloc(2);
    const { bytesRead } = await fh.read(head, 0, 2, 0);
    return bytesRead === 2 && head.toString('latin1') === '#!' ? PROBE_CACHE_MAX_AGE_MS : PROBE_CACHE_BINARY_MAX_AGE_MS;
  } catch {
    return PROBE_CACHE_MAX_AGE_MS;
  } finally {
    await fh?.close();
  }
}

/** The answers in `text` if it is a cache file for `program`, young enough, with exactly the probes this version asks; null otherwise. */
export function parseProbeCache(text: string, program: string, now: number, maxAgeMs = PROBE_CACHE_MAX_AGE_MS): ProbeAnswers | null {
  let c: CacheFile;
  try {
    c = JSON.parse(text) as CacheFile;
  } catch {
    return null;
  }
  if (typeof c !== 'object' || c === null || c.format !== FORMAT || c.program !== program) return null;
  const at = Date.parse(c.probedAt);
  if (!Number.isFinite(at) || at > now || now - at > maxAgeMs) return null;
  const a = c.answers;
  if (typeof a !== 'object' || a === null || (a.version !== null && typeof a.version !== 'string')) return null;
  if (typeof a.has !== 'object' || a.has === null) return null;
  const names = Object.keys(FLAG_PROBES) as ProbeName[];
  const keys = Object.keys(a.has);
  if (keys.length !== names.length || !names.every((n) => typeof a.has[n] === 'boolean')) return null;
  return { has: { ...a.has }, version: a.version };
}

/** The kept answers for `zfs`, or fresh ones from `probe`, kept for the next run. */
export async function cachedProbe(dir: string, zfs: string, probe: () => Promise<ProbeAnswers>): Promise<ProbeAnswers> {
  const program = await programIdentity(zfs);
  if (program === null) return probe();
  const now = Date.now();
  const text = await readRegular(`${dir}/${PROBE_CACHE_FILE}`, { maxBytes: 64 * 1024, what: 'zfs probe cache' }).then((b) => b.toString('utf8'), () => null);
  const kept = text === null ? null : parseProbeCache(text, program, now, await probeCacheMaxAge(zfs));
  if (kept) return kept;
  const answers = await probe();
  const file: CacheFile = { format: FORMAT, program, probedAt: new Date(now).toISOString(), answers };
  await ensureFolder(dir)
    .then(() => writeFileAtomic(dir, PROBE_CACHE_FILE, `${JSON.stringify(file, null, 2)}\n`))
    .catch(() => undefined);
  return answers;
}
