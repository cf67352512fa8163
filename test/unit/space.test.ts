/** The free-space check's pure parts: sizes from space properties, the margin, the verdict and its lines. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSpace, checkSpaceAtRatio, rawSizeFromSpace, spaceMissing, spaceVerdict, SPACE_MARGIN, type SpaceProperties } from '../../src/plan/index.js';
import { parseSnapshotSpace } from '../../src/zfs/index.js';
import { errnoName, fileError } from '../../src/fs/errors.js';
import { formatBytes } from '../../src/units.js';
import type { SendStep } from '../../src/model.js';
import { ds, inv, ref } from '../helpers/literals.js';

const MiB = 1024 ** 2;
const source = inv('tank', [ds('data', [['a', '1', 10], ['b', '2', 20], ['c', '3', 30]])]);
const props: SpaceProperties = new Map([
  ['tank/data@a', { used: 4 * MiB, referenced: 10 * MiB }],
  ['tank/data@b', { used: 1 * MiB, referenced: 12 * MiB }],
  ['tank/data@c', { used: 0, referenced: 12 * MiB }],
]);
const step = (kind: 'full' | 'incremental', from: string | null, to: string, extra: Partial<SendStep> = {}): SendStep => ({
  kind, dataset: 'data', type: 'filesystem',
  from: from ? { ...ref(from, { a: '1', b: '2', c: '3' }[from]!) } : null,
  to: ref(to, { a: '1', b: '2', c: '3' }[to]!), intermediates: true, creates: [], force: false, ...extra,
});

test('a full stream is sized by its snapshot\'s referenced bytes', () => {
  assert.equal(rawSizeFromSpace(source, step('full', null, 'b'), props), 12 * MiB);
});

test('an incremental is sized by the larger of growth and the bytes unique to the snapshots it spans', () => {
  // growth a→c is 2 MiB; @a's 4 MiB unique blocks were rewritten later: 5 MiB unique over a…c
  assert.equal(rawSizeFromSpace(source, step('incremental', 'a', 'c'), props), 5 * MiB);
  assert.equal(rawSizeFromSpace(source, step('incremental', 'b', 'c'), props), 1 * MiB);
});

test('an incremental from a bookmark or another dataset\'s snapshot falls back to the target snapshot\'s referenced', () => {
  const s = step('incremental', 'a', 'c');
  assert.equal(rawSizeFromSpace(source, { ...s, from: { ...s.from!, bookmark: true } }, props), 12 * MiB);
  assert.equal(rawSizeFromSpace(source, { ...s, from: { ...s.from!, dataset: 'other' } }, props), 12 * MiB);
});

test('a snapshot without space properties leaves the size unknown', () => {
  assert.equal(rawSizeFromSpace(source, step('full', null, 'c'), new Map()), null);
});

test('the margin is 2% of the bundle, at least 1 MiB, and the shortfall counts it', () => {
  assert.equal(SPACE_MARGIN.minBytes, MiB);
  const small = checkSpace({ method: 'space-properties', rawBytes: 10 * MiB, ratio: 1, freeBytes: 11 * MiB });
  assert.deepEqual([small.fits, small.marginBytes, small.shortfallBytes], [true, MiB, 0]);
  const tight = checkSpace({ method: 'space-properties', rawBytes: 10 * MiB, ratio: 1, freeBytes: 10 * MiB + 1000 });
  assert.deepEqual([tight.fits, tight.shortfallBytes], [false, MiB - 1000]);
  const big = checkSpace({ method: 'send-dry-run', rawBytes: 1000 * MiB, ratio: 1, freeBytes: 1000 * MiB });
  assert.equal(big.marginBytes, 20 * MiB);
});

test('unknown free space or an unknown stream size leaves the check undecided, never refused', () => {
  assert.equal(checkSpace({ method: 'send-dry-run', rawBytes: 5, ratio: 1, freeBytes: null }).fits, null);
  assert.equal(checkSpace({ method: null, rawBytes: null, ratio: 1, freeBytes: 5 }).fits, null);
});

test('the sampled ratio is asked for only when the uncompressed size would not fit', () => {
  let asked = 0;
  const ratio = () => (asked++, 0.5);
  assert.equal(checkSpaceAtRatio({ method: 'send-dry-run', rawBytes: 4 * MiB, freeBytes: 8 * MiB }, ratio).ratio, 1);
  assert.equal(asked, 0);
  const c = checkSpaceAtRatio({ method: 'send-dry-run', rawBytes: 10 * MiB, freeBytes: 8 * MiB }, ratio);
  assert.deepEqual([asked, c.ratio, c.plannedBytes, c.fits], [1, 0.5, 5 * MiB, true]);
  // A ratio above 1 (incompressible data) never makes the plan look smaller or bigger than raw.
  assert.equal(checkSpaceAtRatio({ method: 'send-dry-run', rawBytes: 10 * MiB, freeBytes: 8 * MiB }, () => 1.01).ratio, 1);
});

test('the refusal is one line giving need, free space and shortfall', () => {
  const c = checkSpace({ method: 'space-properties', rawBytes: 10 * MiB, ratio: 1, freeBytes: 4 * MiB });
  const line = spaceVerdict('/mnt/disk', c, formatBytes);
  assert.equal(line, `not enough space on /mnt/disk: the bundle needs about ${formatBytes(11 * MiB)} (${formatBytes(10 * MiB)} planned by space-properties + ${formatBytes(MiB)} margin), ${formatBytes(4 * MiB)} free; ${formatBytes(7 * MiB)} short`);
  assert.doesNotMatch(line, /\n/);
});

test('a write that ran out of space says how much more the bundle needed', () => {
  const c = checkSpace({ method: 'space-properties', rawBytes: 10 * MiB, ratio: 1, freeBytes: 20 * MiB });
  assert.match(spaceMissing(3 * MiB, c, formatBytes), new RegExp(`about ${formatBytes(7 * MiB)} more space is needed`));
  assert.match(spaceMissing(12 * MiB, c, formatBytes), /underestimated/);
  assert.match(spaceMissing(3 * MiB, null, formatBytes), /full size is unknown/);
});

test('EDQUOT, which libuv does not name, reads as "disk quota exceeded" with the file', () => {
  const raw = Object.assign(new Error('Unknown system error -122: Unknown system error -122, write'), { errno: -122, code: 'Unknown system error -122' });
  assert.equal(errnoName(raw), 'EDQUOT');
  const e = fileError(raw, 'writing', '/mnt/q/zferry-x/streams/0001.zst', 4096);
  assert.equal(e.message, 'disk quota exceeded writing /mnt/q/zferry-x/streams/0001.zst at offset 4096');
  assert.equal(e.context.errno, 'EDQUOT');
});

test('parseSnapshotSpace keeps snapshots\' used and referenced and drops filesystems', () => {
  const out = parseSnapshotSpace('tank/data\tused\t100\ntank/data@a\tused\t5\ntank/data@a\treferenced\t50\ntank/data@b\treferenced\t-\n');
  assert.deepEqual([...out.entries()], [['tank/data@a', { used: 5, referenced: 50 }]]);
});
