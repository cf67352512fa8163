/**
 * Tree-wide property reads beside their parsers: `written` (bytes changed
 * since a dataset's newest snapshot, OpenZFS only) and `userrefs` (number of
 * holds on a snapshot; present in zfs-fuse too).
 */

/** `zfs get -Hp -r -t filesystem,volume` is not in zfs-fuse; snapshots print `written` too and are dropped by the parser. */
export function writtenArgs(root: string): string[] {
  return ['get', '-H', '-p', '-r', '-o', 'name,value', 'written', root];
}

/** name → bytes written since the newest snapshot, for filesystems and volumes only. */
export function parseWritten(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const [name, value] = line.split('\t');
    if (!name || value === undefined || name.includes('@') || name.includes('#')) continue;
    if (/^\d+$/.test(value)) out.set(name, BigInt(value));
  }
  return out;
}

export function spaceArgs(root: string): string[] {
  return ['get', '-H', '-p', '-r', '-o', 'name,property,value', 'referenced,used', root];
}

/** name (datasets and snapshots) → referenced and used bytes; rows zfs could not give a number for are left out. */
export function parseSpace(text: string): Map<string, { referenced: bigint; used: bigint }> {
  const seen = new Map<string, { referenced?: bigint; used?: bigint }>();
  for (const line of text.split('\n')) {
    const [name, property, value] = line.split('\t');
    if (!name || value === undefined || !/^\d+$/.test(value) || (property !== 'referenced' && property !== 'used')) continue;
    const row = seen.get(name) ?? {};
    row[property] = BigInt(value);
    seen.set(name, row);
  }
  const out = new Map<string, { referenced: bigint; used: bigint }>();
  for (const [name, row] of seen) if (row.referenced !== undefined && row.used !== undefined) out.set(name, { referenced: row.referenced, used: row.used });
  return out;
}

export function userrefsArgs(root: string): string[] {
  return ['get', '-H', '-p', '-r', '-o', 'name,value', 'userrefs', root];
}

/** Snapshot names with at least one hold. */
export function parseHeld(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const [name, value] = line.split('\t');
    if (!name || !name.includes('@') || value === undefined || !/^\d+$/.test(value)) continue;
    if (Number(value) > 0) out.push(name);
  }
  return out;
}

/** `used` and `referenced` of every snapshot under root, in one call; zfs-fuse has both (it has no `written`). */
export function snapshotSpaceArgs(root: string): string[] {
  return ['get', '-H', '-p', '-r', '-o', 'name,property,value', 'used,referenced', root];
}

/** snapshot name → its `used` and `referenced` bytes; filesystems and unparsable values are left out. */
export function parseSnapshotSpace(text: string): Map<string, { used: number; referenced: number }> {
  const out = new Map<string, { used: number; referenced: number }>();
  for (const line of text.split('\n')) {
    const [name, prop, value] = line.split('\t');
    if (!name || !name.includes('@') || value === undefined || !/^\d+$/.test(value)) continue;
    if (prop !== 'used' && prop !== 'referenced') continue;
    const bytes = Number(value);
    if (!Number.isSafeInteger(bytes)) continue;
    const row = out.get(name) ?? { used: 0, referenced: 0 };
    row[prop] = bytes;
    out.set(name, row);
  }
  return out;
}

/** `zfs get -H -o name,value receive_resume_token` rows whose value is a token. */
export function parseResumeTokens(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const [name, value] = line.split('\t');
    if (name && value && value !== '-' && !name.includes('@')) names.add(name);
  }
  return names;
}
