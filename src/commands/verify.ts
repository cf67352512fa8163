/** `zferry verify`: a bundle at rest, checked without touching ZFS. */
import { ZferryError } from '../errors.js';
import { findBundles, readManifest, verifyBundle, verifyOrRepair, type RepairedReport } from '../bundle/index.js';
import { silentProgress, type Progress } from '../progress.js';
import { checkTrust, readPublicKey } from '../trust/minisign.js';

/**
 * With `trust` (a minisign public key file), every bundle must be signed by
 * that key. With `repair`, a bundle whose volumes fail is rebuilt from its
 * parity/ files and checked again (`repaired` names the volumes rebuilt).
 */
export async function runVerify(path: string, progress: Progress = silentProgress, opts: { trust?: string; repair?: boolean } = {}): Promise<Array<RepairedReport & { bundle: string }>> {
  const dirs = await findBundles(path);
  if (dirs.length === 0) {
    throw new ZferryError(`${path}: no zferry bundle here (no manifest.json in it or its sub-folders)`, { file: path });
  }
  const pk = opts.trust ? await readPublicKey(opts.trust) : undefined;
  const reports = [];
  progress.begin('verify', 0, dirs.length);
  try {
    for (const dir of dirs) {
      progress.stream(dir.split('/').pop() ?? dir, 0);
      const manifest = opts.trust ? await checkTrust(dir, opts.trust, pk) : undefined;
      const onBytes = (n: number) => progress.advance(n);
      const r = opts.repair
        ? await verifyOrRepair(dir, { onBytes, manifest: manifest ?? (await readManifest(dir)) })
        : { ...(await verifyBundle(dir, { onBytes, manifest })), repaired: [] };
      reports.push({ bundle: dir, ...r });
      progress.endStream();
    }
  } finally {
    progress.end();
  }
  return reports;
}
