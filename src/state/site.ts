/**
 * Sites: one source may feed several targets (an office and a vault), each
 * with its own journal, its own hold tag and its own bookmarks, so one site's
 * receipt never releases another site's incremental base.
 *
 * The default site keeps the names zferry used before sites existed (hold
 * `zferry`, bookmark `#zferry-<guid>`, journal without a suffix). A guid is
 * digits only, so `zferry-<digits>` (default) and `zferry-<site>-<digits>`
 * (a named site, which starts with a letter) never match each other's
 * patterns, whatever the site's name.
 */
import { ZferryError } from '../errors.js';

export const DEFAULT_SITE = 'default';
/** Starts with a letter (never all digits, never a guid); safe in a hold tag, a bookmark and a file name. */
export const SITE_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/;

/** The site named on the command line or in a config (`default` or absent: the default site). */
export function checkSite(name: string | undefined, field = '--site'): string {
  if (name === undefined) return DEFAULT_SITE;
  if (!SITE_NAME.test(name)) {
    throw new ZferryError(`${field}: site name ${JSON.stringify(name)} must start with a letter and hold only letters, digits, _ . - (at most 32)`, { field });
  }
  return name;
}

export function isDefaultSite(site: string): boolean {
  return site === DEFAULT_SITE;
}

/** `zfs hold` tag that keeps this site's incremental base. */
export function holdTag(site: string): string {
  return isDefaultSite(site) ? 'zferry' : `zferry-${site}`;
}

/** Bookmark (the part after `#`) that keeps this site's incremental base. */
export function bookmarkName(site: string, guid: string): string {
  return isDefaultSite(site) ? `zferry-${guid}` : `zferry-${site}-${guid}`;
}

/** Whether a bookmark (the part after `#`) is one of this site's protections, and no other site's. */
export function isSiteBookmark(site: string, name: string): boolean {
  const prefix = isDefaultSite(site) ? 'zferry-' : `zferry-${site}-`;
  return name.startsWith(prefix) && /^[0-9]+$/.test(name.slice(prefix.length));
}

/** The site a manifest, journal or receipt speaks of: absent means the default site (everything written before sites). */
export function siteOf(x: { site?: string } | null | undefined): string {
  return x?.site ?? DEFAULT_SITE;
}

/** The `site` field to write: only for a named site, so files of the default site stay as readable by older zferry as before. */
export function siteField(site: string): { site?: string } {
  return isDefaultSite(site) ? {} : { site };
}
