/**
 * The receipt's way back: after an import the receiver connects to the
 * sender's reply port and sends one JSON object, either the receipt import
 * wrote or the reason there is none.
 */
import { ZferryError } from '../errors.js';
import { parseState, type TargetState } from '../state/receipt.js';

export interface RelayReply {
  format: 'zferry-relay-reply';
  formatVersion: 1;
  ok: boolean;
  /** The receipt import wrote (ok) — what the target holds now. */
  receipt: TargetState | null;
  /** Why nothing was applied (not ok). */
  error: string | null;
}

export function makeReply(receipt: TargetState | null, error: string | null): RelayReply {
  return { format: 'zferry-relay-reply', formatVersion: 1, ok: error === null, receipt, error };
}

/** Parses a reply; the receipt inside is validated against the state schema. */
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
  const receipt = parseState(JSON.stringify(data.receipt ?? null), `receipt in the reply from ${from}`);
  return makeReply(receipt, null);
}
