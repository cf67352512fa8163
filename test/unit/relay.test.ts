/** The relay's pure parts and its tar stages, without ZFS or a network. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { ZferryError } from '../../src/errors.js';
import { listenArgs, parseEndpoint, sendArgs, SLOW_LINK_TUNING } from '../../src/mbuffer/index.js';
import { parseRelayConfig } from '../../src/relay/config.js';
import { partitionByReceipt } from '../../src/relay/spool.js';
import { describeBundles, packBundles, resumeFrom } from '../../src/relay/pack.js';
import { readHoldings } from '../../src/relay/holdings.js';
import { verifyBundle } from '../../src/bundle/index.js';
import { open as openFile, stat } from 'node:fs/promises';
import { BufferPool, drainInto } from '../../src/pipeline/buffer-pool.js';
import { unpackInto } from '../../src/relay/unpack.js';
import { parseReply } from '../../src/relay/reply.js';
import { makeBundle } from '../helpers/bundles.js';

/** The source of makeBundle's bundles, as a spool that serves them names it. */
const TANK = '1234567890123456789:tank';

test('endpoints: HOST:PORT, [v6]:PORT and a bare port for listeners; bad ones name the option', () => {
  assert.deepEqual(parseEndpoint('backup.example.net:9090', '--to', true), { host: 'backup.example.net', port: 9090 });
  assert.deepEqual(parseEndpoint('[::1]:9090', '--to', true), { host: '::1', port: 9090 });
  assert.deepEqual(parseEndpoint('9090', '--listen', false), { host: null, port: 9090 });
  assert.throws(() => parseEndpoint('9090', '--to', true), /invalid --to '9090': expected HOST:PORT/);
  assert.throws(() => parseEndpoint('host:70000', '--to', true), /port from 1 to 65535/);
});

test('mbuffer command lines: tuning flags, rate only when sending, the watchdog after -O / -I', () => {
  const t = { blockSize: 128 * 1024, memory: 64 * 1024 * 1024, rate: 2 * 1024 * 1024 };
  assert.deepEqual(sendArgs({ host: '127.0.0.1', port: 9090 }, t), ['-q', '-s', '128k', '-m', '65536k', '-r', '2048k', '-O', '127.0.0.1:9090']);
  // The watchdog after -O/-I: mbuffer starts it once the connection is made.
  assert.deepEqual(sendArgs({ host: '::1', port: 9 }, SLOW_LINK_TUNING, 60), ['-q', '-s', '128k', '-m', '65536k', '-O', '[::1]:9', '-W', '60']);
  assert.deepEqual(listenArgs({ host: null, port: 9090 }, t), ['-q', '-s', '128k', '-m', '65536k', '-I', '9090', '-o', '-']);
  assert.deepEqual(listenArgs({ host: null, port: 9090 }, t, 300), ['-q', '-s', '128k', '-m', '65536k', '-I', '9090', '-W', '300', '-o', '-']);
});

test('relay config: defaults, sizes with units, paths relative to the file; errors name the field', () => {
  const c = parseRelayConfig(JSON.stringify({ source: 'tank', spool: 'spool', to: 'b:9090', replyListen: '9091', mbuffer: { rate: '4M' } }), '/etc/zferry/relay.json');
  assert.equal(c.spool, '/etc/zferry/spool');
  assert.deepEqual(c.tuning, { blockSize: 128 * 1024, memory: 64 * 1024 * 1024, rate: 4 * 1024 * 1024 });
  assert.equal(c.volumeSize, 1024 ** 3);
  assert.equal(c.receiptTimeoutSeconds, 3600);
  assert.throws(() => parseRelayConfig('{"source":"tank","spool":"s","to":"b:1"}', 'r.json'), /^ZferryError: r\.json: \/ must have required property 'replyListen'$|r\.json: \/ must have required property 'replyListen'/);
  assert.throws(() => parseRelayConfig('{"source":"tank","spool":"s","to":"b:1","replyListen":"2","mbuffer":{"memory":"lots"}}', 'r.json'), /r\.json: \/mbuffer\/memory/);
  assert.throws(() => parseRelayConfig('{"source":"tank","spool":"s","to":"b","replyListen":"2"}', 'r.json'), /r\.json: \/to/);
});

test('a receipt confirms exactly the bundles it lists', () => {
  const b = (id: string) => ({ manifest: { bundleId: id } });
  const receipt = { bundles: ['a', 'c'] } as unknown as Parameters<typeof partitionByReceipt>[1];
  const r = partitionByReceipt([b('a'), b('b'), b('c')], receipt);
  assert.deepEqual(r.confirmed.map((x) => x.manifest.bundleId), ['a', 'c']);
  assert.deepEqual(r.pending.map((x) => x.manifest.bundleId), ['b']);
  assert.deepEqual(partitionByReceipt([b('a')], null).pending.length, 1);
});

