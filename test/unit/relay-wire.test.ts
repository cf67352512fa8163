/**
 * Relay wire versions (issue 14): a version-2 sender facing a version-1
 * receiver (one that reads the offer, refuses it in its own log and never
 * answers) says so in one line and pushes everything in version-1 framing,
 * within a bounded wait, never hanging; a stream of a version this zferry
 * does not know is refused in one line naming the version. The peer is a
 * plain TCP server standing in for the old receiver; the sender is the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { RELAY_HEADER } from '../../src/relay/pack.js';
import { unpackInto } from '../../src/relay/unpack.js';
import { ZferryError } from '../../src/errors.js';
import { CLI } from '../helpers/cli.js';
import { makeBundle } from '../helpers/bundles.js';
import { tarBytes } from '../helpers/relay-tar.js';
import { freePortRange } from '../helpers/relay.js';

/** The relay header: the first tar entry of a push (512-byte header, octal size, then the JSON). */
function headerOf(push: Buffer): { name: string; json: Record<string, unknown> } {
  const name = push.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
  const size = parseInt(push.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim(), 8);
  return { name, json: JSON.parse(push.subarray(512, 512 + size).toString('utf8')) as Record<string, unknown> };
}

test('a version-1 receiver that never answers the resume offer: one line, then the whole push in version-1 framing, no hang', { timeout: 90_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-wire-'));
  const pushes: Buffer[] = [];
  const server = createServer((sock: Socket) => {
    const parts: Buffer[] = [];
    sock.on('data', (c: Buffer) => parts.push(c));
    sock.on('end', () => {
      pushes.push(Buffer.concat(parts));
      sock.end();
    });
    sock.on('error', () => undefined);
  });
  try {
    const bundle = await makeBundle(join(root, 'out'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    // Not port + 1: listen(0) gives odd ports, so that is even, the parity Linux gives outgoing connections, and
    // may be in use; a port outside the outgoing range instead.
    const replyPort = await freePortRange(1);
    const started = Date.now();
    const s = await execa(process.execPath, [CLI, 'relay', 'send', bundle, '--to', `127.0.0.1:${port}`, '--reply-port', `127.0.0.1:${replyPort}`,
      '--idle-timeout', '3', '--receipt-timeout', '3', '--buffer', '1M', '--block-size', '16k'], { reject: false, stdin: 'ignore', timeout: 80_000, env: { LC_ALL: 'C' } });
    const seconds = (Date.now() - started) / 1000;
    assert.ok(!s.timedOut, 'the sender ended by itself');
    assert.ok(seconds < 60, `bounded by the idle timeout, not the 60 s ceiling: ${seconds.toFixed(1)} s`);
    const lines = String(s.stderr).split('\n').filter((l) => /resume offer/.test(l));
    assert.equal(lines.length, 1, String(s.stderr));
    assert.match(lines[0], /^zferry: receiver 127\.0\.0\.1:\d+ did not answer the resume offer on 127\.0\.0\.1:\d+ within 3 s \(no --reply-to there, or a zferry without relay wire version 2, .*\): pushing everything$/);
    assert.equal(pushes.length, 2, 'the offer, then the push');
    const offer = headerOf(pushes[0]);
    assert.equal(offer.name, RELAY_HEADER);
    assert.deepEqual([offer.json.formatVersion, offer.json.phase], [2, 'offer']);
    const push = headerOf(pushes[1]);
    assert.equal(push.json.formatVersion, 1, 'the push is framed as version 1, which every receiver reads');
    assert.equal(push.json.resume, undefined);
    assert.ok(pushes[1].length > 2048, 'the bundle went whole');
  } finally {
    server.close();
    await rm(root, { recursive: true, force: true });
  }
});

test('a relay stream of a version this zferry does not know is refused in one line naming it', async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-wire-'));
  try {
    const header = { name: RELAY_HEADER, body: Buffer.from(JSON.stringify({ format: 'zferry-relay', formatVersion: 3, bundles: [], totalBytes: 0 })) };
    await assert.rejects(unpackInto(join(root, 'spool'), Readable.from([await tarBytes([header])]), { source: '1:tank' }), (err: unknown) => {
      assert.ok(err instanceof ZferryError);
      assert.match(err.message, /\.zferry-relay\.json has format "zferry-relay" version 3; this zferry reads zferry-relay versions 1 and 2/);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
