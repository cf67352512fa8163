/**
 * `relay run` for a named site, on real ZFS and mbuffer over 127.0.0.1: the
 * site comes from the config, travels in the bundles and comes back in the
 * receipt; both sides record their outcome, and `zferry status` reads them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { snapshot, writeData } from '../helpers/fixtures.js';
import { freePortRange, LOOP, sourceId, startZferry, stop, stopAll, untilListening, waitFor, withPeerOutput } from '../helpers/relay.js';

/** The first of 4 free ports, found in `before`. */
let BASE: number;

let src: TestPool;
let dst: TestPool;
let work: string;

before(async () => {
  BASE = await freePortRange(4);
  src = await makePool('rss', 96);
  dst = await makePool('rsd', 96);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-relay-sites-'));
  await run('zfs', ['create', `${src.name}/data`]);
  await writeData(`${src.name}/data`, 'a.bin', 16);
  await snapshot(`${src.name}@one`, true);
});

after(async () => {
  await stopAll();
  await src?.destroy();
  await dst?.destroy();
  await rm(work, { recursive: true, force: true });
});

test('relay run for site vault: the site travels in bundle and receipt, both sides record, status reads them', async () => {
  const target = `${dst.name}/vault`;
  const sendSpool = path.join(work, 'send');
  const recvSpool = path.join(work, 'recv');
  const config = path.join(work, 'zferry.json');
  const events = path.join(work, 'events');
  await writeFile(config, JSON.stringify({
    source: src.name, spool: sendSpool, to: `${LOOP}:${BASE + 1}`, replyListen: `${LOOP}:${BASE + 2}`,
    receiptTimeout: 120, volumeSize: '256K', mbuffer: { blockSize: '64k', memory: '4M' },
    site: 'vault', notify: ['sh', '-c', `cat >> "${events}"`],
  }));
  const receiver = startZferry(['relay', 'receive', '--allow-unsigned', '--listen', `${LOOP}:${BASE + 1}`, '--source', await sourceId(src.name), '--spool', recvSpool,
    '--import', target, '--reply-to', `${LOOP}:${BASE + 2}`, '--buffer', '4M', '--json']);
  try {
    await untilListening(BASE + 1);
    const first = await zferryOk('relay', 'run', '--config', config);
    const start = JSON.parse(first.stdout.split('\n')[0]!);
    assert.equal(start.site, 'vault');
    await writeData(`${src.name}/data`, 'b.bin', 16);
    await snapshot(`${src.name}@two`, true);
    const second = await zferryOk('relay', 'run', '--config', config);
    const exp = second.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.event === 'export');
    assert.equal(exp.basis, 'receipt', 'planned from the vault\'s receipt that came back over the link');

    // The receiver keeps the applied bundles; their manifests and the receipt name the site.
    const kept = (await readdir(recvSpool)).filter((f) => f.startsWith('zferry-'));
    assert.ok(kept.length >= 1);
    for (const b of kept) assert.equal(JSON.parse(await readFile(path.join(recvSpool, b, 'manifest.json'), 'utf8')).site, 'vault');
    const receipt = (await readdir(sendSpool)).find((f) => /^receipt-.*\.json$/.test(f))!;
    assert.equal(JSON.parse(await readFile(path.join(sendSpool, receipt), 'utf8')).site, 'vault');

    // One event per round, from the config's notifier.
    const sent = (await readFile(events, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(sent.map((e) => [e.kind, e.site, e.outcome]), [['relay-run', 'vault', 'ok'], ['relay-run', 'vault', 'ok']]);
    assert.equal(sent[1].figures.pending, 0);

    // The source side: the receipt in the spool the round used, nothing in transit.
    const s = await zferry('status', src.name, '--site', 'vault', '--json');
    assert.equal(s.code, 0, s.stdout);
    const site = JSON.parse(s.stdout).sites[0];
    assert.equal(site.site, 'vault');
    assert.equal(site.lastRelay.outcome, 'ok');
    assert.equal(site.receipt.newest.name, 'two');
    assert.equal(site.pending.length, 0);
    assert.equal(site.protections.kept.length, 2);
    // The default site of the same source was never exported: status says so rather than borrowing the vault's receipt.
    const other = await zferry('status', src.name, '--site', 'default', '--json');
    assert.equal(other.code, 2);
    assert.equal(JSON.parse(other.stdout).sites[0].receipt, null);

    // The receiving side: relay receive recorded its imports as import does.
    await waitFor('the receiver\'s record', async () => (await zferry('status', '--target', target, '--json')).stdout.includes('"lastImport": {'));
    const t = JSON.parse((await zferry('status', '--target', target, '--json')).stdout).targets[0];
    assert.equal(t.lastImport.outcome, 'ok');
    assert.equal(t.newest.name, 'two');
  } catch (err) {
    throw await withPeerOutput(err, { receiver });
  } finally {
    await stop(receiver);
  }
});
