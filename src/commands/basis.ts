/**
 * What a round is planned against, shared by `export` and `estimate`: the
 * source's inventory and identity, the basis (a state file, the newest
 * pending bundle in the journal, the newest receipt for this source under a
 * folder, or an empty target), the scope, and the plan.
 */
import { hostname } from 'node:os';
import type { Inventory, SourceIdentity } from '../model.js';
import { joinDataset } from '../model.js';
import { ZferryError } from '../errors.js';
import { checkDatasetName, type SendSpec, type SnapshotSpace, type Zfs } from '../zfs/index.js';
import { planSync, checkEncryptionMatch, resolveScope, sendOptionsFor, type Plan, type Scope, type SendStep } from '../plan/index.js';
import type { Basis } from '../bundle/index.js';
import { findNewestReceipt, readState } from '../state/receipt.js';
import { readReceiptTrust } from '../trust/receipt-signature.js';
import { keyIdHex } from '../trust/minisign.js';
import { journalFile, pendingEntries, readJournal, stateDir } from '../state/journal.js';
import { DEFAULT_SITE, siteOf } from '../state/site.js';

export interface BasisOptions {
  source: string;
  /** A state or receipt file; wins over everything else. */
  since?: string;
  /** Folder searched for the newest receipt of this source (export's DEST, estimate's --dest). */
  receiptsIn?: string;
  /** Journal folder (default $ZFERRY_STATE_DIR or /var/lib/zferry); false: no journal. */
  journal?: string | false;
  /** The site planned for (src/state/site.ts): its journal and its receipts only. Default: the default site. */
  site?: string;
  /** minisign public key file: a receipt under receiptsIn counts only when signed by it (import --sign). */
  trustReceiver?: string;
  /** Hears each receipt passed over for want of that signature. */
  notice?: (line: string) => void;
}

export interface RoundOptions extends BasisOptions {
  /** Dataset globs to leave out (relative path or full name); children go with them. */
  exclude?: string[];
  /** Snapshot-name globs to send (default: all). */
  snapshots?: string[];
  /** Snapshot-name globs not to send. */
  excludeSnapshots?: string[];
  /** Plan past target-only snapshots from the common base. */
  rollback?: boolean;
}

/** The newest word from the target: a receipt (or the state file given), what it proves, and when. */
export interface Confirmation {
  file: string;
  takenAt: string;
  /** The newest snapshot of the target's root dataset in it (creation: epoch seconds, as on the source). */
  newest: { name: string; guid: string; creation: number } | null;
  /** The newest bundles it lists as applied (as many as a journal keeps), so status can tell what is still in transit. */
  bundles: string[];
  /** The key id (minisign's hex) whose signature on the receipt was checked; absent when none was (status --trust-receiver skips it then). */
  signedBy?: string;
}

/** The newest snapshot of the root dataset (else of any dataset) an inventory holds. */
export function newestSnapshot(inv: Inventory | null): Confirmation['newest'] {
  if (!inv) return null;
  const root = inv.datasets.find((d) => d.path === '');
  const pool = root && root.snapshots.length > 0 ? root.snapshots : inv.datasets.flatMap((d) => d.snapshots);
  // creation has whole seconds: two snapshots of one second (a manual one beside zfs-auto-snapshot's) are told apart by createtxg.
  const later = (a: (typeof pool)[number], b: (typeof pool)[number]) => b.creation > a.creation || (b.creation === a.creation && BigInt(b.createtxg) > BigInt(a.createtxg));
  const best = pool.reduce<(typeof pool)[number] | null>((a, b) => (a === null || later(a, b) ? b : a), null);
  return best ? { name: best.name, guid: best.guid, creation: best.creation } : null;
}

export interface PlannedRound {
  inventory: Inventory;
  identity: SourceIdentity;
  basis: Basis;
  /** What a receipt or state file shows the target really holds (base protection releases up to it). */
  proved: Inventory | null;
  /** That receipt or state file, for zferry status; null when none was found. */
  confirmed: Confirmation | null;
  scope: Scope;
  plan: Plan;
  /** Every snapshot's used and referenced, read with the inventory where zfs has no send -nvP (the free-space check's figures); null elsewhere. */
  snapshotSpace: SnapshotSpace | null;
}

export async function sourceIdentity(zfs: Zfs, root: string): Promise<SourceIdentity> {
  const pool = root.split('/')[0];
  return { host: hostname(), pool, root, poolGuid: await zfs.poolGuid(pool) };
}

/**
 * Where the plan starts from: a state file; else the newest bundle in the
 * journal that the newest receipt does not cover yet (disk rotation); else
 * that receipt; else an empty target.
 */
