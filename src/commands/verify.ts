/** `zferry verify`: a bundle at rest, checked without touching ZFS. */
import { ZferryError } from '../errors.js';
import { findBundles, verifyBundle, type VerifyReport } from '../bundle/index.js';
import { silentProgress, type Progress } from '../progress.js';

export async function runVerify(path: string, progress: Progress = silentProgress): Promise<Array<VerifyReport & { bundle: string }>> {
  const dirs = await findBundles(path);
  if (dirs.length === 0) {
    throw new ZferryError(`${path}: no zferry bundle here (no manifest.json in it or its sub-folders)`, { file: path });
  }
  const reports = [];
  progress.begin('verify', 0, dirs.length);
  try {
    for (const dir of dirs) {
      progress.stream(dir.split('/').pop() ?? dir, 0);
      reports.push({ bundle: dir, ...(await verifyBundle(dir, { onBytes: (n) => progress.advance(n) })) });
      progress.endStream();
    }
  } finally {
    progress.end();
  }
  return reports;
}
