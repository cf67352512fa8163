/**
 * A hostile relay peer on 127.0.0.1, against real mbuffer and zfs-fuse pools:
 * bundle names that aim at the spool's own files, bundles of another source,
 * a poisoned spool, a peer that connects and says nothing, forged and
 * unsigned receipts on the sender's reply port, and a receipt that cannot be
 * delivered. Each test asserts what is on disk and on the target, and that
 * real transfers keep working afterwards.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import tar from 'tar-stream';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { buildSource, guidList, snapshot, writeData } from '../helpers/fixtures.js';
import { bundlesIn, finished, freePortRange, LOOP, sourceId, startZferry, stop, stopAll, untilListening, waitFor } from '../helpers/relay.js';
import { readPublicKey, checkSignature } from '../../src/trust/minisign.js';

/** The first of 12 free ports, found in `before`. */
let BASE: number;

let src: TestPool;
let dst: TestPool;
let work: string;
let SRC_ID: string;
/** A bundle of the whole source, and one of src/data alone: another source by id (POOLGUID:ROOT). */
let bundle: string;
let foreign: string;
/** The source's snapshots when `bundle` was made: what a target that received it holds. */
let bundleGuids: string[];

async function exportBundle(root: string, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const r = await zferryOk('export', root, dir, '--no-journal', '--volume-size', '128K', '--level', '1', '--json');
  return JSON.parse(r.stdout).bundle as string;
}

/** The bytes of a relay stream, entry by entry, as a hostile peer would write them. */
async function relayTar(entries: Array<{ name: string; data: Buffer }>): Promise<Buffer> {
  const pack = tar.pack();
  const bytes = buffer(pack);
  for (const e of entries) {
    await new Promise<void>((res, rej) => pack.entry({ name: e.name, size: e.data.length, mode: 0o644 }, e.data, (err) => (err ? rej(err) : res())));
  }
  pack.finalize();
  return bytes;
}

