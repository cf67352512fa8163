/** Bundle folder names sort by time, also for two exports within one second. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundleFolderName, namingTime, waitToSortAfter, type NamingClock } from '../../src/commands/export.js';

const at = (iso: string) => new Date(iso);
const id = (c: string) => c.repeat(8);

test('a bundle named in the same second as the newest of its source waits for the next second, and then sorts after it', () => {
  const first = bundleFolderName('tank', id('f'), at('2026-12-02T10:54:12.100Z'));
  const now = at('2026-12-02T10:54:12.700Z');
  const wait = waitToSortAfter([first, 'lost+found'], 'tank', now);
  assert.equal(wait, 300);
  // Without the wait the random id decides the order: an id of zeros sorts first.
  assert.ok(bundleFolderName('tank', id('0'), now) < first);
  const second = bundleFolderName('tank', id('0'), new Date(now.getTime() + wait));
  assert.deepEqual([second, first].sort(), [first, second]);
});

test('no wait after an older second, for another source, or for a name ahead of the clock (set back)', () => {
  const now = at('2026-12-02T10:54:12.700Z');
  assert.equal(waitToSortAfter([bundleFolderName('tank', id('a'), at('2026-12-02T10:54:11.999Z'))], 'tank', now), 0);
  assert.equal(waitToSortAfter([bundleFolderName('tank/home', id('a'), at('2026-12-02T10:54:12.000Z'))], 'tank', now), 0);
  assert.equal(waitToSortAfter([bundleFolderName('tank', id('a'), at('2026-12-02T11:54:12.000Z'))], 'tank', now), 0);
  assert.equal(waitToSortAfter([], 'tank', now), 0);
});

test('a name of this second still waits when another is ahead of the clock (set back): the newest name does not hide it', () => {
  const now = at('2026-12-02T10:54:12.700Z');
  const same = bundleFolderName('tank', id('f'), at('2026-12-02T10:54:12.000Z'));
  const ahead = bundleFolderName('tank', id('a'), at('2026-12-02T11:54:12.000Z'));
  assert.equal(waitToSortAfter([ahead, same], 'tank', now), 300);
});

/** A clock that moves only when slept on; `early` makes the first sleep end that many ms short, as a timer may. */
function fakeClock(iso: string, early = 0): NamingClock & { slept: number[] } {
  let t = at(iso).getTime();
  const slept: number[] = [];
  return { slept, now: () => t, sleep: async (ms) => { t += slept.length === 0 ? ms - early : ms; slept.push(ms); } };
}

test('names planted for the seconds ahead hold an export up to the next second and no further', async () => {
  // A stranger in a shared bucket plants a name of this second and of each of the next ten.
  const planted = Array.from({ length: 11 }, (_, i) => bundleFolderName('tank', id('e'), new Date(at('2026-12-02T10:54:12.000Z').getTime() + i * 1000)));
  const clock = fakeClock('2026-12-02T10:54:12.700Z');
  const named = await namingTime(planted, 'tank', clock);
  assert.equal(named.toISOString(), '2026-12-02T10:54:13.000Z');
  assert.deepEqual(clock.slept, [300]);
});

test('a timer that fires early is slept on again until the second has passed', async () => {
  const clock = fakeClock('2026-12-02T10:54:12.700Z', 2);
  const named = await namingTime([bundleFolderName('tank', id('f'), at('2026-12-02T10:54:12.100Z'))], 'tank', clock);
  assert.equal(named.toISOString(), '2026-12-02T10:54:13.000Z');
  assert.deepEqual(clock.slept, [300, 2]);
});

test('no sleep when the second is free', async () => {
  const clock = fakeClock('2026-12-02T10:54:12.700Z');
  const named = await namingTime([bundleFolderName('tank', id('f'), at('2026-12-02T10:54:11.100Z'))], 'tank', clock);
  assert.equal(named.toISOString(), '2026-12-02T10:54:12.700Z');
  assert.deepEqual(clock.slept, []);
});
