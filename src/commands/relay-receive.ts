/**
 * `zferry relay receive`: mbuffer -I → tar → verified bundles in a spool,
 * optionally imported, with the receipt (or the refusal) sent back to the
 * sender's reply port.
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ZferryError, oneLine } from '../errors.js';
import type { Zfs } from '../zfs/index.js';
import { ensureMbuffer, formatEndpoint, mbufferIn, mbufferOut, type Endpoint, type MbufferTuning } from '../mbuffer/index.js';
import { clearIncoming, unpackInto } from '../relay/unpack.js';
import { makeReply, type RelayReply } from '../relay/reply.js';
import { readReceipt, type TargetState } from '../state/receipt.js';
import { runImport, type ImportResult } from './import.js';
import { REPLY_TUNING } from './relay-send.js';
import { silentProgress, type Progress } from '../progress.js';

export interface RelayReceiveOptions {
  listen: Endpoint;
  spool: string;
  tuning: MbufferTuning;
  /** Import into this dataset after each complete transfer. */
  importTarget: string | null;
  force: boolean;
  /** With importTarget: import --delete (destroy under the target what the source no longer has). */
  deleteAfterImport: boolean;
  replyTo: Endpoint | null;
  /** minisign public key file: unsigned or wrongly signed bundles are refused on arrival (and by the import). */
  trust?: string;
  /** age identity file, for importing bundles exported with --encrypt-to. */
  identity?: string;
  /** One connection, then return; otherwise serve until killed. */
  once: boolean;
  zfs: () => Promise<Zfs>;
  progress?: () => Progress;
  /** One call per finished connection (success or failure). */
  onTransfer?: (t: TransferResult) => void;
}

export interface TransferResult {
  ok: boolean;
  error: string | null;
  bundles: string[];
  bytes: number;
  import: ImportResult | null;
  replied: boolean;
  seconds: number;
}

async function sendReply(to: Endpoint, reply: RelayReply, attempts: number): Promise<boolean> {
  const payload = Buffer.from(JSON.stringify(reply) + '\n');
  for (let i = 1; i <= attempts; i++) {
    const out = mbufferOut(to, REPLY_TUNING, { watchdogSeconds: 60 });
    out.stdin.on('error', () => undefined);
    out.stdin.end(payload);
    try {
      await out.done;
      return true;
    } catch {
      if (i < attempts) await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** i)));
    }
  }
  return false;
}

async function receiveOne(opts: RelayReceiveOptions): Promise<TransferResult> {
  const started = Date.now();
  const result: TransferResult = { ok: false, error: null, bundles: [], bytes: 0, import: null, replied: false, seconds: 0 };
  const progress = opts.progress?.() ?? silentProgress;
  await clearIncoming(opts.spool);
  const mb = mbufferIn(opts.listen, opts.tuning);
  let receipt: TargetState | null = null;
  try {
    let begun = false;
    try {
      const un = await unpackInto(opts.spool, mb.stdout, {
        onHeader: (h) => {
          begun = true;
          progress.begin(`relay ← ${formatEndpoint(opts.listen)}`, h.totalBytes, h.bundles.length);
          progress.stream(`${h.bundles.length} bundle(s)`, h.totalBytes);
        },
        onBytes: (n) => progress.advance(n),
        ...(opts.trust ? { trust: opts.trust } : {}),
      });
      result.bundles = un.bundles;
      result.bytes = un.bytes;
    } catch (err) {
      mb.kill();
      throw err;
    } finally {
      await mb.done.catch(() => undefined);
      if (begun) progress.endStream();
      progress.end();
    }
    if (opts.importTarget !== null) {
      const zfs = await opts.zfs();
      result.import = await runImport(zfs, { path: opts.spool, target: opts.importTarget, dryRun: false, force: opts.force, delete: opts.deleteAfterImport, trust: opts.trust, identity: opts.identity, progress: opts.progress?.() });
      if (result.import.receipt) receipt = await readReceipt(result.import.receipt, opts.spool);
    }
    result.ok = true;
  } catch (err) {
    result.error = oneLine(err);
  }
  if (opts.replyTo !== null && (opts.importTarget !== null || !result.ok)) {
    result.replied = await sendReply(opts.replyTo, makeReply(receipt, result.error), result.ok ? 5 : 2);
  }
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

/** Serves transfers; with `once`, returns the one transfer's result (throws when it failed). */
export async function runRelayReceive(opts: RelayReceiveOptions): Promise<TransferResult> {
  if (opts.deleteAfterImport && opts.importTarget === null) {
    throw new ZferryError('relay receive --delete needs --import TARGET', {}, 2);
  }
  await ensureMbuffer();
  const spool = resolve(opts.spool);
  await mkdir(spool, { recursive: true });
  const o = { ...opts, spool };
  for (;;) {
    const t = await receiveOne(o);
    opts.onTransfer?.(t);
    if (opts.once) {
      if (!t.ok) throw new ZferryError(t.error ?? 'relay receive failed', {});
      return t;
    }
  }
}
