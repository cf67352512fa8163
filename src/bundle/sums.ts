/** SHA256SUMS: the coreutils `sha256sum -c` view of a bundle's volumes. */
import type { Manifest } from './manifest.js';

export const SUMS_FILE = 'SHA256SUMS';

/** One `<hex>  <file>` line per volume, in stream then volume order. */
export function sha256sumsText(m: Manifest): string {
  const lines: string[] = [];
  for (const s of m.streams) for (const v of s.volumes) lines.push(`${v.sha256}  ${v.file}`);
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}
