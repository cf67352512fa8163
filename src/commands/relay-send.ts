/**
 * `zferry relay send`: bundles → one tar stream → mbuffer -O HOST:PORT, and,
 * with a reply port, the receiver's receipt back (see docs/relay.md).
 */
import { basename, dirname, join, resolve } from 'node:path';
import { ZferryError, oneLine } from '../errors.js';
import { stopAndWait, stopOnFailure } from '../subprocess.js';
import { findBundles } from '../bundle/index.js';
import { DEFAULT_IDLE_TIMEOUT_SECONDS, ensureMbuffer, formatEndpoint, ListenError, mbufferIn, mbufferOut, type Endpoint, type MbufferProcess, type MbufferTuning } from '../mbuffer/index.js';
import { RELAY_WIRE_VERSION, SEND_POOL, describeBundles, packBundles, resumeFrom, type PackedBundle, type Resume } from '../relay/pack.js';
import { parseHoldings } from '../relay/holdings.js';
import { BufferPool, drainInto } from '../pipeline/buffer-pool.js';
import { evaluateReply, type RelayReply, type ReplyContext } from '../relay/reply.js';
import { checkBundleName } from '../relay/names.js';
import { putReceipt, receiptFileName, receiptText } from '../state/receipt.js';
import { readReceiptTrust } from '../trust/receipt-signature.js';
import { silentProgress, type Progress } from '../progress.js';

/** Replies are one small JSON object: a small buffer is plenty. */
export const REPLY_TUNING: MbufferTuning = { blockSize: 16 * 1024, memory: 1024 * 1024 };
const MAX_REPLY = 256 * 1024 * 1024;

export interface RelaySendOptions {
  paths: string[];
  to: Endpoint;
  tuning: MbufferTuning;
  /** Where to wait for the receiver's reply; null sends and returns. */
  replyListen: Endpoint | null;
  receiptTimeoutSeconds: number;
  /** Folder the received receipt is written to; default: the folder holding the first bundle. */
  receiptDir?: string;
  /** The push, or a reply connection, on which no block moved for this long is dropped (mbuffer -W); default 300. */
  idleTimeoutSeconds?: number;
  /** minisign public key file of the receiver: only receipts signed by it are accepted. */
  trustReceiver?: string;
  /** Called with one line for each reply that is not accepted; the wait for the real one goes on. */
  onIgnored?: (message: string) => void;
  progress?: Progress;
}

export interface RelaySendResult {
  to: string;
  bundles: Array<{ bundle: string; bundleId: string; bytes: number }>;
  bytes: number;
  seconds: number;
  /** The receiver's answer, when a reply port was given. */
  reply: RelayReply | null;
  /** The receipt file written from the reply (only an accepted receipt is written). */
  receipt: string | null;
  /** Bundle ids the accepted receipt confirms: all the push carried, or none. */
  confirmed: string[];
  /** Replies not accepted while waiting, one line each. */
  ignored: string[];
  /** Bytes of the bundles the receiver already held (relay resume) and were not sent again. */
  resumedBytes: number;
}

/**
 * Relay resume: pushes the header alone (an offer) and waits on the reply
 * port for what the receiver holds of these bundles. A receiver that speaks
 * only wire version 1 refuses the offer in its own log and never answers:
 * the wait ends at the deadline with a line saying so.
 */
/** How long a sender waits for the receiver's holdings before pushing everything (a receiver without --reply-to never answers). */
const HOLDINGS_WAIT_SECONDS = 60;

