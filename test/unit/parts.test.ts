/**
 * One export across several disks, the pure parts: what fits in a bundle
 * under --max-size, how parts are numbered and checked in a manifest, and
 * how import joins the parts it finds into whole streams (or refuses them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assembleParts, fillLimit, fitSteps, metadataReserve, orderParts, segmentKey, volumeBudget, type Assembled } from '../../src/plan/index.js';
import { parseManifest, type Manifest, type StreamEntry, type StreamPart } from '../../src/bundle/manifest.js';
import { restoreText } from '../../src/bundle/restore.js';
import { ds, inv, manifest, ref, stream } from '../helpers/literals.js';

const MiB = 1024 ** 2;
const d = (bytes: number | null) => ({ data: true, bytes });
const step = { data: false, bytes: 0 };

test('fit takes streams in plan order up to the first that does not fit, never reordering', () => {
  // 40 + 50 fit in 100; 30 would not (120), though the 5 after it would.
  assert.deepEqual(fitSteps([d(40), d(50), d(30), d(5)], 100), { take: 2, split: false, plannedBytes: 90 });
});

test('fit takes everything that fits, with create and rename steps costing nothing', () => {
  assert.deepEqual(fitSteps([step, d(40), step, d(60)], 100), { take: 4, split: false, plannedBytes: 100 });
});

test('a first stream larger than the whole budget is taken as part 1, with the steps before it', () => {
  assert.deepEqual(fitSteps([step, d(500), d(1)], 100), { take: 2, split: true, plannedBytes: 100 });
});

test('a stream of unknown size is taken: the write enforces the limit', () => {
  assert.deepEqual(fitSteps([d(null), d(90), d(20)], 100), { take: 2, split: false, plannedBytes: 90 });
});

test('the volumes\' budget keeps room for the bundle\'s other files and its parity', () => {
  assert.equal(volumeBudget(100 * MiB, 10 * MiB, 0), 90 * MiB);
  assert.equal(volumeBudget(100 * MiB, 10 * MiB, 50), 60 * MiB);
  assert.equal(volumeBudget(MiB, 2 * MiB), 0);
  assert.equal(metadataReserve(1000, 2), MiB + 2000 + 128 * 1024);
  assert.equal(fillLimit(1000 * MiB), 1000 * MiB - 20 * MiB);
  assert.equal(fillLimit(10 * MiB), 9 * MiB);
});

// A source with one big dataset: @a (full, split over disks), @b after it.
const source = inv('tank', [ds('', [['a', '11', 10], ['b', '12', 20]], { guid: '7' })]);
const a = ref('a', '11');
const b = ref('b', '12');
const SHA = (c: string) => c.repeat(64);

function v2(streams: Parameters<typeof manifest>[1], extra: Partial<Manifest> = {}): Manifest {
  return manifest(source, streams, { formatVersion: 2, restore: { file: 'RESTORE.txt', bytes: 1, sha256: SHA('e') }, ...extra });
}

function part(number: number, offset: number, previous: string | null, continues: boolean, whole?: { bytes: number; sha: string }): StreamPart {
  return { number, offset, previous, continues, streamRawBytes: whole?.bytes ?? null, streamRawSha256: whole?.sha ?? null };
}

/** Three disks: part 1 (bytes 0–99), part 2 (100–199), part 3 (200–249) then the incremental to @b. */
function threeParts(): Manifest[] {
  const p1 = v2([stream('', 'full', null, [a], { rawBytes: 100, storedBytes: 5, rawSha256: SHA('1'), part: part(1, 0, null, true) })]);
  const p2 = v2([stream('', 'full', null, [a], { rawBytes: 100, storedBytes: 5, rawSha256: SHA('2'), part: part(2, 100, p1.bundleId, true) })]);
  const p3 = v2([
    stream('', 'full', null, [a], { rawBytes: 50, storedBytes: 5, rawSha256: SHA('3'), part: part(3, 200, p2.bundleId, false, { bytes: 250, sha: SHA('f') }) }),
    stream('', 'incremental', a, [b]),
  ]);
  return [p1, p2, p3];
}

