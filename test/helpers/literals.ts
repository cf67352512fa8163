/**
 * Literal data for unit tests of pure logic: inventories, snapshot refs and
 * manifests built from short tuples, so a test states only what it is about.
 */
import type { Dataset, Inventory, SendStep, SnapshotRef } from '../../src/model.js';
import type { Manifest, StreamData, StreamEntry } from '../../src/bundle/manifest.js';

/** A send stream before `manifest` numbers it; volumes default to one. */
export type StreamLiteral = SendStep & Omit<StreamData, 'index' | 'volumes'> & Partial<StreamData>;
import type { TargetFacts } from '../../src/plan/index.js';

/** [name, guid, createtxg] */
export type SnapTuple = [string, string, number];

const snap = ([name, guid, txg]: SnapTuple) => ({ name, guid, createtxg: String(txg), creation: 1_700_000_000 + txg });

/** A dataset at `path` holding snapshots (and bookmarks) given as tuples; `extra` sets type, origin, encrypted, skip… */
export function ds(path: string, snaps: SnapTuple[], extra: Omit<Partial<Dataset>, 'bookmarks'> & { bookmarks?: SnapTuple[] } = {}): Dataset {
  const { bookmarks, ...rest } = extra;
  return { path, type: 'filesystem', guid: `ds-${path}`, snapshots: snaps.map(snap), bookmarks: (bookmarks ?? []).map(snap), ...rest };
}

export const inv = (root: string, datasets: Dataset[]): Inventory => ({ root, datasets });
export const ref = (name: string, guid: string): SnapshotRef => ({ name, guid });

const SHA = 'a'.repeat(64);

/** A data-carrying stream entry (one volume); `index` is filled in by `manifest`. */
export function stream(dataset: string, kind: 'full' | 'incremental', from: SnapshotRef | null, creates: SnapshotRef[], extra: Partial<StreamLiteral> = {}): StreamLiteral {
  return {
    dataset, type: 'filesystem', kind, from, to: creates[creates.length - 1], intermediates: creates.length > 1, creates,
    force: false, sendFlags: kind === 'full' ? [] : [creates.length > 1 ? '-I' : '-i'], rawBytes: 10, storedBytes: 5, rawSha256: SHA,
    ...extra,
  };
}

let ids = 0;

/** A manifest of `source` (its inventory) carrying `streams` in order, from pool guid 42. */
export function manifest(source: Inventory, streams: Array<ReturnType<typeof stream>>, extra: Partial<Manifest> = {}): Manifest {
  const n = ++ids;
  return {
    format: 'zferry-bundle', formatVersion: 1,
    bundleId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    createdAt: '2026-11-26T07:00:00.000Z', zferryVersion: '0.1.0',
    source: { host: 'src', pool: source.root.split('/')[0], root: source.root, poolGuid: '42' },
    basis: { origin: 'empty', file: null, target: null, takenAt: null, inventory: null },
    inventory: source,
    compression: { algorithm: 'zstd', level: 3 },
    streams: streams.map((s, i) => {
      const index = i + 1;
      const tag = s.kind === 'full' ? 'full' : 'incr';
      return { ...s, index, volumes: s.volumes ?? [{ file: `streams/${String(index).padStart(4, '0')}-${tag}.zst.000`, bytes: 5, sha256: SHA }] } as StreamEntry;
    }),
    ...extra,
  };
}

/** The facts of a target as import reads them; everything not given is "nothing there". */
export function facts(target: string, inventory: Inventory | null, extra: Partial<TargetFacts> = {}): TargetFacts {
  return { target, inventory, partial: new Set(), written: null, sourceMark: null, sourceTxg: null, poolSnapshots: null, missingAncestor: null, space: null, ...extra };
}