async function askHoldings(bundles: PackedBundle[], opts: RelaySendOptions, listener: ReplyListener, idle: number, ctx: ReplyContext, ignore: (reason: string) => void): Promise<{ resume: Resume | null; listener: ReplyListener | null }> {
  const to = formatEndpoint(opts.to);
  const at = formatEndpoint(opts.replyListen!);
  const offer = mbufferOut(opts.to, opts.tuning, { watchdogSeconds: idle });
  try {
    await stopOnFailure(offer, drainInto(packBundles(bundles, { phase: 'offer' }), offer.stdin, () => undefined), (err, mbErr) => mbErr ?? err);
    await offer.done;
  } catch (err) {
    await stopAndWait(listener.process);
    throw new ZferryError(`relay to ${to} failed: ${oneLine(err)}`, {});
  }
  // Re-hashing what it kept takes the receiver a disk read; a version-1 receiver never answers, so the wait is bounded by the idle timeout too.
  const waitSeconds = Math.min(opts.receiptTimeoutSeconds, idle, HOLDINGS_WAIT_SECONDS);
  const deadline = Date.now() + waitSeconds * 1000;
  let l: ReplyListener | null = listener;
  for (;;) {
    const got = await oneReply(l, deadline);
    l = null;
    if ('failed' in got && got.cannotListen) {
      throw new ZferryError(`the reply port ${at} cannot be opened (${got.failed}); nothing was pushed`, {});
    }
    if ('failed' in got && got.late) {
      // Not fatal: the push goes whole, in version 1 framing that any receiver reads.
      opts.onIgnored?.(
        `receiver ${to} did not answer the resume offer on ${at} within ${waitSeconds} s (no --reply-to there, or a zferry without relay wire version ${RELAY_WIRE_VERSION}, which logs "this zferry reads zferry-relay version 1"): pushing everything`,
      );
      return { resume: null, listener: null };
    }
    if (!('failed' in got)) {
      let kind = '';
      try {
        kind = (JSON.parse(got.text) as { format?: string })?.format ?? '';
      } catch { /* judged below */ }
      if (kind === 'zferry-relay-have') {
        const h = parseHoldings(got.text, at);
        return { resume: resumeFrom(bundles, h.bundles), listener: null };
      }
      // A receipt before any data was pushed is judged as any other, and never accepted: nothing was applied yet.
      const v = evaluateReply(got.text, at, { ...ctx, now: new Date() });
      if (v.kind === 'refused') throw new ZferryError(`receiver ${to} refused the push: ${v.error}`, {});
      ignore(v.kind === 'ignored' ? v.reason : 'a receipt came before the bundles were pushed');
    } else {
      ignore(got.failed);
    }
    if (Date.now() >= deadline) return { resume: null, listener: null };
    l = listenForReply(opts.replyListen!, idle);
  }
}

/** Collects a listener's whole output, for the reply. */
function collect(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((res, rej) => {
    const parts: Buffer[] = [];
    let n = 0;
    stream.on('data', (c: Buffer) => {
      n += c.length;
      if (n <= MAX_REPLY) parts.push(c);
    });
    stream.on('end', () => res(Buffer.concat(parts).toString('utf8')));
    stream.on('error', rej);
    // The listener's stdout is held paused until read (see holdUntilRead).
    stream.resume();
  });
}

interface ReplyListener {
  process: MbufferProcess;
  /** Everything the one connection sent. */
  text: Promise<string>;
}

/**
 * Listens for one reply connection; its output is collected from the start
 * (execa lets an unread stdout flow a tick after the spawn, and a reply that
 * comes during the push must not be lost). Its watchdog drops a peer that
 * connects and goes quiet.
 */
function listenForReply(on: Endpoint, idleSeconds: number): ReplyListener {
  const mb = mbufferIn(on, REPLY_TUNING, { watchdogSeconds: idleSeconds });
  const text = collect(mb.stdout);
  text.catch(() => undefined);
  return { process: mb, text };
}

/**
 * The text of one reply connection, or why none came; the listener is killed
 * at the deadline. `cannotListen`: mbuffer could not take the port at all.
 */
async function oneReply(l: ReplyListener, deadline: number): Promise<{ text: string } | { failed: string; late: boolean; cannotListen: boolean }> {
  const { process: listener, text } = l;
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    listener.kill();
  }, Math.max(0, deadline - Date.now()));
  try {
    const got = await text;
    await listener.done;
    return { text: got };
  } catch (err) {
    // The stdout of a listener that never bound simply ends: its own error says why.
    const own = await listener.done.then(() => null, (e: unknown) => e);
    return { failed: oneLine(own ?? err), late, cannotListen: own instanceof ListenError };
  } finally {
    clearTimeout(timer);
  }
}

/** Writes the accepted receipt (its exact signed text and signature when signed) into `dir`. */
async function storeReceipt(dir: string, reply: RelayReply, receipt: NonNullable<RelayReply['receipt']>): Promise<string> {
  const file = join(dir, receiptFileName(receipt.target));
  const signed = reply.receiptText !== undefined && reply.receiptSignature !== undefined;
  // Unsigned, an older signature beside it goes: it would vouch for other bytes.
  await putReceipt(file, signed ? reply.receiptText! : receiptText(receipt), signed ? reply.receiptSignature! : null);
  return file;
}

/** Bytes of `bundles` the receiver holds and a push leaves out. */
function resumedBytesOf(bundles: PackedBundle[], resume: Resume | null): number {
  if (!resume) return 0;
  let n = 0;
  for (const b of bundles) {
    const name = basename(b.dir);
    if (resume.held.has(name)) n += b.bytes;
    else for (const x of resume.offsets.get(name)?.values() ?? []) n += x;
  }
  return n;
}