/** Connects to a listener (retrying while it is not up yet) and writes `data`; resolves when the peer closed. */
async function pushRaw(port: number, data: Buffer, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, LOOP);
      s.once('error', () => resolve(false));
      s.once('connect', () => {
        s.end(data);
        s.once('close', () => resolve(true));
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stderrLines(text: unknown): string[] {
  return String(text).split('\n').filter((l) => l.trim() !== '' && !/^mbuffer: warning: (No controlling terminal|HOME)/.test(l));
}

before(async () => {
  BASE = await freePortRange(12);
  src = await makePool('hrs', 160);
  dst = await makePool('hrd', 160);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-hostile-relay-'));
  await buildSource(src.name);
  SRC_ID = await sourceId(src.name);
  bundle = await exportBundle(src.name, path.join(work, 'bundle'));
  bundleGuids = await guidList(src.name);
  foreign = await exportBundle(`${src.name}/data`, path.join(work, 'foreign'));
});

after(async () => {
  await stopAll();
  await src?.destroy();
  await dst?.destroy();
  await rm(work, { recursive: true, force: true });
});

test('a bundle named receipt-<target>.json is refused, the receipt stays a file, and the next real transfer imports', async () => {
  const port = BASE + 1;
  const target = `${dst.name}/named`;
  const spool = path.join(work, 'named-spool');
  const receive = () => startZferry(['relay', 'receive', '--listen', `${LOOP}:${port}`, '--spool', spool, '--source', SRC_ID, '--import', target, '--allow-unsigned', '--once', '--buffer', '1M']);

  let receiver = receive();
  await untilListening(port);
  await zferryOk('relay', 'send', bundle, '--to', `${LOOP}:${port}`, '--buffer', '1M');
  assert.equal((await finished(receiver))?.exitCode, 0);
  const receiptName = (await readdir(spool)).find((n) => /^receipt-.*\.json$/.test(n))!;
  assert.ok(receiptName, 'the first import wrote a receipt');
  const receiptFile = path.join(spool, receiptName);
  const before = await readFile(receiptFile, 'utf8');

  // The wire format exactly, with the receipt's name as the bundle folder.
  const manifest = await readFile(path.join(bundle, 'manifest.json'));
  const bundleId = JSON.parse(manifest.toString()).bundleId as string;
  const header = { format: 'zferry-relay', formatVersion: 1, bundles: [{ name: receiptName, bundleId, bytes: manifest.length }], totalBytes: manifest.length };
  const hostile = await relayTar([
    { name: '.zferry-relay.json', data: Buffer.from(JSON.stringify(header)) },
    { name: `${receiptName}/manifest.json`, data: manifest },
  ]);
  receiver = receive();
  await untilListening(port);
  await pushRaw(port, hostile);
  const r = await finished(receiver);
  assert.ok(r !== null, 'receiver ended within 30 s');
  assert.equal(r.exitCode, 1);
  assert.deepEqual(stderrLines(r.stderr).length, 1, String(r.stderr));
  assert.match(String(r.stderr), /is not a zferry bundle folder name/);
  assert.ok((await lstat(receiptFile)).isFile(), 'the receipt is still a file');
  assert.equal(await readFile(receiptFile, 'utf8'), before);

  // The next import works: it still reads the receipt and writes it anew.
  receiver = receive();
  await untilListening(port);
  await zferryOk('relay', 'send', bundle, '--to', `${LOOP}:${port}`, '--buffer', '1M');
  const ok = await finished(receiver);
  assert.equal(ok?.exitCode, 0, String(ok?.stderr));
  assert.deepEqual(await guidList(target), bundleGuids);
  assert.ok((await lstat(receiptFile)).isFile());
  assert.notEqual(await readFile(receiptFile, 'utf8'), before, 'rewritten by the import');
});

test('a bundle of another source is refused at its manifest, before any of its files is written; later transfers still work', async () => {
  const port = BASE + 2;
  const target = `${dst.name}/onesource`;
  const spool = path.join(work, 'onesource-spool');
  const receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${port}`, '--spool', spool, '--source', SRC_ID, '--import', target, '--allow-unsigned',
    '--buffer', '1M', '--block-size', '16k', '--json']);
  try {
    // Watch .incoming for the whole push: the foreign bundle's folder must never appear, not even there.
    let seen = false;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const names = await readdir(path.join(spool, '.incoming')).catch(() => [] as string[]);
        if (names.includes(path.basename(foreign))) seen = true;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await untilListening(port);
    await zferry('relay', 'send', foreign, '--to', `${LOOP}:${port}`, '--buffer', '1M', '--rate', '256k');
    // Refused and listening again: the transfer is over.
    await untilListening(port);
    watching = false;
    await watcher;
    assert.equal(seen, false, 'the foreign bundle never reached .incoming');
    assert.deepEqual(await bundlesIn(spool), []);
    assert.equal(await run('zfs', ['list', '-H', '-o', 'name', target], { allowFailure: true }), '', 'nothing was received');

    // The same receiver, still serving, takes the next real bundle.
    await zferryOk('relay', 'send', bundle, '--to', `${LOOP}:${port}`, '--buffer', '1M');
    await waitFor('the import', async () => (await bundlesIn(spool)).length === 1 && (await readdir(spool)).some((n) => n.startsWith('receipt-')), 60_000);
    assert.deepEqual(await guidList(target), bundleGuids);
  } finally {
    await stop(receiver);
  }
  assert.match(String((await receiver).stdout), /comes from source [0-9]+:[^ ]+\/data .*refused before any of its files was written/);
});

test('a poisoned spool is reported naming the folder to remove; with neither --source nor a marked target, receive asks for --source', async () => {
  const spool = path.join(work, 'poisoned-spool');
  await mkdir(spool, { recursive: true });
  await cp(bundle, path.join(spool, path.basename(bundle)), { recursive: true });
  const stray = path.join(spool, path.basename(foreign));
  await cp(foreign, stray, { recursive: true });
  const r = await zferry('relay', 'receive', '--listen', `${LOOP}:${BASE + 3}`, '--spool', spool, '--source', SRC_ID, '--once');
  assert.equal(r.code, 1);
  assert.equal(stderrLines(r.stderr).length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^zferry: spool ${spool} is poisoned: it serves source ${SRC_ID}, but ${stray} \\(source [0-9]+:${src.name}/data\\) came from another source: remove that folder$`));

  const bare = await zferry('relay', 'receive', '--listen', `${LOOP}:${BASE + 3}`, '--spool', path.join(work, 'bare-spool'), '--import', `${dst.name}/nowhere`, '--allow-unsigned', '--once');
  assert.equal(bare.code, 2);
  assert.equal(stderrLines(bare.stderr).length, 1, bare.stderr);
  assert.match(bare.stderr, /needs --source POOLGUID:ROOT .*the first bundle to arrive must not decide it/);
});

