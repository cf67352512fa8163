/**
 * Which source a receiving spool serves. A spool holds the bundles of one
 * source only: named by `relay receive --source POOLGUID:ROOT`, or else by the
 * mark import left on the target (its zferry:source property, the same
 * `poolGuid:root` form). The first peer to connect never decides it. The
 * rules are pure; reading the spool's manifests is the one I/O here.
 */
import { ZferryError } from '../errors.js';
import { findBundles, readManifest } from '../bundle/index.js';
import { sourceTag } from '../commands/import.js';

const UINT64_MAX = 18446744073709551615n;
// The manifest schema's datasetName: segments of ZFS name characters, no '.' or '..' segment.
const SOURCE_ID = /^([0-9]{1,20}):((?!\.\.?(?:\/|$))[A-Za-z0-9_.: -]+(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9_.: -]+)*)$/;

/** Checks a source id (`--source`, or a target's zferry:source) and returns it unchanged. */
export function parseSourceId(text: string, what: string): string {
  const m = SOURCE_ID.exec(text);
  if (!m || text.length > 300 || BigInt(m[1]) > UINT64_MAX) {
    throw new ZferryError(
      `${what} ${JSON.stringify(text.slice(0, 300))} is not a source id: expected POOLGUID:ROOT as import marks targets with (zferry:source), e.g. 1234567890123456789:tank`,
      {}, 2,
    );
  }
  return text;
}

export interface ServedSourceFacts {
  /** `relay receive --source`, checked by parseSourceId. */
  flag: string | null;
  /** The import target's zferry:source, when the target exists and is marked. */
  marked: string | null;
  /** The import target, for messages; null without --import. */
  target: string | null;
  /** --force: import into a target that mirrors another source. */
  force: boolean;
}

/** The source the spool serves, from the user's flag or the target's mark; never from a bundle. */
export function servedSource(f: ServedSourceFacts): string {
  if (f.flag !== null) {
    if (f.marked !== null && f.marked !== f.flag && !f.force) {
      throw new ZferryError(
        `relay receive --source ${f.flag}, but ${f.target} mirrors source ${f.marked}: name the target's source, or pass --force to import another source into it`,
        { dataset: f.target ?? undefined, field: 'zferry:source' }, 2,
      );
    }
    return f.flag;
  }
  if (f.marked !== null) return f.marked;
  const why = f.target === null ? 'there is no --import target' : `${f.target} does not exist yet or has no zferry:source mark`;
  throw new ZferryError(
    `relay receive needs --source POOLGUID:ROOT (the source this spool serves; ${why}): the first bundle to arrive must not decide it`,
    {}, 2,
  );
}

export interface SpoolEntry {
  dir: string;
  source: string;
}

/** Bundles in the spool that do not come from the served source. */
export function foreignBundles(entries: readonly SpoolEntry[], served: string): SpoolEntry[] {
  return entries.filter((e) => e.source !== served);
}

/**
 * Refuses a spool holding bundles of another source (or of several), with one
 * line naming every folder to remove: left there, each later import would
 * fail on them.
 */
export async function checkSpoolServes(spool: string, served: string): Promise<void> {
  const dirs = (await findBundles(spool)).filter((d) => d !== spool);
  const entries: SpoolEntry[] = [];
  for (const dir of dirs) entries.push({ dir, source: sourceTag((await readManifest(dir)).source) });
  const foreign = foreignBundles(entries, served);
  if (foreign.length > 0) {
    throw new ZferryError(
      `spool ${spool} is poisoned: it serves source ${served}, but ${foreign.map((e) => `${e.dir} (source ${e.source})`).join(', ')} came from another source: remove ${foreign.length === 1 ? 'that folder' : 'those folders'}`,
      { file: foreign[0].dir, field: '/source' },
    );
  }
}
