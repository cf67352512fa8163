/** `--level auto`: the level chosen for a link from measured speeds (src/plan/level.ts), on literal measures. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseLevel, levelTable, zstdMemoryEstimate, type LevelSample } from '../../src/plan/level.js';

const MiB = 1024 * 1024;
// Shaped like zstd on a small machine: each level slower and a little smaller.
const samples: LevelSample[] = [
  { level: 1, rawPerSecond: 400 * MiB, ratio: 0.50, memoryBytes: zstdMemoryEstimate(1) },
  { level: 3, rawPerSecond: 250 * MiB, ratio: 0.45, memoryBytes: zstdMemoryEstimate(3) },
  { level: 9, rawPerSecond: 60 * MiB, ratio: 0.41, memoryBytes: zstdMemoryEstimate(9) },
  { level: 19, rawPerSecond: 3 * MiB, ratio: 0.36, memoryBytes: zstdMemoryEstimate(19) },
];
const mbit = (n: number) => (n * 1e6) / 8;

test('a slow link gets the highest level; the line says which and why, against -3', () => {
  const c = chooseLevel(samples, mbit(1), 512 * MiB);
  assert.equal(c.level, 19, 'at 1 Mbit/s, 19 saves more link time than its 1/3 s per MiB of compressing');
  assert.match(c.reason, /^level 19: compresses 3\.0 MiB\/s to 36% here; compressing and moving take \d+\.\d s\/GiB over a 0\.1 MiB\/s link \(-3: \d+\.\d s\/GiB\)$/);
});

test('a faster link gets a lower level once compressing harder costs more than the link gains (export, then push)', () => {
  assert.equal(chooseLevel(samples, mbit(10), 512 * MiB).level, 9);
  assert.match(chooseLevel(samples, mbit(10), 512 * MiB).reason, /level 19 \(3\.0 MiB\/s\) would take \d+\.\d s\/GiB: it compresses slower than the link gains$/);
  assert.equal(chooseLevel(samples, mbit(100), 512 * MiB).level, 3);
  assert.equal(chooseLevel(samples, mbit(1000), 512 * MiB).level, 1);
  assert.equal(chooseLevel(samples, mbit(10_000), 512 * MiB).level, 1);
});

test('the chosen level is never slower end to end than -3, at any rate', () => {
  const t = (level: number, link: number) => {
    const s = samples.find((x) => x.level === level)!;
    return 1 / s.rawPerSecond + s.ratio / link;
  };
  for (const rate of [1, 10, 100, 1000, 10_000]) {
    const c = chooseLevel(samples, mbit(rate), 512 * MiB);
    assert.ok(t(c.level, mbit(rate)) <= t(3, mbit(rate)) * 1.02, `${rate} Mbit/s: level ${c.level}`);
  }
});

test('a level over --max-memory is not chosen, and the line says so', () => {
  const c = chooseLevel(samples, mbit(1), 256 * MiB);
  assert.equal(c.level, 9);
  assert.match(c.reason, /level 19 needs about \d+ MiB, over --max-memory/);
  assert.equal(c.secondsPerGiB.find((x) => x.level === 19)?.seconds, null);
});

test('estimate\'s level table: each level\'s bundle is raw × its sampled ratio, its time at the link that over the rate', () => {
  const raw = 10 * 1024 ** 3;
  const rows = levelTable(samples, raw, mbit(10));
  assert.deepEqual(rows.map((r) => r.level), [1, 3, 9, 19]);
  const r3 = rows.find((r) => r.level === 3)!;
  assert.equal(r3.storedBytes, Math.round(raw * 0.45));
  assert.equal(r3.linkSeconds, Math.round(raw * 0.45) / 1.25e6, '10 Mbit/s is 1.25e6 bytes a second');
  assert.equal(r3.compressSeconds, raw / (250 * MiB));
  assert.equal(rows.find((r) => r.level === 19)!.linkSeconds, Math.round(raw * 0.36) / 1.25e6);
});

test('estimate\'s level table agrees with the headline: the headline\'s level shows its bundle, the others keep their sizes relative to it', () => {
  const raw = 10 * 1024 ** 3;
  // The headline sampled every stream: 40% at -3, where the table's one sample says 45%.
  const rows = levelTable(samples, raw, mbit(10), { level: 3, storedBytes: Math.round(raw * 0.4) });
  const by = (l: number) => rows.find((r) => r.level === l)!;
  assert.equal(by(3).storedBytes, Math.round(raw * 0.4));
  assert.equal(by(19).storedBytes, Math.round(raw * 0.36 * (0.4 / 0.45)));
  assert.equal(by(3).linkSeconds, Math.round(raw * 0.4) / 1.25e6);
  // Without a headline size, or at a level the table lacks, the sample alone decides.
  assert.equal(levelTable(samples, raw, mbit(10), { level: 3, storedBytes: null }).find((r) => r.level === 3)!.storedBytes, Math.round(raw * 0.45));
  assert.equal(levelTable(samples, raw, mbit(10), { level: 5, storedBytes: 1 }).find((r) => r.level === 3)!.storedBytes, Math.round(raw * 0.45));
});

test('estimate\'s level table shows --long only where it saves 2% or more; auto never picks it', () => {
  const withLong: LevelSample[] = [
    ...samples,
    { level: 3, long: true, rawPerSecond: 200 * MiB, ratio: 0.45 * 0.99, memoryBytes: zstdMemoryEstimate(3, 2, true) },
    { level: 19, long: true, rawPerSecond: 2 * MiB, ratio: 0.30, memoryBytes: zstdMemoryEstimate(19, 2, true) },
  ];
  const rows = levelTable(withLong, 1e9, mbit(1));
  assert.deepEqual(rows.map((r) => `${r.level}${r.long ? 'L' : ''}`), ['1', '3', '9', '19', '19L']);
  assert.equal(rows.at(-1)!.storedBytes, 3e8);
  assert.ok(zstdMemoryEstimate(19, 2, true) > zstdMemoryEstimate(19, 2));
  assert.equal(chooseLevel(withLong, mbit(1), 4096 * MiB).level, 19);
  assert.ok(!chooseLevel(withLong, mbit(1), 4096 * MiB).secondsPerGiB.some((x) => x.level === 19 && x.ratio === 0.30));
});

test('estimate\'s level table with an unknown raw size keeps the ratios and leaves sizes and times unknown', () => {
  const rows = levelTable(samples, null, mbit(10));
  assert.ok(rows.every((r) => r.storedBytes === null && r.linkSeconds === null && r.compressSeconds === null && r.ratio > 0));
});

test('the 2% slack for a smaller bundle never takes auto past -3\'s time (incompressible data: every level about equal)', () => {
  const flat: LevelSample[] = [
    { level: 1, rawPerSecond: 400 * MiB, ratio: 1.0, memoryBytes: zstdMemoryEstimate(1) },
    { level: 3, rawPerSecond: 300 * MiB, ratio: 0.999, memoryBytes: zstdMemoryEstimate(3) },
    { level: 9, rawPerSecond: 100 * MiB, ratio: 0.999, memoryBytes: zstdMemoryEstimate(9) },
  ];
  const c = chooseLevel(flat, mbit(10), 512 * MiB);
  const t = (l: number) => c.secondsPerGiB.find((x) => x.level === l)!.seconds!;
  assert.ok(t(9) > t(3) && t(9) < t(3) * 1.02, 'the setting: 9 within the slack, but slower than 3');
  assert.equal(c.level, 3);
});
