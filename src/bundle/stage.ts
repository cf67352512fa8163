/**
 * import --stage DIR: the parts of a stream split across disks wait in DIR,
 * verified, until the disk with the last part arrives. A staged part is a
 * copy of its bundle's folder with the exact manifest bytes (a signature
 * still checks), SHA256SUMS, RESTORE.txt and the part's own volumes, each
 * volume's size and sha256 checked as it is copied; the bundle's other
 * streams (applied when it was staged) are left behind.
 */
import { randomUUID } from 'node:crypto';
import { rename } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ZferryError } from '../errors.js';
import { fileError } from '../fs/errors.js';
import { assertRealFolders, createExclusive, ensureFolder, fsyncDir, makeFreshFolder, removeEntry, writeFileAtomic } from '../fs/safe.js';
import { isBundleDir } from './find.js';
import { MANIFEST_FILE, MAX_MANIFEST_BYTES, readManifestBytes, type StreamEntry } from './manifest.js';
import { RESTORE_FILE } from './restore.js';
import { SUMS_FILE } from './sums.js';
import { VolumeReader } from './volume-reader.js';
import { manifestBytesInBucket } from './bucket.js';
import { bundlePath, isS3Url, readSmallAt } from '../store/s3.js';

/** Copies the bundle at `dir` (a folder or a bucket prefix) into `stageDir` with the volumes of `stream` only; returns the staged folder (already there: left as it is). */
export async function stagePart(dir: string, stream: StreamEntry, stageDir: string, onBytes?: (n: number) => void): Promise<string> {
  const name = basename(dir);
  const dest = join(stageDir, name);
  // At the part's name stands a folder zferry staged, or nothing: a link or a
  // FIFO put there is refused by name, never followed (nor a name that leads out).
  const there = await assertRealFolders(stageDir, dest).then(
    () => true,
    (err: unknown) => ((err as NodeJS.ErrnoException).code === 'ENOENT' ? false : Promise.reject(err)),
  );
  if (there && (await isBundleDir(dest))) return dest;
  await ensureFolder(stageDir);
  // A temporary name (leading dot: no reader takes it for a bundle) until every file is in.
  const tmp = join(stageDir, `.${name}.${randomUUID().slice(0, 8)}`);
  await makeFreshFolder(tmp);
  try {
    await makeFreshFolder(join(tmp, 'streams'));
    for (const v of stream.volumes) {
      const path = join(tmp, v.file);
      const fh = await createExclusive(path).catch((err: unknown) => Promise.reject(fileError(err, 'creating', path)));
      try {
        // The reader holds back each volume's last chunk until its sha256 matched: a bad copy never completes.
        for await (const chunk of new VolumeReader(dir, [v], { onBytes })) {
          await fh.write(chunk as Buffer).catch((err: unknown) => Promise.reject(fileError(err, 'writing', path)));
        }
        await fh.sync();
      } finally {
        await fh.close().catch(() => undefined);
      }
    }
    await fsyncDir(join(tmp, 'streams'));
    for (const f of [RESTORE_FILE, SUMS_FILE, `${MANIFEST_FILE}.minisig`]) {
      const data = await readSmallAt(bundlePath(dir, f), { within: dir, maxBytes: MAX_MANIFEST_BYTES, what: f });
      if (data) await writeFileAtomic(tmp, f, data);
      else if (!f.endsWith('.minisig')) throw new ZferryError(`${bundlePath(dir, f)}: missing`, { file: bundlePath(dir, f) });
    }
    // Last, as an export writes it: a staged folder with a manifest is whole.
    await writeFileAtomic(tmp, MANIFEST_FILE, isS3Url(dir) ? await manifestBytesInBucket(dir) : await readManifestBytes(join(dir, MANIFEST_FILE)));
    await rename(tmp, dest).catch((err: unknown) => Promise.reject(fileError(err, 'renaming', tmp)));
    await fsyncDir(stageDir);
  } catch (err) {
    await removeEntry(tmp).catch(() => undefined);
    if (err instanceof ZferryError) throw err;
    throw new ZferryError(`staging ${dir} in ${stageDir} failed: ${(err as Error).message}`, { file: dir });
  }
  return dest;
}