export async function runRelaySend(opts: RelaySendOptions): Promise<RelaySendResult> {
  const progress = opts.progress ?? silentProgress;
  const started = Date.now();
  const idle = opts.idleTimeoutSeconds ?? DEFAULT_IDLE_TIMEOUT_SECONDS;
  await ensureMbuffer();
  const trust = await readReceiptTrust(opts.trustReceiver);
  const dirs: string[] = [];
  for (const p of opts.paths) {
    const found = await findBundles(resolve(p));
    if (found.length === 0) throw new ZferryError(`${p}: no zferry bundle here (no manifest.json in it or its sub-folders)`, { file: p });
    dirs.push(...found.filter((d) => !dirs.includes(d)));
  }
  const bundles = await describeBundles(dirs);
  bundles.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt));
  // The receiver takes export's folder names only; say so here rather than after the push.
  for (const b of bundles) checkBundleName(basename(b.dir), b.dir, b.manifest.bundleId);
  const total = bundles.reduce((n, b) => n + b.bytes, 0);
  const to = formatEndpoint(opts.to);

  // Listening before the first byte goes out: a fast receiver must find the port open.
  let listener = opts.replyListen ? listenForReply(opts.replyListen, idle) : null;
  // With a reply port the receiver can say what it holds from a cut push: only the rest goes.
  let resume: Resume | null = null;
  const ignored: string[] = [];
  const ctx: ReplyContext = {
    pushed: bundles.map((b) => ({ bundleId: b.manifest.bundleId, source: b.manifest.source, inventory: b.manifest.inventory, streams: b.manifest.streams })),
    trust,
    now: new Date(),
  };
  const ignore = (reason: string) => {
    ignored.push(reason);
    opts.onIgnored?.(`reply on ${formatEndpoint(opts.replyListen!)} ignored: ${reason}`);
  };
  if (listener) {
    resume = (await askHoldings(bundles, opts, listener, idle, ctx, ignore)).resume;
    listener = listenForReply(opts.replyListen!, idle);
  }
  const sendTotal = total - resumedBytesOf(bundles, resume);
  let sent = 0;
  progress.begin(`relay → ${to}`, sendTotal, bundles.length);
  progress.stream(`${bundles.length} bundle(s)`, sendTotal);
  const out = mbufferOut(opts.to, opts.tuning, { watchdogSeconds: idle });
  try {
    const pool = new BufferPool(SEND_POOL.count, SEND_POOL.size);
    const pack = packBundles(bundles, {
      onBytes: (n) => {
        sent += n;
        progress.advance(n);
      },
      pool,
      resume,
    });
    // mbuffer's own complaint (refused, reset) explains more than EPIPE does.
    await stopOnFailure(out, drainInto(pack, out.stdin, (chunk) => pool.release(chunk)), (err, mbErr) => mbErr ?? err);
    await out.done;
  } catch (err) {
    if (listener) await stopAndWait(listener.process);
    if (err instanceof ZferryError) throw err;
    throw new ZferryError(`relay to ${to} failed: ${oneLine(err)}`, {});
  } finally {
    progress.endStream();
    progress.end();
  }

  const result: RelaySendResult = {
    to,
    bundles: bundles.map((b) => ({ bundle: b.dir, bundleId: b.manifest.bundleId, bytes: b.bytes })),
    bytes: sent,
    seconds: 0,
    reply: null,
    receipt: null,
    confirmed: [],
    ignored,
    resumedBytes: resumedBytesOf(bundles, resume),
  };
  if (listener && opts.replyListen) {
    const at = formatEndpoint(opts.replyListen);
    const deadline = Date.now() + opts.receiptTimeoutSeconds * 1000;
    // Until the deadline: a reply that is not the receipt of this push is set aside and the port opened again.
    const noReceipt = () => {
      const seen = result.ignored.length > 0 ? ` (${result.ignored.length} repl${result.ignored.length > 1 ? 'ies' : 'y'} ignored, the last: ${result.ignored.at(-1)})` : '';
      return new ZferryError(`bundles sent to ${to}, but no receipt for them arrived on ${at} within ${opts.receiptTimeoutSeconds} s${seen}; they stay pending`, {});
    };
    for (;;) {
      const got = await oneReply(listener, deadline);
      if ('failed' in got && got.late) throw noReceipt();
      if ('failed' in got && got.cannotListen) {
        throw new ZferryError(`bundles sent to ${to}, but the reply port ${at} cannot be opened (${got.failed}); they stay pending`, {});
      }
      const v = 'failed' in got ? { kind: 'ignored' as const, reason: got.failed } : evaluateReply(got.text, at, { ...ctx, now: new Date() });
      if (v.kind === 'refused') {
        result.reply = v.reply;
        throw new ZferryError(`receiver ${to} did not apply the bundles: ${v.error}`, {});
      }
      if (v.kind === 'accepted') {
        result.reply = v.reply;
        result.confirmed = v.confirmed;
        result.receipt = await storeReceipt(opts.receiptDir ?? dirname(bundles[0].dir), v.reply, v.receipt);
        break;
      }
      ignore(v.reason);
      if (Date.now() >= deadline) throw noReceipt();
      // A listener that failed on its own is not reopened in a tight loop.
      if ('failed' in got) await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
      listener = listenForReply(opts.replyListen, idle);
    }
  }
  result.seconds = (Date.now() - started) / 1000;
  return result;
}
