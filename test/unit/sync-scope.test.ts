import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ds, inv, type SnapTuple } from '../helpers/literals.js';
import { FULL_SCOPE, globToRegExp, planDelete, planSync, projectTarget, resolveScope, type Scope, type SendStep, type Step } from '../../src/plan/index.js';

type S = SnapTuple;
const brief = (steps: Step[]) =>
  steps.map((s) => (s.kind === 'create' || s.kind === 'rename' ? `${s.dataset}:${s.kind}` : `${s.dataset}:${s.kind}:${s.kind === 'full' ? '-' : s.intermediates ? '-I' : '-i'}:${s.from?.name ?? '-'}>${s.to.name}`));
const scope = (p: Partial<Scope>): Scope => ({ ...FULL_SCOPE, ...p });

describe('scope globs', () => {
  it('matches * and ? only; other characters are literal', () => {
    assert.ok(globToRegExp('zfs-auto-snap_frequent-*').test('zfs-auto-snap_frequent-2026-01-01-0015'));
    assert.ok(!globToRegExp('zfs-auto-snap_frequent-*').test('zfs-auto-snap_hourly-2026'));
    assert.ok(globToRegExp('s?').test('s1'));
    assert.ok(!globToRegExp('a.b').test('axb'));
    assert.ok(globToRegExp('data/*').test('data/x/y'));
  });

  it('records the top-most zferry:skip dataset of each marked subtree', () => {
    const src = inv('tank', [ds('', []), ds('a', [], { skip: true }), ds('a/b', [], { skip: true }), ds('c', [])]);
    assert.deepEqual(resolveScope(src, { exclude: ['x'], snapshots: [], excludeSnapshots: [] }).skipped, ['a']);
  });
});

describe('planSync with a scope', () => {
  const auto: S[] = [['d1', '1', 10], ['f1', '2', 20], ['f2', '3', 30], ['d2', '4', 40], ['d3', '5', 50], ['f3', '6', 60], ['d4', '7', 70]];

  it('steps over excluded snapshots with -i and keeps -I for runs of included ones', () => {
    const src = inv('tank', [ds('', auto)]);
    const plan = planSync(src, null, { scope: scope({ excludeSnapshots: ['f*'] }) });
    assert.deepEqual(brief(plan.steps), [':full:-:->d1', ':incremental:-i:d1>d2', ':incremental:-I:d2>d3', ':incremental:-i:d3>d4']);
    const created = (plan.steps as SendStep[]).flatMap((s) => s.creates.map((c) => c.name));
    assert.deepEqual(created, ['d1', 'd2', 'd3', 'd4']);
  });

  it('--snapshots keeps only matching names, and the first included one is the full stream', () => {
    const src = inv('tank', [ds('', [['f0', '9', 5], ...auto])]);
    const plan = planSync(src, null, { scope: scope({ snapshots: ['d*'] }) });
    assert.equal(brief(plan.steps)[0], ':full:-:->d1');
  });

  it('an excluded snapshot held on both sides is still a valid base', () => {
    const src = inv('tank', [ds('', auto)]);
    const tgt = inv('backup', [ds('', auto.slice(0, 3))]);
    const plan = planSync(src, tgt, { scope: scope({ excludeSnapshots: ['f*'] }) });
    assert.deepEqual(brief(plan.steps), [':incremental:-I:f2>d3', ':incremental:-i:d3>d4']);
    assert.deepEqual(plan.conflicts, []);
  });

  it('leaves excluded datasets and their children out, and does not call their target copies extras', () => {
    const three: S[] = [['s1', '1', 1], ['s2', '2', 2]];
    const src = inv('tank', [ds('', three), ds('cache', three), ds('cache/x', three), ds('home', three, { skip: true }), ds('home/a', three, { skip: true }), ds('keep', three)]);
    const tgt = inv('backup', [ds('', three), ds('cache', three.slice(0, 1)), ds('scratch1', three)]);
    const sc = resolveScope(src, { exclude: ['cache', 'tank/scratch*'], snapshots: [], excludeSnapshots: [] });
    const plan = planSync(src, tgt, { scope: sc });
    assert.deepEqual(plan.excluded, ['cache', 'home']);
    assert.deepEqual(brief(plan.steps), ['keep:full:-:->s1', 'keep:incremental:-I:s1>s2']);
    assert.deepEqual(plan.extras.datasets, []);
  });
});

