/**
 * What a sync covers: datasets left out by `--exclude GLOB` or the
 * `zferry:skip=on` user property (each with its children), snapshots left out
 * by `--snapshots GLOB` / `--exclude-snapshots GLOB`. The export records the
 * scope in the manifest, so the import's `--delete` leaves out-of-scope data
 * alone on the target as well. Pure.
 *
 * Globs: `*` (any run of characters, `/` included) and `?` (one character);
 * everything else is literal. Node 20's path.matchesGlob prints an
 * "experimental" warning on stderr, which would break the one-line error rule.
 */
import type { Inventory } from '../model.js';
import { parentPath } from './paths.js';

export interface Scope {
  /** Dataset globs, matched against the relative path and the full source name. */
  exclude: string[];
  /** Snapshot-name globs to include; empty = every snapshot. */
  snapshots: string[];
  /** Snapshot-name globs to leave out (applied after `snapshots`). */
  excludeSnapshots: string[];
  /** Relative paths the export found marked `zferry:skip=on` (their children go with them). */
  skipped: string[];
}

export const FULL_SCOPE: Scope = { exclude: [], snapshots: [], excludeSnapshots: [], skipped: [] };

const globCache = new Map<string, RegExp>();

export function globToRegExp(glob: string): RegExp {
  let re = globCache.get(glob);
  if (!re) {
    const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    re = new RegExp(`^${body}$`);
    globCache.set(glob, re);
  }
  return re;
}

export function matchesAny(text: string, globs: readonly string[]): boolean {
  return globs.some((g) => globToRegExp(g).test(text));
}

/** Whether `path` itself (not its ancestors) is excluded. */
function excludedHere(path: string, scope: Scope, sourceRoot: string): boolean {
  if (scope.skipped.includes(path)) return true;
  const full = path === '' ? sourceRoot : `${sourceRoot}/${path}`;
  return matchesAny(path, scope.exclude) || matchesAny(full, scope.exclude);
}

/** A dataset is out of scope when it or one of its ancestors is excluded. */
export function datasetInScope(path: string, scope: Scope, sourceRoot: string): boolean {
  for (let p: string | null = path; p !== null; p = parentPath(p)) {
    if (excludedHere(p, scope, sourceRoot)) return false;
  }
  return true;
}

export function snapshotInScope(name: string, scope: Scope): boolean {
  if (scope.snapshots.length > 0 && !matchesAny(name, scope.snapshots)) return false;
  return !matchesAny(name, scope.excludeSnapshots);
}

/**
 * The scope as the export records it: the globs given plus the datasets the
 * source marks with zferry:skip (only the top-most of each marked subtree,
 * since the property is inherited).
 */
export function resolveScope(source: Inventory, opts: Omit<Scope, 'skipped'>): Scope {
  const marked = new Set(source.datasets.filter((d) => d.skip).map((d) => d.path));
  const skipped = [...marked].filter((p) => {
    const parent = parentPath(p);
    return parent === null || !marked.has(parent);
  });
  return { exclude: [...opts.exclude], snapshots: [...opts.snapshots], excludeSnapshots: [...opts.excludeSnapshots], skipped };
}

/** Datasets of `inv` that are out of scope (relative paths, top-most only). */
export function excludedDatasets(inv: Inventory, scope: Scope, sourceRoot: string): string[] {
  const out: string[] = [];
  for (const d of inv.datasets) {
    if (datasetInScope(d.path, scope, sourceRoot)) continue;
    const parent = parentPath(d.path);
    if (parent === null || datasetInScope(parent, scope, sourceRoot)) out.push(d.path);
  }
  return out;
}
