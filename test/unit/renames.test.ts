/**
 * Renames, not resends, on literal inventories: a dataset renamed or moved on
 * the source is found on the target by guid and renamed, never sent in full
 * nor destroyed as an extra; snapshots renamed on the source are renamed by
 * guid; a taken new path is a conflict naming both sides.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RenameStep, Step } from '../../src/model.js';
import { carriesData } from '../../src/model.js';
import { checkApply, describeStep, planDelete, planImport, planSync, projectTarget, FULL_SCOPE, type ApplyStream } from '../../src/plan/index.js';
import { parseManifest, manifestText, type Manifest, type StreamEntry } from '../../src/bundle/manifest.js';
import { restoreText } from '../../src/bundle/restore.js';
import { ZferryError } from '../../src/errors.js';
import { ds, facts, inv, manifest, ref, stream, type SnapTuple } from '../helpers/literals.js';

type S = SnapTuple;
const three: S[] = [['s1', '101', 10], ['s2', '102', 20], ['s3', '103', 30]];
const four: S[] = [...three, ['s4', '104', 40]];
const onTarget = (snaps: S[]): S[] => snaps.map(([n, g, t]) => [n, g, t + 1000]);
const brief = (steps: Step[]) => steps.map((s) => {
  if (s.kind === 'rename') return `${s.dataset}:rename<${s.renamedFrom}${s.snapshots.map((r) => ` @${r.from}>@${r.to}`).join('')}`;
  if (s.kind === 'create') return `${s.dataset}:create`;
  return `${s.dataset}:${s.kind}:${s.from?.bookmark ? '#' : ''}${s.from?.name ?? '-'}>${s.to.name}`;
});
const renames = (steps: Step[]) => steps.filter((s): s is RenameStep => s.kind === 'rename');
const toStreams = (steps: Step[]): ApplyStream[] => steps.map((s, i) => ({ index: i + 1, ...s }));

describe('planSync finds renamed datasets by guid', () => {
  it('renames a dataset renamed on the source, then sends only the incremental: no full stream, the old path is no extra', () => {
    const src = inv('tank/data', [ds('', three), ds('a2', four)]);
    const tgt = inv('backup/data', [ds('', onTarget(three)), ds('a', onTarget(three))]);
    const plan = planSync(src, tgt, { reseed: true });
    assert.deepEqual(brief(plan.steps), ['a2:rename<a', 'a2:incremental:s3>s4']);
    assert.equal(plan.steps.some((s) => s.kind === 'full'), false);
    assert.deepEqual(plan.extras.datasets, []);
    assert.deepEqual(plan.reseeded, []);
    assert.deepEqual(renames(plan.steps)[0].match, { name: 's3', guid: '103' });
    assert.match(describeStep(plan.steps[0]), /^a2 {2}rename from a \(the target's copy, found by @s3's guid; no stream\)$/);
  });

  it('moves a dataset to another parent: the new parent is made by the rename (-p), not created nor skipped', () => {
    const src = inv('tank', [ds('', three), ds('data', three), ds('other', []), ds('other/a', three)]);
    const tgt = inv('backup', [ds('', onTarget(three)), ds('data', onTarget(three)), ds('data/a', onTarget(three))]);
    const plan = planSync(src, tgt, { reseed: true });
    assert.deepEqual(brief(plan.steps), ['other/a:rename<data/a']);
    assert.deepEqual(plan.skipped, []);
    assert.deepEqual(plan.extras.datasets, []);
    assert.deepEqual(plan.current.sort(), ['', 'data', 'other/a']);
  });

  it('renames a parent once: its children move with it and pair up by path', () => {
    const src = inv('tank', [ds('', three), ds('data2', four), ds('data2/x', four)]);
    const tgt = inv('backup', [ds('', onTarget(three)), ds('data', onTarget(three)), ds('data/x', onTarget(three))]);
    const plan = planSync(src, tgt);
    assert.deepEqual(brief(plan.steps), ['data2:rename<data', 'data2:incremental:s3>s4', 'data2/x:incremental:s3>s4']);
    assert.deepEqual(plan.extras.datasets, []);
  });

  it('orders a chain so each path is free when it is needed: a → b, then c → a', () => {
    const c: S[] = [['c1', '301', 10]];
    const src = inv('tank', [ds('', three), ds('a', c), ds('b', three)]);
    const tgt = inv('backup', [ds('', onTarget(three)), ds('a', onTarget(three)), ds('c', onTarget(c))]);
    const plan = planSync(src, tgt, { reseed: true });
    assert.deepEqual(brief(plan.steps), ['b:rename<a', 'a:rename<c']);
    assert.deepEqual(plan.conflicts, []);
    assert.deepEqual(plan.reseeded, []);
  });

  it('renames back what a renamed parent carried away: data → data2 while data2/x came back as a new data/x', () => {
    const x: S[] = [['x1', '401', 10]];
    const src = inv('tank', [ds('', three), ds('data', [['n1', '501', 50]]), ds('data/x', x), ds('data2', three)]);
    const tgt = inv('backup', [ds('', onTarget(three)), ds('data', onTarget(three)), ds('data/x', onTarget(x))]);
    const plan = planSync(src, tgt, { reseed: true });
    // data arrives by its own full stream before data/x is moved under it: rename -p first would leave it taken.
    assert.deepEqual(brief(plan.steps), ['data2:rename<data', 'data:full:->n1', 'data/x:rename<data2/x']);
    assert.equal(plan.steps.find((s) => s.kind === 'full')?.force, false);
    assert.deepEqual(plan.extras.datasets, []);
  });

  it('moves a dataset under a new parent that has snapshots of its own: the parent\'s full stream (not forced), then the rename, then the incremental', () => {
    const src = inv('tank', [ds('', three), ds('data', three), ds('moved', [['m1', '601', 40]]), ds('moved/b', four)]);
    const tgt = inv('backup', [ds('', onTarget(three)), ds('data', onTarget(three)), ds('data/b', onTarget(three))]);
    const plan = planSync(src, tgt, { reseed: true });
    assert.deepEqual(brief(plan.steps), ['moved:full:->m1', 'moved/b:rename<data/b', 'moved/b:incremental:s3>s4']);
    assert.equal(plan.steps[0].kind === 'full' && plan.steps[0].force, false);
    assert.deepEqual(plan.extras.datasets, []);
    assert.deepEqual(plan.skipped, []);
    // Applied in that order on the target, every step finds what it needs.
    const checked = checkApply(toStreams(plan.steps), tgt);
    assert.deepEqual(checked.problems, []);
    assert.deepEqual(checked.decisions.map((d) => d.action), ['apply', 'apply', 'apply']);
  });

  it('creates the empty parents above a new parent that arrives by a stream, and frees an old path before its new dataset arrives', () => {
    const src = inv('tank', [ds('', three), ds('m', []), ds('m/x', [['x1', '701', 40]]), ds('m/x/a', four), ds('a', [['n1', '801', 50]])]);
    const tgt = inv('backup', [ds('', onTarget(three)), ds('a', onTarget(three))]);
    const plan = planSync(src, tgt, { reseed: true });
    assert.deepEqual(brief(plan.steps), ['m:create', 'm/x:full:->x1', 'm/x/a:rename<a', 'a:full:->n1', 'm/x/a:incremental:s3>s4']);
    assert.deepEqual(plan.conflicts, []);
    assert.deepEqual(checkApply(toStreams(plan.steps), tgt).problems, []);
    assert.deepEqual(projectTarget(tgt, plan.steps, src).datasets.map((d) => d.path).sort(), ['', 'a', 'm', 'm/x', 'm/x/a']);
  });

  it('finds the target copy by the source bookmark of a deleted snapshot, and sends from the bookmark', () => {
    const src = inv('tank', [ds('', three), ds('a2', [['s4', '104', 40]], { bookmarks: [['s3', '103', 30]] })]);
    const tgt = inv('backup', [ds('', onTarget(three)), ds('a', onTarget(three))]);
    const plan = planSync(src, tgt);
    assert.deepEqual(brief(plan.steps), ['a2:rename<a', 'a2:incremental:#s3>s4']);
  });

  it('a new path taken on the target is a conflict naming both sides and what to do; nothing is sent for it', () => {
    const other: S[] = [['o1', '901', 5]];
    const src = inv('tank', [ds('', three), ds('b', four), ds('b/child', [['k1', '801', 10]])]);
    const tgt = inv('backup', [ds('', onTarget(three)), ds('a', onTarget(three)), ds('b', onTarget(other))]);
    const plan = planSync(src, tgt, { reseed: true });
    assert.deepEqual(plan.steps, []);
    assert.equal(plan.conflicts.length, 1);
    const c = plan.conflicts[0];
    assert.equal(c.kind, 'rename-taken');
    assert.equal(c.dataset, 'b');
    assert.equal(c.message,
      'backup/b: tank/b was renamed or moved on the source, and the target holds its snapshots as backup/a (@s3, guid 103), ' +
      'but backup/b is taken there by another dataset (target: @o1; source: @s1, @s2, @s3, @s4); ' +
      'rename or destroy backup/b on the target (e.g. zfs rename backup/b backup/b.old), then export again');
    assert.deepEqual(plan.reseeded, []);
    assert.deepEqual(plan.blocked.map((b) => b.dataset), ['b/child']);
  });

  it('does not rename a target dataset the source still has at its own path, nor a volume into a filesystem', () => {
    const src = inv('tank', [ds('', three), ds('a', three), ds('copy', three), ds('v2', three)]);
    const tgt = inv('backup', [ds('', onTarget(three)), ds('a', onTarget(three)), ds('v', onTarget(three), { type: 'volume' })]);
    const plan = planSync(src, tgt, { reseed: true });
    assert.deepEqual(renames(plan.steps), []);
    assert.deepEqual(brief(plan.steps).filter((s) => s.includes('full')), ['copy:full:->s1', 'v2:full:->s1']);
  });

  it('leaves excluded target datasets where they are', () => {
    const src = inv('tank', [ds('', three), ds('a2', three), ds('keep', [])]);
    const tgt = inv('backup', [ds('', onTarget(three)), ds('keep', []), ds('keep/a', onTarget(three))]);
    const plan = planSync(src, tgt, { scope: { ...FULL_SCOPE, exclude: ['keep'] } });
    assert.deepEqual(renames(plan.steps), []);
  });

  it('renames snapshots renamed on the source, by guid, before the stream that could reuse an old name', () => {
    const src = inv('tank', [ds('', [['old', '101', 10], ['daily', '105', 50]])]);
    const tgt = inv('backup', [ds('', [['daily', '101', 1010]])]);
    const plan = planSync(src, tgt);
    // @daily is taken on the target by the snapshot now called @old: renamed first, then the new @daily received.
    assert.deepEqual(brief(plan.steps), [':rename< @daily>@old', ':incremental:old>daily']);
  });

  it('leaves a snapshot name alone when the target already uses the new name for another snapshot', () => {
    const src = inv('tank', [ds('', [['x', '101', 10], ['y', '102', 20]])]);
    const tgt = inv('backup', [ds('', [['y', '101', 1010], ['x', '102', 1020]])]);
    assert.deepEqual(renames(planSync(src, tgt).steps), []);
  });
});

describe('rename steps on the import side', () => {
  const src = inv('tank', [ds('', three), ds('n', []), ds('n/a2', four)]);
  const tgt = inv('backup', [ds('', onTarget(three)), ds('a', onTarget(three))]);
  const plan = planSync(src, tgt);

  it('checkApply renames (making parents) before the incremental and finds the base at the new path', () => {
    const ap = checkApply(toStreams(plan.steps), tgt);
    assert.deepEqual(ap.problems, []);
    assert.deepEqual(ap.decisions.map((d) => d.action === 'apply' ? (d.renameDataset ? `rename ${d.renameDataset.from}>${d.renameDataset.to}` : 'apply') : d.reason),
      ['rename a>n/a2', 'apply']);
  });

  it('a re-run after the rename skips it as done; a taken new path is refused naming both; a missing old path waits for its bundle', () => {
    const renamed = inv('backup', [ds('', onTarget(three)), ds('n', []), ds('n/a2', onTarget(three))]);
    const again = checkApply(toStreams(plan.steps), renamed);
    assert.deepEqual(again.decisions.map((d) => d.action), ['skip', 'apply']);
    const taken = inv('backup', [ds('', onTarget(three)), ds('a', onTarget(three)), ds('n', []), ds('n/a2', [['z', '999', 1]])]);
    const refused = checkApply(toStreams(plan.steps), taken);
    assert.equal(refused.problems[0].message, 'backup/n/a2: already exists on the target, so backup/a cannot be renamed there; rename or destroy backup/n/a2 on the target, then import again');
    const gone = checkApply(toStreams(plan.steps), inv('backup', [ds('', onTarget(three))]));
    assert.equal(gone.problems[0].missingBase, true);
    const impostor = checkApply(toStreams(plan.steps), inv('backup', [ds('', onTarget(three)), ds('a', [['s3', '777', 1]])]));
    assert.match(impostor.problems[0].message, /^backup\/a: does not hold @s3 \(guid 103\), the snapshot it was recognised by as the copy of backup\/n\/a2; refusing to rename it$/);
  });

  it('projects the rename for the journal: the next round plans only incrementals against the projection', () => {
    const projected = projectTarget(tgt, plan.steps, src);
    assert.deepEqual(projected.datasets.map((d) => d.path), ['', 'n', 'n/a2']);
    const next = inv('tank', [ds('', three), ds('n', []), ds('n/a2', [...four, ['s5', '105', 50]])]);
    assert.deepEqual(brief(planSync(next, projected).steps), ['n/a2:incremental:s4>s5']);
  });

  it('import --delete destroys nothing: the old path is renamed, not an extra', () => {
    const m = manifest(src, plan.steps.map((s) => carriesData(s)
      ? stream(s.dataset, s.kind, s.from, s.creates)
      : ({ ...s, sendFlags: [], rawBytes: 0, storedBytes: 0, rawSha256: null, volumes: [] } as unknown as ReturnType<typeof stream>)));
    const p = planImport(facts('backup', tgt), [{ dir: '/b1', manifest: m }], { force: false, delete: true, rollback: false, recvNamesOrigin: true });
    if ('refusal' in p) assert.fail(p.refusal.message);
    assert.deepEqual(p.extras?.datasets, []);
    assert.deepEqual(p.extras?.snapshots, []);
    assert.deepEqual(p.projected?.datasets.map((d) => d.path), ['', 'n', 'n/a2']);
  });

  const renameBundle = (createdAt = '2026-11-20T00:00:00.000Z') => manifest(src, plan.steps.map((s) => carriesData(s)
    ? stream(s.dataset, s.kind, s.from, s.creates)
    : ({ ...s, sendFlags: [], rawBytes: 0, storedBytes: 0, rawSha256: null, volumes: [] } as unknown as ReturnType<typeof stream>)), { createdAt });

  it('the --max-delete guard counts a rename as no deletion: --max-delete 0 lets the rename through', () => {
    const p = planImport(facts('backup', tgt), [{ dir: '/b1', manifest: renameBundle() }],
      { force: false, delete: true, rollback: false, recvNamesOrigin: true, maxDelete: { datasets: 0, quietSharePercent: 0 } });
    if ('refusal' in p) assert.fail(p.refusal.message);
    assert.deepEqual(p.extras?.datasets, []);
    assert.equal(p.guard?.datasets, 0);
    assert.equal(p.guard?.quietDestroyed, 0);
    assert.equal(p.guard?.exceeded, false);
  });

  it('--delete-after never marks a renamed dataset missing, and clears under its new name a mark it carried from its old path', () => {
    const flags = { force: false, delete: true, rollback: false, recvNamesOrigin: true, deleteAfterSeconds: 86400, maxDelete: { datasets: null, quietSharePercent: null } };
    const fresh = planImport(facts('backup', tgt, { missingSince: new Map() }), [{ dir: '/b1', manifest: renameBundle() }], flags);
    if ('refusal' in fresh) assert.fail(fresh.refusal.message);
    assert.deepEqual(fresh.missingMarks, { set: [], clear: [] });
    assert.deepEqual(fresh.extras?.kept, []);
    // Marked when it was once missing: the rename takes the mark along, and the source has it again, under its new name.
    const marked = planImport(facts('backup', tgt, { missingSince: new Map([['backup/a', '2026-11-01T00:00:00.000Z']]) }), [{ dir: '/b1', manifest: renameBundle() }], flags);
    if ('refusal' in marked) assert.fail(marked.refusal.message);
    assert.deepEqual(marked.missingMarks, { set: [], clear: ['backup/n/a2'] });
    assert.deepEqual(marked.extras?.datasets, []);
  });

  it('--delete keeps a target dataset whose snapshots the source holds under another name (a rename not made yet)', () => {
    const d = planDelete(src, tgt, FULL_SCOPE);
    assert.deepEqual(d.datasets, []);
    assert.deepEqual(d.snapshots, []);
    assert.match(d.kept[0].reason, /its snapshots are, as tank\/n\/a2 \(renamed there\)/);
  });
});

describe('a rename in the bundle', () => {
  const SHA = 'a'.repeat(64);
  const src = inv('tank', [ds('', three, { guid: '7' }), ds('a2', [['s1', '201', 10], ['s3', '103', 30]], { guid: '8' })]);
  const step: StreamEntry = {
    index: 1, kind: 'rename', dataset: 'a2', type: 'filesystem', renamedFrom: 'a', match: ref('s3', '103'),
    snapshots: [{ guid: '201', from: 'first', to: 's1' }],
    from: null, to: null, intermediates: false, creates: [], force: false, sendFlags: [], rawBytes: 0, storedBytes: 0, rawSha256: null, volumes: [],
  };
  const m = (formatVersion: 1 | 2): Manifest => ({
    ...manifest(src, []), formatVersion, streams: [step],
    ...(formatVersion === 2 ? { restore: { file: 'RESTORE.txt', bytes: 1, sha256: SHA } } : {}),
  });

  it('is read from a format 2 manifest and refused in format 1, naming the field', () => {
    assert.equal(parseManifest(manifestText(m(2)), 'm.json').streams[0].kind, 'rename');
    assert.throws(() => parseManifest(manifestText(m(1)), 'm.json'),
      (e: unknown) => e instanceof ZferryError && e.message === 'm.json: /streams/0/kind rename is not part of bundle format version 1 (it came with version 2)');
  });

  it('refuses a rename that carries data or renames a snapshot the inventory does not have', () => {
    const bad = m(2);
    bad.streams[0] = { ...step, rawBytes: 5 };
    assert.throws(() => parseManifest(manifestText(bad), 'm.json'), /carries no data/);
    bad.streams[0] = { ...step, snapshots: [{ guid: '201', from: 'first', to: 'nope' }] };
    assert.throws(() => parseManifest(manifestText(bad), 'm.json'), /\/streams\/0\/snapshots\/0 @nope \(guid 201\) is not a snapshot of "a2"/);
  });

  it('RESTORE.txt renames with stock zfs commands', () => {
    const text = restoreText(m(2));
    assert.match(text, /^# 1\/1 rename a -> a2 \(renamed on the source; "\$TARGET" holds it at the old path, with @s3, guid 103\)$/m);
    assert.match(text, /^zfs rename -p "\$TARGET"'\/a' "\$TARGET"'\/a2'$/m);
    assert.match(text, /^zfs rename "\$TARGET"'\/a2@first' "\$TARGET"'\/a2@s1'$/m);
  });
});
