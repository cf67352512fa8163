/**
 * The whole-tree inventory: one zfs call lists every filesystem, volume,
 * snapshot and bookmark under a root with guid, createtxg, creation and origin.
 *
 * OpenZFS: `zfs list -Hp -t … -o name,type,guid,createtxg,creation,origin -r ROOT`
 * (one row per object). zfs-fuse has no `list -p` and its `list -o guid`
 * prints "13.5E", so there `zfs get -Hp -r -o name,property,value …` is used
 * (one row per object and property; exact 64-bit values). Both are parsed into
 * the same rows and then into model.ts's Inventory.
 */
import { ZferryError } from '../errors.js';
import type { Bookmark, Dataset, DatasetType, Inventory, Snapshot } from '../model.js';

/** User property that leaves a dataset and its children out of the sync (inherited like any user property). */
export const SKIP_PROPERTY = 'zferry:skip';

const FIELDS = ['type', 'guid', 'createtxg', 'creation', 'origin'] as const;
/** Columns asked for: the fields plus the skip property, read in the same call. */
const COLUMNS = [...FIELDS, SKIP_PROPERTY] as const;

/**
 * `zfs list` form; bookmarks only where zfs has them (an unknown -t type is an
 * error), and the `encryption` column only where zfs knows native encryption
 * (it decides raw sends). Snapshots and bookmarks print '-' for it.
 */
export function inventoryListArgs(root: string, withBookmarks: boolean, withVolumes = true, withEncryption = false): string[] {
  const types = ['filesystem', ...(withVolumes ? ['volume'] : []), 'snapshot', ...(withBookmarks ? ['bookmark'] : [])];
  const fields = ['name', ...COLUMNS, ...(withEncryption ? ['encryption'] : [])];
  return ['list', '-H', '-p', '-t', types.join(','), '-o', fields.join(','), '-r', root];
}

/** `zfs get` form for zfs without `list -p`. */
export function inventoryGetArgs(root: string): string[] {
  return ['get', '-H', '-p', '-r', '-o', 'name,property,value', COLUMNS.join(','), root];
}

/** One object as zfs reports it, before it is placed in the tree. */
export interface InventoryRow {
  name: string;
  type: string;
  guid: string;
  createtxg: string;
  creation: string;
  origin: string;
  /** `encryption` property where it was asked for: 'off', 'aes-256-gcm', … */
  encryption?: string;
  /** Value of zferry:skip ('-' when unset); absent in older captures. */
  skip?: string;
}

/** Parses `zfs list -Hp -o name,type,guid,createtxg,creation,origin[,encryption]` output. */
export function parseInventoryList(text: string, root: string): Inventory {
  const rows: InventoryRow[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const cols = line.split('\t');
    if (cols.length < 6) {
      throw new ZferryError(`unexpected zfs list line under ${root}: ${JSON.stringify(line)}`, { dataset: root });
    }
    const [name, type, guid, createtxg, creation, origin, skip, encryption] = cols as [string, string, string, string, string, string, string?, string?];
    rows.push({ name, type, guid, createtxg, creation, origin, ...(skip !== undefined ? { skip } : {}), ...(encryption !== undefined ? { encryption } : {}) });
  }
  return buildInventory(rows, root);
}

/** Parses `zfs get -Hp -r -o name,property,value type,guid,createtxg,creation,origin` output. */
export function parseInventoryGet(text: string, root: string): Inventory {
  const byName = new Map<string, Partial<InventoryRow>>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const cols = line.split('\t');
    if (cols.length < 3) {
      throw new ZferryError(`unexpected zfs get line under ${root}: ${JSON.stringify(line)}`, { dataset: root });
    }
    const [name, property, value] = cols as [string, string, string];
    let row = byName.get(name);
    if (!row) byName.set(name, (row = { name }));
    if ((FIELDS as readonly string[]).includes(property)) row[property as (typeof FIELDS)[number]] = value;
    else if (property === SKIP_PROPERTY) row.skip = value;
  }
  const rows: InventoryRow[] = [];
  for (const row of byName.values()) {
    for (const f of ['type', 'guid', 'createtxg', 'creation'] as const) {
      if (row[f] === undefined) {
        throw new ZferryError(`zfs get gave no ${f} for ${row.name}`, { dataset: row.name, field: f });
      }
    }
    rows.push({ origin: '-', ...row } as InventoryRow);
  }
  return buildInventory(rows, root);
}

