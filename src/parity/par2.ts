/**
 * Reed–Solomon recovery data for a bundle's volumes, with par2 (PAR 2.0,
 * Debian's `par2`, par2cmdline). Chosen over an npm library because the
 * same stock tool repairs a bundle with no zferry at all (RESTORE.txt says
 * how), PAR 2.0 is a documented format read by several independent tools,
 * and no npm Reed–Solomon library is both maintained and file-oriented.
 *
 * Files are named relative to the bundle folder (`-B BUNDLE`), so that
 * `cd BUNDLE && par2 repair parity/recovery.par2` finds `streams/…`. The
 * recovery files go into `parity/` beside `streams/`.
 */
import { createHash } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { ZferryError } from '../errors.js';
import { openRegular } from '../fs/safe.js';
import { fileError } from '../fs/errors.js';

export const PARITY_DIR = 'parity';
export const PARITY_INDEX = `${PARITY_DIR}/recovery.par2`;

export interface ParityFile {
  file: string;
  bytes: number;
  sha256: string;
}

export interface ParityEntry {
  tool: 'par2';
  /** Recovery data as a percentage of the volumes' bytes (par2 -r). */
  percent: number;
  files: ParityFile[];
}

const PAR2 = process.env.ZFERRY_PAR2 ?? 'par2';

async function par2(args: string[], cwd: string): Promise<{ exitCode: number; output: string }> {
  try {
    const r = await execa(PAR2, args, { cwd, reject: false, stdin: 'ignore', all: true, env: { LC_ALL: 'C' } });
    if ((r as { code?: string }).code === 'ENOENT' || (r.failed && r.exitCode === undefined)) throw Object.assign(new Error('not found'), { code: 'ENOENT' });
    return { exitCode: r.exitCode ?? 1, output: String(r.all ?? '') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ZferryError(`${PAR2}: not found; parity needs par2 (Debian: apt-get install par2)`, { command: [PAR2, ...args] });
    }
    throw err;
  }
}

function lastLines(text: string, n = 2): string {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '').slice(-n).join('; ');
}

/** sha256 and size of a file zferry (or par2 on its behalf) wrote in the bundle. */
export async function hashFile(bundleDir: string, rel: string): Promise<ParityFile> {
  const path = join(bundleDir, rel);
  const { fh, size } = await openRegular(path, bundleDir).catch((err: unknown) => { throw fileError(err, 'reading', path); });
  const hash = createHash('sha256');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let pos = 0; pos < size;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { file: rel, bytes: size, sha256: hash.digest('hex') };
}

/**
 * `par2 create` over the volumes (paths relative to the bundle) into an
 * existing, empty parity/ folder. Returns the recovery files, sorted.
 */
export async function createParity(bundleDir: string, volumes: readonly string[], percent: number): Promise<ParityEntry> {
  if (volumes.length === 0) throw new ZferryError(`${bundleDir}: no volume to protect with parity`, { file: bundleDir });
  const args = ['create', '-q', '-q', `-r${percent}`, '-n1', '-B', bundleDir, join(bundleDir, PARITY_INDEX), '--', ...volumes.map((v) => join(bundleDir, v))];
  const r = await par2(args, bundleDir);
  if (r.exitCode !== 0) {
    throw new ZferryError(`par2 create in ${bundleDir} failed (exit ${r.exitCode}): ${lastLines(r.output)}`, { file: join(bundleDir, PARITY_DIR), command: [PAR2, ...args], exitCode: r.exitCode });
  }
  const names = (await readdir(join(bundleDir, PARITY_DIR))).filter((n) => n.endsWith('.par2')).sort();
  const files: ParityFile[] = [];
  for (const n of names) files.push(await hashFile(bundleDir, `${PARITY_DIR}/${n}`));
  return { tool: 'par2', percent, files };
}

export interface RepairOutcome {
  repaired: boolean;
  /** par2's last words: what was missing or damaged, or how many more blocks it needed. */
  summary: string;
}

/**
 * `par2 repair` in place (never -p: it would purge the recovery files too). par2
 * checks every volume against its own block checksums, rebuilds the damaged
 * and missing ones within the recovery budget, and verifies what it wrote.
 * The caller re-checks every sha256 of the manifest afterwards.
 */
export async function repairWithParity(bundleDir: string): Promise<RepairOutcome> {
  const args = ['repair', '-B', bundleDir, join(bundleDir, PARITY_INDEX)];
  const r = await par2(args, bundleDir);
  // par2 keeps each damaged volume as VOLUME.1 beside the repaired one; `cat streams/NNNN-*.zst.*` would pick it up.
  for (const m of r.output.matchAll(/Target: "([^"]+)" - damaged/g)) {
    const rel = m[1]!;
    if (/^streams\/[0-9]{4}-(full|incr)\.zst(\.age)?\.[0-9]{3}$/.test(rel)) await rm(join(bundleDir, `${rel}.1`), { force: true });
  }
  const details = r.output.split('\n').map((l) => l.trim())
    .filter((l) => /^(Target: .* - (missing|damaged)|Repair is not possible|You need \d+ more|Repair complete|\d+ file\(s\) (are missing|exist but are damaged))/.test(l));
  return { repaired: r.exitCode === 0, summary: details.join('; ') || lastLines(r.output) };
}
