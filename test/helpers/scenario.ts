/**
 * The set-up most scenario tests share: a source pool, a destination pool
 * and a work folder (disks, state files), torn down by one call.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makePool, type TestPool } from './zfslab.js';

export interface TwoPools {
  src: TestPool;
  dst: TestPool;
  /** A fresh folder under the system's temp folder. */
  work: string;
  /** Destroys both pools and removes the work folder; safe to call on a half-made set-up. */
  teardown(): Promise<void>;
}

export async function twoPools(prefix: string, sizeMiB = 128): Promise<TwoPools> {
  const [src, dst] = await Promise.all([makePool(`${prefix}s`, sizeMiB), makePool(`${prefix}d`, sizeMiB)]);
  const work = await mkdtemp(path.join(os.tmpdir(), `zferry-${prefix}-`));
  return {
    src,
    dst,
    work,
    async teardown() {
      await Promise.all([src.destroy(), dst.destroy()]);
      await rm(work, { recursive: true, force: true });
    },
  };
}
