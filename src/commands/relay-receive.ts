/**
 * `zferry relay receive`: mbuffer -I → tar → verified bundles in a spool,
 * optionally imported, with the receipt (or the refusal) sent back to the
 * sender's reply port.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ZferryError, oneLine } from '../errors.js';
import { stopAndWait } from '../subprocess.js';
import type { Zfs } from '../zfs/index.js';
import { DEFAULT_IDLE_TIMEOUT_SECONDS, ensureMbuffer, formatEndpoint, ListenError, mbufferIn, mbufferOut, type Endpoint, type MbufferTuning } from '../mbuffer/index.js';
import { unpackInto, type UnpackResult } from '../relay/unpack.js';
import { readHoldings, type Holdings, type HoldingsMessage } from '../relay/holdings.js';
import { makeReply, type RelayReply, type SignedReceipt } from '../relay/reply.js';
import { checkSpoolServes, parseSourceId, servedSource } from '../relay/source.js';
import { removeSpoolBundles } from '../relay/spool.js';
import { MAX_STATE_BYTES, parseState, putReceiptSignature, readReceipt, type TargetState } from '../state/receipt.js';
import { readRegular } from '../fs/safe.js';
import { readSecretKey, type SecretKey } from '../trust/minisign.js';
import { signReceipt } from '../trust/receipt-signature.js';
import { checkParents, type MaxDelete } from '../plan/index.js';
import { runImport, SOURCE_PROPERTY, topmostMissing, type ImportResult } from './import.js';
import { acquireLock, spoolLockFile } from '../state/lock.js';
import { REPLY_TUNING } from './relay-send.js';
import { silentProgress, type Progress } from '../progress.js';

/** Pauses before listening again after mbuffer could not take the port; then the receiver gives up with that error. */
const LISTEN_RETRY_SECONDS = [1, 2, 4];

/** Attempts to deliver a receipt; the sender listens from before its push until its receipt timeout. */
const REPLY_ATTEMPTS = 5;

export interface RelayReceiveOptions {
  listen: Endpoint;
  spool: string;
  tuning: MbufferTuning;
  /** Import into this dataset after each complete transfer. */
  importTarget: string | null;
  force: boolean;
  /** With importTarget: import --delete (destroy under the target what the source no longer has). */
  deleteAfterImport: boolean;
  /** With importTarget: create the target's missing parent datasets (import --create-parents). */
  createParents?: boolean;
  /** With deleteAfterImport: the deletion guard's limits (import --max-delete). */
  maxDelete?: MaxDelete;
  /** --delete-after, as for import. */
  deleteAfterSeconds?: number;
  replyTo: Endpoint | null;
  /** The source the spool serves (`poolGuid:root`); without it, the import target's zferry:source mark. */
  source?: string | null;
  /** A connection on which no block moved for this long is dropped (mbuffer -W); default 300. */
  idleTimeoutSeconds?: number;
  /** minisign secret key file (zferry keygen): the receipt is signed, receipt-T.json.minisig, and the signature travels in the reply. */
  sign?: string;
  /** minisign public key file: unsigned or wrongly signed bundles are refused on arrival (and by the import). */
  trust?: string;
  /** With importTarget and no trust: import unsigned bundles anyway (never with deleteAfterImport). */
  allowUnsigned?: boolean;
  /** Seconds to wait for the spool's lock at start, and for the target's lock at each import; Infinity: as long as it takes; absent: refuse at once. */
  wait?: number;
  /** One line for a person: a stale lock taken over, a wait begun. */
  notice?: (line: string) => void;
  /** age identity file, for importing bundles exported with --encrypt-to. */
  identity?: string;
  /** One connection, then return; otherwise serve until killed. */
  once: boolean;
  zfs: () => Promise<Zfs>;
  progress?: () => Progress;
  /**
   * One call per finished connection (success or failure), awaited before the
   * next: a throw (the CLI's reader went away) stops the receiver between transfers.
   */
  onTransfer?: (t: TransferResult) => void | Promise<void>;
}

