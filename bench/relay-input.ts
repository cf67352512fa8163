/** A bench bundle of random (incompressible) data, as `relay send` takes it, and the tar stream zferry sends for it. */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { writeStream } from '../src/pipeline/export.js';
import { finishBundle } from '../src/bundle/index.js';
import { describeBundles, packBundles } from '../src/relay/pack.js';

const MiB = 1024 * 1024;

export interface RelayInput {
  /** Folder holding the one bundle, as `relay send` takes it. */
  parent: string;
  /** The tar stream zferry sends for it, for the baselines: the same bytes. */
  flat: string;
  bytes: number;
}

export async function relayInput(work: string, name: string, mib: number): Promise<RelayInput> {
  const parent = join(work, name);
  // A name as export gives it (the receiver takes no other), ending in the bundle id's first 8 hex digits.
  const dir = join(parent, 'zferry-bench-20260101T000000Z-00000000');
  async function* data() {
    for (let i = 0; i < (mib * MiB) / (4 * MiB); i++) yield randomBytes(4 * MiB);
  }
  const w = await writeStream(Readable.from(data()), { dir, index: 1, kind: 'full', volumeSize: 256 * MiB, level: 1 });
  await finishBundle(dir, {
    format: 'zferry-bundle', formatVersion: 1, bundleId: '00000000-0000-4000-8000-000000000001', createdAt: new Date().toISOString(), zferryVersion: '0.1.0',
    source: { host: 'bench', pool: 'bench', root: 'bench', poolGuid: '1' },
    basis: { origin: 'empty', file: null, target: null, takenAt: null, inventory: null },
    inventory: { root: 'bench', datasets: [{ path: '', type: 'filesystem', guid: '2', snapshots: [{ name: 's', guid: '3', createtxg: '1', creation: 1 }], bookmarks: [] }] },
    compression: { algorithm: 'zstd', level: 1 },
    streams: [{ index: 1, dataset: '', type: 'filesystem', kind: 'full', from: null, to: { name: 's', guid: '3' }, intermediates: false, creates: [{ name: 's', guid: '3' }], force: false, sendFlags: [], ...w }],
  });
  const flat = join(work, `${name}.tar`);
  await pipeline(packBundles(await describeBundles([dir])), createWriteStream(flat));
  return { parent, flat, bytes: (await stat(flat)).size };
}

