/**
 * The relay end to end on real ZFS and real mbuffer over 127.0.0.1: a seed
 * and scheduled rounds planned from receipts that came back over the link,
 * transfers cut on either side, and a tampered bundle that never reaches
 * zfs recv. Every port is distinct; every wait is bounded; every process
 * started here is killed by its handle.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir, cp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { CLI, zferry, zferryOk } from '../helpers/cli.js';
import { AUTO, buildSource, fingerprint, guidList, snapshot, writeData } from '../helpers/fixtures.js';
import { bundlesIn, freePortRange, LOOP, sourceId, startZferry, stop, stopAll, untilListening, waitFor, withPeerOutput } from '../helpers/relay.js';

/** The first of 10 free ports, found in `before`. */
let BASE: number;

let src: TestPool;
let dst: TestPool;
let work: string;
/** What the receiving spools serve: bundles of src's pool, rooted at the pool or at data. */
let SRC_ID: string;
let DATA_ID: string;
/** The source's signing key (zferry keygen): the relay's set-up is signed, as the README leads with. */
let KEY: string;

/** Bytes written so far under SPOOL/.incoming (a transfer in flight). */
async function incomingBytes(spool: string): Promise<number> {
  const r = await execa('du', ['-sb', path.join(spool, '.incoming')], { reject: false });
  return r.exitCode === 0 ? Number(String(r.stdout).split('\t')[0]) : 0;
}

async function writeConfig(file: string, c: Record<string, unknown>): Promise<void> {
  await writeFile(file, JSON.stringify(c, null, 2));
}

before(async () => {
  BASE = await freePortRange(10);
  src = await makePool('rls', 160);
  dst = await makePool('rld', 160);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-relay-'));
  await buildSource(src.name);
  SRC_ID = await sourceId(src.name);
  DATA_ID = await sourceId(`${src.name}/data`);
  KEY = path.join(work, 'source-key');
  await zferryOk('keygen', '-o', KEY);
});

after(async () => {
  await stopAll();
  await src?.destroy();
  await dst?.destroy();
  await rm(work, { recursive: true, force: true });
});

test('relay run: a first seed and two scheduled rounds end with target = source, planned from receipts sent back', async () => {
  const target = `${dst.name}/mirror`;
  const sendSpool = path.join(work, 'run-send');
  const recvSpool = path.join(work, 'run-recv');
  const config = path.join(work, 'relay.json');
  await writeConfig(config, {
    source: src.name, spool: sendSpool, to: `${LOOP}:${BASE + 1}`, replyListen: `${LOOP}:${BASE + 2}`,
    receiptTimeout: 120, volumeSize: '256K', mbuffer: { blockSize: '64k', memory: '4M' }, sign: KEY,
  });
  const receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${BASE + 1}`, '--source', SRC_ID, '--spool', recvSpool,
    '--import', target, '--trust', `${KEY}.pub`, '--reply-to', `${LOOP}:${BASE + 2}`, '--buffer', '4M', '--json']);
  try {
    await untilListening(BASE + 1);
    const rounds: Array<Array<Record<string, unknown>>> = [];
    for (let round = 1; round <= 3; round++) {
      if (round === 2) {
        await writeData(`${src.name}/home`, 'later.bin', 32);
        await run('zfs', ['create', `${src.name}/home/alice`]);
        await writeData(`${src.name}/home/alice`, 'mail.bin', 16);
        await snapshot(`${src.name}@${AUTO('hourly', 3)}`, true);
      }
      if (round === 3) {
        await writeData(`${src.name}/data`, 'more.bin', 16);
        await snapshot(`${src.name}/data@manual-2`);
      }
      const r = await zferryOk('relay', 'run', '--config', config);
      const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      rounds.push(events);
      assert.deepEqual(await guidList(target), await guidList(src.name), `round ${round}`);
      // Confirmed by the receipt, so pruned: only the receipt stays in the sender's spool.
      assert.deepEqual(await bundlesIn(sendSpool), [], `round ${round} spool`);
      // The receiver keeps this round's bundle until the next receipt is delivered, and no older one.
      const exported = events.filter((e) => e.event === 'export').map((e) => path.basename(e.bundle as string));
      assert.deepEqual(await bundlesIn(recvSpool), exported, `round ${round} receiver's spool`);
    }
    const exp = (i: number) => rounds[i].find((e) => e.event === 'export')!;
    assert.equal(exp(0).basis, 'empty');
    assert.equal(exp(1).basis, 'receipt');
    assert.equal(exp(2).basis, 'receipt');
    assert.equal(exp(2).streams, 1, 'third round sends only data @…→@manual-2');
    for (const events of rounds) assert.ok(events.some((e) => e.event === 'receipt'), JSON.stringify(events));

    // A fourth round with nothing new sends nothing.
    const idle = await zferryOk('relay', 'run', '--config', config);
    assert.ok(!idle.stdout.includes('"event":"push"'), idle.stdout);

    // A round while another holds the lock does nothing and says why.
    await writeFile(path.join(sendSpool, '.zferry-relay.lock'), `${process.pid}\n`);
    const locked = await zferry('relay', 'run', '--config', config);
    assert.equal(locked.code, 1);
    assert.match(locked.stderr, new RegExp(`a relay round on ${sendSpool} is already running, by pid ${process.pid} .*; this run did nothing`));
    await rm(path.join(sendSpool, '.zferry-relay.lock'));
  } catch (err) {
    throw await withPeerOutput(err, { receiver });
  } finally {
    await stop(receiver);
  }
});

