/**
 * One relay round at a time per spool: a lock file created with O_EXCL
 * holding the owner's pid. A lock whose pid no longer runs (the round was
 * killed) is taken over; a live one makes the new round fail at once.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ZferryError } from '../errors.js';
import { createExclusive, readRegular } from '../fs/safe.js';

export const LOCK_FILE = '.zferry-relay.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface Lock {
  file: string;
  release(): Promise<void>;
}

export async function acquireLock(dir: string): Promise<Lock> {
  const file = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await createExclusive(file);
      try {
        await fh.writeFile(`${process.pid}\n`);
      } finally {
        await fh.close();
      }
      return { file, release: () => rm(file, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readRegular(file, { maxBytes: 64 }).then((b) => b.toString('utf8'), () => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
      throw new ZferryError(`${file}: another relay round (pid ${pid}) is running; this round did nothing`, { file });
    }
    // Stale: its owner is gone. Remove and retry once; a racing round that wins keeps the lock.
    await rm(file, { force: true });
  }
  throw new ZferryError(`${file}: could not take the lock (another round took it at the same moment)`, { file });
}
