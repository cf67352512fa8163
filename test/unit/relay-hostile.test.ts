/**
 * The relay's rules against a hostile peer, on literal data: which folder
 * names a spool takes, which source it serves, when a receipt that came back
 * over the link counts, and that hostile tar streams leave nothing behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile, cp, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import tar from 'tar-stream';
import { bundleFolderName } from '../../src/commands/export.js';
import { bundleNameProblem, isBundleDirName } from '../../src/relay/names.js';
import { checkSpoolServes, foreignBundles, parseSourceId, servedSource } from '../../src/relay/source.js';
import { judgeReceipt, type PushedBundle } from '../../src/plan/receipt.js';
import { evaluateReply, makeReply, parseReply } from '../../src/relay/reply.js';
import { unpackInto } from '../../src/relay/unpack.js';
import { describeBundles, packBundles } from '../../src/relay/pack.js';
import { parseRelayConfig } from '../../src/relay/config.js';
import { generateKeyFiles, readPublicKey, readSecretKey } from '../../src/trust/minisign.js';
import { signReceipt } from '../../src/trust/receipt-signature.js';
import { finishBundle, type Manifest } from '../../src/bundle/index.js';
import { writeStream } from '../../src/pipeline/index.js';
import type { TargetState } from '../../src/state/receipt.js';

const GUID = '1234567890123456789';
const TANK = `${GUID}:tank`;

test('spool names: export\'s bundle names only; receipts, locks, the journal, .incoming and dot names never pass', () => {
  const id = randomUUID();
  for (const root of ['tank', 'tank/data', 'tank/a b:c', 'x']) {
    const name = bundleFolderName(root, id, new Date('2026-11-26T07:30:00.123Z'));
    assert.ok(isBundleDirName(name), name);
    assert.equal(bundleNameProblem(name, id), null);
  }
  for (const bad of [
    'receipt-backup.json', 'receipt-zferry-tank-20261126T073000Z-1a2b3c4d.json', '.zferry-relay.lock', '.zferry-relay.json', '.incoming',
    'journal-1-tank.json', 'zferry-tank', 'zferry-tank-1a2b3c4d', '.zferry-tank-20261126T073000Z-1a2b3c4d', '..', '.', '',
    'zferry-tank-20261126T073000Z-1A2B3C4D', 'zferry-tank-20261126T073000Z-1a2b3c4d/..', 'zferry-ta/nk-20261126T073000Z-1a2b3c4d',
    'zferry-tank-20261126T073000Z-1a2b3c4d.json', `zferry-${'a'.repeat(250)}-20261126T073000Z-1a2b3c4d`,
  ]) {
    assert.equal(isBundleDirName(bad), false, bad);
  }
  assert.match(bundleNameProblem('receipt-backup.json')!, /"receipt-backup\.json" is not a zferry bundle folder name/);
  assert.match(bundleNameProblem('zferry-tank-20261126T073000Z-1a2b3c4d', 'ffffffff-0000-4000-8000-000000000000')!, /ends in 1a2b3c4d, but its manifest\.json has bundleId ffffffff-/);
});

test('source ids: POOLGUID:ROOT as import marks targets; anything else is refused naming the option', () => {
  assert.equal(parseSourceId(TANK, '--source'), TANK);
  assert.equal(parseSourceId(`${GUID}:tank/data set`, '--source'), `${GUID}:tank/data set`);
  for (const bad of ['tank', `${GUID}`, `${GUID}:`, `x:tank`, `18446744073709551616:tank`, `${GUID}:tank/../etc`, `${GUID}:/tank`, `${GUID}:tank\n`]) {
    assert.throws(() => parseSourceId(bad, '--source'), /--source .* is not a source id: expected POOLGUID:ROOT/, bad);
  }
});

test('the served source comes from --source or the target\'s mark, never from a bundle; a conflict between them is refused', () => {
  assert.equal(servedSource({ flag: TANK, marked: null, target: 'backup', force: false }), TANK);
  assert.equal(servedSource({ flag: null, marked: TANK, target: 'backup', force: false }), TANK);
  assert.equal(servedSource({ flag: TANK, marked: TANK, target: 'backup', force: false }), TANK);
  assert.throws(() => servedSource({ flag: `${GUID}:other`, marked: TANK, target: 'backup', force: false }), /backup mirrors source 1234567890123456789:tank/);
  assert.equal(servedSource({ flag: `${GUID}:other`, marked: TANK, target: 'backup', force: true }), `${GUID}:other`);
  assert.throws(() => servedSource({ flag: null, marked: null, target: 'backup', force: false }), /needs --source POOLGUID:ROOT .*backup does not exist yet or has no zferry:source mark/);
  assert.throws(() => servedSource({ flag: null, marked: null, target: null, force: true }), /needs --source .*there is no --import target/);
  assert.deepEqual(
    foreignBundles([{ dir: 'a', source: TANK }, { dir: 'b', source: `${GUID}:tank/data` }, { dir: 'c', source: `9:tank` }], TANK).map((e) => e.dir),
    ['b', 'c'],
  );
});

function manifestFor(id: string, creates: Array<{ name: string; guid: string }>, inventorySnaps: Array<{ name: string; guid: string; txg: string }>): PushedBundle {
  return {
    bundleId: id,
    source: { host: 'src', pool: 'tank', root: 'tank', poolGuid: GUID },
    inventory: {
      root: 'tank',
      datasets: [{ path: '', type: 'filesystem', guid: '7', bookmarks: [], snapshots: inventorySnaps.map((s) => ({ name: s.name, guid: s.guid, createtxg: s.txg, creation: 1 })) }],
    },
    streams: [{ dataset: '', creates }],
  };
}

function receiptFor(bundles: string[], guids: string[], over: Partial<TargetState> = {}): TargetState {
  return {
    format: 'zferry-state', formatVersion: 1, takenAt: '2026-11-26T08:00:00Z', host: 'dst', zferryVersion: '0.1.0', target: 'backup',
    source: { host: 'src', pool: 'tank', root: 'tank', poolGuid: GUID }, bundles,
    inventory: { root: 'backup', datasets: [{ path: '', type: 'filesystem', guid: '8', bookmarks: [], snapshots: guids.map((g, i) => ({ name: `s${i}`, guid: g, createtxg: String(10 + i), creation: 1 })) }] },
    ...over,
  };
}

test('a receipt counts only when it names every pushed bundle and holds their snapshots by guid, from their source, not dated ahead', () => {
  const now = new Date('2026-11-26T09:00:00Z');
  const a = randomUUID();
  const b = randomUUID();
  const pushed = [
    manifestFor(a, [{ name: 's1', guid: '101' }], [{ name: 's1', guid: '101', txg: '10' }]),
    manifestFor(b, [{ name: 's2', guid: '102' }], [{ name: 's1', guid: '101', txg: '10' }, { name: 's2', guid: '102', txg: '20' }]),
  ];
  // Bundles the receiver's spool held before are named too: that is how import lists them.
  assert.deepEqual(judgeReceipt(receiptFor([randomUUID(), a, b], ['101', '102']), pushed, now), { ok: true, confirmed: [a, b] });

  const v = (r: TargetState) => {
    const got = judgeReceipt(r, pushed, now);
    assert.equal(got.ok, false);
    return (got as { reason: string }).reason;
  };
  assert.match(v(receiptFor([a], ['101', '102'])), new RegExp(`does not name bundle ${b} that this push carried`));
  assert.match(v(receiptFor([randomUUID()], ['101', '102'])), /does not name bundles/);
  assert.match(v(receiptFor([a, b], ['101'])), new RegExp(`lacks tank@s2 \\(guid 102\\), which bundle ${b} carried`));
  assert.match(v(receiptFor([a, b], [])), /lacks tank@s1/);
  assert.match(v(receiptFor([a, b], ['101', '102'], { takenAt: '2099-01-01T00:00:00Z' })), /dated 2099-01-01T00:00:00Z, more than a day after/);
  assert.match(v(receiptFor([a, b], ['101', '102'], { source: null })), /names no source/);
  assert.match(v(receiptFor([a, b], ['101', '102'], { source: { host: 'src', pool: 'tank', root: 'tank/data', poolGuid: GUID } })), /source 1234567890123456789:tank\/data/);
  // A little clock skew is no reason to refuse.
  assert.equal(judgeReceipt(receiptFor([a, b], ['101', '102'], { takenAt: '2026-11-26T20:00:00Z' }), pushed, now).ok, true);
});

test('a snapshot the newest pushed bundle no longer lists need not be on the target (receive --delete dropped it)', () => {
  const now = new Date('2026-11-26T09:00:00Z');
  const a = randomUUID();
  const b = randomUUID();
  const pushed = [
    manifestFor(a, [{ name: 'old', guid: '201' }], [{ name: 'old', guid: '201', txg: '10' }]),
    manifestFor(b, [{ name: 'new', guid: '202' }], [{ name: 'new', guid: '202', txg: '20' }]),
  ];
  assert.equal(judgeReceipt(receiptFor([a, b], ['202']), pushed, now).ok, true);
  assert.equal(judgeReceipt(receiptFor([a, b], ['201']), pushed, now).ok, false);
});

test('replies: signed receipts check against the receiver\'s key; unsigned, wrongly signed, edited or garbled replies are set aside', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-receipt-sig-'));
  try {
    await generateKeyFiles(join(dir, 'rx'));
    await generateKeyFiles(join(dir, 'other'));
    const sk = await readSecretKey(join(dir, 'rx'));
    const otherSk = await readSecretKey(join(dir, 'other'));
    const pk = await readPublicKey(join(dir, 'rx.pub'));
    const a = randomUUID();
    const pushed = [manifestFor(a, [{ name: 's1', guid: '101' }], [{ name: 's1', guid: '101', txg: '10' }])];
    const receipt = receiptFor([a], ['101'], { takenAt: new Date().toISOString() });
    const text = JSON.stringify(receipt, null, 2) + '\n';
    const trusted = { pushed, trust: { key: pk, file: 'rx.pub' }, now: new Date() };
    const plain = { ...trusted, trust: null };
    const signedReply = (t: string, sig: string) => JSON.stringify(makeReply(JSON.parse(t), null, { text: t, signature: sig }));

    const ok = evaluateReply(signedReply(text, signReceipt(text, sk, receipt)), 'rp', trusted);
    assert.equal(ok.kind, 'accepted');
    assert.equal((ok as { receipt: TargetState }).receipt.takenAt, receipt.takenAt);

    const unsigned = evaluateReply(JSON.stringify(makeReply(receipt, null)), 'rp', trusted);
    assert.deepEqual(unsigned, { kind: 'ignored', reason: 'receipt from rp is not signed, and --trust-receiver rx.pub accepts only receipts signed by that key' });
    const wrongKey = evaluateReply(signedReply(text, signReceipt(text, otherSk, receipt)), 'rp', trusted);
    assert.match((wrongKey as { reason: string }).reason, /signed by key [0-9A-F]+, not by the trusted key/);
    const edited = text.replace('"host": "dst"', '"host": "dsx"');
    const tampered = evaluateReply(signedReply(edited, signReceipt(text, sk, receipt)), 'rp', trusted);
    assert.match((tampered as { reason: string }).reason, /signature does not match the receipt/);

    // Without a key, the content rule alone; a refusal is final; garbage and silence are set aside.
    assert.equal(evaluateReply(JSON.stringify(makeReply(receipt, null)), 'rp', plain).kind, 'accepted');
    const forged = evaluateReply(JSON.stringify(makeReply(receiptFor([randomUUID()], ['101'], { takenAt: '2099-01-01T00:00:00Z' }), null)), 'rp', plain);
    assert.match((forged as { reason: string }).reason, /^receipt from rp is not about this push: it does not name bundle/);
    assert.deepEqual(evaluateReply(JSON.stringify(makeReply(null, 'conflict on tank/data')), 'rp', plain).kind, 'refused');
    assert.equal(evaluateReply('', 'rp', plain).kind, 'ignored');
    assert.equal(evaluateReply('{"format":"zferry-relay-reply"', 'rp', plain).kind, 'ignored');
    assert.throws(() => parseReply(JSON.stringify({ ...makeReply(receipt, null), receiptText: text }), 'rp'), /receiptText without receiptSignature/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('relay config: idleTimeout and trustReceiver, relative to the file; idleTimeout defaults to 300 s', () => {
  const base = { source: 'tank', spool: 's', to: 'b:9090', replyListen: '9091' };
  const c = parseRelayConfig(JSON.stringify({ ...base, idleTimeout: 30, trustReceiver: 'rx.pub' }), '/etc/zferry/relay.json');
  assert.equal(c.idleTimeoutSeconds, 30);
  assert.equal(c.trustReceiver, '/etc/zferry/rx.pub');
  const d = parseRelayConfig(JSON.stringify(base), '/etc/zferry/relay.json');
  assert.equal(d.idleTimeoutSeconds, 300);
  assert.equal(d.trustReceiver, null);
  assert.throws(() => parseRelayConfig(JSON.stringify({ ...base, idleTimeout: 0 }), 'r.json'), /r\.json: \/idleTimeout/);
});

async function makeBundle(parent: string, root = 'tank', poolGuid = GUID): Promise<string> {
  const id = randomUUID();
  const dir = join(parent, bundleFolderName(root, id, new Date()));
  const raw = randomBytes(100 * 1024);
  const full = await writeStream(Readable.from([raw]), { dir, index: 1, kind: 'full', volumeSize: 48 * 1024, level: 1 });
  const m: Manifest = {
    format: 'zferry-bundle', formatVersion: 1, bundleId: id, createdAt: new Date().toISOString(), zferryVersion: '0.1.0',
    source: { host: 'h', pool: 'tank', root, poolGuid },
    basis: { origin: 'empty', file: null, target: null, takenAt: null, inventory: null },
    inventory: { root, datasets: [{ path: '', type: 'filesystem', guid: '77', snapshots: [{ name: 's1', guid: '1000', createtxg: '10', creation: 1700000000 }], bookmarks: [] }] },
    compression: { algorithm: 'zstd', level: 1 },
    streams: [{ index: 1, dataset: '', type: 'filesystem', kind: 'full', from: null, to: { name: 's1', guid: '1000' }, intermediates: false,
      creates: [{ name: 's1', guid: '1000' }], force: false, sendFlags: [], ...full }],
  };
  await finishBundle(dir, m);
  return dir;
}

/** A relay stream whose every entry is given, as a hostile peer writes it. */
async function rawTar(entries: Array<{ name: string; data: Buffer }>): Promise<Buffer> {
  const pack = tar.pack();
  const out = buffer(pack);
  for (const e of entries) {
    await new Promise<void>((res, rej) => pack.entry({ name: e.name, size: e.data.length }, e.data, (err) => (err ? rej(err) : res())));
  }
  pack.finalize();
  return out;
}