describe('planSync divergence options', () => {
  const src = inv('tank', [ds('x', [['s1', '1', 1], ['s2', '2', 2], ['s3', '3', 3]])]);

  it('reseed: a dataset re-created on the source (no common snapshot) gets a forced full stream instead of a conflict', () => {
    const tgt = inv('backup', [ds('x', [['old1', '91', 1], ['old2', '92', 2]])]);
    assert.equal(planSync(src, tgt).conflicts[0].kind, 'no-common-snapshot');
    const plan = planSync(src, tgt, { reseed: true });
    assert.deepEqual(plan.conflicts, []);
    assert.deepEqual(brief(plan.steps), ['x:full:-:->s1', 'x:incremental:-I:s1>s3']);
    assert.equal((plan.steps[0] as SendStep).force, true);
    assert.deepEqual(plan.reseeded, [{ dataset: 'x', targetOnly: [{ name: 'old1', guid: '91' }, { name: 'old2', guid: '92' }] }]);
  });

  it('rollback: plans from the common base past target-only snapshots and names what is discarded', () => {
    const tgt = inv('backup', [ds('x', [['s1', '1', 1], ['mine', '77', 2]])]);
    const strict = planSync(src, tgt);
    assert.equal(strict.conflicts[0].kind, 'target-ahead');
    assert.match(strict.conflicts[0].message, /target-only: @mine; source-only: @s2, @s3\); use --rollback/);
    const plan = planSync(src, tgt, { rollback: true });
    assert.deepEqual(brief(plan.steps), ['x:incremental:-I:s1>s3']);
    assert.deepEqual(plan.rolledBack, [{ dataset: 'x', to: { name: 's1', guid: '1' }, discards: [{ name: 'mine', guid: '77' }] }]);
  });
});

describe('planDelete', () => {
  const a: S[] = [['s1', '1', 1], ['s2', '2', 2]];

  it('destroys target-only snapshots by full name and target-only datasets children first, never the root', () => {
    const src = inv('tank', [ds('', a), ds('keep', a)]);
    const tgt = inv('pool/backup', [ds('', [...a, ['gone', '9', 3]]), ds('keep', [['s1', '1', 1], ['renamed', '2', 2]]), ds('old', a), ds('old/child', a)]);
    const p = planDelete(src, tgt, FULL_SCOPE);
    // A renamed snapshot keeps its guid: it is not an extra.
    assert.deepEqual(p.snapshots.map((s) => s.full), [
      'pool/backup@gone', 'pool/backup/old@s1', 'pool/backup/old@s2', 'pool/backup/old/child@s1', 'pool/backup/old/child@s2',
    ]);
    assert.deepEqual(p.datasets.map((d) => d.full), ['pool/backup/old/child', 'pool/backup/old']);
  });

  it('leaves out-of-scope datasets, their parents and out-of-scope snapshot names alone', () => {
    const src = inv('tank', [ds('', a)]);
    const tgt = inv('backup', [
      ds('', [...a, ['zfs-auto-snap_frequent-1', '50', 3]]), ds('cache', [['c', '60', 1]]), ds('gone', a), ds('gone/cache', a), ds('gone2', a),
    ]);
    const sc = scope({ exclude: ['cache', '*/cache'], excludeSnapshots: ['zfs-auto-snap_frequent-*'] });
    const p = planDelete(src, tgt, sc);
    assert.deepEqual(p.datasets.map((d) => d.dataset), ['gone2']);
    assert.deepEqual(p.snapshots.map((s) => s.full), ['backup/gone2@s1', 'backup/gone2@s2']);
    assert.deepEqual(p.kept.map((k) => `${k.dataset}${k.snapshot ? '@' + k.snapshot : ''}`).sort(), ['@zfs-auto-snap_frequent-1', 'gone']);
  });

  it('finds nothing to destroy when the target equals the source', () => {
    const src = inv('tank', [ds('', a), ds('x', a)]);
    const p = planDelete(src, inv('backup', [ds('', a), ds('x', a)]), FULL_SCOPE);
    assert.deepEqual([p.snapshots, p.datasets, p.kept], [[], [], []]);
  });

  it('after projecting a bundle the target needs no deletes for what the bundle brought', () => {
    const src = inv('tank', [ds('', a), ds('n', a)]);
    const plan = planSync(src, inv('backup', [ds('', a)]));
    const projected = projectTarget(inv('backup', [ds('', a)]), plan.steps, src);
    assert.deepEqual(planDelete(src, projected, FULL_SCOPE).snapshots, []);
  });
});
