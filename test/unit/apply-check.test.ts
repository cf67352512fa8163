import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createStep, type Dataset, type DatasetType, type Inventory, type SnapshotRef } from '../../src/model.js';
import { ds as literalDs, inv as literalInv, ref, type SnapTuple } from '../helpers/literals.js';
import { checkApply, planSync } from '../../src/plan/index.js';
import type { ApplyDecision, ApplyStream, SendStep, Step } from '../../src/plan/index.js';

type S = SnapTuple;
const ds = (path: string, snaps: S[], type: DatasetType = 'filesystem') => literalDs(path, snaps, { type });
const inv = (datasets: Dataset[]): Inventory => literalInv('backup', datasets);
const r = ref;
const s1 = r('s1', '101'), s2 = r('s2', '102'), s3 = r('s3', '103'), s4 = r('s4', '104');

function full(index: number, dataset: string, to: SnapshotRef, force = false): ApplyStream {
  return { index, dataset, type: 'filesystem', kind: 'full', from: null, to, intermediates: false, creates: [to], force };
}
function inc(index: number, dataset: string, from: SnapshotRef, creates: SnapshotRef[]): ApplyStream {
  return { index, dataset, type: 'filesystem', kind: 'incremental', from, to: creates[creates.length - 1], intermediates: creates.length > 1, creates, force: false };
}
function create(index: number, dataset: string): ApplyStream {
  return { index, ...createStep(dataset) };
}
/** Decisions without the receive options (pinned by their own tests in import-plan.test.ts). */
const shape = (ds: ApplyDecision[]) => ds.map((d) => {
  if (d.action !== 'apply') return d;
  const { receive: _receive, ...rest } = d;
  return rest;
});
/** What the export side would write: the plan's steps as streams. */
const toStreams = (steps: Step[]): ApplyStream[] =>
  steps.map((s, index) => ({ index, ...s }));

