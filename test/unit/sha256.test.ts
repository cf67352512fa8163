import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { OFF_THREAD_MIN_BYTES, streamSha256, type StreamHash } from '../../src/hash/sha256.js';
import { readStream, writeStream } from '../../src/pipeline/index.js';
import type { StreamEntry } from '../../src/bundle/manifest.js';
import { ZferryError } from '../../src/errors.js';

const MiB = 1 << 20;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Feeds `data` in chunks of the given sizes (cycled), awaiting each update as callers must. */
async function feed(h: StreamHash, data: Buffer, sizes: number[]): Promise<string> {
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length], data.length - at);
    // A buffer the caller reuses at once: the hash must have taken its bytes.
    const chunk = Buffer.from(data.subarray(at, at + n));
    const taken = h.update(chunk);
    if (taken) await taken;
    chunk.fill(0xee);
    at += n;
  }
  return h.digest();
}

test('on the worker: any chunking, chunks larger than a slab, more slabs than are in flight, reused buffers', async () => {
  const data = randomBytes(3 * OFF_THREAD_MIN_BYTES + 12345);
  for (const sizes of [[64 * 1024], [3 * MiB + 7], [1, 65536, 999_999, 5 * MiB]]) {
    assert.equal(await feed(streamSha256(data.length), data, sizes), sha(data), `chunks of ${sizes.join(',')}`);
  }
});

test('hashes interleaved on the worker stay apart, and a discarded one leaves the rest intact', async () => {
  const a = randomBytes(20 * MiB);
  const b = randomBytes(18 * MiB);
  const ha = streamSha256(a.length);
  const hb = streamSha256(b.length);
  const dropped = streamSha256(a.length);
  for (let at = 0; at < a.length; at += MiB) {
    for (const [h, d] of [[ha, a], [hb, b], [dropped, b]] as const) {
      if (at >= d.length || (h === dropped && at > 8 * MiB)) continue;
      const t = h.update(d.subarray(at, at + MiB));
      if (t) await t;
    }
    if (at === 8 * MiB) dropped.discard();
  }
  assert.deepEqual(await Promise.all([ha.digest(), hb.digest()]), [sha(a), sha(b)]);
});

test('a dozen hashes at once, each feeding as fast as it can, all finish (no hash waits on another\'s slabs), and one discarded part way leaves them unharmed', async () => {
  const datas = Array.from({ length: 12 }, (_, i) => randomBytes(17 * MiB + i));
  const hashes = datas.map((d) => streamSha256(d.length));
  const victim = streamSha256(64 * MiB);
  const victimRun = (async () => {
    for (let i = 0; i < 64; i++) {
      const t = victim.update(datas[0].subarray(0, MiB));
      if (t) await t.catch(() => undefined);
      if (i === 5) victim.discard();
      if (i >= 5) return;
    }
  })();
  const digests = await Promise.all(hashes.map((h, i) => feed(h, datas[i], [MiB / 2 + 3])));
  await victimRun;
  assert.deepEqual(digests, datas.map(sha));
});

test('ZFERRY_HASH_THREAD=0 keeps every hash on the main thread, with the same digests', async () => {
  const script = `
    import { streamSha256 } from ${JSON.stringify(new URL('../../src/hash/sha256.js', import.meta.url).href)};
    const h = streamSha256(64 << 20);
    h.update(Buffer.alloc(1 << 20, 1));
    console.log(h.constructor.name, await h.digest());`;
  const off = await execa(process.execPath, ['--input-type=module', '-e', script], { env: { ZFERRY_HASH_THREAD: '0' } });
  const on = await execa(process.execPath, ['--input-type=module', '-e', script]);
  const [offKind, offHex] = off.stdout.split(' ');
  const [onKind, onHex] = on.stdout.split(' ');
  assert.equal(offKind, 'LocalHash');
  assert.equal(onKind, 'WorkerHash');
  assert.equal(offHex, sha(Buffer.alloc(1 << 20, 1)));
  assert.equal(onHex, offHex);
});

test('an idle worker does not keep the process alive, and a digest awaited alone is not cut short', async () => {
  // The script's last act is to await a digest with nothing else pending: an
  // unreferenced worker would let the process exit before it answers.
  const script = `
    import { streamSha256 } from ${JSON.stringify(new URL('../../src/hash/sha256.js', import.meta.url).href)};
    const h = streamSha256(64 << 20);
    const t = h.update(Buffer.alloc(8 << 20, 2)); if (t) await t;
    console.log(await h.digest());`;
  const started = Date.now();
  const r = await execa(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 });
  assert.equal(r.stdout, sha(Buffer.alloc(8 << 20, 2)));
  assert.ok(Date.now() - started < 20_000, 'the process ended by itself');
});

test('a large stream round-trips through writeStream and readStream with the hashes off the main thread, and a flipped byte is still refused with the tail withheld', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-sha-'));
  try {
    // Half random, half text: 48 MiB raw, volumes of 20 MiB (each hashed on the worker).
    const data = Buffer.concat([randomBytes(24 * MiB), Buffer.from('some text of a file system\n'.repeat(24 * MiB / 27 + 1)).subarray(0, 24 * MiB)]);
    let off = 0;
    const src = new Readable({
      read() {
        this.push(off < data.length ? data.subarray(off, (off += 256 * 1024)) : null);
      },
    });
    const written = await writeStream(src, { dir, index: 1, kind: 'full', volumeSize: 20 * MiB, level: 1 });
    assert.equal(written.rawSha256, sha(data));
    assert.ok(written.volumes.length >= 2);
    for (const v of written.volumes) assert.equal(sha(await readFile(join(dir, v.file))), v.sha256);
    const entry: StreamEntry = {
      index: 1, dataset: '', type: 'filesystem', kind: 'full', from: null, to: { name: 's1', guid: '1' },
      intermediates: false, creates: [{ name: 's1', guid: '1' }], force: false, sendFlags: [], ...written,
    };
    let got = 0;
    const back = createHash('sha256');
    await pipeline(readStream(dir, entry), new Writable({ write: (c: Buffer, _e, done) => ((got += c.length), back.update(c), done()) }));
    assert.equal(got, data.length);
    assert.equal(back.digest('hex'), sha(data));

    const victim = join(dir, written.volumes[0].file);
    const buf = await readFile(victim);
    buf[buf.length - 10] ^= 0x04;
    await writeFile(victim, buf);
    let released = 0;
    const err = await pipeline(readStream(dir, entry), new Writable({ write: (c: Buffer, _e, done) => ((released += c.length), done()) })).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof ZferryError, `expected a ZferryError, got ${String(err)}`);
    assert.match(err.message, /0001-full\.zst\.000: sha256 is [0-9a-f]{64}, manifest says/);
    assert.ok(released <= data.length - MiB, `released ${released} of ${data.length}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
