/** `zferry state`: what a target holds, in the receipt format export plans against. */
import { checkDatasetName, type Zfs } from '../zfs/index.js';
import { makeState, writeStateAtomic, type TargetState } from '../state/receipt.js';
import { SOURCE_PROPERTY } from './import.js';
import type { SourceIdentity } from '../model.js';
import { ZferryError } from '../errors.js';

/** Parses the `zferry:source` mark (`POOLGUID:ROOT`) that import leaves on a target. */
function parseSourceTag(tag: string | null): SourceIdentity | null {
  const m = tag === null ? null : /^(\d+):(.+)$/.exec(tag);
  if (!m) return null;
  return { host: '', pool: m[2].split('/')[0], root: m[2], poolGuid: m[1] };
}

export async function runState(zfs: Zfs, target: string): Promise<TargetState> {
  checkDatasetName(target, 'state target');
  if (!(await zfs.exists(target))) {
    throw new ZferryError(`dataset ${target} does not exist (for an empty target, export without --since)`, { dataset: target });
  }
  const inventory = await zfs.inventory(target);
  return makeState(target, inventory, parseSourceTag(await zfs.getProperty(target, SOURCE_PROPERTY)));
}

/**
 * `state -o FILE`: often a file on the disk that travels, which a stranger may
 * have prepared. Written like a receipt: never through a link planted at
 * FILE (refused with one line), never half-written.
 */
export async function writeStateFile(file: string, state: TargetState): Promise<void> {
  await writeStateAtomic(file, state);
}
