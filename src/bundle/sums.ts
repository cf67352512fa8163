/** SHA256SUMS: the coreutils `sha256sum -c` view of a bundle's volumes (and, from format 2, RESTORE.txt). */
import type { Manifest } from './manifest.js';

export const SUMS_FILE = 'SHA256SUMS';

/** One `<hex>  <file>` line per volume, in stream then volume order; then each parity file; then RESTORE.txt's where the manifest covers it. */
export function sha256sumsText(m: Manifest): string {
  const lines: string[] = [];
  for (const s of m.streams) for (const v of s.volumes) lines.push(`${v.sha256}  ${v.file}`);
  for (const f of m.parity?.files ?? []) lines.push(`${f.sha256}  ${f.file}`);
  if (m.restore !== undefined) lines.push(`${m.restore.sha256}  ${m.restore.file}`);
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}