test('relay run: a push to a receiver that is down stays pending and completes next round', async () => {
  const target = `${dst.name}/later`;
  const sendSpool = path.join(work, 'down-send');
  const recvSpool = path.join(work, 'down-recv');
  const config = path.join(work, 'down.json');
  await writeConfig(config, {
    source: `${src.name}/data`, spool: sendSpool, to: `${LOOP}:${BASE + 3}`, replyListen: `${LOOP}:${BASE + 4}`,
    receiptTimeout: 120, volumeSize: '256K', mbuffer: { memory: '4M' }, sign: KEY,
  });
  const down = await zferry('relay', 'run', '--config', config);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /unable to connect|mbuffer/);
  assert.equal((await bundlesIn(sendSpool)).length, 1, 'the exported bundle waits in the spool');
  assert.equal(await run('zfs', ['list', '-H', '-o', 'name', target], { allowFailure: true }), '');

  const receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${BASE + 3}`, '--source', DATA_ID, '--spool', recvSpool,
    '--import', target, '--trust', `${KEY}.pub`, '--reply-to', `${LOOP}:${BASE + 4}`, '--once', '--buffer', '4M']);
  try {
    await untilListening(BASE + 3);
    const r = await zferryOk('relay', 'run', '--config', config, '--json');
    assert.ok(!r.stdout.includes('"event":"export"'), 'a pending bundle is pushed, not exported again');
    assert.deepEqual(await guidList(target), await guidList(`${src.name}/data`));
    assert.deepEqual(await bundlesIn(sendSpool), []);
    assert.equal((await receiver).exitCode, 0);
  } finally {
    await stop(receiver);
  }
});

/** One bundle of the whole source, exported to a folder of its own. */
async function exportBundle(dir: string, ...extra: string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  // A fresh full bundle each time: --no-journal keeps an earlier test's bundle from being its basis.
  const r = await zferryOk('export', src.name, dir, '--no-journal', '--volume-size', '128K', '--level', '1', '--json', ...extra);
  return JSON.parse(r.stdout).bundle as string;
}

for (const side of ['sender', 'receiver'] as const) {
  test(`a transfer cut by killing the ${side} leaves no complete-looking bundle, and a resend completes`, async () => {
    const port = BASE + (side === 'sender' ? 5 : 6);
    const bundle = await exportBundle(path.join(work, `cut-${side}`));
    const spool = path.join(work, `cut-${side}-spool`);
    const receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${port}`, '--source', SRC_ID, '--spool', spool, '--once', '--buffer', '1M', '--block-size', '16k']);
    await untilListening(port);
    // 128 KiB/s makes the transfer last seconds: time to cut it in the middle.
    const sender = startZferry(['relay', 'send', bundle, '--to', `${LOOP}:${port}`, '--rate', '128k', '--buffer', '1M', '--block-size', '16k']);
    try {
      await waitFor('bytes to arrive', async () => (await incomingBytes(spool)) > 64 * 1024);
      // SIGKILL: no chance to clean up, as when a host loses power.
      await stop(side === 'sender' ? sender : receiver, true);
      const other = await Promise.race([side === 'sender' ? receiver : sender, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
      assert.ok(other !== null, 'the other side ended within 30 s');
      assert.notEqual(other.exitCode, 0, `the ${side === 'sender' ? 'receiver' : 'sender'} reports the cut: ${other.stderr}`);
      assert.deepEqual(await bundlesIn(spool), [], 'nothing in the spool looks like a bundle');
    } finally {
      await stop(sender);
      await stop(receiver);
    }
    const again = startZferry(['relay', 'receive', '--listen', `${LOOP}:${port + 100}`, '--source', SRC_ID, '--spool', spool, '--once', '--buffer', '1M']);
    try {
      await untilListening(port + 100);
      await zferryOk('relay', 'send', bundle, '--to', `${LOOP}:${port + 100}`, '--buffer', '1M');
      const r = await again;
      assert.equal(r.exitCode, 0, String(r.stderr));
      assert.deepEqual(await bundlesIn(spool), [path.basename(bundle)]);
      assert.deepEqual(await readdir(path.join(spool, '.incoming')), []);
      await zferryOk('verify', path.join(spool, path.basename(bundle)));
    } finally {
      await stop(again);
    }
  });
}

