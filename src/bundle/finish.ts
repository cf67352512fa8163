/** Closing a bundle: the checksum list and restore recipe first, the manifest last. */
import { writeFileAtomic, writeManifestAtomic, type Manifest } from './manifest.js';
import { RESTORE_FILE, restoreText } from './restore.js';
import { SUMS_FILE, sha256sumsText } from './sums.js';

/**
 * Writes SHA256SUMS, RESTORE.txt and then manifest.json, each atomically, so
 * a bundle with a manifest is always complete. Volumes must already be on disk
 * and fsynced (writeStream does that).
 */
export async function finishBundle(bundleDir: string, m: Manifest): Promise<void> {
  await writeFileAtomic(bundleDir, SUMS_FILE, sha256sumsText(m));
  await writeFileAtomic(bundleDir, RESTORE_FILE, restoreText(m));
  await writeManifestAtomic(bundleDir, m);
}
