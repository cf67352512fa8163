/** Closing a bundle: the checksum list, restore recipe and signature first, the manifest last. */
import { MANIFEST_FILE, manifestText, writeManifestAtomic, type Manifest } from './manifest.js';
import { writeFileAtomic } from '../fs/safe.js';
import { RESTORE_FILE, restoreText } from './restore.js';
import { SUMS_FILE, sha256sumsText } from './sums.js';
import { testPause } from '../test-hook.js';

export interface FinishOptions {
  /** Returns the detached signature of the manifest's exact bytes, written as manifest.json.minisig. */
  sign?: (manifestBytes: Buffer) => string;
}

/**
 * Writes SHA256SUMS, RESTORE.txt, the signature and then manifest.json, each
 * atomically, so a bundle with a manifest is always complete. Volumes must
 * already be on disk and fsynced (writeStream does that).
 */
export async function finishBundle(bundleDir: string, m: Manifest, opts: FinishOptions = {}): Promise<void> {
  await writeFileAtomic(bundleDir, SUMS_FILE, sha256sumsText(m));
  await writeFileAtomic(bundleDir, RESTORE_FILE, restoreText(m));
  if (opts.sign) await writeFileAtomic(bundleDir, `${MANIFEST_FILE}.minisig`, opts.sign(Buffer.from(manifestText(m), 'utf8')));
  await testPause('export:manifest');
  await writeManifestAtomic(bundleDir, m);
}
