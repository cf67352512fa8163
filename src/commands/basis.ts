/**
 * What a round is planned against, shared by `export` and `estimate`: the
 * source's inventory and identity, the basis (a state file, the newest
 * receipt for this source under a folder, or an empty target) and the plan.
 */
import { hostname } from 'node:os';
import type { Inventory, SourceIdentity } from '../model.js';
import type { Zfs } from '../zfs/index.js';
import { planSync, checkEncryptionMatch, type Plan } from '../plan/index.js';
import { joinDataset } from '../model.js';
import { ZferryError } from '../errors.js';
import type { Basis } from '../bundle/index.js';
import { findNewestReceipt, readState } from '../state/receipt.js';

export interface BasisOptions {
  source: string;
  /** A state or receipt file; wins over `receiptsIn`. */
  since?: string;
  /** Folder searched for the newest receipt of this source (export's DEST, estimate's --dest). */
  receiptsIn?: string;
}

export interface PlannedRound {
  inventory: Inventory;
  identity: SourceIdentity;
  basis: Basis;
  plan: Plan;
}

export async function sourceIdentity(zfs: Zfs, root: string): Promise<SourceIdentity> {
  const pool = root.split('/')[0];
  return { host: hostname(), pool, root, poolGuid: await zfs.poolGuid(pool) };
}

/** Where the plan starts from: a state file, the newest receipt on the disk, or an empty target. */
export async function findBasis(opts: BasisOptions, identity: SourceIdentity): Promise<Basis> {
  if (opts.since) {
    const state = await readState(opts.since);
    return { origin: 'state-file', file: opts.since, target: state.target, takenAt: state.takenAt, inventory: state.inventory };
  }
  const found = opts.receiptsIn ? await findNewestReceipt(opts.receiptsIn, identity) : null;
  if (found) {
    const s = found.state;
    return { origin: 'receipt', file: found.file, target: s.target, takenAt: s.takenAt, inventory: s.inventory };
  }
  return { origin: 'empty', file: null, target: null, takenAt: null, inventory: null };
}

/** Reads the source, finds the basis and plans the round; nothing is sent. */
export async function planRound(zfs: Zfs, opts: BasisOptions): Promise<PlannedRound> {
  const inventory = await zfs.inventory(opts.source);
  const identity = await sourceIdentity(zfs, opts.source);
  const basis = await findBasis(opts, identity);
  const mismatch = checkEncryptionMatch(inventory, basis.inventory);
  if (mismatch) throw new ZferryError(mismatch.message, { dataset: joinDataset(opts.source, mismatch.dataset) });
  return { inventory, identity, basis, plan: planSync(inventory, basis.inventory) };
}
