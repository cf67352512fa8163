/**
 * The zfs in use, for every command that needs one. Loaded when a command
 * runs, so starting zferry stays cheap; the probe's answers are kept in the
 * state folder between runs (zfs/probe-cache.ts).
 */
import type { Zfs } from '../zfs/index.js';

/** `stateDir`: the folder the command was told to use (`--state-dir`), else $ZFERRY_STATE_DIR or the default. */
export async function probeZfs(stateDir?: string): Promise<Zfs> {
  const { stateDir: resolve } = await import('../state/journal.js');
  return (await import('../zfs/index.js')).Zfs.probe({ cacheDir: resolve(stateDir) });
}