export interface TransferResult {
  ok: boolean;
  error: string | null;
  bundles: string[];
  bytes: number;
  import: ImportResult | null;
  replied: boolean;
  /** Why a reply that was due did not reach the sender; null when it did or none was due. */
  replyError: string | null;
  /** Relay resume: bytes this spool already held of the bundles and was not sent again. */
  resumedBytes: number;
  /** Kept parts discarded because they did not match (one line each); they were fetched again. */
  discarded: string[];
  /**
   * Spool folders removed once the receipt reached the sender: bundles the
   * target already held whole before this transfer, and superseded ones.
   * Those applied by this transfer go the round after, when the sender has
   * stored their receipt.
   */
  pruned: string[];
  seconds: number;
}

async function sendReply(to: Endpoint, reply: RelayReply | HoldingsMessage, attempts: number, idleSeconds: number): Promise<string | null> {
  const payload = Buffer.from(JSON.stringify(reply) + '\n');
  let last = '';
  for (let i = 1; i <= attempts; i++) {
    const out = mbufferOut(to, REPLY_TUNING, { watchdogSeconds: idleSeconds });
    out.stdin.on('error', () => undefined);
    out.stdin.end(payload);
    try {
      await out.done;
      return null;
    } catch (err) {
      last = oneLine(err);
      if (i < attempts) await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** i)));
    }
  }
  return `not delivered to ${formatEndpoint(to)} after ${attempts} attempts (${last})`;
}

/** Signs the receipt file import just wrote: `receipt-T.json.minisig` beside it; the same text and signature go in the reply. */
async function signReceiptFile(file: string, sk: SecretKey): Promise<{ state: TargetState; signed: SignedReceipt }> {
  // The exact bytes import wrote are what is signed: read them as any spool file is read.
  const text = (await readRegular(file, { within: dirname(file), maxBytes: MAX_STATE_BYTES, what: 'receipt' })).toString('utf8');
  const state = parseState(text, file);
  const signature = signReceipt(text, sk, state);
  await putReceiptSignature(file, signature);
  return { state, signed: { text, signature } };
}

interface Served {
  source: string;
  secretKey: SecretKey | null;
  idleSeconds: number;
}

