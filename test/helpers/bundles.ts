/** Bundles made without ZFS, for the relay's and the bundle format's unit tests. */
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { finishBundle, type Manifest } from '../../src/bundle/index.js';
import { writeStream } from '../../src/pipeline/index.js';

/** A one-stream bundle of 300 KiB raw in 48 KiB volumes, under `parent`; returns its folder. */
export async function makeBundle(parent: string): Promise<string> {
  const id = randomUUID();
  const dir = join(parent, `zferry-tank-${id.slice(0, 8)}`);
  const raw = Buffer.concat([randomBytes(200 * 1024), Buffer.alloc(100 * 1024, 3)]);
  const full = await writeStream(Readable.from([raw]), { dir, index: 1, kind: 'full', volumeSize: 48 * 1024, level: 1 });
  const m: Manifest = {
    format: 'zferry-bundle', formatVersion: 1, bundleId: id, createdAt: new Date().toISOString(), zferryVersion: '0.1.0',
    source: { host: 'h', pool: 'tank', root: 'tank', poolGuid: '1234567890123456789' },
    basis: { origin: 'empty', file: null, target: null, takenAt: null, inventory: null },
    inventory: { root: 'tank', datasets: [{ path: '', type: 'filesystem', guid: '77', snapshots: [{ name: 's1', guid: '1000', createtxg: '10', creation: 1700000000 }], bookmarks: [] }] },
    compression: { algorithm: 'zstd', level: 1 },
    streams: [{ index: 1, dataset: '', type: 'filesystem', kind: 'full', from: null, to: { name: 's1', guid: '1000' }, intermediates: false,
      creates: [{ name: 's1', guid: '1000' }], force: false, sendFlags: [], ...full }],
  };
  await finishBundle(dir, m);
  return dir;
}
