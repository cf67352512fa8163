/**
 * `verify --repair` and import: a bundle whose volumes do not all match is
 * rebuilt from its parity/ files (par2), then every sha256 is checked again.
 * A bundle without parity, or damaged beyond the recovery budget, is refused
 * exactly as verify refuses it, with par2's count of what it lacked.
 */
import { join } from 'node:path';
import { ZferryError } from '../errors.js';
import { hashFile, repairWithParity } from '../parity/par2.js';
import { regularFileSize } from '../fs/safe.js';
import type { Manifest } from './manifest.js';
import { verifyBundle, type VerifyOptions, type VerifyReport } from './verify.js';

export interface RepairedReport extends VerifyReport {
  /** Volumes (relative names) that were damaged or missing and were rebuilt; empty when all matched. */
  repaired: string[];
}

/** Volumes that are missing or differ from the manifest (size or sha256). */
async function damagedVolumes(bundleDir: string, m: Manifest): Promise<string[]> {
  const out: string[] = [];
  for (const s of m.streams) {
    for (const v of s.volumes) {
      const size = await regularFileSize(join(bundleDir, v.file), bundleDir).catch(() => null);
      if (size !== v.bytes) {
        out.push(v.file);
        continue;
      }
      const got = await hashFile(bundleDir, v.file).catch(() => null);
      if (got?.sha256 !== v.sha256) out.push(v.file);
    }
  }
  return out;
}

/** Verifies the bundle; where it fails and the bundle carries parity, repairs it and verifies again. */
export async function verifyOrRepair(bundleDir: string, opts: VerifyOptions & { manifest: Manifest }): Promise<RepairedReport> {
  try {
    return { ...(await verifyBundle(bundleDir, opts)), repaired: [] };
  } catch (err) {
    if (!(err instanceof ZferryError) || !opts.manifest.parity) throw err;
    const damaged = await damagedVolumes(bundleDir, opts.manifest);
    if (damaged.length === 0) throw err;
    const outcome = await repairWithParity(bundleDir);
    if (!outcome.repaired) {
      throw new ZferryError(`${err.message}; parity/ could not repair it (${outcome.summary})`, err.context, err.exitCode);
    }
    // par2 checked its own blocks; the manifest's sha256 are the word that counts.
    return { ...(await verifyBundle(bundleDir, opts)), repaired: damaged };
  }
}
