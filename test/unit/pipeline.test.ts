import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, readlink, rm, stat, symlink, truncate, writeFile, open, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { ZferryError } from '../../src/errors.js';
import type { StreamEntry } from '../../src/bundle/manifest.js';
import { compress, decompress, hashTap, tailGate, writeStream, readStream } from '../../src/pipeline/index.js';
import { VolumeReader } from '../../src/bundle/index.js';
import { compressContextsCreated, HEAD_BYTES } from '../../src/pipeline/compress.js';
import { decompressOutPool } from '../../src/pipeline/import.js';
import { BufferPool, ReleasingSink } from '../../src/pipeline/buffer-pool.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A send-stream-like mix: random (incompressible), repetitive text and zero runs. */
function mixedData(size: number, seed?: number): Buffer {
  const parts: Buffer[] = [];
  let n = 0;
  let i = 0;
  // With a seed the "random" parts are the same every run (an LCG), for sizes that must not vary.
  let state = seed ?? 0;
  const noise = (len: number) => (seed === undefined ? randomBytes(len) : Buffer.from(Uint8Array.from({ length: len }, () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 24))));
  while (n < size) {
    const len = Math.min(size - n, 100 * KiB + ((i * 7919) % (200 * KiB)));
    const kind = i % 3;
    const part = kind === 0 ? noise(len) : kind === 1 ? Buffer.from(`line ${i} of some repetitive text\n`.repeat(len / 20 + 1)).subarray(0, len) : Buffer.alloc(len);
    parts.push(part);
    n += len;
    i++;
  }
  return Buffer.concat(parts);
}

