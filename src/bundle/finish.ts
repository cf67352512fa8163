/** Closing a bundle: the restore recipe, checksum list and signature first, the manifest last. */
import { createHash } from 'node:crypto';
import { MANIFEST_FILE, manifestText, parseManifest, type Manifest } from './manifest.js';
import { writeFileAtomic } from '../fs/safe.js';
import { RESTORE_FILE, restoreText } from './restore.js';
import { SUMS_FILE, sha256sumsText } from './sums.js';
import { testPause } from '../test-hook.js';

export interface FinishOptions {
  /** Returns the detached signature of the manifest's exact bytes, written as manifest.json.minisig. */
  sign?: (manifestBytes: Buffer) => string;
}

/**
 * The manifest as written: from format 2 on it carries RESTORE.txt's size and
 * sha256 (just before `streams`). RESTORE.txt is generated from the manifest
 * without that field, so the text never depends on its own hash.
 */
export function withRestore(draft: Manifest, text: string): Manifest {
  if (draft.formatVersion === 1) return draft;
  const bytes = Buffer.from(text, 'utf8');
  const { streams, restore: _old, ...head } = draft;
  return { ...head, restore: { file: RESTORE_FILE, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }, streams };
}

/**
 * Writes RESTORE.txt, SHA256SUMS, the signature and then manifest.json, each
 * atomically, so a bundle with a manifest is always complete. Volumes must
 * already be on disk and fsynced (writeStream does that). Returns the manifest
 * written (with `restore` filled in from format 2 on).
 */
export async function finishBundle(bundleDir: string, draft: Manifest, opts: FinishOptions = {}): Promise<Manifest> {
  return writeBundleFiles(draft, opts, (name, text) => writeFileAtomic(bundleDir, name, text));
}

/** Writes one closing file whole, so a reader sees all of it or none (an atomic file write, one PUT). */
export type PutFile = (name: string, text: string) => Promise<void>;

/**
 * The closing files in their order, manifest.json last, whatever holds the
 * bundle (finishBundle for a folder, finishBundleInBucket for a bucket).
 */
export async function writeBundleFiles(draft: Manifest, opts: FinishOptions, put: PutFile): Promise<Manifest> {
  const restore = restoreText(draft);
  const m = withRestore(draft, restore);
  // Read back as import would before any of it is written (and signed): an entry kept from an unfinished
  // export's marker, or a bug, never makes a bundle (or a RESTORE.txt line) that a reader would refuse.
  parseManifest(manifestText(m), `${MANIFEST_FILE} (before it was written)`);
  await put(RESTORE_FILE, restore);
  await put(SUMS_FILE, sha256sumsText(m));
  if (opts.sign) await put(`${MANIFEST_FILE}.minisig`, opts.sign(Buffer.from(manifestText(m), 'utf8')));
  await testPause('export:manifest');
  await put(MANIFEST_FILE, manifestText(m));
  return m;
}
