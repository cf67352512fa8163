/**
 * Base protection: after an export, each dataset's newest exported snapshot
 * must stay usable as the next incremental base until a receipt proves the
 * target holds something newer. On zfs with bookmarks a bookmark
 * `ds#zferry-<guid>` keeps it (the snapshot itself may then be rotated away
 * by zfs-auto-snapshot: the next export sends from the bookmark); elsewhere a
 * hold `zferry` pins the snapshot. Protections older than what the newest
 * receipt proves are released. Each site has its own tag and bookmark names
 * (src/state/site.ts): a receipt releases only its own site's protections.
 */
import type { Inventory } from '../model.js';
import { joinDataset } from '../model.js';
import type { Zfs } from '../zfs/index.js';
import type { Plan, SendStep } from '../plan/index.js';
import { bookmarkName, DEFAULT_SITE, holdTag, isSiteBookmark } from '../state/site.js';

/** The default site's hold tag (a named site's is `zferry-<site>`). */
export const HOLD_TAG = holdTag(DEFAULT_SITE);

export async function protectBases(
  zfs: Zfs,
  root: string,
  source: Inventory,
  plan: Plan,
  proved: Inventory | null,
  site: string = DEFAULT_SITE,
): Promise<{ kept: string[]; released: string[] }> {
  const kept: string[] = [];
  const released: string[] = [];
  const newest = new Map<string, SendStep>();
  for (const s of plan.steps) if (s.kind !== 'create') newest.set(s.dataset, s);
  const toHold: string[] = [];
  for (const [path, step] of newest) {
    const ds = joinDataset(root, path);
    if (zfs.caps.bookmarks) {
      const name = `${ds}#${bookmarkName(site, step.to.guid)}`;
      await zfs.bookmark(`${ds}@${step.to.name}`, name);
      kept.push(name);
    } else {
      toHold.push(`${ds}@${step.to.name}`);
    }
  }
  // One zfs call for all of them: a process per dataset was most of a many-dataset export's process starts.
  if (toHold.length > 0) await zfs.hold(toHold, holdTag(site));
  kept.push(...toHold);
  if (proved === null) return { kept, released };

  // Per dataset, the createtxg (source side) of the newest snapshot the target is proved to hold.
  const provedTxg = new Map<string, bigint>();
  const targetGuids = new Map(proved.datasets.map((d) => [d.path, new Set(d.snapshots.map((s) => s.guid))]));
  for (const d of source.datasets) {
    const held = targetGuids.get(d.path);
    if (!held) continue;
    for (const x of [...d.snapshots, ...d.bookmarks]) {
      if (held.has(x.guid)) {
        const t = BigInt(x.createtxg);
        if (t > (provedTxg.get(d.path) ?? -1n)) provedTxg.set(d.path, t);
      }
    }
  }
  const txgOf = new Map<string, bigint>();
  for (const d of source.datasets) {
    for (const s of d.snapshots) txgOf.set(`${joinDataset(root, d.path)}@${s.name}`, BigInt(s.createtxg));
    const base = provedTxg.get(d.path);
    if (base === undefined) continue;
    for (const b of d.bookmarks) {
      if (isSiteBookmark(site, b.name) && BigInt(b.createtxg) < base) {
        const name = `${joinDataset(root, d.path)}#${b.name}`;
        await zfs.destroy(name);
        released.push(name);
      }
    }
  }
  const pathOf = (snap: string) => {
    const ds = snap.slice(0, snap.indexOf('@'));
    return ds === root ? '' : ds.slice(root.length + 1);
  };
  const toRelease: string[] = [];
  for (const snap of await zfs.heldSnapshots(root)) {
    const base = provedTxg.get(pathOf(snap));
    const txg = txgOf.get(snap);
    if (base === undefined || txg === undefined || txg >= base) continue;
    toRelease.push(snap);
  }
  if (toRelease.length > 0) await zfs.release(toRelease, holdTag(site));
  released.push(...toRelease);
  return { kept, released };
}
