/**
 * Whether a receipt that came back over the relay speaks for the push it
 * answers. Anyone who reaches the sender's reply port first can hand it a
 * reply; unsigned, a receipt counts only when it is about exactly this push:
 * it comes from the source the bundles come from, names every bundle the push
 * carried, holds (by guid) the snapshots those bundles create, and is not
 * dated in the sender's future. A signature (relay send --trust-receiver)
 * comes on top of this rule, not instead: a replayed signed receipt names
 * other bundles. Pure: receipt and pushed manifests in, verdict out.
 */
import type { Guid, Inventory, SnapshotRef, SourceIdentity } from '../model.js';
import type { TargetState } from '../state/receipt.js';
import { lineageOrder } from './latest.js';

/** Clocks of the two hosts may differ; a receipt dated further ahead than this is not taken as the newest truth. */
export const RECEIPT_CLOCK_SKEW_MS = 24 * 3600 * 1000;

export interface PushedBundle {
  bundleId: string;
  source: SourceIdentity;
  inventory: Inventory;
  streams: ReadonlyArray<{ dataset: string; creates: readonly SnapshotRef[] }>;
}

export type ReceiptVerdict = { ok: true; confirmed: string[] } | { ok: false; reason: string };

function guidsOf(inv: Inventory): Set<Guid> {
  return new Set(inv.datasets.flatMap((d) => d.snapshots.map((s) => s.guid)));
}

export function judgeReceipt(receipt: TargetState, pushed: readonly PushedBundle[], now: Date): ReceiptVerdict {
  if (pushed.length === 0) return { ok: false, reason: 'nothing was pushed' };
  const src = receipt.source;
  for (const b of pushed) {
    if (src === null || src.poolGuid !== b.source.poolGuid || src.root !== b.source.root) {
      const said = src === null ? 'no source' : `source ${src.poolGuid}:${src.root}`;
      return { ok: false, reason: `it names ${said}, but bundle ${b.bundleId} comes from ${b.source.poolGuid}:${b.source.root}` };
    }
  }
  const named = new Set(receipt.bundles);
  const missing = pushed.filter((b) => !named.has(b.bundleId)).map((b) => b.bundleId);
  if (missing.length > 0) {
    return { ok: false, reason: `it does not name bundle${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that this push carried` };
  }
  const taken = Date.parse(receipt.takenAt);
  if (!(taken <= now.getTime() + RECEIPT_CLOCK_SKEW_MS)) {
    return { ok: false, reason: `it is dated ${receipt.takenAt}, more than a day after this host's clock (${now.toISOString()})` };
  }
  // With --delete the receiver drops what the source dropped: only snapshots the newest pushed bundle still lists must be there.
  const inventories = pushed.map((b, i) => ({ dir: String(i).padStart(6, '0'), inventory: b.inventory }));
  const latest = guidsOf(lineageOrder(inventories).at(-1)!.inventory);
  const held = guidsOf(receipt.inventory);
  for (const b of pushed) {
    for (const s of b.streams) {
      for (const c of s.creates) {
        if (latest.has(c.guid) && !held.has(c.guid)) {
          const ds = s.dataset === '' ? b.inventory.root : `${b.inventory.root}/${s.dataset}`;
          return { ok: false, reason: `its inventory lacks ${ds}@${c.name} (guid ${c.guid}), which bundle ${b.bundleId} carried` };
        }
      }
    }
  }
  return { ok: true, confirmed: pushed.map((b) => b.bundleId) };
}