async function receiveOne(opts: RelayReceiveOptions, served: Served): Promise<TransferResult> {
  const started = Date.now();
  const result: TransferResult = { ok: false, error: null, bundles: [], bytes: 0, import: null, replied: false, replyError: null, resumedBytes: 0, discarded: [], pruned: [], seconds: 0 };
  const progress = opts.progress?.() ?? silentProgress;
  // .incoming is kept: an offer's holdings clear what no sender offers any more.
  let mb = mbufferIn(opts.listen, opts.tuning, { watchdogSeconds: served.idleSeconds });
  let holdings: Holdings | null = null;
  let receipt: TargetState | null = null;
  let signed: SignedReceipt | undefined;
  // A sender waits for a reply only once it sent a header: a peer that said nothing gets none.
  let begun = false;
  try {
    try {
      let un: UnpackResult;
      // A version-2 sender first offers (the header alone) and waits for what this spool holds; the data push follows on a new connection.
      for (;;) {
        un = await unpackInto(opts.spool, mb.stdout, {
          source: served.source,
          holdings,
          onHeader: (h) => {
            begun = true;
            progress.begin(`relay ← ${formatEndpoint(opts.listen)}`, h.totalBytes, h.bundles.length);
            progress.stream(`${h.bundles.length} bundle(s)`, h.totalBytes);
          },
          onBytes: (n) => progress.advance(n),
          ...(opts.trust ? { trust: opts.trust } : {}),
        });
        if (!un.offer) break;
        await mb.done.catch(() => undefined);
        holdings = await readHoldings(opts.spool, un.offer);
        result.discarded.push(...holdings.discarded);
        result.resumedBytes = holdings.message.bundles.reduce((n, b) => n + Object.values(b.files).reduce((a, x) => a + x, 0), 0);
        // Listening before answering: the sender pushes the moment it has the answer.
        mb = mbufferIn(opts.listen, opts.tuning, { watchdogSeconds: served.idleSeconds });
        if (opts.replyTo !== null) {
          const err = await sendReply(opts.replyTo, holdings.message, 2, served.idleSeconds);
          if (err !== null) throw new ZferryError(`the holdings for a resumed push were ${err}`, {});
        }
      }
      result.bundles = un.bundles;
      result.bytes = un.bytes;
    } catch (err) {
      // An idle peer's cut, or a port that could not be taken, says more as mbuffer's own line than as a short tar stream.
      const mbErr = await stopAndWait(mb);
      throw mbErr && (mbErr instanceof ListenError || /idle timeout/.test(oneLine(mbErr))) ? mbErr : err;
    } finally {
      await mb.done.catch(() => undefined);
      if (begun) progress.endStream();
      progress.end();
    }
    if (opts.importTarget !== null) {
      // Refuse a poisoned spool by name, rather than fail inside import on every transfer.
      await checkSpoolServes(opts.spool, served.source);
      const zfs = await opts.zfs();
      result.import = await runImport(zfs, {
        path: opts.spool, target: opts.importTarget, dryRun: false, force: opts.force, delete: opts.deleteAfterImport, createParents: opts.createParents ?? false,
        ...(opts.maxDelete ? { maxDelete: opts.maxDelete } : {}), ...(opts.deleteAfterSeconds !== undefined ? { deleteAfterSeconds: opts.deleteAfterSeconds } : {}),
        trust: opts.trust, identity: opts.identity, progress: opts.progress?.(), notice: opts.notice, ...(opts.wait !== undefined ? { wait: opts.wait } : {}),
      });
      const file = result.import.receipt;
      if (file === null) {
        throw new ZferryError(`import into ${opts.importTarget} applied no bundle and wrote no receipt${result.import.deferred.length > 0 ? `: ${result.import.deferred[0].message}` : ''}`, { dataset: opts.importTarget });
      }
      if (served.secretKey) ({ state: receipt, signed } = await signReceiptFile(file, served.secretKey));
      else receipt = await readReceipt(file, opts.spool);
    }
    result.ok = true;
  } catch (err) {
    // No transfer began: the caller decides whether to listen again.
    if (err instanceof ListenError) throw err;
    result.error = oneLine(err);
  }
  if (opts.replyTo !== null && begun && (opts.importTarget !== null || !result.ok)) {
    result.replyError = await sendReply(opts.replyTo, makeReply(receipt, result.error, signed), result.ok ? REPLY_ATTEMPTS : 2, served.idleSeconds);
    result.replied = result.replyError === null;
  }
  // The spool would otherwise keep every bundle ever pushed, and each import would read them all again.
  if (result.ok && result.replied && result.import) result.pruned = await pruneDone(opts.spool, result.import);
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

/**
 * Removes from the spool the bundles an import found already on the target
 * whole, or superseded: nothing in them is still to be received.
 */
export async function pruneDone(spool: string, imported: Pick<ImportResult, 'bundles' | 'superseded'>): Promise<string[]> {
  const done = [...imported.bundles.filter((b) => b.status === 'already-applied'), ...imported.superseded];
  return removeSpoolBundles(spool, done.map((b) => ({ dir: b.bundle, bundleId: b.bundleId })));
}

/** Which source this spool serves, and the facts of serving it, checked before the first connection. */
async function prepare(opts: RelayReceiveOptions, spool: string): Promise<Served> {
  const flag = opts.source ? parseSourceId(opts.source, '--source') : null;
  let marked: string | null = null;
  if (opts.importTarget !== null) {
    const zfs = await opts.zfs();
    const exists = await zfs.exists(opts.importTarget);
    // Nowhere to receive into: refused before the first connection, not after a transfer's bytes arrived.
    const parents = checkParents({ target: opts.importTarget, missingAncestor: exists ? null : await topmostMissing(zfs, opts.importTarget) }, opts.createParents ?? false);
    if ('refusal' in parents) throw new ZferryError(parents.refusal.message, { dataset: parents.refusal.dataset });
    const mark = exists ? await zfs.getProperty(opts.importTarget, SOURCE_PROPERTY) : null;
    marked = mark === null ? null : parseSourceId(mark, `${opts.importTarget} property ${SOURCE_PROPERTY}`);
  }
  const source = servedSource({ flag, marked, target: opts.importTarget, force: opts.force });
  await checkSpoolServes(spool, source);
  return {
    source,
    secretKey: opts.sign ? await readSecretKey(opts.sign) : null,
    idleSeconds: opts.idleTimeoutSeconds ?? DEFAULT_IDLE_TIMEOUT_SECONDS,
  };
}

/**
 * Serves transfers; with `once`, returns the one transfer's result (throws
 * when it failed, or when its receipt was due to the sender and did not
 * reach it).
 */
export async function runRelayReceive(opts: RelayReceiveOptions): Promise<TransferResult> {
  if (opts.deleteAfterImport && opts.importTarget === null) {
    throw new ZferryError('relay receive --delete needs --import TARGET', {}, 2);
  }
  if (opts.sign && opts.importTarget === null) {
    throw new ZferryError('relay receive --sign signs the receipt of an import: it needs --import TARGET', {}, 2);
  }
  checkTrustOptions(opts);
  await ensureMbuffer();
  const spool = resolve(opts.spool);
  await mkdir(spool, { recursive: true });
  // One receiver per spool, and never beside a relay round on the same folder.
  const lock = await acquireLock(spoolLockFile(spool), {
    what: `a relay receiver on ${spool}`, notice: opts.notice, ...(opts.wait !== undefined ? { waitSeconds: opts.wait } : {}),
  });
  try {
    const o = { ...opts, spool };
    const served = await prepare(o, spool);
    let listenFailures = 0;
    for (;;) {
      let t: TransferResult;
      try {
        t = await receiveOne(o, served);
      } catch (err) {
        // A port held by another process is not a transfer that failed: never spin on it.
        // A receiver restarted at once may find its predecessor's mbuffer still exiting, so a few tries.
        if (!(err instanceof ListenError) || listenFailures >= LISTEN_RETRY_SECONDS.length) throw err;
        const wait = LISTEN_RETRY_SECONDS[listenFailures++];
        opts.notice?.(`${oneLine(err)}; listening again in ${wait} s`);
        await new Promise((r) => setTimeout(r, wait * 1000));
        continue;
      }
      listenFailures = 0;
      await opts.onTransfer?.(t);
      if (opts.once) {
        if (!t.ok) throw new ZferryError(t.error ?? 'relay receive failed', {});
        if (t.replyError !== null) {
          throw new ZferryError(`imported into ${opts.importTarget}${t.import?.receipt ? ` (receipt ${t.import.receipt})` : ''}, but the receipt was ${t.replyError}: the sender keeps the bundles pending and pushes them again`, {});
        }
        return t;
      }
    }
  } finally {
    await lock.release();
  }
}

/**
 * Anyone who can reach the port can push a bundle, and the source's identity
 * travels in the clear: an import takes only signed bundles unless the user
 * says --allow-unsigned, and a --delete (a manifest's word destroys data on
 * the target) takes only signed bundles, whatever else is said.
 */
function checkTrustOptions(opts: RelayReceiveOptions): void {
  if (opts.trust && opts.allowUnsigned) {
    throw new ZferryError('relay receive: --trust and --allow-unsigned contradict each other; give one', {}, 2);
  }
  if (opts.deleteAfterImport && !opts.trust) {
    throw new ZferryError(
      'relay receive --import --delete needs --trust KEY.pub (the source\'s zferry keygen public key; the source exports with --sign or "sign"): a forged manifest must never decide what is destroyed, so --allow-unsigned does not lift this',
      {}, 2,
    );
  }
  if (opts.importTarget !== null && !opts.trust && !opts.allowUnsigned) {
    throw new ZferryError(
      'relay receive --import needs --trust KEY.pub (the source\'s zferry keygen public key; the source exports with --sign or "sign"), or --allow-unsigned to import bundles anyone who reaches the port can push',
      {}, 2,
    );
  }
}
