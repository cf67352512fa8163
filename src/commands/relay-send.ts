/**
 * `zferry relay send`: bundles → one tar stream → mbuffer -O HOST:PORT, and,
 * with a reply port, the receiver's receipt back (see docs/relay.md).
 */
import { dirname, join, resolve } from 'node:path';
import { ZferryError, oneLine } from '../errors.js';
import { findBundles } from '../bundle/index.js';
import { ensureMbuffer, formatEndpoint, mbufferIn, mbufferOut, type Endpoint, type MbufferTuning } from '../mbuffer/index.js';
import { SEND_POOL, describeBundles, packBundles } from '../relay/pack.js';
import { BufferPool, drainInto } from '../pipeline/buffer-pool.js';
import { parseReply, type RelayReply } from '../relay/reply.js';
import { receiptFileName, writeStateAtomic } from '../state/receipt.js';
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
  progress?: Progress;
}

export interface RelaySendResult {
  to: string;
  bundles: Array<{ bundle: string; bundleId: string; bytes: number }>;
  bytes: number;
  seconds: number;
  /** The receiver's answer, when a reply port was given. */
  reply: RelayReply | null;
  /** The receipt file written from the reply. */
  receipt: string | null;
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

export async function runRelaySend(opts: RelaySendOptions): Promise<RelaySendResult> {
  const progress = opts.progress ?? silentProgress;
  const started = Date.now();
  await ensureMbuffer();
  const dirs: string[] = [];
  for (const p of opts.paths) {
    const found = await findBundles(resolve(p));
    if (found.length === 0) throw new ZferryError(`${p}: no zferry bundle here (no manifest.json in it or its sub-folders)`, { file: p });
    dirs.push(...found.filter((d) => !dirs.includes(d)));
  }
  const bundles = await describeBundles(dirs);
  bundles.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt));
  const total = bundles.reduce((n, b) => n + b.bytes, 0);
  const to = formatEndpoint(opts.to);

  // Listening before the first byte goes out: a fast receiver must find the port open.
  const listener = opts.replyListen ? mbufferIn(opts.replyListen, REPLY_TUNING) : null;
  const replyText = listener ? collect(listener.stdout) : null;
  replyText?.catch(() => undefined);
  let sent = 0;
  progress.begin(`relay → ${to}`, total, bundles.length);
  progress.stream(`${bundles.length} bundle(s)`, total);
  const out = mbufferOut(opts.to, opts.tuning);
  try {
    const pool = new BufferPool(SEND_POOL.count, SEND_POOL.size);
    const pack = packBundles(bundles, {
      onBytes: (n) => {
        sent += n;
        progress.advance(n);
      },
      pool,
    });
    try {
      await drainInto(pack, out.stdin, (chunk) => pool.release(chunk));
    } catch (err) {
      out.kill();
      // mbuffer's own complaint (refused, reset) explains more than EPIPE does.
      await out.done;
      throw err;
    }
    await out.done;
  } catch (err) {
    listener?.kill();
    await listener?.done.catch(() => undefined);
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
  };
  if (listener && replyText && opts.replyListen) {
    const at = formatEndpoint(opts.replyListen);
    const timer = setTimeout(() => listener.kill(), opts.receiptTimeoutSeconds * 1000);
    let text: string;
    try {
      text = await replyText;
      await listener.done;
    } catch (err) {
      throw new ZferryError(`bundles sent to ${to}, but no receipt arrived on ${at} within ${opts.receiptTimeoutSeconds} s (${oneLine(err)}); they stay pending`, {});
    } finally {
      clearTimeout(timer);
    }
    if (text.trim() === '') {
      throw new ZferryError(`bundles sent to ${to}, but no receipt arrived on ${at} within ${opts.receiptTimeoutSeconds} s; they stay pending`, {});
    }
    const reply = parseReply(text, to);
    result.reply = reply;
    if (!reply.ok || reply.receipt === null) {
      throw new ZferryError(`receiver ${to} did not apply the bundles: ${reply.error}`, {});
    }
    const dir = opts.receiptDir ?? dirname(bundles[0].dir);
    result.receipt = join(dir, receiptFileName(reply.receipt.target));
    await writeStateAtomic(result.receipt, reply.receipt);
  }
  result.seconds = (Date.now() - started) / 1000;
  return result;
}
