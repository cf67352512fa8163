/**
 * Import's decisions on literal data: receive options come from the plan
 * (never from the manifest), and which bundle speaks for the source is decided
 * by the source's txg and the target's lineage, never by createdAt.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Dataset, Inventory, SnapshotRef } from '../../src/model.js';
import { ds, inv, ref, type SnapTuple } from '../helpers/literals.js';
import { asOfTxg, checkApply, chooseLatestView, FULL_SCOPE, judgeView, lineageOrder, type ApplyStream } from '../../src/plan/index.js';

type S = SnapTuple;
const r = ref;
const s1 = r('s1', '101'), s2 = r('s2', '102'), s3 = r('s3', '103');

function inc(index: number, dataset: string, from: SnapshotRef, creates: SnapshotRef[], force = false): ApplyStream {
  return { index, dataset, type: 'filesystem', kind: 'incremental', from, to: creates[creates.length - 1], intermediates: false, creates, force };
}

describe('receive options are the plan\'s', () => {
  const target = inv('backup', [ds('', [['s1', '101', 5]]), ds('empty', [])]);

  it('refuses an incremental marked force unless --rollback was given, naming the stream and the flag', () => {
    const plan = checkApply([inc(1, '', s1, [s2], true)], target);
    assert.deepEqual(plan.decisions, []);
    assert.equal(plan.problems.length, 1);
    assert.equal(plan.problems[0].message, 'backup: incremental stream 1 is marked force (zfs receive -F would discard changes on the target); refusing; use --rollback to allow rolling back to the base');
  });

  it('with --rollback a forced incremental is still received without -F: the plan rolls back explicitly', () => {
    const plan = checkApply([inc(1, '', s1, [s2], true)], target, { rollback: true });
    assert.equal(plan.decisions.length, 1);
    const d = plan.decisions[0];
    assert.ok(d.action === 'apply' && d.receive);
    assert.equal(d.receive.force, false);
  });

  it('a plain incremental: no -F, the mountpoint never taken from the stream, canmount=noauto', () => {
    const d = checkApply([inc(1, '', s1, [s2])], target).decisions[0];
    assert.ok(d.action === 'apply');
    assert.deepEqual(d.receive, { force: false, exclude: ['mountpoint'], set: { canmount: 'noauto' } });
  });

  it('a full stream gets -F only into a dataset the target already has (empty), not into a new one', () => {
    const plan = checkApply([
      { index: 1, dataset: 'new', type: 'filesystem', kind: 'full', from: null, to: s3, intermediates: false, creates: [s3], force: true },
      { index: 2, dataset: 'empty', type: 'filesystem', kind: 'full', from: null, to: s3, intermediates: false, creates: [s3], force: true },
    ], target);
    assert.deepEqual(plan.problems, []);
    assert.deepEqual(plan.decisions.map((d) => d.action === 'apply' && d.receive?.force), [false, true]);
  });

  it('a zvol gets no mountpoint or canmount override', () => {
    const plan = checkApply([{ index: 1, dataset: 'vol', type: 'volume', kind: 'full', from: null, to: s3, intermediates: false, creates: [s3], force: false }], target);
    const d = plan.decisions[0];
    assert.ok(d.action === 'apply');
    assert.deepEqual(d.receive, { force: false, exclude: [], set: {} });
  });

  it('a clone\'s origin is the target\'s own snapshot with the stated guid, under its name on the target', () => {
    const t = inv('backup', [ds('', []), ds('base', [['renamed-on-target', '101', 5]])]);
    const clone: ApplyStream = { index: 1, dataset: 'clone', type: 'filesystem', kind: 'incremental', from: { name: 's1', guid: '101', dataset: 'base' }, to: s2, intermediates: false, creates: [s2], force: false };
    const d = checkApply([clone], t).decisions[0];
    assert.ok(d.action === 'apply');
    assert.deepEqual(d.receive?.origin, { dataset: 'base', name: 'renamed-on-target', guid: '101' });
    const wrongGuid = checkApply([{ ...clone, from: { name: 's1', guid: '999', dataset: 'base' } }], t);
    assert.match(wrongGuid.problems[0].message, /is sent as a clone of backup\/base@s1 \(guid 999\), which is not on the target/);
  });
});

describe('the latest view of the source', () => {
  const source = (snaps: S[], kids: Dataset[] = []) => inv('tank', [ds('', snaps), ...kids]);
  const cand = (label: string, inventory: Inventory) => ({ label, inventory, scope: FULL_SCOPE });

  it('orders bundles by the source\'s txg and folder name, whatever createdAt says', () => {
    const old = { dir: '/d/zferry-2099-forged', inventory: source([['s1', '101', 10]]) };
    const mid = { dir: '/d/zferry-2026-a', inventory: source([['s1', '101', 10], ['s2', '102', 20]]) };
    const empty = { dir: '/d/zferry-0000', inventory: inv('tank', [ds('', [])]) };
    assert.deepEqual(lineageOrder([mid, old, empty]).map((b) => b.dir), ['/d/zferry-0000', '/d/zferry-2099-forged', '/d/zferry-2026-a']);
    assert.equal(asOfTxg(mid.inventory), 20n);
    assert.equal(asOfTxg(empty.inventory), null);
  });

  it('a bundle older than the txg the target recorded never speaks for the source', () => {
    const target = inv('backup', [ds('', [['s1', '101', 3], ['s2', '102', 4]])]);
    const v = judgeView(cand('old/manifest.json', source([['s1', '101', 10]])), target, 20n);
    assert.deepEqual(v, { ok: false, reason: 'old/manifest.json shows the source as of txg 10, older than what backup already received (zferry:source-txg=20)' });
    assert.deepEqual(judgeView(cand('new', source([['s1', '101', 10], ['s2', '102', 20]])), target, 20n), { ok: true, asOf: 20n, unanchored: [] });
  });

  it('without a record, a target that holds a snapshot newer than the bundle knows refuses it (a replayed old bundle)', () => {
    const target = inv('backup', [ds('', [['s1', '101', 3], ['s2', '102', 4]])]);
    const v = judgeView(cand('old', source([['s1', '101', 10]])), target, null);
    assert.deepEqual(v, { ok: false, reason: 'backup already holds @s2 (guid 102), newer than anything old lists there' });
  });

  it('a bundle whose newest snapshot will not be on the target is not anchored', () => {
    const target = inv('backup', [ds('', [['s1', '101', 3]])]);
    const v = judgeView(cand('forged', source([['s1', '101', 10], ['fake', '777', 99999]])), target, null);
    assert.equal(v.ok, false);
    assert.match((v as { reason: string }).reason, /^forged says the newest snapshot of tank is @fake \(guid 777\), which backup will not hold after this import$/);
  });

  it('an inventory with no snapshot never speaks for the source', () => {
    assert.deepEqual(judgeView(cand('empty', inv('tank', [ds('', [])])), inv('backup', [ds('', [['s1', '101', 3]])]), null),
      { ok: false, reason: 'empty lists no snapshot of the source' });
  });

  it('chooses the newest eligible bundle; a stale newest one does not hide an eligible older one', () => {
    const target = inv('backup', [ds('', [['s1', '101', 3], ['s2', '102', 4]]), ds('kid', [['s2', '202', 4]])]);
    const good = cand('good', source([['s1', '101', 10], ['s2', '102', 20]], [ds('kid', [['s2', '202', 20]])]));
    const forged = cand('forged', source([['s1', '101', 10], ['s2', '102', 20], ['x', '900', 5000]]));
    assert.deepEqual(chooseLatestView([good, forged], target, 20n), { index: 0, asOf: 20n, unanchored: [] });
    assert.deepEqual(chooseLatestView([forged], target, 20n).index, null);
  });

  it('a newer bundle that leaves one dataset for a later bundle still speaks for the others: an older one never wins and deletes what this import brings', () => {
    // After this import the target holds @s3 on the root (brought by `partial`), but kid's @s3 is in a bundle still to come (--max-size).
    const target = inv('backup', [ds('', [['s1', '101', 3], ['s2', '102', 4], ['s3', '103', 5]]), ds('kid', [['s1', '201', 3], ['s2', '202', 4]])]);
    const older = cand('older', source([['s1', '101', 10], ['s2', '102', 20]], [ds('kid', [['s1', '201', 10], ['s2', '202', 20]])]));
    const partial = cand('partial', source([['s1', '101', 10], ['s2', '102', 20], ['s3', '103', 30]], [ds('kid', [['s1', '201', 10], ['s2', '202', 20], ['s3', '203', 30]])]));
    assert.deepEqual(judgeView(partial, target, 20n), { ok: true, asOf: 30n, unanchored: ['kid'] });
    assert.deepEqual(chooseLatestView([older, partial], target, 20n), { index: 1, asOf: 30n, unanchored: ['kid'] });
    // Its clock counts only what it delivers: a listed, undelivered snapshot with a huge txg moves nothing.
    const forgedKid = cand('forged-kid', source([['s1', '101', 10], ['s2', '102', 20], ['s3', '103', 30]], [ds('kid', [['s2', '202', 20], ['x', '999', 99999]])]));
    assert.deepEqual(judgeView(forgedKid, target, 20n), { ok: true, asOf: 30n, unanchored: ['kid'] });
  });
});
