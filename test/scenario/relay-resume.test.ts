/**
 * Relay resume (issue 14, point 1) on real ZFS and real mbuffer over
 * 127.0.0.1: a push cut by SIGKILL of the sender or of the receiver (both
 * then restarted, as after a reboot) continues from the bytes the receiver
 * kept; the bytes that crossed over both attempts are about the bundle's, and
 * the target ends equal to the source. (The receiver imports unsigned on
 * purpose, --allow-unsigned: the test is about resume, relay-signed.test.ts
 * about signatures.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { zferryOk } from '../helpers/cli.js';
import { guidList, snapshot, writeData } from '../helpers/fixtures.js';
import { bundlesIn, finished, freePortRange, LOOP, sourceId, startZferry, stop, stopAll, untilListening, waitFor } from '../helpers/relay.js';

/** The first of 10 free ports, found in `before`. */
let BASE: number;

let src: TestPool;
let dst: TestPool;
let work: string;
let SRC_ID: string;

/** Bytes under SPOOL/.incoming: what the receiver holds of a transfer in flight. */
async function incomingBytes(spool: string): Promise<number> {
  const r = await execa('du', ['-sb', '--apparent-size', path.join(spool, '.incoming')], { reject: false });
  return r.exitCode === 0 ? Number(String(r.stdout).split('\t')[0]) : 0;
}

before(async () => {
  BASE = await freePortRange(10);
  src = await makePool('rrs', 128);
  dst = await makePool('rrd', 128);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-relay-resume-'));
  await writeData(src.name, 'big.bin', 3 * 1024);
  await snapshot(`${src.name}@one`);
  SRC_ID = await sourceId(src.name);
});

after(async () => {
  await stopAll();
  await src?.destroy();
  await dst?.destroy();
  await rm(work, { recursive: true, force: true });
});

for (const side of ['sender', 'receiver'] as const) {
  test(`a push cut by killing the ${side} goes on from what the receiver kept: only the rest crosses, and the target equals the source`, async () => {
    const port = BASE + (side === 'sender' ? 0 : 4);
    const out = path.join(work, `out-${side}`);
    await mkdir(out);
    const exp = JSON.parse((await zferryOk('export', src.name, out, '--no-journal', '--volume-size', '1M', '--level', '1', '--json')).stdout) as { bundle: string; storedBytes: number };
    const spool = path.join(work, `spool-${side}`);
    const target = `${dst.name}/${side}`;
    const receive = (p: number) => startZferry(['relay', 'receive', '--listen', `${LOOP}:${p}`, '--source', SRC_ID, '--spool', spool, '--import', target,
      '--reply-to', `${LOOP}:${p + 1}`, '--allow-unsigned', '--once', '--buffer', '1M', '--block-size', '16k', '--json']);
    const send = (p: number, rate?: string) => startZferry(['relay', 'send', exp.bundle, '--to', `${LOOP}:${p}`, '--reply-port', `${LOOP}:${p + 1}`,
      '--receipt-timeout', '120', '--buffer', '1M', '--block-size', '16k', ...(rate ? ['--rate', rate] : []), '--json']);

    const receiver = receive(port);
    await untilListening(port);
    // 512 KiB/s: the push lasts seconds, time to cut it in the middle.
    const sender = send(port, '512k');
    let kept: number;
    try {
      await waitFor('a third of the bundle to arrive', async () => (await incomingBytes(spool)) > exp.storedBytes / 3, 60_000);
      // SIGKILL, as a power cut: then the other side too (the receiver host restarted, or the sender's link timed out).
      await stop(side === 'sender' ? sender : receiver, true);
      await stop(side === 'sender' ? receiver : sender, true);
      kept = await incomingBytes(spool);
    } finally {
      await stop(sender);
      await stop(receiver);
    }
    assert.deepEqual(await bundlesIn(spool), [], 'nothing unfinished was promoted');
    assert.ok(kept > exp.storedBytes / 4 && kept < exp.storedBytes, `the receiver kept part of the bundle: ${kept} of ${exp.storedBytes}`);

    const again = receive(port + 2);
    await untilListening(port + 2);
    const resend = send(port + 2);
    const s = await finished(resend, 120_000);
    const r = await finished(again, 30_000);
    assert.ok(s && r, 'both ends finished');
    assert.equal(s.exitCode, 0, String(s.stderr));
    assert.equal(r.exitCode, 0, String(r.stderr));
    const sent = JSON.parse(String(s.stdout)) as { bytes: number; resumedBytes: number; confirmed: string[] };
    assert.ok(sent.resumedBytes > 0, 'the receiver told the sender what it kept');
    // The second push carried the bundle less what was kept (a volume cut part way is kept to its last byte
    // written), measured against the export's own size, not against figures the resume itself reports.
    assert.ok(sent.bytes <= exp.storedBytes - kept + 64 * 1024, `second push ${sent.bytes} bytes, bundle ${exp.storedBytes} stored, kept ${kept}`);
    assert.ok(sent.resumedBytes >= kept - 64 * 1024, `the sender skipped what the receiver kept: ${sent.resumedBytes} of ${kept}`);
    assert.equal(sent.confirmed.length, 1, 'the receipt confirms the bundle');
    assert.deepEqual(await guidList(target), await guidList(src.name));
    assert.deepEqual(await readdir(path.join(spool, '.incoming')), [], 'nothing left kept once complete');
    await run('zfs', ['destroy', '-r', target]);
  });
}
