/**
 * sha256 of a byte stream, on a worker thread when the stream is large.
 *
 * Import hashes every byte twice (each volume as read, the raw stream as
 * decompressed) and did so on the main thread, between the writes into
 * `zfs recv`: measured on zfs-fuse, 1.07 GiB, those two passes cost 1.2 s
 * of a 5.3 s import while `zfs recv` waited on a 64 KiB pipe. On a worker
 * the same hashing runs beside the pipeline (docs/performance.md, "sha256
 * off the main thread").
 *
 * The bytes are copied (1 MiB at a time, into buffers handed back and forth
 * with the worker), so the caller's chunk is free again as soon as `update`
 * has returned or its promise settled; a copy costs a tenth of hashing the
 * same bytes. Small streams (most of 400 datasets' incrementals) hash on the
 * main thread: a round trip to the worker would cost more than it saves.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** Streams of at least this many bytes (when known beforehand) are hashed on the worker. */
export const OFF_THREAD_MIN_BYTES = 16 << 20;
/** Bytes per message to the worker. */
const SLAB = 1 << 20;
/**
 * Slabs one hash may have out (being filled or at the worker): beyond that
 * its caller waits for one of its own to come back, so a slow worker holds
 * memory flat (4 MiB a hash) and no hash waits on another's.
 */
const SLABS_PER_HASH = 4;
/** Slabs kept for the next hash once one is done. */
const SLABS_KEPT = 12;

export interface StreamHash {
  /**
   * Adds `chunk`. Returns nothing when the bytes were taken at once, or a
   * promise to await before the chunk is reused or the next update is made
   * (the worker is behind).
   */
  update(chunk: Uint8Array): Promise<void> | undefined;
  /** The hex digest of everything added; the hash is finished. */
  digest(): Promise<string>;
  /** Abandons the hash (a stream that failed); harmless after digest. */
  discard(): void;
}

/**
 * A sha256 of about `expectedBytes` bytes: on the worker thread from
 * OFF_THREAD_MIN_BYTES, otherwise on this one. ZFERRY_HASH_THREAD=0 keeps
 * every hash on the main thread, =1 puts every one on the worker (what the
 * tests use to run the built CLI's worker file on small streams).
 *
 * Import's hashes only: export's stay on the main thread, where the measured
 * export was no faster with them on the worker (zstd's two threads and zfs
 * send already keep both cores busy) and the worker's heap and slabs took
 * its peak RSS over 150 MB.
 */
export function streamSha256(expectedBytes: number): StreamHash {
  const setting = process.env.ZFERRY_HASH_THREAD;
  const off = setting === '1' || (setting !== '0' && expectedBytes >= OFF_THREAD_MIN_BYTES);
  return off ? new WorkerHash(hashThread()) : new LocalHash();
}

class LocalHash implements StreamHash {
  private readonly hash: Hash = createHash('sha256');

  update(chunk: Uint8Array): undefined {
    this.hash.update(chunk);
    return undefined;
  }

  digest(): Promise<string> {
    return Promise.resolve(this.hash.digest('hex'));
  }

  discard(): void {}
}

/** Messages to the worker (sha256-worker.ts) and back. */
export type ToWorker = { op: 'update'; id: number; buf: ArrayBuffer; len: number } | { op: 'digest'; id: number } | { op: 'drop'; id: number };
export type FromWorker = { op: 'slab'; id: number; buf: ArrayBuffer } | { op: 'digest'; id: number; hex: string };

/** The one worker of this process: it routes slabs back to their hash and digests to whoever waits. */
class HashThread {
  private readonly worker: Worker;
  /** Slabs no hash owns, for the next one. */
  private readonly free: ArrayBuffer[] = [];
  private readonly hashes = new Map<number, WorkerHash>();
  private readonly digests = new Map<number, { resolve: (hex: string) => void; reject: (e: Error) => void }>();
  /** Slabs at the worker plus digests owed: while any, the worker keeps the process alive. */
  private outstanding = 0;
  private nextId = 1;
  failed: Error | null = null;

