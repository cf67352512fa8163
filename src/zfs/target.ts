/**
 * One recursive walk of a tree for several questions at once. A walk costs
 * about the same whatever it asks (zfs-fuse: ~70 ms for a small tree, ~0.9 s
 * for 800 objects; on any zfs, a pool of many snapshots makes every walk
 * long), so asking in one call what took five or six saves that many walks:
 * - targetQuery: what import reads of its target before it plans, namely
 *   the inventory, interrupted receives, `written` (or, where zfs has none,
 *   `referenced` and `used`), the root's marks, and which filesystems carry
 *   a received `mountpoint`;
 * - treeQuery alone (Zfs.inventoryWithSpace): export's source inventory with
 *   the snapshots' space, its free-space figures where zfs has no send -nvP.
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

/** One property of one object, as the walk read it; source is null in the `zfs list` form, which has none. */
export interface PropRow {
  name: string;
  value: string;
  source: string | null;
}

export interface TreeQuery {
  args: string[];
  /** The inventory, and each extra property's rows (every object zfs printed it for). */
  parse(text: string): { inventory: Inventory; props: Map<string, PropRow[]> };
}

/**
 * One recursive walk under `root`: the inventory's columns plus `extra`
 * properties, as `zfs list -Hp` columns where zfs has it, else `zfs get -Hp
 * -r` rows with their source.
 */
export function treeQuery(root: string, caps: ZfsCapabilities, extra: readonly string[]): TreeQuery {
  const props = () => new Map<string, PropRow[]>(extra.map((p) => [p, []]));
  if (caps.listParsable) {
    const args = inventoryListArgs(root, caps.bookmarks, caps.volumes, caps.send.raw);
    const o = args.indexOf('-o') + 1;
    const invCols = args[o]!.split(',').length;
    args[o] = [args[o], ...extra].join(',');
    return {
      args,
      parse(text) {
        const inv: string[] = [];
        const byProp = props();
        for (const line of text.split('\n')) {
          if (line.trim() === '') continue;
          const cols = line.split('\t');
          // A short line is the inventory parser's to refuse, with its message.
          inv.push(cols.slice(0, invCols).join('\t'));
          extra.forEach((p, i) => {
            const value = cols[invCols + i];
            if (value !== undefined) byProp.get(p)!.push({ name: cols[0]!, value, source: null });
          });
        }
        return { inventory: parseInventoryList(inv.join('\n'), root), props: byProp };
      },
    };
  }
  const args = inventoryGetArgs(root);
  const o = args.indexOf('-o') + 1;
  args[o] = 'name,property,value,source';
  args[o + 1] = [args[o + 1], ...extra].join(',');
  return {
    args,
    parse(text) {
      const byProp = props();
      for (const line of text.split('\n')) {
        const [name, prop, value, source] = line.split('\t');
        if (name === undefined || prop === undefined || value === undefined) continue;
        byProp.get(prop)?.push({ name, value, source: source ?? null });
      }
      return { inventory: parseInventoryGet(text, root), props: byProp };
    },
  };
}

/** name<TAB>property<TAB>value lines, the form the single-purpose parsers read. */
export function propLines(rows: readonly PropRow[] | undefined, prop: string): string {
  return (rows ?? []).map((r) => `${r.name}\t${prop}\t${r.value}`).join('\n');
}

/** The one call for `root`, and how to read its output. */
export function targetQuery(root: string, caps: ZfsCapabilities, marks: readonly string[]): TargetQuery {
  const written = hasWritten(caps);
  // zfs get shows where a mountpoint came from; zfs list cannot, and zfs with recv -o/-x never needs it.
  const mounts = !caps.recvPropertyOverride && !caps.listParsable;
  const q = treeQuery(root, caps, [
    ...(written ? ['written'] : ['referenced', 'used']),
    ...(caps.resumable ? ['receive_resume_token'] : []),
    ...marks,
    ...(mounts ? ['mountpoint'] : []),
  ]);
  return {
    args: q.args,
    parse(text) {
      const { inventory, props } = q.parse(text);
      const nameValue = (p: string) => (props.get(p) ?? []).map((r) => `${r.name}\t${r.value}`).join('\n');
      const rootValue = (p: string) => {
        const v = props.get(p)?.find((r) => r.name === root)?.value;
        return v === undefined || v === '-' ? null : v;
      };
      return {
        inventory,
        resumeTokens: caps.resumable ? parseResumeTokens(nameValue('receive_resume_token')) : new Set(),
        marks: Object.fromEntries(marks.map((m) => [m, rootValue(m)])),
        written: written ? parseWritten(nameValue('written')) : null,
        space: written ? null : parseSpace([propLines(props.get('referenced'), 'referenced'), propLines(props.get('used'), 'used')].join('\n')),
        receivedMountpoints: caps.recvPropertyOverride
          ? []
          : mounts ? (props.get('mountpoint') ?? []).filter((r) => r.source === 'received' && !r.name.includes('@')).map((r) => r.name) : null,
      };
    },
  };
}
