/** Bundle folder names sort by time, also for two exports within one second. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundleFolderName, waitToSortAfter } from '../../src/commands/export.js';

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