const UINT = /^\d+$/;

function checkUint(value: string, what: string, name: string): string {
  // "13.5E" (zfs-fuse list) or "-" would silently corrupt identity: refuse.
  if (!UINT.test(value)) {
    throw new ZferryError(`${what} of ${name} is not an exact integer: ${JSON.stringify(value)}`, {
      dataset: name,
      field: what,
    });
  }
  return value;
}

/** Path of `name` relative to `root`, or null when it is outside the tree. */
function relative(root: string, name: string): string | null {
  if (name === root) return '';
  return name.startsWith(root + '/') ? name.slice(root.length + 1) : null;
}

function compareTxg(a: { createtxg: string; name: string }, b: { createtxg: string; name: string }): number {
  const d = BigInt(a.createtxg) - BigInt(b.createtxg);
  if (d !== 0n) return d < 0n ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Component-wise, so a parent always precedes its children and siblings keep a stable order. */
export function comparePaths(a: string, b: string): number {
  const pa = a === '' ? [] : a.split('/');
  const pb = b === '' ? [] : b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** Places rows into datasets with their snapshots and bookmarks, sorted as model.ts requires. */
export function buildInventory(rows: InventoryRow[], root: string): Inventory {
  const datasets = new Map<string, Dataset>();
  const children: Array<{ row: InventoryRow; parent: string; short: string; kind: 'snapshot' | 'bookmark' }> = [];

  for (const row of rows) {
    const sep = row.type === 'snapshot' ? '@' : row.type === 'bookmark' ? '#' : null;
    if (sep !== null) {
      const at = row.name.indexOf(sep);
      if (at < 0) throw new ZferryError(`${row.type} name without '${sep}': ${row.name}`, { dataset: row.name });
      children.push({ row, parent: row.name.slice(0, at), short: row.name.slice(at + 1), kind: row.type as 'snapshot' | 'bookmark' });
      continue;
    }
    if (row.type !== 'filesystem' && row.type !== 'volume') {
      throw new ZferryError(`unknown dataset type ${JSON.stringify(row.type)} for ${row.name}`, { dataset: row.name, field: 'type' });
    }
    const path = relative(root, row.name);
    if (path === null) continue;
    const ds: Dataset = {
      path,
      type: row.type as DatasetType,
      guid: checkUint(row.guid, 'guid', row.name),
      snapshots: [],
      bookmarks: [],
    };
    if (row.origin !== '' && row.origin !== '-') ds.origin = row.origin;
    if (row.encryption !== undefined && row.encryption !== '-') ds.encrypted = row.encryption !== 'off';
    if (row.skip === 'on') ds.skip = true;
    datasets.set(row.name, ds);
  }

  for (const { row, parent, short, kind } of children) {
    const ds = datasets.get(parent);
    if (!ds) continue; // outside the tree (cannot happen with -r ROOT, but harmless)
    const item: Snapshot | Bookmark = {
      name: short,
      guid: checkUint(row.guid, 'guid', row.name),
      createtxg: checkUint(row.createtxg, 'createtxg', row.name),
      creation: Number(checkUint(row.creation, 'creation', row.name)),
    };
    (kind === 'snapshot' ? ds.snapshots : ds.bookmarks).push(item);
  }

  if (!datasets.has(root)) {
    throw new ZferryError(`dataset ${root} does not exist`, { dataset: root });
  }
  const sorted = [...datasets.values()].sort((a, b) => comparePaths(a.path, b.path));
  for (const ds of sorted) {
    ds.snapshots.sort(compareTxg);
    ds.bookmarks.sort(compareTxg);
  }
  return { root, datasets: sorted };
}
