/**
 * The only folder names a relay spool accepts: the names `zferry export`
 * gives bundles (bundleFolderName in src/commands/export.ts):
 * `zferry-<root with other characters as _>-<YYYYMMDDTHHMMSSZ>-<first 8 hex of bundleId>`.
 * Everything else zferry keeps in a spool is named otherwise (`receipt-*.json`,
 * `*.minisig`, `journal-*.json`, `.zferry-relay.lock`, `.incoming`, temp files
 * starting with a dot), so a name a peer sends can never land on one of them.
 */
import { ZferryError } from '../errors.js';

/** Under a spool: transfers not yet complete (kept across connections for relay resume). */
export const INCOMING_DIR = '.incoming';

export const BUNDLE_DIR_NAME = /^zferry-[A-Za-z0-9_.-]+-[0-9]{8}T[0-9]{6}Z-([0-9a-f]{8})$/;
/** NAME_MAX of the file systems zferry writes to. */
const MAX_NAME = 255;

export function isBundleDirName(name: string): boolean {
  return name.length <= MAX_NAME && BUNDLE_DIR_NAME.test(name);
}

/**
 * Why `name` may not be a spool folder, or null when it may. With the
 * bundle's id, the name must also end with that id's first 8 hex digits, as
 * export names it: two bundles cannot pass for each other by name.
 */
export function bundleNameProblem(name: string, bundleId?: string): string | null {
  if (!isBundleDirName(name)) {
    return `${JSON.stringify(name.slice(0, 300))} is not a zferry bundle folder name (zferry-ROOT-YYYYMMDDTHHMMSSZ-ID8, as zferry export names them)`;
  }
  const suffix = BUNDLE_DIR_NAME.exec(name)![1];
  if (bundleId !== undefined && !bundleId.startsWith(suffix)) {
    return `bundle folder ${name} ends in ${suffix}, but its manifest.json has bundleId ${bundleId}`;
  }
  return null;
}

/** bundleNameProblem as a one-line error naming where the name came from. */
export function checkBundleName(name: string, where: string, bundleId?: string): void {
  const problem = bundleNameProblem(name, bundleId);
  if (problem) throw new ZferryError(`${where}: ${problem}`, { file: name });
}