/** Feeds a buffer in chunks, as a pipe from `zfs send` would. */
function chunked(buf: Buffer, chunk = 64 * KiB): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (off >= buf.length) return void this.push(null);
      this.push(buf.subarray(off, off + chunk));
      off += chunk;
    },
  });
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Collects what a stream emits before it errors, and the error. */
async function drainUntilError(r: Readable): Promise<{ bytes: number; err: unknown }> {
  let bytes = 0;
  try {
    for await (const c of r) bytes += (c as Buffer).length;
  } catch (err) {
    return { bytes, err };
  }
  return { bytes, err: null };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function exportFixture(size = 5 * MiB, volumeSize = 64 * KiB) {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-pipe-'));
  const data = mixedData(size);
  const written = await writeStream(chunked(data), { dir, index: 3, kind: 'incremental', volumeSize, level: 3 });
  const entry: StreamEntry = {
    index: 3, dataset: 'a/b', type: 'filesystem', kind: 'incremental',
    from: { name: 's1', guid: '1' }, to: { name: 's2', guid: '2' }, intermediates: false,
    creates: [{ name: 's2', guid: '2' }], force: false, sendFlags: ['-i'],
    ...written,
  };
  return { dir, data, written, entry };
}

test('a multi-volume stream round-trips to identical bytes and hashes', async () => {
  const { dir, data, written, entry } = await exportFixture();
  try {
    assert.equal(written.rawBytes, data.length);
    assert.equal(written.rawSha256, sha(data));
    assert.ok(written.volumes.length > 3, `expected several volumes, got ${written.volumes.length}`);
    written.volumes.forEach((v, i) => {
      assert.equal(v.file, `streams/0003-incr.zst.${String(i).padStart(3, '0')}`);
      if (i < written.volumes.length - 1) assert.equal(v.bytes, 64 * KiB);
    });
    for (const v of written.volumes) {
      const onDisk = await readFile(join(dir, v.file));
      assert.equal(onDisk.length, v.bytes);
      assert.equal(sha(onDisk), v.sha256);
    }
    assert.equal(written.storedBytes, written.volumes.reduce((s, v) => s + v.bytes, 0));
    let stored = 0;
    const back = await collect(readStream(dir, entry, { onBytes: (n) => (stored += n) }));
    assert.equal(back.length, data.length);
    assert.ok(back.equals(data));
    assert.equal(stored, written.storedBytes);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the zstd CLI decompresses the concatenated volumes to the raw stream', async () => {
  const { dir, data, written } = await exportFixture(3 * MiB, 100 * KiB);
  try {
    const files = (await readdir(join(dir, 'streams'))).sort().map((f) => join(dir, 'streams', f));
    assert.equal(files.length, written.volumes.length);
    const cat = Buffer.concat(await Promise.all(files.map((f) => readFile(f))));
    const { stdout } = await execa('zstd', ['-dc'], { input: cat, encoding: 'buffer', stripFinalNewline: false });
    assert.equal(sha(Buffer.from(stdout)), sha(data));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a volume that is an exact multiple of the volume size leaves no empty trailing volume', async () => {
  const dirs = [await mkdtemp(join(tmpdir(), 'zferry-pipe-')), await mkdtemp(join(tmpdir(), 'zferry-pipe-'))];
  try {
    // The same bytes compress to the same size: measure it, then cut volumes of exactly that size.
    const data = mixedData(600 * KiB, 7);
    const whole = await writeStream(chunked(data), { dir: dirs[0], index: 1, kind: 'full', volumeSize: 64 * MiB, level: 3 });
    const size = whole.storedBytes;
    const written = await writeStream(chunked(data), { dir: dirs[1], index: 1, kind: 'full', volumeSize: size, level: 3 });
    assert.equal(written.storedBytes, size);
    assert.deepEqual(written.volumes.map((v) => v.bytes), [size]);
    assert.deepEqual(await readdir(join(dirs[1], 'streams')), ['0001-full.zst.000']);
  } finally {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
});

test('the pooled import path gives back every buffer and delivers the same bytes, through a slow consumer', async () => {
  const { dir, data, entry } = await exportFixture(6 * MiB, 512 * KiB);
  try {
    const pool = decompressOutPool();
    const total = pool.available;
    const got: Buffer[] = [];
    // Copies what it is given, since the buffer is reused once the write completes.
    const slow = new Writable({ highWaterMark: 64 * KiB, write(c: Buffer, _e, done) { got.push(Buffer.from(c)); setImmediate(done); } });
    await pipeline(readStream(dir, entry, { pool }), new ReleasingSink(slow, (c) => pool.release(c)));
    assert.ok(Buffer.concat(got).equals(data));
    assert.equal(pool.available, total, 'every pooled buffer came back');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a buffer given back twice enters the pool once', async () => {
  const pool = new BufferPool(2, 16);
  const a = await pool.take();
  pool.release(a.subarray(0, 4));
  pool.release(a.subarray(4));
  assert.equal(pool.available, 2);
  const [x, y] = [await pool.take(), await pool.take()];
  assert.notEqual(x, y, 'two takes never share one buffer');
});

test('tailGate passes on whole chunks, never part of one (a chunk may be a pooled buffer)', async () => {
  const data = mixedData(3 * MiB);
  const sent = new Set<ArrayBufferLike>();
  const src = new Readable({ read() {} });
  for (let off = 0; off < data.length; off += 300 * KiB) {
    const c = Buffer.from(data.subarray(off, off + 300 * KiB));
    sent.add(c.buffer);
    src.push(c);
  }
  src.push(null);
  const seen: Buffer[] = [];
  await pipeline(src, tailGate(sha(data), MiB), new Writable({ write(c: Buffer, _e, done) { seen.push(c); done(); } }));
  assert.ok(Buffer.concat(seen).equals(data));
  for (const c of seen) assert.ok(sent.has(c.buffer) && c.byteOffset === 0 && c.length === c.buffer.byteLength, 'each chunk is one that went in, whole');
});

test('readStream refuses a volume with a flipped byte, naming the file, and withholds the tail', async () => {
  const { dir, entry } = await exportFixture();
  try {
    const victim = entry.volumes[2];
    const path = join(dir, victim.file);
    const buf = await readFile(path);
    buf[1000] ^= 0x40;
    await writeFile(path, buf);
    const { bytes, err } = await drainUntilError(readStream(dir, entry));
    assert.ok(err instanceof ZferryError, `expected ZferryError, got ${String(err)}`);
    assert.match(err.message, /0003-incr\.zst\.002/);
    assert.ok(bytes <= entry.rawBytes - MiB, `released ${bytes} of ${entry.rawBytes}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('one sha256 pass: a flipped byte in the very last bytes of the last volume is still caught before the stream ends, and the tail withheld', async () => {
  const { dir, entry } = await exportFixture();
  try {
    const last = entry.volumes[entry.volumes.length - 1];
    const path = join(dir, last.file);
    const buf = await readFile(path);
    buf[buf.length - 2] ^= 0x01;
    await writeFile(path, buf);
    const { bytes, err } = await drainUntilError(readStream(dir, entry));
    assert.ok(err instanceof ZferryError, `expected ZferryError, got ${String(err)}`);
    assert.match(err.message, new RegExp(`${last.file.replace(/\./g, '\\.')}: sha256 is [0-9a-f]{64}, manifest says`));
    assert.ok(bytes <= entry.rawBytes - MiB, `released ${bytes} of ${entry.rawBytes}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readStream refuses a truncated volume, naming the file and both sizes', async () => {
  const { dir, entry } = await exportFixture();
  try {
    await truncate(join(dir, entry.volumes[1].file), 1000);
    const { bytes, err } = await drainUntilError(readStream(dir, entry));
    assert.ok(err instanceof ZferryError);
    assert.match(err.message, /0003-incr\.zst\.001: size is 1000 bytes, manifest says 65536/);
    assert.ok(bytes <= entry.rawBytes - MiB);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readStream refuses an extra-long last volume', async () => {
  const { dir, entry } = await exportFixture();
  try {
    const last = entry.volumes[entry.volumes.length - 1];
    const fh = await open(join(dir, last.file), 'a');
    await fh.write(Buffer.from('junk'));
    await fh.close();
    const { bytes, err } = await drainUntilError(readStream(dir, entry));
    assert.ok(err instanceof ZferryError);
    assert.match(err.message, new RegExp(`${last.file.replace(/\./g, '\\.')}: size is ${last.bytes + 4} bytes, manifest says ${last.bytes} \\(too long\\)`));
    assert.ok(bytes <= entry.rawBytes - MiB);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readStream refuses a missing volume, naming it', async () => {
  const { dir, entry } = await exportFixture();
  try {
    await rm(join(dir, entry.volumes[3].file));
    const { bytes, err } = await drainUntilError(readStream(dir, entry));
    assert.ok(err instanceof ZferryError);
    assert.match(err.message, /missing volume .*0003-incr\.zst\.003/);
    assert.ok(bytes <= entry.rawBytes - MiB);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a VolumeReader checks the last volume hash before emitting its last chunk', async () => {
  const { dir, entry } = await exportFixture(2 * MiB, 512 * KiB);
  try {
    const last = entry.volumes[entry.volumes.length - 1];
    const path = join(dir, last.file);
    const buf = await readFile(path);
    buf[buf.length - 1] ^= 1;
    await writeFile(path, buf);
    const { bytes, err } = await drainUntilError(new VolumeReader(dir, entry.volumes));
    assert.ok(err instanceof ZferryError);
    assert.match(err.message, /sha256 is [0-9a-f]{64}, manifest says/);
    assert.ok(bytes < entry.storedBytes, 'the corrupt final chunk was withheld');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tailGate releases everything when the sha256 matches', async () => {
  const data = mixedData(3 * MiB);
  const out = await collect(chunked(data).pipe(tailGate(sha(data))));
  assert.ok(out.equals(data));
});

test('tailGate never releases the last holdBytes when the sha256 differs', async () => {
  const data = mixedData(3 * MiB);
  const gate = tailGate('0'.repeat(64), MiB, { label: 'stream 9 (x)' });
  const { bytes, err } = await drainUntilError(chunked(data).pipe(gate));
  assert.ok(err instanceof ZferryError);
  assert.match(err.message, /^stream 9 \(x\): sha256 of the decompressed stream is/);
  assert.ok(bytes <= data.length - MiB, `released ${bytes} of ${data.length} bytes`);
});

test('tailGate withholds the tail of a stream shorter than expected even if the hash were right', async () => {
  const data = mixedData(2 * MiB);
  const { bytes, err } = await drainUntilError(chunked(data).pipe(tailGate(sha(data), MiB, { expectedBytes: data.length + 1 })));
  assert.ok(err instanceof ZferryError);
  assert.ok(bytes <= data.length - MiB, `released ${bytes} of ${data.length} bytes`);
});

test('hashTap exposes the digest and byte count after the end', async () => {
  const data = mixedData(MiB);
  const tap = hashTap();
  let seen = 0;
  await pipeline(chunked(data), tap, new Writable({ write: (c: Buffer, _e, done) => ((seen += c.length), done()) }));
  assert.equal(tap.bytes, data.length);
  assert.equal(seen, data.length);
  assert.equal(tap.digest(), sha(data));
});

test('decompress honours backpressure on highly compressible input', async () => {
  // 512 MiB of zeros is a few KiB compressed; unbounded output would show here.
  const zeros = Buffer.alloc(MiB);
  let left = 512;
  const src = new Readable({ read() { this.push(left-- > 0 ? zeros : null); } });
  const compressed = await collect(src.pipe(compress({ level: 3 })));
  assert.ok(compressed.length < MiB);
  const dec = decompress();
  let maxBuffered = 0;
  let total = 0;
  const slow = new Writable({
    highWaterMark: 64 * KiB,
    write(c: Buffer, _e, done) {
      total += c.length;
      maxBuffered = Math.max(maxBuffered, dec.readableLength);
      setImmediate(done);
    },
  });
  await pipeline(Readable.from([compressed]), dec, slow);
  assert.equal(total, 512 * MiB);
  assert.ok(maxBuffered <= 4 * MiB, `decompressor buffered ${maxBuffered} bytes`);
});

test('compression contexts serve one stream after another, also after a stream destroyed mid-frame', async () => {
  // Sizes on both sides of the head held back for a single-threaded whole-stream compress.
  const inputs = [randomBytes(3 * MiB), Buffer.alloc(0), Buffer.from('small'), randomBytes(HEAD_BYTES), randomBytes(HEAD_BYTES + 1), Buffer.concat([randomBytes(MiB), Buffer.alloc(5 * MiB)])];
  // A stream abandoned halfway leaves its context inside a frame; the next stream must not continue that frame.
  const abandoned = compress({ level: 3 });
  abandoned.write(randomBytes(MiB));
  await new Promise((r) => setTimeout(r, 50));
  abandoned.destroy();
  // Counted once the abandoned stream is wholly gone, so nothing of it is still in flight.
  if (!abandoned.closed) await new Promise((r) => abandoned.once('close', r));
  const contexts = compressContextsCreated();
  for (const input of inputs) {
    const z = await collect(Readable.from(input.length > 0 ? [input.subarray(0, 7), input.subarray(7)] : []).pipe(compress({ level: 3 })));
    const back = await execa('zstd', ['-dc'], { input: z, encoding: 'buffer', stripFinalNewline: false });
    assert.equal(sha(Buffer.from(back.stdout)), sha(input));
    assert.equal(sha(await collect(Readable.from([z]).pipe(decompress()))), sha(input));
  }
  assert.equal(compressContextsCreated(), contexts, 'every stream reused the context the first one gave back');
});

test('a link planted at a volume\'s name is refused, and nothing is written through it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-pipe-'));
  try {
    await mkdir(join(dir, 'streams'));
    const outside = join(dir, 'outside.txt');
    await writeFile(outside, 'not zferry\'s\n');
    // Once a way to fake a full disk (a link to /dev/full): now refused like any link. Full disks: test/scenario/disk-full.
    await symlink(outside, join(dir, 'streams', '0001-full.zst.000'));
    await assert.rejects(
      writeStream(chunked(mixedData(MiB)), { dir, index: 1, kind: 'full', volumeSize: 64 * KiB, level: 3 }),
      (err: unknown) => err instanceof ZferryError && /^already exists .* creating .*streams\/0001-full\.zst\.000$/.test(err.message),
    );
    assert.equal(await readFile(outside, 'utf8'), 'not zferry\'s\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('writeStream refuses a stream that would need more than 1000 volumes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-pipe-'));
  try {
    await assert.rejects(
      writeStream(chunked(randomBytes(200 * KiB)), { dir, index: 1, kind: 'full', volumeSize: 100, level: 1 }),
      /needs more than 1000 volumes/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('stat sanity: exported volumes are regular files', async () => {
  const { dir, entry } = await exportFixture(MiB, 256 * KiB);
  try {
    for (const v of entry.volumes) assert.ok((await stat(join(dir, v.file))).isFile());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readStream after a verify pass (volumesVerified): sizes still checked, and a changed volume is caught by the raw sha256', async () => {
  const { dir, entry, data } = await exportFixture();
  try {
    const ok = await collect(readStream(dir, entry, { volumesVerified: true }));
    assert.ok(ok.equals(data));
    // A volume replaced after the verify pass by one of the same size: the tail gate refuses the stream.
    const victim = join(dir, entry.volumes[2].file);
    const buf = await readFile(victim);
    buf[1000] ^= 0x40;
    await writeFile(victim, buf);
    const r1 = await drainUntilError(readStream(dir, entry, { volumesVerified: true }));
    assert.ok(r1.err instanceof ZferryError, String(r1.err));
    assert.ok(r1.bytes <= entry.rawBytes - MiB, `released ${r1.bytes} of ${entry.rawBytes}`);
    await truncate(victim, 1000);
    const r2 = await drainUntilError(readStream(dir, entry, { volumesVerified: true }));
    assert.ok(r2.err instanceof ZferryError);
    assert.match(r2.err.message, /0003-incr\.zst\.002: size is 1000 bytes, manifest says 65536/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sinkToFile writes and hashes a stream of many small chunks, fsyncs it, and refuses an existing file', async () => {
  const { sinkToFile } = await import('../../src/fs/sink.js');
  const dir = await mkdtemp(join(tmpdir(), 'zferry-sink-'));
  try {
    // 9 MiB + 1 in pipe-sized reads: several batches, more than IN_FLIGHT of them.
    const data = mixedData(9 * MiB + 1);
    const chunks = Array.from({ length: Math.ceil(data.length / (64 * KiB)) }, (_, i) => data.subarray(i * 64 * KiB, (i + 1) * 64 * KiB));
    let counted = 0;
    const got = await sinkToFile(Readable.from(chunks), join(dir, 'v'), (n) => (counted += n));
    await got.durable;
    assert.equal(got.bytes, data.length);
    assert.equal(counted, data.length);
    assert.equal(got.sha256, createHash('sha256').update(data).digest('hex'));
    assert.ok((await readFile(join(dir, 'v'))).equals(data));
    await assert.rejects(sinkToFile(Readable.from([Buffer.from('x')]), join(dir, 'v')), /EEXIST/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sinkToFile passes on a source that fails midway and leaves no open handle behind', async () => {
  const { sinkToFile } = await import('../../src/fs/sink.js');
  const dir = await mkdtemp(join(tmpdir(), 'zferry-sink-'));
  try {
    async function* cut() {
      for (let i = 0; i < 40; i++) yield randomBytes(64 * KiB);
      throw new Error('connection dropped');
    }
    await assert.rejects(sinkToFile(cut(), join(dir, 'v')), /connection dropped/);
    // Linux removes a folder whose files are still open: look at this process's descriptors instead.
    const held: string[] = [];
    for (const fd of await readdir('/proc/self/fd')) {
      const to = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
      if (to.startsWith(dir)) held.push(to);
    }
    assert.deepEqual(held, [], 'no descriptor left open on the file');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('decompression contexts are reused from stream to stream, and one destroyed mid-frame starts the next clean', async () => {
  const { decompressContextsCreated } = await import('../../src/pipeline/decompress.js');
  const frames = async (data: Buffer) => {
    const out: Buffer[] = [];
    await pipeline(Readable.from([data]), compress({ level: 3, workers: 0 }), new Writable({ write(c, _e, cb) { out.push(c); cb(); } }));
    return Buffer.concat(out);
  };
  const roundTrip = async (z: Buffer) => {
    const out: Buffer[] = [];
    await pipeline(Readable.from([z]), decompress(), new Writable({ write(c, _e, cb) { out.push(Buffer.from(c)); cb(); } }));
    return Buffer.concat(out);
  };
  const a = randomBytes(300_000);
  const b = Buffer.alloc(2_000_000, 7);
  const za = await frames(a);
  const zb = await frames(b);
  assert.deepEqual(await roundTrip(za), a);
  const made = decompressContextsCreated();
  // Half a frame, then the stream is destroyed: its context goes back inside that frame.
  const cut = decompress();
  cut.write(za.subarray(0, za.length >> 1));
  await new Promise((r) => setImmediate(r));
  cut.destroy();
  assert.deepEqual(await roundTrip(zb), b);
  assert.deepEqual(await roundTrip(za), a);
  assert.equal(decompressContextsCreated(), made, 'every later stream reused the context given back');
});

test('ReleasingSink: a destination gone without an error while ending (a child that exited after its end record) is done; one gone with an error fails', async () => {
  // As Node does to a child's stdin when the child exits: destroyed while end() is pending.
  const gone = (err?: Error) => {
    const got: Buffer[] = [];
    const dest = new Writable({
      write(chunk: Buffer, _enc, cb) {
        got.push(chunk);
        cb();
      },
      final() {
        setImmediate(() => this.destroy(err));
      },
    });
    return { dest, got };
  };
  const quiet = gone();
  await pipeline(Readable.from([Buffer.from('end record')]), new ReleasingSink(quiet.dest, () => undefined));
  assert.equal(Buffer.concat(quiet.got).toString(), 'end record');
  const loud = gone(new Error('the child died'));
  await assert.rejects(pipeline(Readable.from([Buffer.from('x')]), new ReleasingSink(loud.dest, () => undefined)), /the child died/);
});
