/** Import data path: volume files (checked) -> zstd -d -> tail gate on the raw sha256. */
import { Readable, pipeline } from 'node:stream';
import { ZferryError } from '../errors.js';
import type { StreamEntry } from '../bundle/manifest.js';
import { DECOMPRESS_OUT_SIZE, decompress } from './decompress.js';
import { tailGate } from './tail-gate.js';
import { READ_CHUNK, VolumeReader } from '../bundle/volume-reader.js';
import { BufferPool } from './buffer-pool.js';
import { decryptStream } from '../trust/age.js';

export interface ReadStreamOptions {
  /** Called with the stored (compressed) bytes of every chunk read. */
  onBytes?: (stored: number) => void;
  /** Bytes withheld until the raw sha256 matches (default 1 MiB). */
  holdBytes?: number;
  /** For an encrypted bundle: the age secret keys and the file they came from. */
  age?: { identities: string[]; file: string };
  /**
   * The caller ran verifyBundle over these volumes just before: skip their
   * second sha256 (sizes are still checked, and the tail gate's raw sha256
   * guards every byte that leaves, against a volume changed since).
   */
  volumesVerified?: boolean;
  /**
   * The stream's chunks are cut from this pool (see decompressOutPool): the
   * caller gives each back once written (ReleasingSink), or the stream stalls.
   */
  pool?: BufferPool;
  /**
   * The volumes are read into this pool's buffers (of READ_CHUNK bytes; see
   * readPool), which the decompressor gives back; by default the stream makes
   * its own. Not used behind age, which keeps what it is given.
   */
  readPool?: BufferPool;
}

/** Read buffers between the volume files and the decompressor: one being read, one held for its volume's hash, one being decompressed, one spare. */
const READ_POOL = 4;

/** A pool for readStream's `readPool`: one per import serves all its streams, so a small stream allocates nothing. */
export function readPool(): BufferPool {
  return new BufferPool(READ_POOL, READ_CHUNK);
}

/**
 * A pool for readStream's output: the tail gate holds up to 2 MiB of it,
 * the stages between it and the sink a chunk or two each, and the pipe to
 * zfs recv the rest.
 */
export function decompressOutPool(): BufferPool {
  return new BufferPool(12, DECOMPRESS_OUT_SIZE);
}

/**
 * The raw send stream of one bundle stream. It errors, without emitting the
 * stream's last `holdBytes`, if any volume or the decompressed whole does not
 * match the manifest.
 */
export function readStream(bundleDir: string, stream: StreamEntry, opts: ReadStreamOptions = {}): Readable {
  if (stream.kind === 'create' || stream.rawSha256 === null) {
    throw new ZferryError(`stream ${stream.index} (${stream.dataset || 'root'}) is a create step and carries no data`);
  }
  const label = `stream ${stream.index} (${stream.dataset === '' ? 'root dataset' : stream.dataset})`;
  // Reused read buffers, handed back by the decompressor; not behind age, which keeps what it is given.
  const readPool = opts.age ? undefined : opts.readPool ?? new BufferPool(READ_POOL, READ_CHUNK);
  const reader = new VolumeReader(bundleDir, stream.volumes, { onBytes: opts.onBytes, checkSha256: !opts.volumesVerified, ...(readPool ? { pool: readPool } : {}) });
  const dec = decompress({
    ...(readPool ? { inputPool: readPool } : {}),
    ...(opts.pool ? { pool: opts.pool } : {}),
    mapError: (err, offset) => {
      // Offsets of decrypted bytes do not map onto the (encrypted) volume files.
      const at = opts.age ? null : reader.locate(offset);
      const where = at ? `${at.file} (at or before offset ${at.offset})` : 'its volumes';
      return new ZferryError(`${label}: corrupt zstd data in ${where}: ${err.message}`, at ? { file: at.file, offset: at.offset } : {});
    },
  });
  // The raw sha256 is the end-to-end check against what zfs send wrote on the
  // source: the volume hashes prove the stored bytes, this one also what came
  // out of decompression (and, after --verify-first, catches a volume changed
  // since). It costs a second sha256 pass; an edited rawSha256 must still keep
  // the end record from zfs recv (test/scenario/bad-input).
  const gate = tailGate(stream.rawSha256, opts.holdBytes ?? 1 << 20, { label, expectedBytes: stream.rawBytes });
  // pipeline() destroys the gate with the first error of any stage, which the caller sees.
  if (opts.age) pipeline(reader, decryptStream(opts.age.identities, label, opts.age.file), dec, gate, () => undefined);
  else pipeline(reader, dec, gate, () => undefined);
  return gate;
}

/**
 * The raw send stream of a stream split across bundles: each part read and
 * checked as readStream does (its own sha256 gates its own end), one after
 * the other, behind a gate on the whole stream's sha256 and size, so zfs
 * recv sees the stream's end only once every byte of every part matched.
 */
export function readParts(parts: ReadonlyArray<{ dir: string; stream: StreamEntry }>, whole: { rawBytes: number; rawSha256: string; label: string }, opts: ReadStreamOptions = {}): Readable {
  async function* chain(): AsyncGenerator<Buffer> {
    for (const p of parts) for await (const chunk of readStream(p.dir, p.stream, opts)) yield chunk as Buffer;
  }
  const gate = tailGate(whole.rawSha256, opts.holdBytes ?? 1 << 20, { label: whole.label, expectedBytes: whole.rawBytes });
  pipeline(Readable.from(chain(), { objectMode: false }), gate, () => undefined);
  return gate;
}