describe('checkApply', () => {
  it('applies a whole seed bundle to an empty target, later streams seeing earlier ones', () => {
    const src: Inventory = {
      root: 'tank',
      datasets: [ds('', [['s1', '101', 1], ['s2', '102', 2]]), ds('p', []), ds('p/c', [['s1', '201', 1], ['s2', '202', 2]])],
    };
    const streams = toStreams(planSync(src, null).steps);
    const result = checkApply(streams, null);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(shape(result.decisions), streams.map((s) => ({ index: s.index, action: 'apply' })));
  });

  it('skips streams whose snapshot the target already has, and a create of an existing dataset', () => {
    const target = inv([ds('', [['s1', '101', 1], ['s2', '102', 2]]), ds('p', [])]);
    const result = checkApply([full(0, '', s1), inc(1, '', s1, [s2]), create(2, 'p'), inc(3, '', s2, [s3])], target);
    assert.deepEqual(shape(result.decisions), [
      { index: 0, action: 'skip', reason: 'already applied' },
      { index: 1, action: 'skip', reason: 'already applied' },
      { index: 2, action: 'skip', reason: 'already exists' },
      { index: 3, action: 'apply' },
    ]);
    assert.deepEqual(result.problems, []);
  });

  it('rolls back to the base when an interrupted -I stream left some of its own snapshots', () => {
    const target = inv([ds('', [['s1', '101', 1], ['s2', '102', 2]])]);
    const result = checkApply([inc(0, '', s1, [s2, s3, s4])], target);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(shape(result.decisions), [{ index: 0, action: 'apply', rollbackTo: s1 }]);
  });

  it('rolls back to the target name of the base snapshot, found by guid', () => {
    const target = inv([ds('', [['renamed', '101', 1], ['s2', '102', 2]])]);
    const result = checkApply([inc(0, '', s1, [s2, s3])], target);
    assert.deepEqual(shape(result.decisions), [{ index: 0, action: 'apply', rollbackTo: r('renamed', '101') }]);
  });

  it('refuses an incremental when the target has snapshots after the base that the stream does not create', () => {
    const target = inv([ds('', [['s1', '101', 1], ['s2', '102', 2], ['extra', '999', 3]])]);
    const result = checkApply([inc(0, '', s1, [s2, s3])], target);
    assert.deepEqual(shape(result.decisions), []);
    assert.equal(result.problems.length, 1);
    assert.match(result.problems[0].message, /^backup: target has snapshots newer than the base @s1 \(guid 101\) that the source lacks \(target-only: @extra; source sends: @s2, @s3\); use --rollback to roll back to @s1 and discard them$/);
  });

  it('with rollback, rolls back to the base and names the target-only snapshots it discards', () => {
    const target = inv([ds('', [['s1', '101', 1], ['s2', '102', 2], ['extra', '999', 3]])]);
    const result = checkApply([inc(0, '', s1, [s2, s3])], target, { rollback: true });
    assert.deepEqual(result.problems, []);
    assert.deepEqual(shape(result.decisions), [{ index: 0, action: 'apply', rollbackTo: r('s1', '101'), discards: [r('extra', '999')] }]);
  });

  it('replaces a re-created dataset only with replace (--delete), and never one sharing a snapshot with the source', () => {
    const target = inv([ds('', [['old', '555', 1]])]);
    const full = { index: 0, dataset: '', type: 'filesystem' as const, kind: 'full' as const, from: null, to: s1, intermediates: false, creates: [s1], force: true };
    const refused = checkApply([full], target, { sourceGuids: new Set(['101']) });
    assert.match(refused.problems[0].message, /source's dataset was re-created.*use --delete to replace/);
    const ok = checkApply([full], target, { replace: true, sourceGuids: new Set(['101']) });
    assert.deepEqual(shape(ok.decisions), [{ index: 0, action: 'apply', replaces: [r('old', '555')] }]);
    const shared = checkApply([full], target, { replace: true, sourceGuids: new Set(['555']) });
    assert.match(shared.problems[0].message, /refusing a full stream into an existing dataset/);
  });

  it('reports a missing base with its name and guid and the target newest snapshot', () => {
    const target = inv([ds('a', [['s1', '101', 1]]), ds('b', [])]);
    const result = checkApply([inc(0, 'a', s3, [s4]), inc(1, 'b', s1, [s2]), inc(2, 'c', s1, [s2])], target);
    assert.deepEqual(shape(result.decisions), []);
    assert.deepEqual(result.problems.map((p) => p.dataset), ['a', 'b', 'c']);
    assert.equal(result.problems[0].message, 'backup/a: base @s3 (guid 103) is not on the target; its newest snapshot is @s1 (guid 101)');
    assert.match(result.problems[1].message, /base @s1 \(guid 101\) is not on the target; it has no snapshots/);
    assert.match(result.problems[2].message, /backup\/c: does not exist on the target/);
  });

  it('cascades a problem to later streams of the same dataset and its descendants only', () => {
    const target = inv([ds('', [['s1', '101', 1]]), ds('a', [['x', '900', 1]])]);
    const streams = [
      inc(0, 'a', s1, [s2]),
      full(1, 'a/child', s1),
      inc(2, 'a', s2, [s3]),
      full(3, 'ab', s1),
      inc(4, '', s1, [s2]),
    ];
    const result = checkApply(streams, target);
    assert.deepEqual(result.problems.map((p) => p.index), [0, 1, 2]);
    assert.match(result.problems[1].message, /backup\/a\/child: not applied because stream 0 for backup\/a could not be applied/);
    assert.match(result.problems[2].message, /stream 0 for backup\/a/);
    assert.deepEqual(shape(result.decisions), [{ index: 3, action: 'apply' }, { index: 4, action: 'apply' }]);
  });

  it('refuses a full stream into an existing dataset', () => {
    const target = inv([ds('', [['s9', '909', 1]]), ds('empty', [])]);
    const holding = checkApply([full(0, '', s1, true)], target);
    assert.deepEqual(shape(holding.decisions), []);
    assert.match(holding.problems[0].message, /^backup: refusing a full stream into an existing dataset that holds @s9; destroy it/);
    const unforced = checkApply([full(1, 'empty', s1, false)], target);
    assert.match(unforced.problems[0].message, /^backup\/empty: refusing a full stream into an existing dataset \(the stream is not marked force\)$/);
  });

  it('accepts a forced full stream into an existing dataset without snapshots', () => {
    const target = inv([ds('', [])]);
    const result = checkApply([full(0, '', s1, true), inc(1, '', s1, [s2])], target);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(shape(result.decisions), [{ index: 0, action: 'apply' }, { index: 1, action: 'apply' }]);
  });

  it('refuses a full stream or a create whose parent is missing', () => {
    const target = inv([ds('', [])]);
    const result = checkApply([full(0, 'a/b', s1), create(1, 'x/y')], target);
    assert.match(result.problems[0].message, /backup\/a\/b: cannot receive a full stream, parent backup\/a does not exist/);
    assert.match(result.problems[1].message, /backup\/x\/y: cannot create it, parent backup\/x does not exist/);
  });

  it('accepts an incremental from a bookmark whose snapshot the target holds', () => {
    const target = inv([ds('', [['s2', '102', 2]])]);
    const stream: ApplyStream = { ...(inc(0, '', s2, [s4]) as SendStep & { index: number }), from: { name: 's2-bm', guid: '102', bookmark: true } };
    assert.deepEqual(shape(checkApply([stream], target).decisions), [{ index: 0, action: 'apply' }]);
  });
});
