/**
 * The receipt's way back: after an import the receiver connects to the
 * sender's reply port and sends one JSON object, either the receipt import
 * wrote or the reason there is none. A receiver that signs (relay receive
 * --sign) adds the receipt file's exact text and its minisign signature, so
 * the sender checks the very bytes that were signed; `receipt` stays for
 * senders that predate signing.
 */
import { ZferryError, oneLine } from '../errors.js';
import { parseState, type TargetState } from '../state/receipt.js';
import { judgeReceipt, type PushedBundle } from '../plan/receipt.js';
import type { PublicKey } from '../trust/minisign.js';
import { checkReceiptSignature } from '../trust/receipt-signature.js';

export interface RelayReply {
  format: 'zferry-relay-reply';
  formatVersion: 1;
  ok: boolean;
  /** The receipt import wrote (ok) — what the target holds now. */
  receipt: TargetState | null;
  /** Why nothing was applied (not ok). */
  error: string | null;
  /** The receipt file's exact text, when signed. */
  receiptText?: string;
  /** minisign signature of receiptText (the file `receipt-T.json.minisig`), when signed. */
  receiptSignature?: string;
}

export interface SignedReceipt {
  text: string;
  signature: string;
}

export function makeReply(receipt: TargetState | null, error: string | null, signed?: SignedReceipt): RelayReply {
  return {
    format: 'zferry-relay-reply', formatVersion: 1, ok: error === null, receipt, error,
    ...(signed ? { receiptText: signed.text, receiptSignature: signed.signature } : {}),
  };
}

/**
 * Parses a reply; the receipt inside is validated against the state schema.
 * With receiptText, that text is the receipt (the `receipt` object is only
 * its copy for older senders).
 */
export function parseReply(text: string, from: string): RelayReply {
  let data: Partial<RelayReply>;
  try {
    data = JSON.parse(text) as Partial<RelayReply>;
  } catch {
    throw new ZferryError(`reply from ${from}: not JSON (${text.length} bytes)`, {});
  }
  if (data?.format !== 'zferry-relay-reply' || data.formatVersion !== 1 || typeof data.ok !== 'boolean') {
    throw new ZferryError(`reply from ${from}: not a zferry-relay-reply version 1`, { field: '/format' });
  }
  if (!data.ok) return makeReply(null, typeof data.error === 'string' ? data.error : 'unknown error');
  const signedText = typeof data.receiptText === 'string' ? data.receiptText : null;
  const signature = typeof data.receiptSignature === 'string' ? data.receiptSignature : null;
  if ((signedText === null) !== (signature === null)) {
    throw new ZferryError(`reply from ${from}: has ${signedText === null ? 'receiptSignature without receiptText' : 'receiptText without receiptSignature'}`, { field: '/receiptSignature' });
  }
  const receipt = parseState(signedText ?? JSON.stringify(data.receipt ?? null), `receipt in the reply from ${from}`);
  return makeReply(receipt, null, signedText !== null ? { text: signedText, signature: signature! } : undefined);
}

/** What a sender makes of one reply that reached its reply port. */
export type ReplyVerdict =
  | { kind: 'accepted'; reply: RelayReply; receipt: TargetState; confirmed: string[] }
  /** The receiver says it applied nothing: the bundles stay pending. */
  | { kind: 'refused'; reply: RelayReply; error: string }
  /** Not an answer to this push (forged, replayed, unsigned where a signature is required, garbled): the wait goes on. */
  | { kind: 'ignored'; reason: string };

export interface ReplyContext {
  /** The bundles this push carried. */
  pushed: readonly PushedBundle[];
  /** relay send --trust-receiver: the receiver's public key and its file. */
  trust: { key: PublicKey; file: string } | null;
  now: Date;
}

export function evaluateReply(text: string, from: string, ctx: ReplyContext): ReplyVerdict {
  let reply: RelayReply;
  try {
    if (text.trim() === '') return { kind: 'ignored', reason: `a connection on ${from} sent nothing` };
    reply = parseReply(text, from);
  } catch (err) {
    return { kind: 'ignored', reason: oneLine(err) };
  }
  if (!reply.ok || reply.receipt === null) return { kind: 'refused', reply, error: reply.error ?? 'no receipt' };
  if (ctx.trust) {
    try {
      checkReceiptSignature(reply.receiptText, reply.receiptSignature, ctx.trust.key, ctx.trust.file, from);
    } catch (err) {
      return { kind: 'ignored', reason: oneLine(err) };
    }
  }
  const v = judgeReceipt(reply.receipt, ctx.pushed, ctx.now);
  if (!v.ok) return { kind: 'ignored', reason: `receipt from ${from} is not about this push: ${v.reason}` };
  return { kind: 'accepted', reply, receipt: reply.receipt, confirmed: v.confirmed };
}
