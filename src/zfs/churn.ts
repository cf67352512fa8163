/**
 * Per-snapshot churn from OpenZFS's `written` property:
 * `zfs list -Hp -t snapshot -o name,written,creation -r ROOT` (one call for
 * the whole tree). zfs-fuse has neither `list -p` nor `written`; there the
 * caller measures incremental sends instead.
 */
import { ZferryError } from '../errors.js';
import { parseTrustedSize } from './sendrecv.js';

export function snapshotWrittenArgs(root: string): string[] {
  return ['list', '-H', '-p', '-t', 'snapshot', '-o', 'name,written,creation', '-r', root];
}

export interface WrittenRow {
  /** Full snapshot name, `pool/fs@snap`. */
  name: string;
  /** Bytes; null for '-' or a value zfs cannot mean (≥ 2^63, an underflow). */
  written: number | null;
  /** Epoch seconds. */
  creation: number;
}

export function parseSnapshotWritten(text: string, root: string): WrittenRow[] {
  const rows: WrittenRow[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const [name, written, creation] = line.split('\t');
    if (!name || written === undefined || creation === undefined || !/^\d+$/.test(creation)) {
      throw new ZferryError(`unexpected zfs list line under ${root}: ${JSON.stringify(line)}`, { dataset: root, field: 'written' });
    }
    const bytes = parseTrustedSize(written);
    rows.push({ name, written: bytes === null || bytes > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(bytes), creation: Number(creation) });
  }
  return rows;
}

/** zfs's answer when it does not know a property (old zfs, zfs-fuse). */
export function isUnknownProperty(stderr: string): boolean {
  return /bad property list|invalid property/.test(stderr);
}
