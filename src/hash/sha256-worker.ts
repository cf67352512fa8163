/** The worker thread of sha256.ts: hashes the slabs it is sent, in order, and hands each back. */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { FromWorker, ToWorker } from './sha256.js';

const hashes = new Map<number, Hash>();
const port = parentPort!;

port.on('message', (m: ToWorker) => {
  if (m.op === 'update') {
    let h = hashes.get(m.id);
    if (!h) hashes.set(m.id, (h = createHash('sha256')));
    h.update(new Uint8Array(m.buf, 0, m.len));
    port.postMessage({ op: 'slab', id: m.id, buf: m.buf } satisfies FromWorker, [m.buf]);
  } else if (m.op === 'digest') {
    const h = hashes.get(m.id) ?? createHash('sha256');
    hashes.delete(m.id);
    port.postMessage({ op: 'digest', id: m.id, hex: h.digest('hex') } satisfies FromWorker);
  } else {
    hashes.delete(m.id);
  }
});
