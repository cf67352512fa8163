/** `--level auto`: the level chosen for a link from measured speeds (src/plan/level.ts), on literal measures. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseLevel, zstdMemoryEstimate, type LevelSample } from '../../src/plan/level.js';

const MiB = 1024 * 1024;
// Shaped like zstd on a small machine: each level slower and a little smaller.
const samples: LevelSample[] = [
  { level: 1, rawPerSecond: 400 * MiB, ratio: 0.50, memoryBytes: zstdMemoryEstimate(1) },
  { level: 3, rawPerSecond: 250 * MiB, ratio: 0.45, memoryBytes: zstdMemoryEstimate(3) },
  { level: 9, rawPerSecond: 60 * MiB, ratio: 0.41, memoryBytes: zstdMemoryEstimate(9) },
  { level: 19, rawPerSecond: 3 * MiB, ratio: 0.36, memoryBytes: zstdMemoryEstimate(19) },
];
const mbit = (n: number) => (n * 1e6) / 8;

test('a slow link gets the highest level that still fills it; the line says which and why', () => {
  const c = chooseLevel(samples, mbit(1), 512 * MiB);
  assert.equal(c.level, 19, '19 compresses 3 MiB/s to 1.1 MiB/s, more than a 1 Mbit/s link carries');
  assert.match(c.reason, /^level 19: .*keeps the link full/);
});

test('a faster link gets a lower level once the higher one would leave it idle', () => {
  assert.equal(chooseLevel(samples, mbit(100), 512 * MiB).level, 9);
  assert.equal(chooseLevel(samples, mbit(1000), 512 * MiB).level, 3);
  assert.equal(chooseLevel(samples, mbit(10_000), 512 * MiB).level, 1);
});

test('the chosen level is never slower end to end than -3, at any rate', () => {
  const t = (level: number, link: number) => {
    const s = samples.find((x) => x.level === level)!;
    return Math.max(1 / s.rawPerSecond, s.ratio / link);
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
