/** The newest snapshot a receipt or a pool shows (zferry status, the metrics): by creation, then createtxg. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newestSnapshot } from '../../src/commands/basis.js';
import { ds, inv } from '../helpers/literals.js';

test('two snapshots of the same second: the later by createtxg is the newest (seen as @one for @two in relay-sites)', () => {
  const root = ds('', [['one', 'g1', 10], ['two', 'g2', 11]]);
  for (const s of root.snapshots) s.creation = 1_764_672_033;
  assert.equal(newestSnapshot(inv('tank', [root]))?.name, 'two');
  // The order they are listed in does not decide it either.
  root.snapshots.reverse();
  assert.equal(newestSnapshot(inv('tank', [root]))?.name, 'two');
});

test('creation decides first; without root snapshots every dataset counts; none is null', () => {
  const a = ds('a', [['old', 'g1', 50]]);
  const b = ds('b', [['new', 'g2', 20]]);
  a.snapshots[0].creation = 100;
  b.snapshots[0].creation = 200;
  assert.equal(newestSnapshot(inv('tank', [ds('', []), a, b]))?.name, 'new');
  assert.equal(newestSnapshot(inv('tank', [ds('', [])])), null);
  assert.equal(newestSnapshot(null), null);
});