  constructor() {
    // Not the parent's node options (--input-type, --cpu-prof…): the worker runs one file.
    this.worker = new Worker(new URL('./sha256-worker.js', import.meta.url), { execArgv: [] });
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => {
      if (--this.outstanding === 0) this.worker.unref();
      if (m.op === 'slab') {
        const h = this.hashes.get(m.id);
        if (h) h.slabBack(m.buf);
        else this.recycle(m.buf);
        return;
      }
      const d = this.digests.get(m.id);
      this.digests.delete(m.id);
      d?.resolve(m.hex);
    });
    this.worker.on('error', (err) => this.fail(new Error(`sha256 worker thread failed: ${err.message}`)));
    this.worker.on('exit', (code) => this.fail(new Error(`sha256 worker thread exited (code ${code})`)));
  }

  register(h: WorkerHash): number {
    const id = this.nextId++;
    this.hashes.set(id, h);
    return id;
  }

  /** A slab for a hash that may have one more. */
  newSlab(): ArrayBuffer {
    return this.free.pop() ?? new ArrayBuffer(SLAB);
  }

  /** A slab no hash owns any more. */
  recycle(buf: ArrayBuffer): void {
    if (this.free.length < SLABS_KEPT) this.free.push(buf);
  }

  send(id: number, buf: ArrayBuffer, len: number): void {
    this.post({ op: 'update', id, buf, len }, [buf]);
  }

  /** Its updates are answered before it (the worker keeps order), so every slab of `id` is back when this settles. */
  digest(id: number): Promise<string> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.digests.set(id, { resolve, reject });
      this.post({ op: 'digest', id });
    });
  }

  /** `id` is done with: its slabs still at the worker come back as free ones. */
  forget(id: number, tellWorker: boolean): void {
    this.hashes.delete(id);
    if (tellWorker && !this.failed) this.worker.postMessage({ op: 'drop', id } satisfies ToWorker);
  }

  private post(m: ToWorker, transfer: ArrayBuffer[] = []): void {
    if (this.outstanding++ === 0) this.worker.ref();
    this.worker.postMessage(m, transfer);
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    if (thread === this) thread = null;
    for (const h of this.hashes.values()) h.threadFailed(err);
    for (const d of this.digests.values()) d.reject(err);
    this.digests.clear();
  }
}

let thread: HashThread | null = null;

function hashThread(): HashThread {
  thread ??= new HashThread();
  return thread;
}

class WorkerHash implements StreamHash {
  private readonly id: number;
  /** Slabs of this hash: how many exist, those back and unused, and a wait for one. */
  private owned = 0;
  private readonly spare: ArrayBuffer[] = [];
  private waiter: { resolve: (b: ArrayBuffer) => void; reject: (e: Error) => void } | null = null;
  /** The slab being filled, and how far. */
  private current: ArrayBuffer | null = null;
  private filled = 0;
  private done = false;

  constructor(private readonly thread: HashThread) {
    this.id = thread.register(this);
  }

  update(chunk: Uint8Array): Promise<void> | undefined {
    if (this.done) throw new Error('sha256: update after digest or discard');
    let at = 0;
    while (at < chunk.length) {
      if (!this.current) {
        const s = this.slab();
        if (s instanceof Promise) return s.then((b) => this.resume(b, chunk, at));
        this.current = s;
        this.filled = 0;
      }
      at = this.fill(chunk, at);
    }
    return undefined;
  }

  /** One of this hash's slabs, back from the worker. */
  slabBack(buf: ArrayBuffer): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) w.resolve(buf);
    else this.spare.push(buf);
  }

  threadFailed(err: Error): void {
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }

  private slab(): ArrayBuffer | Promise<ArrayBuffer> {
    if (this.thread.failed) return Promise.reject(this.thread.failed);
    const b = this.spare.pop();
    if (b) return b;
    if (this.owned < SLABS_PER_HASH) {
      this.owned++;
      return this.thread.newSlab();
    }
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  private resume(slab: ArrayBuffer, chunk: Uint8Array, at: number): Promise<void> | undefined {
    if (this.done) {
      // Discarded while it waited (its stream failed).
      this.thread.recycle(slab);
      return undefined;
    }
    this.current = slab;
    this.filled = 0;
    return this.update(chunk.subarray(at));
  }

  /** Copies what fits from chunk[at..] into the current slab, sends it when full; returns the new offset. */
  private fill(chunk: Uint8Array, at: number): number {
    const n = Math.min(SLAB - this.filled, chunk.length - at);
    new Uint8Array(this.current!, this.filled, n).set(chunk.subarray(at, at + n));
    this.filled += n;
    if (this.filled === SLAB) this.flush();
    return at + n;
  }

  private flush(): void {
    if (this.current && this.filled > 0) this.thread.send(this.id, this.current, this.filled);
    else if (this.current) this.spare.push(this.current);
    this.current = null;
    this.filled = 0;
  }

  async digest(): Promise<string> {
    this.flush();
    this.done = true;
    try {
      return await this.thread.digest(this.id);
    } finally {
      this.letGo(false);
    }
  }

  discard(): void {
    if (this.done) return;
    this.done = true;
    if (this.current) this.spare.push(this.current);
    this.current = null;
    this.letGo(true);
  }

  /** Hands this hash's slabs on to the next one; those still at the worker follow as they come back. */
  private letGo(tellWorker: boolean): void {
    this.thread.forget(this.id, tellWorker);
    for (const b of this.spare.splice(0)) this.thread.recycle(b);
    this.threadFailed(new Error('sha256: hash discarded'));
  }
}
