/**
 * Receipts signed by the receiver (`relay receive --sign KEY`), checked by the
 * sender (`relay send --trust-receiver KEY.pub`, relay config `trustReceiver`).
 * The signature is minisign's, over the receipt file's exact bytes, kept
 * beside it as `receipt-T.json.minisig`: readers that know nothing of it
 * read the receipt as before, and `minisign -Vm receipt-T.json -p KEY.pub`
 * checks it without zferry.
 */
import { ZferryError } from '../errors.js';
import type { TargetState } from '../state/receipt.js';
import { checkSignature, readPublicKey, signatureText, type PublicKey, type SecretKey } from './minisign.js';

export const RECEIPT_SIGNATURE_SUFFIX = '.minisig';

/** The public key receipts must be signed with (--trust-receiver), and its file for messages. */
export interface ReceiptTrust {
  key: PublicKey;
  file: string;
}

/** The key of --trust-receiver FILE, or null without one. */
export async function readReceiptTrust(file: string | undefined): Promise<ReceiptTrust | null> {
  return file ? { key: await readPublicKey(file), file } : null;
}

export function signReceipt(text: string, sk: SecretKey, state: TargetState): string {
  return signatureText(Buffer.from(text, 'utf8'), sk, `zferry receipt target ${state.target} taken ${state.takenAt} bundles ${state.bundles.length}`);
}

/** Throws one line naming the reply when `signature` is missing or not by `pk` over `text`. */
export function checkReceiptSignature(text: string | undefined, signature: string | undefined, pk: PublicKey, pubFile: string, from: string): void {
  if (text === undefined || signature === undefined) {
    throw new ZferryError(`receipt from ${from} is not signed, and --trust-receiver ${pubFile} accepts only receipts signed by that key`, { file: pubFile });
  }
  checkSignature(Buffer.from(text, 'utf8'), signature, pk, `receipt signature from ${from}`, pubFile, 'the receipt');
}
