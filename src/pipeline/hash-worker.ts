/**
 * sha256 on a worker thread, so hashing a stream overlaps whatever the main
 * thread does with it (decompression, piping to zfs recv). Chunks are copied
 * into a ring buffer shared with the worker (no message per chunk: a
 * postMessage per MiB measured a tenth of the main thread's time); when the
 * ring is full, update() returns a promise that resolves once the worker has
 * made room, so memory stays at the ring's size however fast the producer is.
 */
import { Worker } from 'node:worker_threads';

/** CommonJS source of the worker: hashes the ring's bytes as they are published. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { data: sab, ctl: ctlSab, piece } = workerData;
const data = new Uint8Array(sab);
const ctl = new BigInt64Array(ctlSab);
const size = BigInt(data.length);
const hash = createHash('sha256');
let consumed = 0n;
for (;;) {
  const written = Atomics.load(ctl, 0);
  if (written === consumed) {
    if (Atomics.load(ctl, 2) === 1n) break;
    Atomics.wait(ctl, 0, written);
    continue;
  }
  const at = Number(consumed % size);
  const n = Math.min(Number(written - consumed), data.length - at, piece);
  hash.update(data.subarray(at, at + n));
  consumed += BigInt(n);
  Atomics.store(ctl, 1, consumed);
  Atomics.notify(ctl, 1);
}
parentPort.postMessage(hash.digest('hex'));
`;

/** In Node since 16; typed only from lib es2024 (this project compiles against an older lib). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: BigInt64Array, i: number, v: bigint, timeoutMs: number): { async: boolean; value: Promise<string> | string };
}).waitAsync;

export class WorkerHash {
  private readonly worker: Worker;
  private readonly data: Uint8Array;
  /** [0] bytes written by this thread, [1] bytes hashed by the worker, [2] 1 when no more will come. */
  private readonly ctl: BigInt64Array;
  private written = 0n;
  private failure: Error | null = null;
  private readonly digestHex: Promise<string>;
  private closed = false;
  /** Bytes handed to update() so far. */
  bytes = 0;

  constructor(ringBytes = 8 << 20, piece = 1 << 20) {
    const data = new SharedArrayBuffer(ringBytes);
    const ctl = new SharedArrayBuffer(3 * 8);
    this.data = new Uint8Array(data);
    this.ctl = new BigInt64Array(ctl);
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { data, ctl, piece } });
    this.digestHex = new Promise<string>((resolve, reject) => {
      this.worker.once('message', (hex: string) => resolve(hex));
      this.worker.once('error', (err: Error) => {
        this.failure ??= err;
        reject(err);
      });
      this.worker.once('exit', (code) => {
        if (!this.closed) this.failure ??= new Error(`sha256 worker exited (code ${code}) before its digest`);
        reject(this.failure ?? new Error('sha256 worker closed'));
      });
    });
    this.digestHex.catch(() => undefined);
  }

  /** Copies `chunk` into the ring; the promise (when one is returned) resolves once all of it is in. */
  update(chunk: Uint8Array): Promise<void> | null {
    if (this.closed) return Promise.reject(new Error('sha256 worker already closed'));
    if (this.failure) return Promise.reject(this.failure);
    this.bytes += chunk.byteLength;
    const rest = this.fill(chunk);
    return rest.byteLength === 0 ? null : this.fillLater(rest);
  }

  /** Copies what fits now; returns the part that did not. */
  private fill(chunk: Uint8Array): Uint8Array {
    const size = this.data.length;
    let off = 0;
    while (off < chunk.byteLength) {
      const free = size - Number(this.written - Atomics.load(this.ctl, 1));
      if (free === 0) break;
      const at = Number(this.written % BigInt(size));
      const n = Math.min(chunk.byteLength - off, free, size - at);
      this.data.set(chunk.subarray(off, off + n), at);
      off += n;
      this.written += BigInt(n);
      Atomics.store(this.ctl, 0, this.written);
      Atomics.notify(this.ctl, 0);
    }
    return chunk.subarray(off);
  }

  private async fillLater(rest: Uint8Array): Promise<void> {
    while (rest.byteLength > 0) {
      const seen = Atomics.load(this.ctl, 1);
      if (this.written - seen === BigInt(this.data.length)) {
        // Wake when the worker publishes progress (or after a while, to notice a dead worker).
        const w = waitAsync(this.ctl, 1, seen, 1000);
        if (w.async) await w.value;
      }
      if (this.failure) throw this.failure;
      if (this.closed) throw new Error('sha256 worker closed');
      rest = this.fill(rest);
    }
  }

  /** Hex digest of everything passed to update(); ends the worker. */
  async digest(): Promise<string> {
    if (this.failure) throw this.failure;
    Atomics.store(this.ctl, 2, 1n);
    Atomics.notify(this.ctl, 0);
    try {
      return await this.digestHex;
    } finally {
      await this.close();
    }
  }

  /** Stops the worker (idempotent). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker.terminate();
  }
}
