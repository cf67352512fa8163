/** The pure parts of `zferry estimate`: units, churn windows, the keep-up verdict, the chart, the `written` parser. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseInterval, parseRate, formatDuration } from '../../src/units.js';
import { dailyChurn, windowChurn, type ChurnSample } from '../../src/estimate/churn.js';
import { keepUpVerdict } from '../../src/estimate/verdict.js';
import { spanOfDays, verdictSummary } from '../../src/cli/print.js';
import { bar, barChart, isUtf8Locale, table } from '../../src/cli/chart.js';
import { parseSnapshotWritten, snapshotWrittenArgs } from '../../src/zfs/index.js';

const DAY = 86400;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

test('parseRate reads bit rates (decimal) and byte rates', () => {
  assert.equal(parseRate('10Mbit'), 1_250_000);
  assert.equal(parseRate('10Mbit/s'), 1_250_000);
  assert.equal(parseRate('100kbps'), 12_500);
  assert.equal(parseRate('1Gbps'), 125_000_000);
  assert.equal(parseRate('8bit/s'), 1);
  assert.equal(parseRate('2MB/s'), 2_000_000);
  assert.equal(parseRate('2MiB/s'), 2 * MiB);
  assert.equal(parseRate('2M/s'), 2 * MiB);
  assert.equal(parseRate('500B/s'), 500);
  assert.equal(parseRate('1.5 MB/s'), 1_500_000);
});

test('parseRate refuses what is not a rate, naming the value', () => {
  for (const bad of ['10', '10Mb', 'fast', '0Mbit', '10Xbit', '-1MB/s', '2MB']) {
    assert.throws(() => parseRate(bad), new RegExp(`invalid link rate '${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`), bad);
  }
});

test('parseInterval reads seconds to weeks and refuses the rest', () => {
  assert.equal(parseInterval('90s'), 90);
  assert.equal(parseInterval('30m'), 1800);
  assert.equal(parseInterval('1h'), 3600);
  assert.equal(parseInterval('12h'), 43200);
  assert.equal(parseInterval('1d'), DAY);
  assert.equal(parseInterval('2days'), 2 * DAY);
  assert.equal(parseInterval('1w'), 7 * DAY);
  for (const bad of ['1', 'd', '1y', '0s', '0.5s']) assert.throws(() => parseInterval(bad), /invalid interval/, bad);
});

test('formatDuration picks a unit people read', () => {
  assert.equal(formatDuration(2.44), '2.4 s');
  assert.equal(formatDuration(185), '3 min 5 s');
  assert.equal(formatDuration(7800), '2 h 10 min');
  assert.equal(formatDuration(3.5 * DAY), '3.5 days');
});

const now = 100 * DAY;
function sample(daysAgo: number, bytes: number | null, gapDays = 1, dataset = 'a'): ChurnSample {
  return { dataset, snapshot: `s${daysAgo}`, since: now - (daysAgo + gapDays) * DAY, at: now - daysAgo * DAY, bytes };
}

test('windowChurn averages over the history covered and finds the busiest interval', () => {
  // Daily snapshots over 10 days, 1 GiB each, one day of 5 GiB three days ago, another dataset adding 1 GiB that day.
  const samples = [...Array.from({ length: 10 }, (_, i) => sample(i + 0.5, i === 3 ? 5 * GiB : GiB)), sample(3.5, GiB, 1, 'b')];
  const w7 = windowChurn(samples, now, 7, DAY);
  assert.equal(w7.samples, 8); // 0.5 … 6.5 days ago, plus dataset b
  assert.equal(w7.totalBytes, 12 * GiB);
  assert.equal(w7.coveredSeconds, 7 * DAY); // history older than the window is cut at its start
  assert.equal(w7.averagePerInterval, 12 * GiB / 7);
  assert.equal(w7.peakPerInterval, 6 * GiB);
  const w30 = windowChurn(samples, now, 30, DAY);
  assert.equal(w30.totalBytes, 15 * GiB);
  assert.equal(w30.coveredSeconds, 10.5 * DAY); // from the base of the oldest sample
  assert.equal(w30.averagePerInterval, 15 * GiB / 10.5);
  // Per hour: the peak is one snapshot's bytes.
  assert.equal(windowChurn(samples, now, 7, 3600).peakPerInterval, 6 * GiB);
});

test('windowChurn: history shorter than one interval counts as one interval; unknown sizes are counted, not used', () => {
  const samples = [sample(0.01, 3 * MiB, 0.01), sample(0.005, null, 0.005)];
  const w = windowChurn(samples, now, 7, DAY);
  assert.equal(w.averagePerInterval, 3 * MiB);
  assert.equal(w.peakPerInterval, 3 * MiB);
  assert.equal(w.unknown, 1);
  assert.equal(w.samples, 1);
  const empty = windowChurn([], now, 7, DAY);
  assert.deepEqual([empty.averagePerInterval, empty.peakPerInterval, empty.coveredSeconds], [0, 0, 0]);
});

test('dailyChurn has one row per UTC day, empty days included', () => {
  const rows = dailyChurn([sample(3, GiB), sample(3, 2 * GiB, 1, 'b'), sample(1, null), sample(40, GiB)], now, 30);
  assert.deepEqual(rows.map((r) => [r.bytes, r.unknown]), [[3 * GiB, 0], [0, 0], [0, 1], [0, 0]]);
  assert.equal(rows[0]!.date, new Date((now - 3 * DAY) * 1000).toISOString().slice(0, 10));
  assert.deepEqual(dailyChurn([], now, 30), []);
});

test('verdict: keeps up with the headroom left after the compressed churn', () => {
  const v = keepUpVerdict({
    intervalSeconds: DAY, linkBytesPerSecond: 1_250_000, averagePerInterval: 50e9, peakPerInterval: 60e9, ratio: 0.5, diskBytes: 1e12,
  });
  assert.equal(v.capacityPerInterval, 108e9);
  assert.equal(v.needPerInterval, 25e9);
  assert.equal(v.keepsUp, true);
  assert.ok(Math.abs(v.headroomPercent! - 76.85) < 0.01);
  assert.equal(v.peakFits, true);
  assert.equal(v.behindPerDay, null);
  assert.equal(verdictSummary(v), 'keeps up with 76% headroom');
});

test('verdict: a peak that does not fit is said even when the average does', () => {
  const v = keepUpVerdict({ intervalSeconds: DAY, linkBytesPerSecond: 1e6, averagePerInterval: 50e9, peakPerInterval: 200e9, ratio: 1, diskBytes: 1e12 });
  assert.equal(v.keepsUp, true);
  assert.equal(v.peakFits, false);
  assert.match(verdictSummary(v), /^keeps up with 42% headroom; the busiest interval \(186\.3 GiB\) does not fit/);
});

test('verdict: falls behind by the daily deficit, and a disk every N days carries it', () => {
  // Hourly bundles, 1 MB/s link = 3.6 GB/h; churn 5 GB/h raw at ratio 1 → 1.4 GB/h behind = 33.6 GB/day.
  const v = keepUpVerdict({ intervalSeconds: 3600, linkBytesPerSecond: 1e6, averagePerInterval: 5e9, peakPerInterval: 9e9, ratio: 1, diskBytes: 1e12 });
  assert.equal(v.keepsUp, false);
  assert.equal(v.headroomPercent, null);
  assert.ok(Math.abs(v.behindPerDay! - 33.6e9) < 1);
  assert.ok(Math.abs(v.diskEveryDays! - 1e12 / 33.6e9) < 1e-9);
  assert.equal(verdictSummary(v), 'falls behind by 31.3 GiB per day; a 931.3 GiB disk every 29 days would carry the rest');
  // The flip: the same churn on a link just above it keeps up.
  assert.equal(keepUpVerdict({ intervalSeconds: 3600, linkBytesPerSecond: 5e9 / 3600 + 1, averagePerInterval: 5e9, peakPerInterval: 5e9, ratio: 1, diskBytes: 1e12 }).keepsUp, true);
});

test('verdict: a disk smaller than a day\'s deficit asks for several a day', () => {
  const v = keepUpVerdict({ intervalSeconds: DAY, linkBytesPerSecond: 1, averagePerInterval: 300e9, peakPerInterval: 300e9, ratio: 1, diskBytes: 100e9 });
  assert.match(verdictSummary(v), /93\.1 GiB disk would fill in 8\.0 h: ship 3 disks a day or a faster link$/);
});

test('bars: Unicode eighths, ASCII #, scaled to the largest row', () => {
  assert.equal(bar(1, 1, 4, true), '████');
  assert.equal(bar(1, 2, 4, true), '██');
  assert.equal(bar(1, 16, 4, true), '▎');
  assert.equal(bar(1, 1000, 4, true), '▏'); // never invisible when not zero
  assert.equal(bar(0, 1, 4, true), '');
  assert.equal(bar(1, 2, 4, false), '##');
  const lines = barChart([{ label: '2026-11-25', value: 2, text: '2 B' }, { label: '2026-11-26', value: 1, text: '1 B' }], 4, false);
  assert.deepEqual(lines, ['2026-11-25 #### 2 B', '2026-11-26 ##   1 B']);
});

test('isUtf8Locale reads LC_ALL, then LC_CTYPE, then LANG', () => {
  assert.equal(isUtf8Locale({ LANG: 'en_US.UTF-8' }), true);
  assert.equal(isUtf8Locale({ LC_ALL: 'C', LANG: 'en_US.UTF-8' }), false);
  assert.equal(isUtf8Locale({ LC_CTYPE: 'de_DE.utf8' }), true);
  assert.equal(isUtf8Locale({}), false);
});

test('table aligns columns, numbers to the right', () => {
  assert.deepEqual(table([['a', 'size'], ['long name', '1 B']], new Set([1])), ['a          size', 'long name   1 B']);
});

test('parseSnapshotWritten reads `zfs list -Hp -o name,written,creation` and treats absurd values as unknown', () => {
  assert.deepEqual(snapshotWrittenArgs('src'), ['list', '-H', '-p', '-t', 'snapshot', '-o', 'name,written,creation', '-r', 'src']);
  const rows = parseSnapshotWritten(
    'src/data@s1\t8452208\t1764140000\nsrc/data@s2\t2137584\t1764143600\nsrc/data@s3\t18446744073614344448\t1764147200\nsrc/data@s4\t-\t1764150800\n',
    'src',
  );
  assert.deepEqual(rows, [
    { name: 'src/data@s1', written: 8452208, creation: 1764140000 },
    { name: 'src/data@s2', written: 2137584, creation: 1764143600 },
    { name: 'src/data@s3', written: null, creation: 1764147200 },
    { name: 'src/data@s4', written: null, creation: 1764150800 },
  ]);
  assert.throws(() => parseSnapshotWritten('src/data@s1\t12\n', 'src'), /unexpected zfs list line under src/);
});

test('measureStream: a whole-stream sample compresses to what the export stage writes; a bounded one stops early', async () => {
  const { Readable } = await import('node:stream');
  const { pipeline } = await import('node:stream/promises');
  const { randomBytes } = await import('node:crypto');
  const { measureStream, compress } = await import('../../src/pipeline/index.js');
  const data = Buffer.concat([randomBytes(300 * 1024), Buffer.from('text '.repeat(100 * 1024))]);
  const chunks = (buf: Buffer) => Readable.from(Array.from({ length: Math.ceil(buf.length / 65536) }, (_, i) => buf.subarray(i * 65536, (i + 1) * 65536)));
  let exported = 0;
  await pipeline(chunks(data), compress({ level: 3 }), async (src: AsyncIterable<Buffer>) => {
    for await (const b of src) exported += b.length;
  });
  const whole = await measureStream(chunks(data), { level: 3, sampleBytes: 10 * MiB, sampleSeconds: 10, readAll: false });
  assert.equal(whole.rawBytes, data.length);
  assert.equal(whole.sampleIsWhole, true);
  assert.ok(Math.abs(whole.sampleStoredBytes - exported) <= exported * 0.01, `${whole.sampleStoredBytes} vs ${exported}`);

  const part = await measureStream(chunks(data), { level: 3, sampleBytes: 100 * 1024, sampleSeconds: 10, readAll: false });
  assert.equal(part.complete, false);
  assert.equal(part.sampleRawBytes, 100 * 1024);
  assert.ok(part.sampleStoredBytes > 100 * 1024 * 0.95, 'random bytes do not compress');

  const counted = await measureStream(chunks(data), { level: 3, sampleBytes: 0, sampleSeconds: 0, readAll: true });
  assert.deepEqual([counted.rawBytes, counted.complete, counted.sampleRawBytes], [data.length, true, 0]);
});

test('verdict: a small deficit is not worded as a disk every few hundred thousand days', () => {
  const v = keepUpVerdict({ intervalSeconds: DAY, linkBytesPerSecond: 1e6, averagePerInterval: 86.4e9 + 1e6, peakPerInterval: 86.4e9 + 1e6, ratio: 1, diskBytes: 1.1e12 });
  assert.equal(v.keepsUp, false);
  assert.ok(v.diskEveryDays! > 1e5);
  assert.equal(verdictSummary(v), 'falls behind by 976.6 KiB per day; one 1.00 TiB disk would carry more than 10 years of it');
});

test('verdict wording: days up to 60, months up to two years, years up to ten, then "more than 10 years"', () => {
  const cases: Array<[number, string]> = [
    [1, '1 day'], [1.99, '1 day'], [2, '2 days'], [60.99, '60 days'],
    [61, '2 months'], [91.3, '2 months'], [91.32, '3 months'], [730.49, '23 months'],
    [730.5, '2 years'], [1095.74, '2 years'], [1095.75, '3 years'], [3652.49, '9 years'],
    [3652.5, '10 years'], [3652.51, 'more than 10 years'], [140177, 'more than 10 years'],
  ];
  for (const [days, words] of cases) assert.equal(spanOfDays(days), words, `${days} days`);
});

test('verdict: a deficit a disk covers for months is worded in months, not hundreds of days', () => {
  // 1 TiB / 8 GiB per day = 128 days: 4 months.
  const v = keepUpVerdict({ intervalSeconds: DAY, linkBytesPerSecond: 0, averagePerInterval: 8 * 1024 ** 3, peakPerInterval: 8 * 1024 ** 3, ratio: 1, diskBytes: 1024 ** 4 });
  assert.equal(verdictSummary(v), 'falls behind by 8.00 GiB per day; a 1.00 TiB disk every 4 months would carry the rest');
});
