/**
 * Clones in the planner, the import pre-flight, the projection and the send
 * command line, over literal inventories.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ds as literalDs, inv, type SnapTuple } from '../helpers/literals.js';
import { checkApply, describeStep, planSync, projectTarget, FULL_SCOPE } from '../../src/plan/index.js';
import type { ApplyStream, Step } from '../../src/plan/index.js';
import { buildSendArgs } from '../../src/zfs/index.js';
import type { ZfsCapabilities } from '../../src/zfs/index.js';

type S = SnapTuple;
const ds = (path: string, snaps: S[], origin?: string) => literalDs(path, snaps, origin ? { origin } : {});
const brief = (steps: Step[]) =>
  steps.map((s) => (s.kind === 'create' || s.kind === 'rename' ? `${s.dataset}:${s.kind}` : `${s.dataset}:${s.kind}:${s.from?.dataset !== undefined ? `${s.from.dataset}` : ''}@${s.from?.name ?? '-'}>${s.to.name}`));
const toStreams = (steps: Step[]): ApplyStream[] => steps.map((s, i) => ({ index: i + 1, ...s }));

const base: S[] = [['s1', '11', 10], ['s2', '12', 20]];
const clone: S[] = [['c1', '21', 30], ['c2', '22', 40], ['c3', '23', 50]];

describe('planSync with clones', () => {
  it('seeds a clone as -i from its origin, after the origin even when it sorts first, then -I to the newest', () => {
    const src = inv('tank', [ds('', []), ds('aclone', clone, 'tank/zbase@s1'), ds('zbase', base)]);
    const plan = planSync(src, null);
    assert.deepEqual(brief(plan.steps), [
      ':create', 'zbase:full:@->s1', 'zbase:incremental:@s1>s2',
      'aclone:incremental:zbase@s1>c1', 'aclone:incremental:@c1>c3',
    ]);
    const first = plan.steps[3];
    assert.ok(first.kind === 'incremental');
    assert.deepEqual(first.from, { name: 's1', guid: '11', dataset: 'zbase' });
    assert.equal(first.intermediates, false);
    assert.deepEqual(first.creates, [{ name: 'c1', guid: '21' }]);
    assert.deepEqual(plan.clones, [{ dataset: 'aclone', origin: 'tank/zbase@s1', sentAs: 'clone' }]);
    assert.match(describeStep(first), /aclone {2}clone of zbase@s1: incremental -i → @c1/);
  });

  it("keeps parents before children: a clone's parent and the origin's parents come first", () => {
    const src = inv('tank', [ds('', [['r', '1', 1]]), ds('a', [['a1', '2', 2]]), ds('a/clone', clone, 'tank/z/deep/base@s1'), ds('z', []), ds('z/deep', []), ds('z/deep/base', base)]);
    assert.deepEqual(brief(planSync(src, null).steps), [
      '@->r', 'a:full:@->a1', 'z:create', 'z/deep:create', 'z/deep/base:full:@->s1', 'z/deep/base:incremental:@s1>s2',
      'a/clone:incremental:z/deep/base@s1>c1', 'a/clone:incremental:@c1>c3',
    ].map((x) => (x.startsWith('@') ? `:full:${x}` : x)));
  });

  it('uses an origin the target already holds', () => {
    const src = inv('tank', [ds('', []), ds('base', base), ds('clone', clone, 'tank/base@s2')]);
    const tgt = inv('backup', [ds('', []), ds('base', base)]);
    const plan = planSync(src, tgt);
    assert.deepEqual(brief(plan.steps), ['clone:incremental:base@s2>c1', 'clone:incremental:@c1>c3']);
  });

  it('chains a clone of a clone', () => {
    const src = inv('tank', [ds('', []), ds('a', [['g1', '31', 60]], 'tank/b@c2'), ds('b', clone, 'tank/c@s1'), ds('c', base)]);
    assert.deepEqual(brief(planSync(src, null).steps), [
      ':create', 'c:full:@->s1', 'c:incremental:@s1>s2', 'b:incremental:c@s1>c1', 'b:incremental:@c1>c3', 'a:incremental:b@c2>g1',
    ]);
  });

  it('sends a full stream, and says why, when the origin is outside the root, excluded, filtered out, or below its clone', () => {
    const outside = planSync(inv('tank/data', [ds('', []), ds('clone', clone, 'tank/other@s1')]), null);
    assert.deepEqual(brief(outside.steps), [':create', 'clone:full:@->c1', 'clone:incremental:@c1>c3']);
    assert.match(outside.clones[0].reason!, /outside tank\/data/);

    const src = inv('tank', [ds('', []), ds('base', base), ds('clone', clone, 'tank/base@s1')]);
    const excluded = planSync(src, null, { scope: { ...FULL_SCOPE, exclude: ['base'] } });
    assert.deepEqual(brief(excluded.steps), [':create', 'clone:full:@->c1', 'clone:incremental:@c1>c3']);
    assert.deepEqual(excluded.clones, [{ dataset: 'clone', origin: 'tank/base@s1', sentAs: 'full', reason: "its origin's dataset tank/base is out of the sync's scope" }]);

    // Only s2 and c* are sent: the target will never hold the origin s1.
    const filtered = planSync(src, null, { scope: { ...FULL_SCOPE, excludeSnapshots: ['s1'] } });
    assert.deepEqual(brief(filtered.steps), [':create', 'base:full:@->s2', 'clone:full:@->c1', 'clone:incremental:@c1>c3']);
    assert.match(filtered.clones[0].reason!, /will not hold its origin tank\/base@s1 \(guid 11\)/);

    // After `zfs rename tank/base tank/clone/base`: the origin lies below its own clone.
    const loop = planSync(inv('tank', [ds('', []), ds('clone', clone, 'tank/clone/base@s1'), ds('clone/base', base)]), null);
    assert.deepEqual(brief(loop.steps), [':create', 'clone:full:@->c1', 'clone:incremental:@c1>c3', 'clone/base:full:@->s1', 'clone/base:incremental:@s1>s2']);
    assert.match(loop.clones[0].reason!, /below it/);
  });

  it('replaces an empty target dataset with a full stream, and leaves a clone already on the target to plain incrementals', () => {
    const src = inv('tank', [ds('', []), ds('base', base), ds('clone', clone, 'tank/base@s1')]);
    const empty = planSync(src, inv('backup', [ds('', []), ds('base', base), ds('clone', [])]));
    assert.deepEqual(brief(empty.steps), ['clone:full:@->c1', 'clone:incremental:@c1>c3']);
    assert.equal(empty.clones[0].sentAs, 'full');
    const there = planSync(src, inv('backup', [ds('', []), ds('base', base), ds('clone', clone.slice(0, 1))]));
    assert.deepEqual(brief(there.steps), ['clone:incremental:@c1>c3']);
    assert.deepEqual(there.clones, []);
  });
});

describe('checkApply and projectTarget with clone streams', () => {
  const src = inv('tank', [ds('', []), ds('aclone', clone, 'tank/zbase@s1'), ds('zbase', base)]);

  it('applies a clone stream whose origin an earlier stream creates, and projects the clone with its origin', () => {
    const steps = planSync(src, null).steps;
    const target = inv('backup', [ds('', [])]);
    const ap = checkApply(toStreams(steps), target);
    assert.deepEqual(ap.problems, []);
    assert.equal(ap.decisions.filter((d) => d.action === 'apply').length, 4);
    const projected = projectTarget(target, steps, src);
    const c = projected.datasets.find((d) => d.path === 'aclone')!;
    assert.equal(c.origin, 'backup/zbase@s1');
    assert.deepEqual(c.snapshots.map((s) => s.name), ['c1', 'c2', 'c3']);
  });

  it('refuses a clone stream whose origin is not on the target, or whose dataset already exists', () => {
    const steps = planSync(src, null).steps.filter((s) => s.dataset === 'aclone');
    const noOrigin = checkApply(toStreams(steps), inv('backup', [ds('', []), ds('zbase', [['s2', '12', 20]])]));
    assert.match(noOrigin.problems[0].message, /^backup\/aclone: is sent as a clone of backup\/zbase@s1 \(guid 11\), which is not on the target$/);
    assert.equal(noOrigin.problems[0].missingBase, true);
    assert.match(noOrigin.problems[1].message, /not applied because stream 1/);

    const exists = checkApply(toStreams(steps), inv('backup', [ds('', []), ds('zbase', base), ds('aclone', [])]));
    assert.match(exists.problems[0].message, /backup\/aclone: already exists on the target without @c1/);

    const ok = checkApply(toStreams(steps), inv('backup', [ds('', []), ds('zbase', base)]));
    assert.deepEqual(ok.problems, []);
  });
});

describe('buildSendArgs from a clone origin', () => {
  const caps = { send: { props: false, compressed: false, raw: false, largeBlocks: false, embedded: false }, bookmarks: false } as unknown as ZfsCapabilities;
  it('takes the base from another dataset by full name', () => {
    assert.deepEqual(buildSendArgs({ dataset: 'tank/aclone', to: 'c1', from: { name: 's1', dataset: 'tank/zbase' } }, caps), ['send', '-i', 'tank/zbase@s1', 'tank/aclone@c1']);
  });
  it('refuses -I from another dataset', () => {
    assert.throws(() => buildSendArgs({ dataset: 'tank/aclone', to: 'c3', from: { name: 's1', dataset: 'tank/zbase' }, intermediates: true }, caps), /tank\/aclone.*origin tank\/zbase@s1.*-I/);
  });
});
