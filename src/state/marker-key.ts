/**
 * The key this host seals its unfinished exports' markers with
 * (bundle/partial.ts): `marker.key` in the state folder (the journal's,
 * $ZFERRY_STATE_DIR or /var/lib/zferry), 32 random bytes in hex, made on
 * first use and readable by its owner only.
 *
 * Why: a resumed export keeps the streams its marker lists and signs them
 * into its manifest. The marker lies on the destination, which a stranger
 * may write to (a shared bucket, a disk that was away): re-hashing the
 * volumes against the marker proves only that they are the marker's. A
 * marker sealed with a key that never leaves this host proves that this
 * host wrote it, and so that its streams are this source's.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createComplete, readRegular } from '../fs/safe.js';

export const MARKER_KEY_FILE = 'marker.key';

/**
 * The key, made if there is none (unless `create` is false: a dry run writes
 * nothing); null when there is none and the folder cannot hold one (then
 * nothing is sealed, and nothing resumed).
 */
export async function markerKey(dir: string, create = true): Promise<Buffer | null> {
  const file = join(dir, MARKER_KEY_FILE);
  const read = async (): Promise<Buffer | null> => {
    const text = (await readRegular(file, { maxBytes: 1024, what: 'marker key' })).toString('utf8').trim();
    return /^[0-9a-f]{64}$/.test(text) ? Buffer.from(text, 'hex') : null;
  };
  try {
    return await read();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !create) return null;
  }
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Never replaces a key: of two exports making one at once, both read the one that won.
    await createComplete(dir, MARKER_KEY_FILE, randomBytes(32).toString('hex') + '\n', 0o600);
    return await read();
  } catch {
    return null;
  }
}
