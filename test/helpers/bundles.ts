/** Bundles made without ZFS, for the relay's and the bundle format's unit tests. */
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { finishBundle, type Manifest, type StreamEntry } from '../../src/bundle/index.js';
import { writeStream } from '../../src/pipeline/index.js';
import { bundleFolderName } from '../../src/commands/export.js';

/** A one-stream bundle of 300 KiB raw in 48 KiB volumes, under `parent`; returns its folder. */
export async function makeBundle(parent: string): Promise<string> {
  const id = randomUUID();
  // Named as export names bundles: a relay spool accepts no other name.
  const dir = join(parent, bundleFolderName('tank', id, new Date()));
  const raw = Buffer.concat([randomBytes(200 * 1024), Buffer.alloc(100 * 1024, 3)]);
  const full = await writeStream(Readable.from([raw]), { dir, index: 1, kind: 'full', volumeSize: 48 * 1024, level: 1 });
  const m = oneStreamManifest(id, 1, full);
  await finishBundle(dir, m);
  return dir;
}

/**
 * The manifest of a one-stream bundle of pool `tank` (one filesystem, snapshot
 * s1), around the volumes `writeStream` wrote; `extra` adds fields (parity).
 */
export function oneStreamManifest(id: string, formatVersion: 1 | 2, full: Pick<StreamEntry, 'rawBytes' | 'storedBytes' | 'rawSha256' | 'volumes'>, extra: Partial<Manifest> = {}): Manifest {
  return {
    format: 'zferry-bundle', formatVersion, bundleId: id, createdAt: new Date().toISOString(), zferryVersion: '0.1.0',
    source: { host: 'h', pool: 'tank', root: 'tank', poolGuid: '1234567890123456789' },
    basis: { origin: 'empty', file: null, target: null, takenAt: null, inventory: null },
    inventory: { root: 'tank', datasets: [{ path: '', type: 'filesystem', guid: '77', snapshots: [{ name: 's1', guid: '1000', createtxg: '10', creation: 1700000000 }], bookmarks: [] }] },
    compression: { algorithm: 'zstd', level: 1 },
    ...extra,
    streams: [{ index: 1, dataset: '', type: 'filesystem', kind: 'full', from: null, to: { name: 's1', guid: '1000' }, intermediates: false,
      creates: [{ name: 's1', guid: '1000' }], force: false, sendFlags: [], ...full }],
  };
}
