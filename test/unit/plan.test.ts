import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { comparePaths, describeStep, planSync, projectTarget } from '../../src/plan/index.js';
import type { SendStep, Step } from '../../src/plan/index.js';
import { ds, inv, type SnapTuple } from '../helpers/literals.js';

// Literal inventories: snapshots are [name, guid, createtxg] (test/helpers/literals.ts).
type S = SnapTuple;
const names = (refs: { name: string }[]) => refs.map((r) => r.name);
const sends = (steps: Step[]) => steps.filter((s): s is SendStep => s.kind === 'full' || s.kind === 'incremental');
const brief = (steps: Step[]) =>
  steps.map((s) => (s.kind === 'create' || s.kind === 'rename' ? `${s.dataset}:${s.kind}` : `${s.dataset}:${s.kind}:${s.from?.name ?? '-'}>${s.to.name}`));

const three: S[] = [['s1', '101', 10], ['s2', '102', 20], ['s3', '103', 30]];

describe('planSync', () => {
  it('seeds an empty target: full of the oldest then one -I to the newest, parents first', () => {
    const src = inv('tank', [ds('a/b/c', three), ds('', three), ds('a/b', three), ds('a', three)]);
    const plan = planSync(src, null);
    assert.deepEqual(brief(plan.steps), [
      ':full:->s1', ':incremental:s1>s3',
      'a:full:->s1', 'a:incremental:s1>s3',
      'a/b:full:->s1', 'a/b:incremental:s1>s3',
      'a/b/c:full:->s1', 'a/b/c:incremental:s1>s3',
    ]);
    const [full, inc] = sends(plan.steps);
    assert.deepEqual(full.creates, [{ name: 's1', guid: '101' }]);
    assert.equal(full.force, false);
    assert.equal(full.from, null);
    assert.equal(inc.intermediates, true);
    assert.deepEqual(names(inc.creates), ['s2', 's3']);
    assert.deepEqual(plan.conflicts, []);
    assert.deepEqual(plan.current, []);
  });

  it('seeds a dataset with a single snapshot with one full step only', () => {
    const plan = planSync(inv('tank', [ds('', [['only', '1', 5]])]), null);
    assert.deepEqual(brief(plan.steps), [':full:->only']);
  });

  it('brings a partially seeded target up to date: missing, stale and current datasets', () => {
    const src = inv('tank', [ds('', three), ds('missing', three), ds('stale', three), ds('current', three)]);
    const tgt = inv('backup/tank', [
      ds('', [['s1', '101', 500], ['s2', '102', 510], ['s3', '103', 520]]),
      ds('stale', [['s1', '101', 600]]),
      ds('current', [['s1', '101', 700], ['s2', '102', 710], ['s3', '103', 720]]),
    ]);
    const plan = planSync(src, tgt);
    assert.deepEqual(brief(plan.steps), ['missing:full:->s1', 'missing:incremental:s1>s3', 'stale:incremental:s1>s3']);
    const stale = sends(plan.steps)[2];
    assert.equal(stale.intermediates, true);
    assert.deepEqual(names(stale.creates), ['s2', 's3']);
    assert.deepEqual(plan.current, ['', 'current']);
    assert.deepEqual(plan.conflicts, []);
  });

  it('finds the common snapshot by guid when the target copy was renamed', () => {
    const src = inv('tank', [ds('', three)]);
    const tgt = inv('b', [ds('', [['renamed-on-target', '102', 9]])]);
    const plan = planSync(src, tgt);
    // The name follows the source's, by guid, before the stream.
    assert.deepEqual(brief(plan.steps), [':rename', ':incremental:s2>s3']);
    assert.deepEqual(plan.steps[0].kind === 'rename' && plan.steps[0].snapshots, [{ guid: '102', from: 'renamed-on-target', to: 's2' }]);
    assert.deepEqual(sends(plan.steps)[0].from, { name: 's2', guid: '102' });
    // s1 is older than the base and missing on the target: it can never be added.
    assert.deepEqual(plan.unreachable, [{ dataset: '', snapshots: [{ name: 's1', guid: '101' }] }]);
  });

  it('does not treat a snapshot with the same name but another guid as common', () => {
    const src = inv('tank', [ds('x', three)]);
    const tgt = inv('backup', [ds('x', [['s1', '999', 10]])]);
    const plan = planSync(src, tgt);
    assert.deepEqual(plan.steps, []);
    assert.equal(plan.conflicts.length, 1);
    const c = plan.conflicts[0];
    assert.equal(c.kind, 'no-common-snapshot');
    assert.equal(c.dataset, 'x');
    assert.equal(c.common, null);
    assert.deepEqual(names(c.source), ['s1', 's2', 's3']);
    assert.deepEqual(c.targetOnly, [{ name: 's1', guid: '999' }]);
    assert.match(c.message, /^backup\/x: no common snapshot/);
    assert.match(c.message, /source: @s1, @s2, @s3; target: @s1\)/);
    assert.match(c.message, /destroy backup\/x on the target to re-seed it/);
    assert.doesNotMatch(c.message, /\n/);
  });

  it('reports target-ahead when the target has snapshots newer than the common one', () => {
    const src = inv('tank', [ds('x', [...three, ['s4', '104', 40]])]);
    const tgt = inv('backup', [ds('x', [['s1', '101', 1], ['s2', '102', 2], ['s5', '205', 3], ['s6', '206', 4]])]);
    const plan = planSync(src, tgt);
    assert.deepEqual(plan.steps, []);
    const c = plan.conflicts[0];
    assert.equal(c.kind, 'target-ahead');
    if (c.kind !== 'target-ahead') return;
    assert.deepEqual(c.common, { name: 's2', guid: '102' });
    assert.deepEqual(names(c.targetNewer), ['s5', 's6']);
    assert.deepEqual(names(c.sourceNewer), ['s3', 's4']);
    assert.match(c.message, /target-only: @s5, @s6; source-only: @s3, @s4/);
    assert.match(c.message, /use --rollback to discard the target-only snapshots s5, s6$/);
  });

  it('orders target snapshots by target createtxg, not by list position', () => {
    const src = inv('tank', [ds('x', [...three, ['s4', '104', 40]])]);
    // s2 is the newest by target txg although listed first.
    const tgt = inv('backup', [ds('x', [['s2', '102', 90], ['s1', '101', 80]])]);
    const plan = planSync(src, tgt);
    assert.deepEqual(brief(plan.steps), ['x:incremental:s2>s4']);
  });

  it('abbreviates long snapshot lists in a conflict message', () => {
    const many: S[] = Array.from({ length: 40 }, (_, i) => [`n${i}`, String(1000 + i), i + 1] as S);
    const plan = planSync(inv('tank', [ds('x', many)]), inv('backup', [ds('x', [['other', '5', 1]])]));
    const msg = plan.conflicts[0].message;
    assert.match(msg, /@n0, @n1, @n2, …, @n38, @n39 \(40 snapshots\)/);
    assert.doesNotMatch(msg, /@n20/);
  });

  it('reports a type mismatch between a filesystem and a volume', () => {
    const src = inv('tank', [ds('v', three, { type: 'volume' })]);
    const tgt = inv('backup', [ds('v', [['s1', '101', 1]])]);
    const plan = planSync(src, tgt);
    const c = plan.conflicts[0];
    assert.equal(c.kind, 'type-mismatch');
    if (c.kind !== 'type-mismatch') return;
    assert.equal(c.sourceType, 'volume');
    assert.equal(c.targetType, 'filesystem');
    assert.match(c.message, /backup\/v is a filesystem on the target but tank\/v is a volume/);
    assert.match(c.message, /destroy backup\/v on the target/);
    assert.deepEqual(plan.steps, []);
  });

  it('sends -i from a source bookmark to the first newer snapshot, then -I to the newest: nothing is lost', () => {
    const src = inv('tank', [ds('x', [['s3', '103', 30], ['s4', '104', 40], ['s5', '105', 50]], { bookmarks: [['s2', '102', 20]] })]);
    const tgt = inv('backup', [ds('x', [['s1', '101', 1], ['s2', '102', 2]])]);
    const plan = planSync(src, tgt);
    const [step, rest] = sends(plan.steps);
    assert.deepEqual(step.from, { name: 's2', guid: '102', bookmark: true });
    assert.equal(step.intermediates, false);
    assert.deepEqual(step.creates, [{ name: 's3', guid: '103' }]);
    assert.deepEqual(rest.from, { name: 's3', guid: '103' });
    assert.equal(rest.intermediates, true);
    assert.deepEqual(names(rest.creates), ['s4', 's5']);
    assert.deepEqual(plan.unreachable, []);
    // s1 is on the target only now: an extra, not a conflict.
    assert.deepEqual(plan.extras.snapshots, [{ dataset: 'x', snapshots: [{ name: 's1', guid: '101' }] }]);
    assert.equal(describeStep(step), 'x  incremental -i #s2 → @s3 (1 snapshot)');
  });

  it('prefers a snapshot over a bookmark with the same guid', () => {
    const src = inv('tank', [ds('x', three, { bookmarks: [['s2-bm', '102', 20]] })]);
    const tgt = inv('backup', [ds('x', [['s2', '102', 2]])]);
    const [step] = sends(planSync(src, tgt).steps);
    assert.deepEqual(step.from, { name: 's2', guid: '102' });
    assert.equal(step.intermediates, true);
  });

  it('counts a bookmark base with nothing newer on the source as current', () => {
    const src = inv('tank', [ds('x', [], { bookmarks: [['b', '102', 20]] }), ds('y', [['s1', '1', 5]], { bookmarks: [['b', '102', 20]] })]);
    const tgt = inv('backup', [ds('x', [['s2', '102', 2]]), ds('y', [['s2', '102', 2]])]);
    const plan = planSync(src, tgt);
    assert.deepEqual(plan.steps, []);
    assert.deepEqual(plan.current, ['y']);
    assert.deepEqual(plan.unreachable, [{ dataset: 'y', snapshots: [{ name: 's1', guid: '1' }] }]);
    assert.deepEqual(plan.skipped, [{ dataset: 'x', reason: 'no snapshot to send' }]);
  });

  it('reports a bookmark-only source whose target moved past the common bookmark as diverged, naming both sides', () => {
    // zrepl's planner vectors: sender holds #b2 only, receiver holds @s2 (same guid) and a newer @s3.
    const src = inv('tank', [ds('x', [], { bookmarks: [['b1', '101', 10], ['b2', '102', 20]] })]);
    const tgt = inv('backup', [ds('x', [['s1', '101', 1], ['s2', '102', 2], ['s3', '103', 3]])]);
    const plan = planSync(src, tgt);
    assert.deepEqual(plan.steps, []);
    assert.deepEqual(plan.skipped, []);
    assert.equal(plan.conflicts.length, 1);
    const [c] = plan.conflicts;
    assert.equal(c.kind, 'target-ahead');
    assert.equal(c.message, 'backup/x: diverged: target has snapshots newer than the last common #b2 that tank/x lacks (target-only: @s3; the source holds only bookmarks, so there is nothing to send); take a new snapshot of tank/x and run again with --rollback to discard @s3, or keep the target as it is');
    // Its children wait behind the conflict rather than being planned under a diverged parent.
    const withKid = planSync(inv('tank', [...src.datasets, ds('x/k', [['k1', '201', 5]])]), tgt);
    assert.deepEqual(withKid.blocked.map((b) => b.dataset), ['x/k']);
    // Not ahead (target's newest is the bookmark's snapshot): still just nothing to send.
    const even = planSync(src, inv('backup', [ds('x', [['s1', '101', 1], ['s2', '102', 2]])]));
    assert.deepEqual(even.conflicts, []);
    assert.deepEqual(even.skipped, [{ dataset: 'x', reason: 'no snapshot to send' }]);
  });

  it('lists older source snapshots the target lacks as unreachable, not as a conflict', () => {
    const src = inv('tank', [ds('x', [['s1', '101', 10], ['s2', '102', 20], ['s3', '103', 30], ['s4', '104', 40]])]);
    const tgt = inv('backup', [ds('x', [['s1', '101', 1], ['s3', '103', 2]])]);
    const plan = planSync(src, tgt);
    assert.deepEqual(brief(plan.steps), ['x:incremental:s3>s4']);
    assert.deepEqual(plan.unreachable, [{ dataset: 'x', snapshots: [{ name: 's2', guid: '102' }] }]);
    assert.deepEqual(plan.conflicts, []);
  });

  it('lists target-only datasets and older target-only snapshots as extras', () => {
    const src = inv('tank', [ds('', three), ds('a', three)]);
    const tgt = inv('backup', [
      ds('', [['old', '900', 1], ['s1', '101', 2], ['t-mid', '901', 3], ['s3', '103', 4]]),
      ds('a', three),
      ds('gone', [['g', '7', 1]]),
      ds('gone/child', []),
    ]);
    const plan = planSync(src, tgt);
    assert.deepEqual(plan.steps, []);
    assert.deepEqual(plan.extras.datasets, ['gone', 'gone/child']);
    assert.deepEqual(plan.extras.snapshots, [{ dataset: '', snapshots: [{ name: 'old', guid: '900' }, { name: 't-mid', guid: '901' }] }]);
    assert.deepEqual(plan.current, ['', 'a']);
  });

  it('creates a snapshot-less parent so its children can be received, and skips snapshot-less leaves', () => {
    const src = inv('tank', [
      ds('', three),
      ds('p', []),
      ds('p/q', []),
      ds('p/q/c', three),
      ds('empty', []),
      ds('empty/leaf', []),
      ds('vol', [], { type: 'volume' }),
    ]);
    const plan = planSync(src, inv('backup', [ds('', three)]));
    assert.deepEqual(brief(plan.steps), ['p:create', 'p/q:create', 'p/q/c:full:->s1', 'p/q/c:incremental:s1>s3']);
    assert.deepEqual(plan.skipped, [
      { dataset: 'empty', reason: 'no snapshot to send' },
      { dataset: 'empty/leaf', reason: 'no snapshot to send' },
      { dataset: 'vol', reason: 'no snapshot to send' },
    ]);
    assert.equal(describeStep(plan.steps[0]), 'p  create filesystem');
  });

  it('skips a snapshot-less dataset the target already has, and still plans its children', () => {
    const src = inv('tank', [ds('p', []), ds('p/c', three)]);
    const plan = planSync(src, inv('backup', [ds('p', [])]));
    assert.deepEqual(plan.skipped, [{ dataset: 'p', reason: 'no snapshot to send' }]);
    assert.deepEqual(brief(plan.steps), ['p/c:full:->s1', 'p/c:incremental:s1>s3']);
  });

  it('sends a forced full stream into a target dataset that exists without snapshots', () => {
    const plan = planSync(inv('tank', [ds('', three)]), inv('backup', [ds('', [])]));
    const [full, inc] = sends(plan.steps);
    assert.equal(full.force, true);
    assert.equal(inc.force, false);
    assert.equal(describeStep(full), '(root)  full @s1 (-F: received over the dataset the target already has)');
  });

  it('blocks the children of a dataset in conflict, naming the parent', () => {
    const src = inv('tank', [ds('a', three), ds('a/b', three), ds('a/b/c', three), ds('z', three)]);
    const tgt = inv('backup', [ds('a', [['x', '555', 1]]), ds('a/b', [['s1', '101', 1]])]);
    const plan = planSync(src, tgt);
    assert.equal(plan.conflicts.length, 1);
    assert.equal(plan.conflicts[0].dataset, 'a');
    assert.deepEqual(plan.blocked.map((b) => b.dataset), ['a/b', 'a/b/c']);
    assert.match(plan.blocked[0].reason, /parent a is in conflict \(no-common-snapshot\)/);
    assert.match(plan.blocked[1].reason, /parent a\/b is blocked/);
    assert.deepEqual(brief(plan.steps), ['z:full:->s1', 'z:incremental:s1>s3']);
  });

  it('blocks the child of a snapshot-less volume the target does not have', () => {
    // Volumes have no children in ZFS, but the planner must not send into a missing parent anyway.
    const plan = planSync(inv('tank', [ds('v', [], { type: 'volume' }), ds('v/c', three)]), null);
    assert.deepEqual(plan.steps, []);
    assert.match(plan.blocked[0].reason, /parent v is not on the target and has no snapshot to send/);
  });

  it('orders datasets by path segments, so a/b comes before a-x', () => {
    const one: S[] = [['s1', '1', 1]];
    const src = inv('tank', [ds('a-x', one), ds('b', one), ds('a/b', one), ds('a', one), ds('a/b/c', one), ds('a.y', one)]);
    const order = planSync(src, null).steps.map((s) => s.dataset);
    assert.deepEqual(order, ['a', 'a/b', 'a/b/c', 'a-x', 'a.y', 'b']);
    assert.ok(comparePaths('a/b', 'a-x') < 0);
    assert.ok(comparePaths('a', 'a/b') < 0);
    assert.equal(comparePaths('a/b', 'a/b'), 0);
  });

  it('describes an incremental -I step on one line', () => {
    const src = inv('tank', [ds('a/b', Array.from({ length: 9 }, (_, i) => [`s${i + 1}`, String(i + 1), i + 1] as S))]);
    const plan = planSync(src, inv('backup', [ds('a/b', [['s1', '1', 1]])]));
    assert.equal(describeStep(plan.steps[0]), 'a/b  incremental -I @s1 → @s9 (8 snapshots)');
  });
});