test('a bundle whose manifest fails verification at the receiver never reaches zfs recv', async () => {
  const port = BASE + 7;
  const target = `${dst.name}/guarded`;
  await run('zfs', ['create', target]);
  const before = await fingerprint(target);
  const good = await exportBundle(path.join(work, 'tamper-src'));
  const bad = path.join(work, 'tamper', path.basename(good));
  await cp(good, bad, { recursive: true });
  // The manifest claims another sha256 for the last volume of the last stream.
  const m = JSON.parse(await readFile(path.join(bad, 'manifest.json'), 'utf8'));
  const vols = m.streams.filter((s: { volumes: unknown[] }) => s.volumes.length > 0).at(-1).volumes;
  vols[vols.length - 1].sha256 = 'f'.repeat(64);
  await writeFile(path.join(bad, 'manifest.json'), JSON.stringify(m, null, 2));

  const spool = path.join(work, 'tamper-spool');
  const receiver = startZferry(['relay', 'receive', '--listen', `${LOOP}:${port}`, '--source', SRC_ID, '--spool', spool, '--import', target, '--allow-unsigned', '--once', '--buffer', '1M']);
  try {
    await untilListening(port);
    await zferry('relay', 'send', bad, '--to', `${LOOP}:${port}`, '--buffer', '1M');
    const r = await Promise.race([receiver, new Promise<null>((res) => setTimeout(() => res(null), 30_000))]);
    assert.ok(r !== null, 'receiver ended within 30 s');
    assert.equal(r.exitCode, 1);
    assert.match(String(r.stderr), /sha256/);
    assert.deepEqual(await bundlesIn(spool), []);
    assert.equal(await fingerprint(target), before, 'the target is untouched');
  } finally {
    await stop(receiver);
  }
});

test('relay receive --trust: an unsigned bundle never enters the spool; a signed one, sent with its signature, is imported', async () => {
  const port = BASE + 8;
  const target = `${dst.name}/trusted`;
  const key = path.join(work, 'relay-key');
  await zferryOk('keygen', '-o', key);
  const unsigned = await exportBundle(path.join(work, 'trust-unsigned'));
  const spool = path.join(work, 'trust-spool');
  const receive = () => startZferry(['relay', 'receive', '--listen', `${LOOP}:${port}`, '--source', SRC_ID, '--spool', spool, '--import', target, '--trust', `${key}.pub`, '--once', '--buffer', '1M']);
  const finished = (p: ResultPromise) => Promise.race([p, new Promise<null>((res) => setTimeout(() => res(null), 30_000))]);

  let receiver = receive();
  try {
    await untilListening(port);
    await zferry('relay', 'send', unsigned, '--to', `${LOOP}:${port}`, '--buffer', '1M');
    const r = await finished(receiver);
    assert.ok(r !== null, 'receiver ended within 30 s');
    assert.equal(r.exitCode, 1);
    assert.match(String(r.stderr), /not signed/);
    assert.deepEqual(await bundlesIn(spool), []);
    assert.equal((await run('zfs', ['list', '-H', '-o', 'name', '-r', dst.name])).includes(target), false, 'nothing received');
  } finally {
    await stop(receiver);
  }

  const signedDir = path.join(work, 'trust-signed');
  await mkdir(signedDir, { recursive: true });
  const signed = JSON.parse((await zferryOk('export', src.name, signedDir, '--no-journal', '--sign', key, '--volume-size', '128K', '--level', '1', '--json')).stdout).bundle as string;
  receiver = receive();
  try {
    await untilListening(port);
    await zferryOk('relay', 'send', signed, '--to', `${LOOP}:${port}`, '--buffer', '1M');
    const r = await finished(receiver);
    assert.ok(r !== null, 'receiver ended within 30 s');
    assert.equal(r.exitCode, 0, String(r.stderr));
    assert.deepEqual(await guidList(target), await guidList(src.name));
  } finally {
    await stop(receiver);
  }
});

