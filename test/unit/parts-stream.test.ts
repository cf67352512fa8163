/**
 * A stream written in parts: the stored bytes of a part never pass the
 * budget, the next part re-reads the same raw stream, skips what the first
 * holds (checking it) and goes on, and the parts read back in order give
 * the exact bytes; a wrong prefix or a wrong part is refused before the end
 * leaves the gate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { StreamEntry } from '../../src/bundle/manifest.js';
import { readParts, writeStream, type WrittenStream } from '../../src/pipeline/index.js';
import { readIdentities } from '../../src/trust/age.js';
import { execa } from 'execa';

const KiB = 1024;

/** Half random, half repetitive: compresses, but not to nothing. */
function data(bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  for (let off = 0; off < bytes; off += 64 * KiB) {
    const piece = off % (128 * KiB) === 0 ? randomBytes(64 * KiB) : Buffer.alloc(64 * KiB, off & 0xff);
    piece.copy(out, off);
  }
  return out;
}

function chunked(buf: Buffer, chunk = 64 * KiB): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk));
  return Readable.from(parts);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function entry(w: WrittenStream, index: number): StreamEntry {
  return {
    index, dataset: '', type: 'filesystem', kind: 'full', from: null, to: { name: 'a', guid: '1' }, intermediates: false, creates: [{ name: 'a', guid: '1' }],
    force: false, sendFlags: [], rawBytes: w.rawBytes, storedBytes: w.storedBytes, rawSha256: w.rawSha256, volumes: w.volumes,
  };
}

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

test('a stream cut at the budget continues in the next part, and the parts read back byte-exact', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-parts-'));
  try {
    const raw = data(4 * 1024 * KiB);
    const budget = 900 * KiB;
    const first = await writeStream(chunked(raw), { dir: join(dir, 'p1'), index: 1, kind: 'full', volumeSize: 256 * KiB, level: 3, maxStored: budget });
    assert.ok(first.segment?.cut, 'the first part was cut');
    assert.ok(first.storedBytes <= budget, `stored ${first.storedBytes} within ${budget}`);
    assert.ok(first.storedBytes > budget * 0.9, `the budget is used: ${first.storedBytes} of ${budget}`);
    assert.equal(first.segment!.endSha256, sha(raw.subarray(0, first.rawBytes)));
    const second = await writeStream(chunked(raw, 50 * KiB), {
      dir: join(dir, 'p2'), index: 1, kind: 'full', volumeSize: 256 * KiB, level: 3, maxStored: 10 * 1024 * KiB,
      skip: { bytes: first.segment!.endBytes, sha256: first.segment!.endSha256 },
    });
    assert.equal(second.segment?.cut, false);
    assert.equal(second.segment!.offset, first.rawBytes);
    assert.equal(second.segment!.endBytes, raw.length);
    assert.equal(second.segment!.endSha256, sha(raw));
    const parts = [{ dir: join(dir, 'p1'), stream: entry(first, 1) }, { dir: join(dir, 'p2'), stream: entry(second, 1) }];
    const back = await collect(readParts(parts, { rawBytes: raw.length, rawSha256: sha(raw), label: 'stream 1' }));
    assert.ok(back.equals(raw), 'byte-exact');
    await assert.rejects(collect(readParts([parts[1], parts[0]], { rawBytes: raw.length, rawSha256: sha(raw), label: 'stream 1' })), /stream 1: sha256 of the decompressed stream is .*; its end was withheld/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a next part whose re-sent prefix differs is refused at that byte', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-parts-'));
  try {
    const raw = data(1024 * KiB);
    await assert.rejects(
      writeStream(chunked(raw), { dir, index: 1, kind: 'full', volumeSize: 256 * KiB, level: 3, skip: { bytes: 300 * KiB, sha256: 'b'.repeat(64) }, label: 'stream 1 (tank)' }),
      /^ZferryError: stream 1 \(tank\): zfs send no longer gives the bytes the earlier parts were cut from/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('encrypted parts stay within the budget, each its own age file, and read back byte-exact', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-parts-'));
  try {
    const idFile = join(dir, 'id.txt');
    await execa('age-keygen', ['-o', idFile]);
    const recipient = (await execa('age-keygen', ['-y', idFile])).stdout.trim();
    const raw = data(2 * 1024 * KiB);
    const budget = 500 * KiB;
    const first = await writeStream(chunked(raw), { dir: join(dir, 'p1'), index: 1, kind: 'full', volumeSize: 128 * KiB, level: 3, maxStored: budget, encryptTo: [recipient] });
    assert.ok(first.segment?.cut);
    assert.ok(first.storedBytes <= budget, `stored ${first.storedBytes} within ${budget}`);
    const second = await writeStream(chunked(raw), {
      dir: join(dir, 'p2'), index: 1, kind: 'full', volumeSize: 128 * KiB, level: 3, encryptTo: [recipient],
      skip: { bytes: first.segment!.endBytes, sha256: first.segment!.endSha256 },
    });
    assert.equal(second.segment?.cut, false);
    const parts = [{ dir: join(dir, 'p1'), stream: entry(first, 1) }, { dir: join(dir, 'p2'), stream: entry(second, 1) }];
    const age = { identities: await readIdentities(idFile), file: idFile };
    const back = await collect(readParts(parts, { rawBytes: raw.length, rawSha256: sha(raw), label: 'stream 1' }, { age }));
    assert.ok(back.equals(raw), 'byte-exact');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
