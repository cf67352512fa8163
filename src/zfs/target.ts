/**
 * What import reads of its target before it plans, in one recursive zfs call:
 * the inventory, interrupted receives, `written` (or, where zfs has none,
 * `referenced` and `used`), the root's marks, and which filesystems carry a
 * received `mountpoint`. Each was its own walk of the whole tree (five or six
 * `zfs` processes per import); on a pool of many snapshots every walk costs
 * as much as the others, and on zfs-fuse each call costs ~70 ms however small.
 *
 * OpenZFS: `zfs list -Hp -t … -o name,type,…,written,receive_resume_token,MARKS -r ROOT`
 * (one row per object). zfs without `list -p` (zfs-fuse): `zfs get -Hp -r -o
 * name,property,value,source …` (one row per object and property). The rows
 * are handed to the parsers of the single-purpose calls, so each fact is
 * parsed in one place whichever call read it.
 */
import type { Inventory } from '../model.js';
import { inventoryGetArgs, inventoryListArgs, parseInventoryGet, parseInventoryList } from './inventory.js';
import type { ZfsCapabilities } from './probe.js';
import { parseResumeTokens, parseSpace, parseWritten } from './props.js';

export interface TargetReading {
  inventory: Inventory;
  /** Datasets (full names) holding an interrupted `receive -s`'s state. */
  resumeTokens: Set<string>;
  /** The root's own value of each mark asked for; null where unset. */
  marks: Record<string, string | null>;
  /** Bytes written since the newest snapshot, by full name; null where zfs has no `written`. */
  written: Map<string, bigint> | null;
  /** Where there is no `written`: `referenced` and `used` by full name; null otherwise. */
  space: Map<string, { referenced: bigint; used: bigint }> | null;
  /** Filesystems whose `mountpoint` was received in a stream; null where this call cannot tell (zfs list has no source column). */
  receivedMountpoints: string[] | null;
}

export interface TargetQuery {
  args: string[];
  parse(text: string): TargetReading;
}

/**
 * Whether this zfs has the `written` property. It came with `destroy -n` in
 * one illumos change (1645–1647, 2011), so the probe of the one tells the
 * other; zfs-fuse has neither. A zfs that had one without the other would
 * fail the merged call with "invalid property", and the adapter then reads
 * the facts one call each.
 */
export function hasWritten(caps: ZfsCapabilities): boolean {
  return caps.destroySnapshotList;
}

/** The one call for `root`, and how to read its output. */
export function targetQuery(root: string, caps: ZfsCapabilities, marks: readonly string[]): TargetQuery {
  const written = hasWritten(caps);
  const extra = [
    ...(written ? ['written'] : ['referenced', 'used']),
    ...(caps.resumable ? ['receive_resume_token'] : []),
    ...marks,
  ];
  return caps.listParsable ? listQuery(root, caps, extra, written) : getQuery(root, caps, extra, written);
}

function listQuery(root: string, caps: ZfsCapabilities, extra: string[], written: boolean): TargetQuery {
  const args = inventoryListArgs(root, caps.bookmarks, caps.volumes, caps.send.raw);
  const o = args.indexOf('-o') + 1;
  const invCols = args[o]!.split(',').length;
  args[o] = [args[o], ...extra].join(',');
  return {
    args,
    parse(text) {
      const inv: string[] = [];
      const byProp = new Map<string, string[]>(extra.map((p) => [p, []]));
      const marks: Record<string, string | null> = {};
      for (const line of text.split('\n')) {
        if (line.trim() === '') continue;
        const cols = line.split('\t');
        // A short line is the inventory parser's to refuse, with its message.
        inv.push(cols.slice(0, invCols).join('\t'));
        extra.forEach((p, i) => {
          const v = cols[invCols + i];
          if (v === undefined) return;
          byProp.get(p)!.push(`${cols[0]}\t${p}\t${v}`);
          if (cols[0] === root && !(p in marks)) marks[p] = v === '-' ? null : v;
        });
      }
      return reading(parseInventoryList(inv.join('\n'), root), byProp, marks, written, null);
    },
  };
}

function getQuery(root: string, caps: ZfsCapabilities, extra: string[], written: boolean): TargetQuery {
  const args = inventoryGetArgs(root);
  // -o name,property,value → name,property,value,source: the source tells a received mountpoint.
  const o = args.indexOf('-o') + 1;
  args[o] = 'name,property,value,source';
  const mounts = !caps.recvPropertyOverride;
  args[o + 1] = [args[o + 1], ...extra, ...(mounts ? ['mountpoint'] : [])].join(',');
  return {
    args,
    parse(text) {
      const byProp = new Map<string, string[]>(extra.map((p) => [p, []]));
      const marks: Record<string, string | null> = {};
      const received: string[] = [];
      for (const line of text.split('\n')) {
        const [name, prop, value, source] = line.split('\t');
        if (name === undefined || prop === undefined || value === undefined) continue;
        byProp.get(prop)?.push(`${name}\t${prop}\t${value}`);
        if (name === root && byProp.has(prop)) marks[prop] = value === '-' ? null : value;
        if (mounts && prop === 'mountpoint' && source === 'received' && !name.includes('@')) received.push(name);
      }
      return reading(parseInventoryGet(text, root), byProp, marks, written, mounts ? received : []);
    },
  };
}

function reading(
  inventory: Inventory,
  byProp: Map<string, string[]>,
  rootValues: Record<string, string | null>,
  written: boolean,
  receivedMountpoints: string[] | null,
): TargetReading {
  // parseWritten and parseResumeTokens read name<TAB>value rows; parseSpace reads name<TAB>property<TAB>value.
  const nameValue = (p: string) => (byProp.get(p) ?? []).map((r) => r.split('\t')).map(([n, , v]) => `${n}\t${v}`).join('\n');
  const marks: Record<string, string | null> = {};
  for (const p of byProp.keys()) if (p !== 'written' && p !== 'referenced' && p !== 'used' && p !== 'receive_resume_token') marks[p] = rootValues[p] ?? null;
  return {
    inventory,
    resumeTokens: byProp.has('receive_resume_token') ? parseResumeTokens(nameValue('receive_resume_token')) : new Set(),
    marks,
    written: written ? parseWritten(nameValue('written')) : null,
    space: written ? null : parseSpace([...(byProp.get('referenced') ?? []), ...(byProp.get('used') ?? [])].join('\n')),
    receivedMountpoints,
  };
}