const check = (m: Manifest) => parseManifest(JSON.stringify(m), '/disk/b/manifest.json');
const nothingReceived = (_dataset: string, _guid: string): boolean => false;

test('a manifest of each part passes the reader\'s checks on its own', () => {
  for (const m of threeParts()) assert.equal(check(m).bundleId, m.bundleId);
});

test('a version 1 reader\'s rule: a part in a format 1 manifest is refused by name', () => {
  const [p1] = threeParts();
  const { restore: _r, ...v1 } = { ...p1, formatVersion: 1 as const };
  assert.throws(() => check(v1 as Manifest), /\/streams\/0\/part is not part of bundle format version 1/);
});

test('part numbering and placement are checked: offsets, previous, the continuing part last, the later part first', () => {
  const edit = (change: (m: Manifest) => void) => {
    const m = structuredClone(threeParts()[2]);
    change(m);
    return () => check(m);
  };
  assert.throws(edit((m) => (m.streams[0].part!.offset = 0)), /\/streams\/0\/part\/offset must be above 0 on part 3/);
  assert.throws(edit((m) => (m.streams[0].part!.previous = null)), /\/streams\/0\/part\/previous must name the bundle holding part 2/);
  assert.throws(edit((m) => (m.streams[0].part!.streamRawBytes = 249)), /streamRawBytes must be offset \+ rawBytes \(250\), got 249/);
  assert.throws(edit((m) => (m.streams[0].part!.continues = true)), /the bundle's last stream \(it is 1 of 2\)/);
  assert.throws(edit((m) => { m.streams[1].part = part(2, 10, m.bundleId, false, { bytes: 20, sha: SHA('9') }); }), /\/streams\/1\/part\/number part 2 continues a stream from the previous bundle: it must be the bundle's first stream/);
  assert.throws(edit((m) => { m.streams[0].part = part(1, 0, null, false, { bytes: 50, sha: SHA('9') }); }), /part 1 that does not continue is no part/);
  assert.throws(edit((m) => { delete (m.streams[0].part as Partial<StreamPart>).continues; }), /\/streams\/0\/part must have required property 'continues'/);
});

test('a later part is ordered after the part it continues, whatever the source\'s newest snapshot said', () => {
  const [p1, p2, p3] = threeParts();
  const order = orderParts([p3, p1, p2].map((manifest) => ({ manifest }))).map((b) => b.manifest.bundleId);
  assert.deepEqual(order, [p1.bundleId, p2.bundleId, p3.bundleId]);
});

function assembled(ms: Manifest[], received = nothingReceived): Assembled {
  const r = assembleParts(ms.map((m, i) => ({ dir: `/disk${i + 1}/b`, manifest: m })), received);
  assert.ok(!('refusal' in r), 'refusal' in r ? r.refusal.message : '');
  return r;
}

test('all parts here: the last part stands for the whole stream, read from every part in order', () => {
  const ms = threeParts();
  const r = assembled(ms);
  assert.equal(r.complete.length, 1);
  assert.equal(r.waiting.length, 0);
  assert.deepEqual(r.bundles.map((b) => b.manifest.streams.length), [0, 0, 2], 'the continuing parts are left to the whole stream');
  const whole = r.bundles[2].manifest.streams[0];
  assert.equal(whole.rawBytes, 250);
  assert.equal(whole.rawSha256, SHA('f'));
  assert.equal(whole.storedBytes, 15);
  assert.equal('part' in whole, false);
  assert.deepEqual(r.segments.get(segmentKey('/disk3/b', 1))!.map((s) => [s.dir, s.stream.part!.number]), [['/disk1/b', 1], ['/disk2/b', 2], ['/disk3/b', 3]]);
});

test('only the first parts here: the stream waits, and nothing of it is planned', () => {
  const [p1, p2] = threeParts();
  const r = assembled([p1, p2]);
  assert.equal(r.waiting.length, 1);
  assert.deepEqual(r.waiting[0].parts.map((p) => p.stream.part!.number), [1, 2]);
  assert.deepEqual(r.bundles.map((b) => b.manifest.streams.length), [0, 0]);
});

test('a part whose previous part is missing is refused, naming the part it needs', () => {
  const [p1, p2, p3] = threeParts();
  const r = assembleParts([{ dir: '/d1', manifest: p1 }, { dir: '/d3', manifest: p3 }], nothingReceived);
  assert.ok('refusal' in r);
  assert.ok(r.refusal.message.startsWith(`/d3/manifest.json: stream 1 ((root)@a) is part 3 of a stream split across disks, and part 2 (bundle ${p2.bundleId}) is neither here nor staged`), r.refusal.message);
  assert.match(r.refusal.message, /nothing was received$/);
});

test('a part that does not continue the part it names is refused: a gap between the parts', () => {
  const [p1, p2, p3] = threeParts();
  p3.streams[0].part!.offset = 201;
  p3.streams[0].part!.streamRawBytes = 251;
  const r = assembleParts([p1, p2, p3].map((m, i) => ({ dir: `/d${i + 1}`, manifest: m })), nothingReceived);
  assert.ok('refusal' in r);
  assert.match(r.refusal.message, /^\/d3\/manifest.json: stream 1 \(\(root\)@a\) claims to be part 3, continuing bundle .* at byte 201, but that bundle does not end in part 2 of the same stream up to that byte/);
});

test('a part of another stream is refused even when its numbers line up', () => {
  const [p1, p2, p3] = threeParts();
  const other = { ...p3, streams: [{ ...p3.streams[0], to: b, creates: [b] } as StreamEntry, p3.streams[1]] };
  const r = assembleParts([p1, p2, other].map((m, i) => ({ dir: `/d${i + 1}`, manifest: m })), nothingReceived);
  assert.ok('refusal' in r);
  assert.match(r.refusal.message, /do not belong together/);
});

test('a stream the target already holds is done: left-over parts neither wait nor refuse', () => {
  const [p1, , p3] = threeParts();
  const r = assembled([p1, p3], (dataset, guid) => dataset === '' && guid === '11');
  assert.equal(r.waiting.length, 0);
  assert.deepEqual(r.bundles.map((x) => x.manifest.streams.length), [0, 2]);
});

test('RESTORE.txt of a continuing part stages its volumes and checksums; the last part receives every part in order', () => {
  const [p1, p2, p3] = threeParts();
  const first = restoreText(p1);
  const has = (text: string, line: string) => assert.ok(text.includes(line), `${line}\nin:\n${text}`);
  assert.match(first, /part 1 of a stream split across disks/);
  has(first, `mkdir -p "$STAGE"'/split-11/part-001/streams'\n`);
  has(first, `cp streams/0001-full.zst.* "$STAGE"'/split-11/part-001/streams'/\n`);
  has(first, `grep -F '  streams/0001-full.zst.' SHA256SUMS > "$STAGE"'/split-11/part-001/SHA256SUMS'\n`);
  assert.doesNotMatch(first, /\| zfs recv/, "a continuing part receives nothing");
  has(restoreText(p2), `"$STAGE"'/split-11/part-002/streams'`);
  const last = restoreText(p3);
  has(last, `(cd "$STAGE"'/split-11/part-001' && sha256sum -c SHA256SUMS)\n(cd "$STAGE"'/split-11/part-002' && sha256sum -c SHA256SUMS)\n`);
  has(last, `cat "$STAGE"'/split-11/part-001/streams'/* "$STAGE"'/split-11/part-002/streams'/* streams/0001-full.zst.* | zstd -dc | zfs recv -u "$TARGET"\n`);
  const sealed = { ...p3, encryption: { algorithm: 'age' as const, recipients: ['age1x'] }, streams: p3.streams.map((x) => ({ ...x, volumes: x.volumes.map((v) => ({ ...v, file: v.file.replace('.zst.', '.zst.age.') })) })) };
  has(restoreText(sealed), `{ cat "$STAGE"'/split-11/part-001/streams'/* | age -d -i "$AGE_IDENTITY"; cat "$STAGE"'/split-11/part-002/streams'/* | age -d -i "$AGE_IDENTITY"; cat streams/0001-full.zst.age.* | age -d -i "$AGE_IDENTITY"; } | zstd -dc | zfs recv -u "$TARGET"\n`);
});