export async function findBasis(opts: BasisOptions, identity: SourceIdentity): Promise<{ basis: Basis; proved: Inventory | null; confirmed: Confirmation | null }> {
  if (opts.since) {
    const state = await readState(opts.since);
    // A `zferry state` file names no site and seeds any; a receipt speaks for the site it came from.
    const from = siteOf(state);
    if (from !== (opts.site ?? DEFAULT_SITE) && (state.site !== undefined || state.bundles.length > 0)) {
      throw new ZferryError(`${opts.since}: a receipt of site ${from}, not of site ${opts.site ?? DEFAULT_SITE}: its word would release another site's incremental bases`, { file: opts.since, field: '/site' });
    }
    return {
      basis: { origin: 'state-file', file: opts.since, target: state.target, takenAt: state.takenAt, inventory: state.inventory },
      proved: state.inventory,
      confirmed: { file: opts.since, takenAt: state.takenAt, newest: newestSnapshot(state.inventory), bundles: state.bundles.slice(-50) },
    };
  }
  const site = opts.site ?? DEFAULT_SITE;
  const trust = await readReceiptTrust(opts.trustReceiver);
  const found = opts.receiptsIn ? await findNewestReceipt(opts.receiptsIn, identity, site, trust, opts.notice) : null;
  const confirmed: Confirmation | null = found
    ? { file: found.file, takenAt: found.state.takenAt, newest: newestSnapshot(found.state.inventory), bundles: found.state.bundles.slice(-50), ...(trust ? { signedBy: keyIdHex(trust.key.keyId) } : {}) }
    : null;
  if (opts.journal !== false) {
    const file = journalFile(stateDir(opts.journal), identity, site);
    const pending = pendingEntries(await readJournal(file, identity, site), found?.state.bundles ?? []);
    const last = pending[pending.length - 1];
    if (last) {
      return {
        basis: { origin: 'journal', file, target: found?.state.target ?? null, takenAt: last.createdAt, inventory: last.projected, bundleId: last.bundleId },
        proved: found?.state.inventory ?? null,
        confirmed,
      };
    }
  }
  if (found) {
    const s = found.state;
    return { basis: { origin: 'receipt', file: found.file, target: s.target, takenAt: s.takenAt, inventory: s.inventory }, proved: s.inventory, confirmed };
  }
  return { basis: { origin: 'empty', file: null, target: null, takenAt: null, inventory: null }, proved: null, confirmed: null };
}

/** Reads the source, finds the basis and plans the round; nothing is sent. */
export async function planRound(zfs: Zfs, opts: RoundOptions): Promise<PlannedRound> {
  checkDatasetName(opts.source, 'source');
  // Without send -nvP, export sizes its plan from the snapshots' space: read in the same walk, not a second one.
  const { inventory, snapshotSpace } = zfs.caps.sendDryRun
    ? { inventory: await zfs.inventory(opts.source), snapshotSpace: null }
    : await zfs.inventoryWithSpace(opts.source);
  const identity = await sourceIdentity(zfs, opts.source);
  const { basis, proved, confirmed } = await findBasis(opts, identity);
  const mismatch = checkEncryptionMatch(inventory, basis.inventory);
  if (mismatch) throw new ZferryError(mismatch.message, { dataset: joinDataset(opts.source, mismatch.dataset) });
  const scope = resolveScope(inventory, { exclude: opts.exclude ?? [], snapshots: opts.snapshots ?? [], excludeSnapshots: opts.excludeSnapshots ?? [] });
  // A dataset re-created on the source is re-seeded; the import replaces the target's copy only with --delete.
  const plan = planSync(inventory, basis.inventory, { scope, reseed: true, rollback: opts.rollback === true });
  return { inventory, identity, basis, proved, confirmed, scope, plan, snapshotSpace };
}

/**
 * The `zfs send` of one planned step, with the options its dataset travels
 * with (raw, -c -L -e, -p): export sends exactly this, and estimate measures
 * exactly this, so the two agree.
 */
export function sendSpecFor(zfs: Zfs, round: Pick<PlannedRound, 'inventory'>, step: SendStep): SendSpec {
  const root = round.inventory.root;
  const ds = round.inventory.datasets.find((d) => d.path === step.dataset);
  if (!ds) throw new ZferryError(`planned dataset ${joinDataset(root, step.dataset)} is not in the source inventory`, { dataset: joinDataset(root, step.dataset) });
  return {
    dataset: joinDataset(root, step.dataset),
    to: step.to.name,
    from: step.from
      ? { name: step.from.name, bookmark: step.from.bookmark, ...(step.from.dataset !== undefined ? { dataset: joinDataset(root, step.from.dataset) } : {}) }
      : null,
    intermediates: step.intermediates,
    flags: sendOptionsFor(ds, root, zfs.caps),
  };
}
