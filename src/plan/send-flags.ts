/**
 * Which `zfs send` options a dataset's streams use. Pure: the dataset's
 * inventory entry and what the sending zfs can do in, option names out.
 *
 * - A natively encrypted dataset is always sent raw (-w): its blocks travel
 *   as they are on disk, still encrypted, and the target needs no key. -w
 *   implies -L -e -c, so nothing else is added.
 * - Otherwise blocks travel as stored: compressed (-c), large blocks kept
 *   large (-L), embedded-data blocks kept embedded (-e), each where the
 *   sending zfs supports it.
 * - Properties travel (-p) only where the receiving side can keep them off
 *   its own paths (recv -x mountpoint, -o canmount=noauto). Export runs on
 *   the source and asks the source's zfs: a zfs old enough to lack recv -x
 *   lacks the other new flags too, so this is the source's best guess of its
 *   peer, and import compensates where the guess is wrong.
 */
import type { Dataset, Inventory, SendStep } from '../model.js';
import { joinDataset } from '../model.js';
import { ZferryError } from '../errors.js';

export type SendOption = 'props' | 'compressed' | 'raw' | 'largeBlocks' | 'embedded';

export interface SendFeatures {
  send: Record<SendOption, boolean>;
  recvPropertyOverride: boolean;
}

export function sendOptionsFor(ds: Dataset, root: string, features: SendFeatures): SendOption[] {
  const props: SendOption[] = features.send.props && features.recvPropertyOverride ? ['props'] : [];
  if (ds.encrypted) {
    if (!features.send.raw) {
      throw new ZferryError(`${root}${ds.path ? '/' + ds.path : ''} is encrypted but this zfs cannot send raw (-w)`, { dataset: ds.path });
    }
    return [...props, 'raw'];
  }
  const asStored: SendOption[] = (['compressed', 'largeBlocks', 'embedded'] as const).filter((o) => features.send[o]);
  return [...props, ...asStored];
}

const LETTER: Record<SendOption, string> = { props: '-p', compressed: '-c', raw: '-w', largeBlocks: '-L', embedded: '-e' };

/** The options as zfs send spells them, as recorded in a manifest's sendFlags. */
export function sendOptionLetters(options: SendOption[]): string[] {
  return options.map((o) => LETTER[o]);
}

/** A manifest's sendFlags for a step sent with `options`: letters on disk, for people and stock tools. */
export function sendFlagsOf(options: SendOption[], step: Pick<SendStep, 'kind' | 'intermediates'>): string[] {
  return [...sendOptionLetters(options), ...(step.kind === 'full' ? [] : [step.intermediates ? '-I' : '-i'])];
}

/** A manifest's sendFlags read back as data; letters zferry does not write are ignored. */
export function sendOptionsOf(sendFlags: readonly string[]): SendOption[] {
  return (Object.keys(LETTER) as SendOption[]).filter((o) => sendFlags.includes(LETTER[o]));
}

/**
 * A dataset sent raw must be received raw ever after, and a plain one plain:
 * zfs refuses an incremental that switches. Where both sides say whether the
 * dataset is encrypted and they differ, the first such dataset is returned.
 */
export function checkEncryptionMatch(source: Inventory, target: Inventory | null): { dataset: string; message: string } | null {
  if (!target) return null;
  const onTarget = new Map(target.datasets.map((d) => [d.path, d]));
  for (const s of source.datasets) {
    const t = onTarget.get(s.path);
    if (!t || s.encrypted === undefined || t.encrypted === undefined || s.encrypted === t.encrypted) continue;
    const src = joinDataset(source.root, s.path);
    const dst = joinDataset(target.root, s.path);
    const message = s.encrypted
      ? `${src} is encrypted and is sent raw (-w), but ${dst} on the target was received unencrypted: mixing raw and non-raw sends of one dataset is refused; destroy ${dst} on the target to re-seed it raw`
      : `${src} is not encrypted, but ${dst} on the target is (received raw): mixing raw and non-raw sends of one dataset is refused; destroy ${dst} on the target to re-seed it`;
    return { dataset: s.path, message };
  }
  return null;
}
