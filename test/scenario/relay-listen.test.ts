/**
 * The relay receiver's listening port, with real mbuffer: a zferry killed
 * outright (SIGKILL, the OOM killer) must not leave its mbuffer holding the
 * port, and a port another process holds is one clear line and an exit, not
 * a failed "transfer" repeated as fast as mbuffer can fail. No ZFS: nothing
 * here gets as far as a bundle.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { makeBundle } from '../helpers/bundles.js';
import { zferry } from '../helpers/cli.js';
import { bundlesIn, finished, freePort, listenOn, LOOP, listening, startZferry, stopAll, untilListening, waitFor } from '../helpers/relay.js';

let work: string;
/** Any well-formed source id: no bundle arrives. */
const SOURCE = '1234567890123456789:tank';

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-relay-listen-'));
});

after(async () => {
  await stopAll();
  await rm(work, { recursive: true, force: true });
});

/** A listener on every address of `port` that is not mbuffer, as another service would be. */
async function holdPort(port: number): Promise<net.Server> {
  const server = net.createServer((c) => c.destroy());
  await listenOn(server, port);
  return server;
}

const lineRe = (port: number) => new RegExp(`mbuffer cannot listen on ${port}: Address already in use`, 'g');

test('a receiver killed with SIGKILL takes its mbuffer listener with it: the port is free for the next one', async () => {
  const port = await freePort();
  const spool = path.join(work, 'killed');
  const rx = startZferry(['relay', 'receive', '--listen', String(port), '--spool', spool, '--source', SOURCE]);
  await untilListening(port);
  rx.kill('SIGKILL');
  await rx;
  // Before setpriv --pdeathsig, the orphan listened until some peer connected.
  await waitFor(`port ${port} to be released after the receiver was killed`, async () => !(await listening(port)), 10_000);
  const next = startZferry(['relay', 'receive', '--listen', String(port), '--spool', spool, '--source', SOURCE]);
  await untilListening(port);
  assert.equal(next.exitCode, null, 'the next receiver runs');
});

test('a port another process holds: one line naming it, three paced tries, exit 1; no transfer is reported', async () => {
  const port = await freePort();
  const server = await holdPort(port);
  try {
    for (const once of [true, false]) {
      const started = Date.now();
      const rx = startZferry(['relay', 'receive', '--listen', String(port), '--spool', path.join(work, 'held'), '--source', SOURCE, '--json', ...(once ? ['--once'] : [])]);
      const r = await finished(rx, 60_000);
      assert.ok(r, `relay receive${once ? ' --once' : ''} still running after 60 s on a port it cannot take`);
      const seconds = (Date.now() - started) / 1000;
      const err = String(r.stderr);
      assert.equal(r.exitCode, 1, err);
      // Before: "relay stream: ended before its first entry", about 60 times a second, for ever.
      assert.equal(err.match(lineRe(port))?.length, 4, err);
      assert.equal(err.match(/listening again in \d s/g)?.length, 3, err);
      assert.match(err, new RegExp(`ss -ltnp 'sport = :${port}'`));
      assert.doesNotMatch(String(r.stdout), /"event":"transfer"/, 'no transfer began');
      assert.ok(seconds >= 7 && seconds < 40, `gave up after ${seconds} s (tries after 1, 2 and 4 s)`);
    }
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('a port released while the receiver waits to try again is taken, and the receiver serves', async () => {
  const port = await freePort();
  const server = await holdPort(port);
  const rx = startZferry(['relay', 'receive', '--listen', String(port), '--spool', path.join(work, 'freed'), '--source', SOURCE]);
  // Its first try fails at once; the next is a second later.
  await new Promise((r) => setTimeout(r, 500));
  await new Promise((r) => server.close(r));
  await untilListening(port, 20_000);
  assert.equal(rx.exitCode, null, 'the receiver still runs');
  rx.kill('SIGTERM');
  const r = await rx;
  assert.equal(String(r.stderr).match(lineRe(port))?.length ?? 0, 1, String(r.stderr));
});

test('relay send whose reply port another process holds stops after the offer: nothing is pushed, one line names the port', async () => {
  const [to, reply] = [await freePort(), await freePort()];
  const spool = path.join(work, 'reply-held');
  const rx = startZferry(['relay', 'receive', '--listen', `${LOOP}:${to}`, '--spool', spool, '--source', SOURCE, '--reply-to', `${LOOP}:${reply}`]);
  await untilListening(to);
  const server = await holdPort(reply);
  try {
    const bundle = await makeBundle(path.join(work, 'out'));
    const started = Date.now();
    const r = await zferry('relay', 'send', bundle, '--to', `${LOOP}:${to}`, '--reply-port', String(reply), '--receipt-timeout', '120');
    const seconds = (Date.now() - started) / 1000;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`the reply port ${reply} cannot be opened \\(mbuffer cannot listen on ${reply}: Address already in use.*\\); nothing was pushed`));
    // Before: the holdings wait re-listened without a pause until its 60 s deadline, then pushed everything.
    assert.ok(seconds < 20, `gave up after ${seconds} s`);
    assert.deepEqual(await bundlesIn(spool), [], 'no bundle reached the spool');
  } finally {
    await new Promise((r) => server.close(r));
  }
});