test('an idle connection is dropped after --idle-timeout and the next send succeeds; a slow but moving push is never cut', async () => {
  const port = BASE + 4;
  const spool = path.join(work, 'idle-spool');
  const receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${port}`, '--spool', spool, '--source', SRC_ID, '--idle-timeout', '2',
    '--buffer', '1M', '--block-size', '16k', '--json']);
  try {
    await untilListening(port);
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const deadline = Date.now() + 30_000;
      const attempt = () => {
        const s = net.connect(port, LOOP);
        s.once('connect', () => resolve(s));
        s.once('error', () => (Date.now() > deadline ? reject(new Error('never connected')) : setTimeout(attempt, 50)));
      };
      attempt();
    });
    const t0 = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      sock.on('error', () => undefined);
      sock.once('close', () => resolve(Date.now() - t0));
      setTimeout(() => resolve(-1), 30_000);
    });
    sock.destroy();
    assert.ok(closedAfter >= 1_500 && closedAfter < 15_000, `the idle connection was dropped after ${closedAfter} ms`);

    await untilListening(port);
    await zferryOk('relay', 'send', bundle, '--to', `${LOOP}:${port}`, '--buffer', '1M');
    await waitFor('the bundle in the spool', async () => (await bundlesIn(spool)).includes(path.basename(bundle)));

    // The same bundle again, over 8 s at a block (16k) every half second or less: never cut.
    await rm(path.join(spool, path.basename(bundle)), { recursive: true });
    const bytes = Number((await run('du', ['-sb', bundle])).split('\t')[0]);
    const rate = Math.max(16 * 1024, Math.floor(bytes / 8 / 1024) * 1024);
    await untilListening(port);
    const started = Date.now();
    await zferryOk('relay', 'send', bundle, '--to', `${LOOP}:${port}`, '--buffer', '1M', '--block-size', '16k', '--rate', String(rate));
    await waitFor('the slow bundle in the spool', async () => (await bundlesIn(spool)).includes(path.basename(bundle)));
    const seconds = (Date.now() - started) / 1000;
    assert.ok(seconds > 6, `the slow push took ${seconds} s, three times the idle timeout`);
    await zferryOk('verify', path.join(spool, path.basename(bundle)));
  } finally {
    await stop(receiver);
  }
  assert.match(String((await receiver).stdout), /nothing moved for 2 s \(idle timeout\)/);
});

/** A reply from whoever reaches the sender's reply port first. */
function forgedReply(receipt: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ format: 'zferry-relay-reply', formatVersion: 1, ok: true, error: null, receipt }) + '\n');
}

test('forged unsigned receipts (dated 2099, naming other bundles, or lacking the snapshots) are ignored; relay run prunes nothing on their word', async () => {
  const target = `${dst.name}/forged`;
  const sendSpool = path.join(work, 'forged-send');
  const recvSpool = path.join(work, 'forged-recv');
  const to = BASE + 5;
  const replyPort = BASE + 6;
  const config = path.join(work, 'forged.json');
  const configFor = (receiptTimeout: number) => writeFile(config, JSON.stringify({
    source: src.name, spool: sendSpool, to: `${LOOP}:${to}`, replyListen: `${LOOP}:${replyPort}`,
    receiptTimeout, volumeSize: '256K', mbuffer: { memory: '4M' },
  }));
  await configFor(300);
  const identity = JSON.parse(await readFile(path.join(bundle, 'manifest.json'), 'utf8')).source;
  const receiptOf = (over: Record<string, unknown>) => ({
    format: 'zferry-state', formatVersion: 1, takenAt: new Date().toISOString(), host: 'mallory', zferryVersion: '0.1.0',
    target, source: identity, bundles: [], inventory: { root: target, datasets: [] }, ...over,
  });

  // Round 1: the forger answers first, dated 2099 and naming a bundle that never existed; the real receipt comes after.
  let receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${to}`, '--spool', recvSpool, '--source', SRC_ID, '--import', target, '--allow-unsigned',
    '--reply-to', `${LOOP}:${replyPort}`, '--buffer', '4M']);
  try {
    await untilListening(to);
    const forger = pushRaw(replyPort, forgedReply(receiptOf({ takenAt: '2099-01-01T00:00:00Z', bundles: [randomUUID()], target: `${dst.name}/elsewhere` })), 120_000);
    const round = await zferry('relay', 'run', '--config', config, '--json');
    await forger;
    assert.equal(round.code, 0, round.stderr);
    const events = round.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const ignored = events.filter((e) => e.event === 'ignored');
    assert.equal(ignored.length, 1, round.stdout);
    assert.match(String(ignored[0].message), /does not name bundle .* that this push carried/);
    assert.deepEqual(await bundlesIn(sendSpool), [], 'the real receipt confirmed the push');
    const receipts = (await readdir(sendSpool)).filter((n) => n.startsWith('receipt-'));
    assert.equal(receipts.length, 1, `only the real receipt is stored: ${receipts}`);
    // By its fields: '2099' may well occur in a real receipt's guids or bundle ids.
    const stored = JSON.parse(await readFile(path.join(sendSpool, receipts[0]), 'utf8')) as { takenAt: string; host: string };
    assert.ok(!stored.takenAt.startsWith('2099') && stored.host !== 'mallory', `the stored receipt is the forger's: ${stored.takenAt} from ${stored.host}`);
    assert.deepEqual(await guidList(target), await guidList(src.name));
  } finally {
    await stop(receiver);
  }
  const stored = (await readdir(sendSpool)).filter((n) => n.startsWith('receipt-'));
  const storedText = await readFile(path.join(sendSpool, stored[0]), 'utf8');

  // Round 2: no real reply comes; the forger names the very bundle pushed, dated now, but holds none of its snapshots.
  await configFor(15);
  await writeData(`${src.name}/data`, 'forged.bin', 16);
  await snapshot(`${src.name}@forged-1`, true);
  receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${to}`, '--spool', recvSpool, '--source', SRC_ID, '--import', target, '--allow-unsigned', '--buffer', '4M']);
  try {
    await untilListening(to);
    const forger = (async () => {
      await waitFor('the export', async () => (await bundlesIn(sendSpool)).length === 1, 60_000);
      const m = JSON.parse(await readFile(path.join(sendSpool, (await bundlesIn(sendSpool))[0], 'manifest.json'), 'utf8'));
      await pushRaw(replyPort, forgedReply(receiptOf({ bundles: [m.bundleId] })), 60_000);
    })();
    const round = await zferry('relay', 'run', '--config', config, '--json');
    await forger;
    assert.equal(round.code, 1, round.stdout);
    assert.match(round.stdout, /"event":"ignored".*its inventory lacks .*@forged-1 \(guid [0-9]+\)/);
    assert.match(round.stderr, /no receipt for them arrived on .* within 15 s \(1 reply ignored/);
    assert.equal((await bundlesIn(sendSpool)).length, 1, 'the pushed bundle stays pending');
    assert.deepEqual((await readdir(sendSpool)).filter((n) => n.startsWith('receipt-')), stored);
    assert.equal(await readFile(path.join(sendSpool, stored[0]), 'utf8'), storedText, 'no receipt was written on the forger\'s word');
  } finally {
    await stop(receiver);
  }
});

test('relay receive --sign / relay send --trust-receiver: a signed receipt is accepted and stored with its .minisig; an unsigned one is refused', async () => {
  const to = BASE + 7;
  const replyPort = BASE + 8;
  const target = `${dst.name}/signed`;
  const spool = path.join(work, 'signed-spool');
  const key = path.join(work, 'receiver-key');
  await zferryOk('keygen', '-o', key);
  const out = path.join(work, 'signed-out');
  await cp(bundle, path.join(out, path.basename(bundle)), { recursive: true });
  const sendIt = (...extra: string[]) => zferry('relay', 'send', path.join(out, path.basename(bundle)), '--to', `${LOOP}:${to}`, '--buffer', '1M',
    '--reply-port', `${LOOP}:${replyPort}`, '--trust-receiver', `${key}.pub`, ...extra);

  // Unsigned receiver: its real receipt is still refused by a sender that trusts only the key.
  let receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${to}`, '--spool', spool, '--source', SRC_ID, '--import', target, '--allow-unsigned',
    '--reply-to', `${LOOP}:${replyPort}`, '--once', '--buffer', '1M']);
  await untilListening(to);
  const refused = await sendIt('--receipt-timeout', '60');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /reply on .* ignored: receipt from .* is not signed, and --trust-receiver .*receiver-key\.pub accepts only receipts signed by that key/);
  assert.match(refused.stderr, /no receipt for them arrived/);
  assert.deepEqual((await readdir(out)).filter((n) => n.startsWith('receipt-')), [], 'nothing stored');
  assert.equal((await finished(receiver))?.exitCode, 0, 'the receiver delivered its reply');

  // Signing receiver: accepted; the signature is stored beside the receipt on both sides and checks against the key.
  receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${to}`, '--spool', spool, '--source', SRC_ID, '--import', target, '--allow-unsigned',
    '--reply-to', `${LOOP}:${replyPort}`, '--sign', key, '--once', '--buffer', '1M']);
  await untilListening(to);
  // Bounded: a receipt that never comes fails here with both sides' words, not at the file's timeout.
  const accepted = await sendIt('--receipt-timeout', '120');
  const ended = await finished(receiver);
  assert.equal(accepted.code, 0, `sender: ${accepted.stderr}\nreceiver: ${ended?.exitCode} ${String(ended?.stderr ?? 'still running')}`);
  assert.equal(ended?.exitCode, 0, String(ended?.stderr));
  const pk = await readPublicKey(`${key}.pub`);
  for (const dir of [out, spool]) {
    const name = (await readdir(dir)).find((n) => /^receipt-.*\.json$/.test(n))!;
    const text = await readFile(path.join(dir, name));
    checkSignature(text, await readFile(path.join(dir, `${name}.minisig`), 'utf8'), pk, `${name}.minisig`, `${key}.pub`, name);
  }
});

test('relay receive --once exits 1 with one line when the receipt cannot be delivered', async () => {
  const to = BASE + 9;
  const target = `${dst.name}/undelivered`;
  const spool = path.join(work, 'undelivered-spool');
  // Nothing listens on the reply port.
  const receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${to}`, '--spool', spool, '--source', SRC_ID, '--import', target, '--allow-unsigned',
    '--reply-to', `${LOOP}:${BASE + 10}`, '--once', '--buffer', '1M']);
  await untilListening(to);
  await zferryOk('relay', 'send', bundle, '--to', `${LOOP}:${to}`, '--buffer', '1M');
  const r = await finished(receiver, 60_000);
  assert.ok(r !== null, 'receiver ended within 60 s');
  assert.equal(r.exitCode, 1);
  const lines = stderrLines(r.stderr);
  assert.equal(lines.length, 1, String(r.stderr));
  assert.match(lines[0], /^zferry: imported into .*undelivered \(receipt .*\), but the receipt was not delivered to 127\.0\.0\.1:[0-9]+ after 5 attempts/);
  assert.deepEqual(await guidList(target), bundleGuids, 'the import itself was done');
});