test('relay receive --import --delete: a snapshot destroyed on the source goes from the target too', async () => {
  const port = BASE + 9;
  const target = `${dst.name}/mirror`;
  const spool = path.join(work, 'delete-spool');
  const receive = () => startZferry(['relay', 'receive', '--listen', `${LOOP}:${port}`, '--source', SRC_ID, '--spool', spool, '--import', target, '--delete', '--trust', `${KEY}.pub`, '--once', '--buffer', '1M']);
  const push = async (bundle: string) => {
    const receiver = receive();
    try {
      await untilListening(port);
      await zferryOk('relay', 'send', bundle, '--to', `${LOOP}:${port}`, '--buffer', '1M');
      const r = await Promise.race([receiver, new Promise<null>((res) => setTimeout(() => res(null), 30_000))]);
      assert.ok(r !== null && r.exitCode === 0, String(r?.stderr));
    } finally {
      await stop(receiver);
    }
  };
  await push(await exportBundle(path.join(work, 'delete-1'), '--sign', KEY));
  assert.deepEqual(await guidList(target), await guidList(src.name));

  const victim = `${src.name}/data@${AUTO('daily', 1)}`;
  await run('zfs', ['release', 'zferry', victim], { allowFailure: true });
  await run('zfs', ['destroy', victim]);
  await snapshot(`${src.name}@${AUTO('hourly', 9)}`, true);
  const state = path.join(work, 'delete-state.json');
  await zferryOk('state', target, '-o', state);
  const dir = path.join(work, 'delete-2');
  await mkdir(dir, { recursive: true });
  const second = JSON.parse((await zferryOk('export', src.name, dir, '--since', state, '--no-journal', '--sign', KEY, '--json')).stdout).bundle as string;
  await push(second);
  const after = await guidList(target);
  assert.deepEqual(after, await guidList(src.name));
  assert.ok(!after.some((l) => l.startsWith(`data@${AUTO('daily', 1)}=`)), 'the destroyed snapshot is gone from the target');
});

test('a listener\'s output waits for a late reader: bytes mbuffer -I passes on before unpacking starts are kept', async () => {
  const { mbufferIn, mbufferOut, SLOW_LINK_TUNING } = await import('../../src/mbuffer/index.js');
  const payload = (await import('node:crypto')).randomBytes(3 * 1024 * 1024);
  const on = { host: LOOP, port: BASE + 9 };
  const rx = mbufferIn(on, SLOW_LINK_TUNING, { timeoutMs: 30_000 });
  let tx: ReturnType<typeof mbufferOut> | null = null;
  for (let i = 0; i < 50 && tx === null; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const t = mbufferOut(on, SLOW_LINK_TUNING);
    t.stdin.on('error', () => undefined);
    t.stdin.end(payload);
    if (await t.done.then(() => true, () => false)) tx = t;
  }
  assert.ok(tx, 'mbuffer -O never reached the listener');
  // The whole payload has left the sender; the listener has written what its pipe holds.
  await new Promise((r) => setTimeout(r, 300));
  const parts: Buffer[] = [];
  for await (const c of rx.stdout) parts.push(c as Buffer);
  await rx.done;
  assert.ok(Buffer.concat(parts).equals(payload));
});

test('relay send without mbuffer on PATH fails with one clear line', async () => {
  const empty = await mkdtemp(path.join(os.tmpdir(), 'zferry-nopath-'));
  try {
    const r = await execa(process.execPath, [CLI, 'relay', 'send', work, '--to', `${LOOP}:${BASE + 8}`], { reject: false, env: { PATH: empty }, extendEnv: false });
    assert.equal(r.exitCode, 1);
    assert.match(String(r.stderr), /^zferry: mbuffer is not installed or not on PATH/);
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});
