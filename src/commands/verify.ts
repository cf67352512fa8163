/** `zferry verify`: a bundle at rest, checked without touching ZFS. */
import { ZferryError } from '../errors.js';
import { findBundles, verifyBundle, type VerifyReport } from '../bundle/index.js';
import { silentProgress, type Progress } from '../progress.js';
import { checkTrust, readPublicKey } from '../trust/minisign.js';

/** With `trust` (a minisign public key file), every bundle must be signed by that key. */
export async function runVerify(path: string, progress: Progress = silentProgress, opts: { trust?: string } = {}): Promise<Array<VerifyReport & { bundle: string }>> {
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
      reports.push({ bundle: dir, ...(await verifyBundle(dir, { onBytes: (n) => progress.advance(n), manifest })) });
      progress.endStream();
    }
  } finally {
    progress.end();
  }
  return reports;
}