describe('projectTarget', () => {
  it('projects an initial seed so that planning again finds nothing to do', () => {
    const src = inv('tank', [ds('', three), ds('p', []), ds('p/c', three), ds('v', three, { type: 'volume' })]);
    const first = planSync(src, null);
    const projected = projectTarget(null, first.steps, src, 'backup/tank');
    assert.equal(projected.root, 'backup/tank');
    assert.deepEqual(projected.datasets.map((d) => d.path), ['', 'p', 'p/c', 'v']);
    assert.equal(projected.datasets[3].type, 'volume');
    const again = planSync(src, projected);
    assert.deepEqual(again.steps, []);
    assert.deepEqual(again.conflicts, []);
    assert.deepEqual(again.current, ['', 'p/c', 'v']);
  });

  it('appends to an existing dataset in target order even when target txgs exceed the source ones', () => {
    const src = inv('tank', [ds('', [...three, ['s4', '104', 40]])]);
    const tgt = inv('backup', [ds('', [['s1', '101', 9000]])]);
    const projected = projectTarget(tgt, planSync(src, tgt).steps, src);
    assert.deepEqual(names(projected.datasets[0].snapshots), ['s1', 's2', 's3', 's4']);
    const txgs = projected.datasets[0].snapshots.map((s) => BigInt(s.createtxg));
    assert.ok(txgs.every((t, i) => i === 0 || t > txgs[i - 1]));
    assert.deepEqual(planSync(src, projected).steps, []);
    // A later source snapshot then plans as one incremental from s4.
    const later = inv('tank', [ds('', [...three, ['s4', '104', 40], ['s5', '105', 50]])]);
    assert.deepEqual(brief(planSync(later, projected).steps), [':incremental:s4>s5']);
    // The input target is left untouched.
    assert.equal(tgt.datasets[0].snapshots.length, 1);
  });
});
