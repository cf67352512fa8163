/**
 * Dataset paths relative to an inventory root ('' is the root itself).
 */

/**
 * Orders paths segment by segment, so a parent comes before its children and
 * `a/b` before `a-x` (a plain string sort puts `a-x` first, since '-' < '/').
 * Equivalent to comparing code units with '/' ranked below every other one,
 * which needs no splitting.
 */
export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    if (ca === 0x2f) return -1;
    if (cb === 0x2f) return 1;
    return ca - cb;
  }
  return a.length - b.length;
}

/** The parent's path, or null for the root (whose parent lies outside the inventory). */
export function parentPath(path: string): string | null {
  if (path === '') return null;
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

/** How a relative path reads in a one-line message. */
export function showPath(path: string): string {
  return path === '' ? '(root)' : path;
}