/** Everything under dir, as relative paths. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      out.push(join(rel, e.name));
      if (e.isDirectory()) await walk(join(d, e.name), join(rel, e.name));
    }
  };
  await walk(dir, '');
  return out.sort();
}

test('unpack: a bundle named like the receipt, or renamed, or from another source writes nothing; the receipt stays a file', async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-relay-hostile-'));
  try {
    const good = await makeBundle(join(root, 'out'));
    const manifestBytes = await readFile(join(good, 'manifest.json'));
    const m = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
    const spool = join(root, 'spool');
    await mkdir(spool);
    await writeFile(join(spool, 'receipt-backup.json'), '{}\n');
    const header = (name: string, bundleId = m.bundleId) => Buffer.from(JSON.stringify({ format: 'zferry-relay', formatVersion: 1, bundles: [{ name, bundleId, bytes: 1 }], totalBytes: 1 }));

    for (const [what, name, re] of [
      ['the receipt\'s name', 'receipt-backup.json', /"receipt-backup\.json" is not a zferry bundle folder name/],
      ['the lock\'s name', '.zferry-relay.lock', /is not a zferry bundle folder name/],
      ['another bundle id', bundleFolderName('tank', randomUUID(), new Date()), /but its manifest\.json has bundleId/],
    ] as const) {
      const bytes = await rawTar([{ name: '.zferry-relay.json', data: header(name) }, { name: `${name}/manifest.json`, data: manifestBytes }]);
      await assert.rejects(unpackInto(spool, Readable.from([bytes]), { source: TANK }), re, what);
      assert.deepEqual(await tree(spool), ['.incoming', 'receipt-backup.json'], what);
      assert.ok((await lstat(join(spool, 'receipt-backup.json'))).isFile());
    }

    // A header that lies about the id of the bundle it announces.
    const lying = await rawTar([{ name: '.zferry-relay.json', data: header(basename(good), randomUUID()) }, { name: `${basename(good)}/manifest.json`, data: manifestBytes }]);
    await assert.rejects(unpackInto(spool, Readable.from([lying]), { source: TANK }), /announced bundle .* as .*, its manifest\.json says/);

    // A whole, valid bundle of another source: refused at its manifest; .incoming stays empty.
    const other = await makeBundle(join(root, 'other'), 'tank/data');
    const stream = Readable.from([await buffer(packBundles(await describeBundles([other])))]);
    await assert.rejects(unpackInto(spool, stream, { source: TANK }), /comes from source 1234567890123456789:tank\/data .*but this spool serves 1234567890123456789:tank: refused before any of its files was written/);
    assert.deepEqual(await tree(spool), ['.incoming', 'receipt-backup.json']);

    // The served source's bundle still goes in.
    const r = await unpackInto(spool, Readable.from([await buffer(packBundles(await describeBundles([good])))]), { source: TANK });
    assert.deepEqual(r.bundles.map((d) => basename(d)), [basename(good)]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a spool holding another source\'s bundle is reported as poisoned, naming every folder to remove', async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-relay-poison-'));
  try {
    const spool = join(root, 'spool');
    const mine = await makeBundle(spool);
    await checkSpoolServes(spool, TANK);
    const a = await makeBundle(join(root, 'x'), 'tank/data');
    const b = await makeBundle(join(root, 'y'), 'tank', '42');
    await cp(a, join(spool, basename(a)), { recursive: true });
    await cp(b, join(spool, basename(b)), { recursive: true });
    await assert.rejects(checkSpoolServes(spool, TANK), (err: Error) => {
      assert.match(err.message, new RegExp(`^spool ${spool} is poisoned: it serves source ${TANK}, but `));
      assert.ok(err.message.includes(join(spool, basename(a))) && err.message.includes(join(spool, basename(b))), err.message);
      assert.ok(!err.message.includes(basename(mine)), err.message);
      assert.match(err.message, /remove those folders$/);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