test('reply: a refusal carries its reason; a malformed receipt is rejected by the state schema', () => {
  assert.equal(parseReply(JSON.stringify({ format: 'zferry-relay-reply', formatVersion: 1, ok: false, receipt: null, error: 'conflict' }), 'x').error, 'conflict');
  assert.throws(() => parseReply(JSON.stringify({ format: 'zferry-relay-reply', formatVersion: 1, ok: true, receipt: { format: 'zferry-state' }, error: null }), 'x'), /receipt in the reply from x/);
  assert.throws(() => parseReply('nope', 'x'), /not JSON/);
});

test('pack → unpack: bundles arrive verified and complete; any cut of the stream promotes nothing unfinished', async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-relay-unit-'));
  try {
    const dirs = [await makeBundle(join(root, 'out')), await makeBundle(join(root, 'out'))];
    const tarBytes = await buffer(packBundles(await describeBundles(dirs)));
    const spool = join(root, 'spool');
    const r = await unpackInto(spool, Readable.from([tarBytes]), { source: TANK });
    assert.deepEqual(r.bundles.map((d) => basename(d)), dirs.map((d) => basename(d)));

    // Cut inside the header, the first manifest, a volume, between bundles, and in the end blocks.
    for (const cut of [100, 1500, 40_000, Math.floor(tarBytes.length / 2), tarBytes.length - 2000]) {
      const s = join(root, `cut-${cut}`);
      await assert.rejects(unpackInto(s, Readable.from([tarBytes.subarray(0, cut)]), { source: TANK }), (e: unknown) => e instanceof ZferryError, `cut at ${cut}`);
      const names = (await readdir(s)).filter((n) => n !== '.incoming');
      // A bundle finished before the cut may stay; it is complete (verifyArrived passed before its rename).
      assert.ok(names.length <= 1, `cut at ${cut}: ${names}`);
      // What arrived of the cut bundle is kept under .incoming for a resumed push, never beside the bundles.
      for (const n of await readdir(join(s, '.incoming'))) assert.ok(!names.includes(n), `cut at ${cut}: ${n} both kept and complete`);
    }

    // One flipped byte in a volume: refused at that volume, nothing complete-looking left.
    const flipped = Buffer.from(tarBytes);
    flipped[20_000] ^= 0xff;
    const s = join(root, 'flipped');
    await assert.rejects(unpackInto(s, Readable.from([flipped]), { source: TANK }), /sha256|manifest|relay stream/);
    assert.deepEqual((await readdir(s)).filter((n) => n !== '.incoming'), []);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

/** A consumer that copies what it is given and completes each write a little later, in no fixed order of timing. */
function slowCopier(parts: Buffer[], failAt = -1): Writable {
  let n = 0;
  return new Writable({
    highWaterMark: 8 * 1024,
    write(chunk: Buffer, _e, cb) {
      if (n++ === failAt) return cb(new Error('connection reset'));
      parts.push(Buffer.from(chunk));
      setTimeout(cb, n % 3);
    },
  });
}

test('a pooled pack is byte-identical to an unpooled one while two small buffers are reused hundreds of times', async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-relay-unit-'));
  try {
    const dirs = [await makeBundle(join(root, 'out')), await makeBundle(join(root, 'out'))];
    const plain = await buffer(packBundles(await describeBundles(dirs)));
    const pool = new BufferPool(2, 4096);
    let taken = 0;
    const take = pool.take.bind(pool);
    pool.take = () => (taken++, take());
    const parts: Buffer[] = [];
    let sent = 0;
    await drainInto(packBundles(await describeBundles(dirs), { pool, onBytes: (n) => (sent += n) }), slowCopier(parts), (c) => pool.release(c));
    assert.ok(taken > 100, `buffers taken ${taken}`);
    assert.ok(Buffer.concat(parts).equals(plain), 'pooled tar stream differs');
    const r = await unpackInto(join(root, 'spool'), Readable.from(parts), { source: TANK });
    assert.equal(r.bundles.length, 2);
    assert.equal(sent, r.bytes);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the pack stops, naming the file, when a volume is not the size its manifest says; a failing consumer stops it too', async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-relay-unit-'));
  try {
    const dir = await makeBundle(join(root, 'out'));
    const [b] = await describeBundles([dir]);
    const vol = join(dir, b.manifest.streams[0].volumes[1].file);
    const pool = new BufferPool(2, 4096);
    await assert.rejects(drainInto(packBundles([b], { pool }), slowCopier([], 40), (c) => pool.release(c)), /connection reset/);
    await truncate(vol, 1000);
    await assert.rejects(buffer(packBundles([b])), new RegExp(`${b.manifest.streams[0].volumes[1].file}: is 1000 bytes, manifest.json says \\d+`));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('drainInto gives up, never hangs, when the receiving process is gone before the first write or while it waits', { timeout: 10_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-relay-unit-'));
  try {
    const dir = await makeBundle(join(root, 'out'));
    const [b] = await describeBundles([dir]);
    // mbuffer -O exited (receiver down) before a byte was written: its stdin is already destroyed.
    const gone = new Writable({ write: (_c, _e, cb) => cb() });
    gone.destroy();
    let pool = new BufferPool(2, 4096);
    await assert.rejects(drainInto(packBundles([b], { pool }), gone, (c) => pool.release(c)), /closed early|destroyed/);
    // It dies while we wait for 'drain': a write never completes, then the pipe closes.
    const stuck = new Writable({ highWaterMark: 1, write: () => undefined });
    setTimeout(() => stuck.destroy(), 50);
    pool = new BufferPool(2, 4096);
    await assert.rejects(drainInto(packBundles([b], { pool }), stuck, (c) => pool.release(c)), /closed early|destroyed/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('contrib/relay.example.json is a valid relay config', async () => {
  const { readFile } = await import('node:fs/promises');
  const { fileURLToPath } = await import('node:url');
  const file = fileURLToPath(new URL('../../../contrib/relay.example.json', import.meta.url));
  const c = parseRelayConfig(await readFile(file, 'utf8'), file);
  assert.equal(c.to.port, 9090);
  assert.equal(c.tuning.rate, 4 * 1024 * 1024);
});

test('verifyArrived: the arrival hashes stand in for a second read, and every gap is refused', async () => {
  const { verifyArrived, readManifest } = await import('../../src/bundle/index.js');
  const { rename } = await import('node:fs/promises');
  const root = await mkdtemp(join(tmpdir(), 'zferry-arrived-'));
  try {
    const dir = await makeBundle(root);
    const m = await readManifest(dir);
    const vols = m.streams.flatMap((s) => s.volumes);
    const all = new Map(vols.map((v) => [v.file, { bytes: v.bytes, sha256: v.sha256 }]));
    assert.equal((await verifyArrived(dir, m, all)).volumes, vols.length);
    const lacking = new Map(all);
    lacking.delete(vols[1].file);
    await assert.rejects(verifyArrived(dir, m, lacking), /missing volume .*0001-full\.zst\.001/);
    const wrong = new Map(all);
    wrong.set(vols[0].file, { bytes: vols[0].bytes, sha256: '0'.repeat(64) });
    await assert.rejects(verifyArrived(dir, m, wrong), /0001-full\.zst\.000: arrived with sha256 0{64}/);
    await writeFile(join(dir, vols[2].file), 'short');
    await assert.rejects(verifyArrived(dir, m, all), /0001-full\.zst\.002: size is 5 bytes/);
    await writeFile(join(dir, 'streams', '0001-full.zst.999'), 'x');
    await assert.rejects(verifyArrived(dir, m, all), /0001-full\.zst\.999: not listed in manifest\.json/);
    await rename(join(dir, 'SHA256SUMS'), join(dir, 'gone'));
    await assert.rejects(verifyArrived(dir, m, all), /SHA256SUMS: missing/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

/** One resumed push: an offer, the spool's holdings, then the data push leaving out what it holds. */
async function resumedPush(spool: string, dirs: string[]): Promise<{ bytes: number; bundles: string[]; discarded: string[] }> {
  const bundles = await describeBundles(dirs);
  const offer = await unpackInto(spool, Readable.from([await buffer(packBundles(bundles, { phase: 'offer' }))]), { source: TANK });
  assert.ok(offer.offer, 'an offer is answered, not unpacked');
  const holdings = await readHoldings(spool, offer.offer);
  const data = await buffer(packBundles(bundles, { resume: resumeFrom(bundles, holdings.message.bundles) }));
  const r = await unpackInto(spool, Readable.from([data]), { source: TANK, holdings });
  return { bytes: data.length, bundles: r.bundles, discarded: holdings.discarded };
}

test('relay resume: a push cut anywhere continues from the bytes the spool kept, and only the rest crosses', async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-relay-resume-'));
  try {
    const dirs = [await makeBundle(join(root, 'out')), await makeBundle(join(root, 'out'))];
    const full = await buffer(packBundles(await describeBundles(dirs)));
    for (const cut of [1500, 40_000, Math.floor(full.length / 2), full.length - 2000]) {
      const spool = join(root, `cut-${cut}`);
      await assert.rejects(unpackInto(spool, Readable.from([full.subarray(0, cut)]), { source: TANK }));
      const r = await resumedPush(spool, dirs);
      assert.deepEqual(r.bundles.map((d) => basename(d)), dirs.map((d) => basename(d)), `cut at ${cut}: both bundles complete`);
      for (const d of r.bundles) await verifyBundle(d);
      // The first push's bytes up to the cut, less tar framing, were not sent again.
      assert.ok(cut + r.bytes <= full.length * 1.02 + 4 * 4096, `cut at ${cut}: ${cut} + ${r.bytes} bytes crossed for a ${full.length}-byte push`);
      assert.deepEqual(await readdir(join(spool, '.incoming')), [], `cut at ${cut}: nothing left kept`);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('relay resume: a kept part that does not match is discarded with one line and the volume fetched whole', async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-relay-resume-'));
  try {
    const dirs = [await makeBundle(join(root, 'out'))];
    const full = await buffer(packBundles(await describeBundles(dirs)));
    const spool = join(root, 'spool');
    await assert.rejects(unpackInto(spool, Readable.from([full.subarray(0, Math.floor(full.length * 0.6))]), { source: TANK }));
    const kept = join(spool, '.incoming', basename(dirs[0]), 'streams');
    const files = (await readdir(kept)).sort();
    // The last kept volume is a prefix (the cut was inside it): flip its first byte, as a host crash might leave it.
    const partial = join(kept, files.at(-1)!);
    assert.ok((await stat(partial)).size > 0);
    const fh = await openFile(partial, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 0);
    b[0] ^= 0xff;
    await fh.write(b, 0, 1, 0);
    await fh.close();
    await assert.rejects(resumedPush(spool, dirs), /kept from an earlier push .* the kept part is discarded and the volume fetched whole on the next push/);
    const again = await resumedPush(spool, dirs);
    assert.equal(again.bundles.length, 1);
    await verifyBundle(again.bundles[0]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the receiver removes only bundle folders directly in its spool, named as export names that bundle, that the import found done', async () => {
  const { pruneDone } = await import('../../src/commands/relay-receive.js');
  const { mkdir } = await import('node:fs/promises');
  const spool = await mkdtemp(join(tmpdir(), 'zferry-prune-'));
  const outside = await mkdtemp(join(tmpdir(), 'zferry-prune-outside-'));
  const id = (hex8: string) => `${hex8}-0000-4000-8000-000000000000`;
  const name = (n: number, hex8: string) => `zferry-tank-2026120${n}T000000Z-${hex8}`;
  try {
    for (const n of [name(1, 'aaaaaaaa'), name(2, 'bbbbbbbb'), name(3, 'cccccccc'), name(4, 'eeeeeeee'), 'keep-me']) await mkdir(join(spool, n));
    await mkdir(join(outside, name(9, 'dddddddd')));
    const b = (dir: string, bundleId: string, status: string) => ({ bundle: dir, bundleId, status, applied: [], skipped: [] });
    const removed = await pruneDone(spool, {
      bundles: [
        b(join(spool, name(1, 'aaaaaaaa')), id('aaaaaaaa'), 'already-applied'),
        b(join(spool, name(3, 'cccccccc')), id('cccccccc'), 'applied'),
        b(join(spool, 'keep-me'), id('ffffffff'), 'already-applied'),
        // A folder whose name is another bundle's: not this one's to remove.
        b(join(spool, name(4, 'eeeeeeee')), id('12345678'), 'already-applied'),
        b(join(outside, name(9, 'dddddddd')), id('dddddddd'), 'already-applied'),
      ] as never,
      superseded: [{ bundle: join(spool, name(2, 'bbbbbbbb')), bundleId: id('bbbbbbbb'), message: '' }],
    });
    assert.deepEqual(removed.map((d) => basename(d)), [name(1, 'aaaaaaaa'), name(2, 'bbbbbbbb')]);
    assert.deepEqual((await readdir(spool)).sort(), ['keep-me', name(3, 'cccccccc'), name(4, 'eeeeeeee')]);
    assert.deepEqual(await readdir(outside), [name(9, 'dddddddd')]);
  } finally {
    await rm(spool, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  }
});
