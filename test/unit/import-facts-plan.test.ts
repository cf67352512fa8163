/**
 * planImport on literal facts: every rule import used to reach only through a
 * scenario on a real pool (identity, `written`, clone origins, deferral,
 * encryption, the view --delete mirrors) decided from plain data.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { changedBySpace, parseMaxDelete, planImport, type ImportFlags, type ImportPlan } from '../../src/plan/index.js';
import { ds, facts, inv, manifest, ref, stream } from '../helpers/literals.js';

const flags = (extra: Partial<ImportFlags> = {}): ImportFlags => ({ force: false, delete: false, rollback: false, recvNamesOrigin: true, ...extra });
const s1 = ref('s1', '101'), s2 = ref('s2', '102'), s3 = ref('s3', '103');
const k1 = ref('s1', '201'), k2 = ref('s2', '202');

/** Source tank at s1..s2 with child kid; the target backup holds s1 of both. */
const source = inv('tank', [ds('', [['s1', '101', 10], ['s2', '102', 20]]), ds('kid', [['s1', '201', 10], ['s2', '202', 20]])]);
const target = inv('backup', [ds('', [['s1', '101', 3]]), ds('kid', [['s1', '201', 3]])]);
const round2 = () => manifest(source, [stream('', 'incremental', s1, [s2]), stream('kid', 'incremental', k1, [k2])]);

function ok(p: ReturnType<typeof planImport>): ImportPlan {
  if ('refusal' in p) assert.fail(`refused: ${p.refusal.message}`);
  return p;
}
function refusal(p: ReturnType<typeof planImport>): string {
  assert.ok('refusal' in p, 'expected a refusal');
  return p.refusal.message;
}

describe('planImport: identity', () => {
  it('refuses a bundle from another source than the one the target is marked with; --force takes it', () => {
    const f = facts('backup', target, { sourceMark: '99:other' });
    const b = [{ dir: '/d/b1', manifest: round2() }];
    assert.equal(refusal(planImport(f, b, flags())), 'backup mirrors source 99:other, but the bundle comes from 42:tank (src): refusing; use --force to import anyway');
    assert.equal(ok(planImport(f, b, flags({ force: true }))).bundles.length, 1);
  });

  it('refuses an unmarked target whose snapshots are none of the source\'s', () => {
    const f = facts('backup', inv('backup', [ds('', [['x', '999', 3]])]));
    assert.match(refusal(planImport(f, [{ dir: '/d/b1', manifest: round2() }], flags())), /^backup holds 1 snapshots and none of them is in the bundle's source tank \(src\): it looks like another source's copy/);
  });

  it('refuses bundles of two sources under one path', () => {
    const other = manifest(inv('pool2', [ds('', [['s1', '101', 10]])]), []);
    assert.match(refusal(planImport(facts('backup', target), [{ dir: '/d/a', manifest: round2() }, { dir: '/d/b', manifest: other }], flags())),
      /^bundles under one path come from different sources \(tank on pool guid 42 and pool2 on pool guid 42\)/);
  });

  it('marks an unmarked target with its source, and only then', () => {
    assert.equal(ok(planImport(facts('backup', target), [{ dir: '/d/b1', manifest: round2() }], flags())).markSource, '42:tank');
    assert.equal(ok(planImport(facts('backup', target, { sourceMark: '42:tank' }), [{ dir: '/d/b1', manifest: round2() }], flags())).markSource, null);
  });
});

describe('planImport: a target written to since its newest snapshot', () => {
  it('with `written`: refused naming the dataset, the bytes and --rollback; --rollback rolls back to the newest snapshot first', () => {
    const f = facts('backup', target, { written: new Map([['backup', 0n], ['backup/kid', 4096n]]) });
    const b = [{ dir: '/d/b1', manifest: round2() }];
    assert.equal(refusal(planImport(f, b, flags())), 'backup/kid has been modified since its newest snapshot @s1 (4096 bytes written); nothing was received; use --rollback to roll it back to @s1 first, and zfs set readonly=on backup to keep the copy from changing');
    const p = ok(planImport(f, b, flags({ rollback: true })));
    const rolled = p.bundles[0].decisions.map((d) => d.action === 'apply' ? d.rollbackTo?.name ?? null : null);
    assert.deepEqual(rolled, [null, 's1']);
  });

  it('without `written` (zfs-fuse): --rollback rolls every dataset back to its newest snapshot before its first incremental; without it, the receive tells', () => {
    const b = [{ dir: '/d/b1', manifest: round2() }];
    const plain = ok(planImport(facts('backup', target), b, flags()));
    assert.ok(plain.bundles[0].decisions.every((d) => d.action === 'apply' && !d.rollbackTo));
    const p = ok(planImport(facts('backup', target), b, flags({ rollback: true })));
    assert.deepEqual(p.bundles[0].decisions.map((d) => d.action === 'apply' && d.rollbackTo?.name), ['s1', 's1']);
  });

  it('without `written`: space figures that show a change refuse before anything is received, naming the evidence and readonly=on', () => {
    const b = [{ dir: '/d/b1', manifest: round2() }];
    const space = (kidLive: bigint, kidSnapUsed: bigint) => new Map([
      ['backup', { referenced: 100n, used: 300n }], ['backup@s1', { referenced: 100n, used: 0n }],
      ['backup/kid', { referenced: kidLive, used: 200n }], ['backup/kid@s1', { referenced: 100n, used: kidSnapUsed }],
    ]);
    // Mountpoint folders of children received without -u: the parent references more than its snapshot.
    assert.equal(refusal(planImport(facts('backup', target, { space: space(108n, 0n) }), b, flags())),
      'backup/kid has been modified since its newest snapshot @s1 (it references 108 bytes, @s1 100); nothing was received; use --rollback to roll it back to @s1 first, and zfs set readonly=on backup to keep the copy from changing');
    // Same size, but the snapshot alone holds rewritten blocks.
    assert.match(refusal(planImport(facts('backup', target, { space: space(100n, 4096n) }), b, flags())), /\(@s1 holds 4096 bytes the live dataset no longer has\)/);
    // No evidence: received as planned (the receive itself refuses a change the figures missed).
    const clean = ok(planImport(facts('backup', target, { space: space(100n, 0n) }), b, flags()));
    assert.ok(clean.bundles[0].decisions.every((d) => d.action === 'apply' && !d.rollbackTo));
    // With --rollback: rolled back first, evidence or not.
    const p = ok(planImport(facts('backup', target, { space: space(108n, 0n) }), b, flags({ rollback: true })));
    assert.deepEqual(p.bundles[0].decisions.map((d) => d.action === 'apply' && d.rollbackTo?.name), ['s1', 's1']);
  });

  it('changedBySpace reads nothing into missing rows', () => {
    assert.equal(changedBySpace(new Map(), 'backup', 's1'), null);
    assert.equal(changedBySpace(new Map([['backup', { referenced: 1n, used: 1n }]]), 'backup', 's1'), null);
  });
});

describe('planImport: clones, deferral, encryption', () => {
  const withBase = inv('tank', [ds('', [['s1', '101', 10]]), ds('clone', [['c1', '301', 15]])]);
  const cloneBundle = () => manifest(withBase, [stream('clone', 'incremental', { name: 's1', guid: '101', dataset: '' } as never, [ref('c1', '301')], { intermediates: false })]);
  const t = inv('backup', [ds('', [['s1', '101', 3]])]);

  it('refuses a clone whose origin guid is also elsewhere in the pool when zfs recv cannot name the origin', () => {
    const f = facts('pool/backup', { ...t, root: 'pool/backup' }, { poolSnapshots: new Map([['101', ['pool/backup@s1', 'pool/other@s1']]]) });
    assert.match(refusal(planImport(f, [{ dir: '/d/c', manifest: cloneBundle() }], flags({ recvNamesOrigin: false }))),
      /^pool\/backup\/clone is sent as a clone of pool\/backup@s1, but pool pool also holds that snapshot \(guid 101\) as pool\/other@s1/);
    assert.equal(ok(planImport(f, [{ dir: '/d/c', manifest: cloneBundle() }], flags({ recvNamesOrigin: true }))).bundles.length, 1);
  });

  it('defers a bundle planned on top of a bundle that is not here, naming it', () => {
    const m = manifest(inv('tank', [ds('', [['s1', '101', 10], ['s2', '102', 20], ['s3', '103', 30]])]), [stream('', 'incremental', s2, [s3])], {
      basis: { origin: 'journal', file: null, target: null, takenAt: null, inventory: null, bundleId: '00000000-0000-4000-8000-00000000abcd' },
    });
    const p = ok(planImport(facts('backup', target), [{ dir: '/d/b2', manifest: m }], flags()));
    assert.deepEqual(p.bundles, []);
    assert.deepEqual(p.deferred, [{ bundle: '/d/b2', bundleId: m.bundleId, needs: '00000000-0000-4000-8000-00000000abcd', message: '/d/b2: deferred: it was planned on top of bundle 00000000-0000-4000-8000-00000000abcd, which must be imported first' }]);
  });

  it('refuses mixing a raw (encrypted) source dataset into a plain target dataset', () => {
    const enc = inv('tank', [{ ...ds('', [['s1', '101', 10], ['s2', '102', 20]]), encrypted: true }]);
    const plainTarget = inv('backup', [{ ...ds('', [['s1', '101', 3]]), encrypted: false }]);
    assert.match(refusal(planImport(facts('backup', plainTarget), [{ dir: '/d/e', manifest: manifest(enc, [stream('', 'incremental', s1, [s2])]) }], flags())),
      /^\/d\/e\/manifest\.json: tank is encrypted and is sent raw \(-w\).*; nothing was received$/);
  });
});

describe('planImport: what --delete destroys is planned before anything is received', () => {
  it('a snapshot the source destroyed is an extra; a target-only snapshot that --rollback discards is not listed twice', () => {
    // Source dropped s1 of kid; the target made its own snapshot on the root after s1.
    const src = inv('tank', [ds('', [['s1', '101', 10], ['s2', '102', 20]]), ds('kid', [['s2', '202', 20]])]);
    const tgt = inv('backup', [ds('', [['s1', '101', 3], ['mine', '555', 4]]), ds('kid', [['s1', '201', 3], ['s2', '202', 5]])]);
    const m = manifest(src, [stream('', 'incremental', s1, [s2])]);
    const p = ok(planImport(facts('backup', tgt, { sourceTxg: 10n }), [{ dir: '/d/b', manifest: m }], flags({ delete: true, rollback: true })));
    assert.deepEqual(p.bundles[0].decisions.map((d) => d.action === 'apply' && d.discards?.map((x) => x.name)), [['mine']]);
    assert.deepEqual(p.extras?.snapshots.map((x) => x.full), ['backup/kid@s1']);
    assert.deepEqual(p.view, { index: 0, asOf: 20n, unanchored: [] });
  });

  it('a newer bundle that leaves kid for a later one is the view for the rest: what it brings is not an extra, and kid is left alone', () => {
    const tgt = inv('backup', [ds('', [['s1', '101', 3], ['s2', '102', 4]]), ds('kid', [['s1', '201', 3], ['s2', '202', 4], ['old', '299', 5]])]);
    const older = manifest(source, []);
    // Source now at s3 everywhere; this bundle carries the root's s3, kid's is in the next one (--max-size).
    const now = inv('tank', [ds('', [['s1', '101', 10], ['s2', '102', 20], ['s3', '103', 30]]), ds('kid', [['s1', '201', 10], ['s2', '202', 20], ['s3', '203', 30]])]);
    const partial = manifest(now, [stream('', 'incremental', s2, [s3])]);
    const p = ok(planImport(facts('backup', tgt, { sourceTxg: 20n }), [{ dir: '/d/a', manifest: older }, { dir: '/d/b', manifest: partial }], flags({ delete: true })));
    assert.deepEqual(p.view, { index: 1, asOf: 30n, unanchored: ['kid'] });
    // Not backup@s3 (just received), and not kid@old either: kid waits for a bundle that speaks for it.
    assert.deepEqual(p.extras?.snapshots.map((x) => x.full), []);
    // And it says so.
    assert.deepEqual(p.extras?.kept.map((k) => [k.dataset, /newest snapshot on the source does not arrive with this import \(a bundle still to come, or the export left the dataset out as a conflict\)/.test(k.reason)]), [['kid', true]]);
  });

  it('--delete is refused when no bundle can speak for the source (older than the target\'s record)', () => {
    const m = round2();
    assert.equal(refusal(planImport(facts('backup', target, { sourceTxg: 50n }), [{ dir: '/d/b', manifest: m }], flags({ delete: true }))),
      "--delete: no bundle here can speak for the source's current state: /d/b/manifest.json shows the source as of txg 20, older than what backup already received (zferry:source-txg=50); nothing was received");
    // Without --delete the streams still apply; nothing is judged extra.
    const p = ok(planImport(facts('backup', target, { sourceTxg: 50n }), [{ dir: '/d/b', manifest: m }], flags()));
    assert.equal(p.extras, null);
    assert.equal(p.bundles[0].decisions.length, 2);
  });
});

describe('planImport: the deletion guard (--max-delete)', () => {
  // The target mirrors five datasets of the source at s1..s2; bundles carry s3 where noted.
  const paths = ['', 'a', 'b', 'c', 'd'];
  const tgt = inv('backup', paths.map((p, i) => ds(p, [['s1', `1${i}1`, 3], ['s2', `1${i}2`, 4]])));
  const full = (keep: string[], s3: boolean) => inv('tank', paths.filter((p) => keep.includes(p)).map((p) => {
    const i = paths.indexOf(p);
    return ds(p, [['s1', `1${i}1`, 10], ['s2', `1${i}2`, 20], ...(s3 ? [['s3', `1${i}3`, 30] as [string, string, number]] : [])]);
  }));
  const bundleOf = (src: ReturnType<typeof full>, s3: boolean) => manifest(src, s3 ? src.datasets.map((d) => {
    const i = paths.indexOf(d.path);
    return stream(d.path, 'incremental', ref('s2', `1${i}2`), [ref('s3', `1${i}3`)]);
  }) : []);

  it('a source that lost most of its datasets is refused before anything is received, naming the counts and the option', () => {
    const src = full(['', 'a'], true);
    const p = planImport(facts('backup', tgt, { sourceTxg: 20n }), [{ dir: '/d/w', manifest: bundleOf(src, true) }], flags({ delete: true }));
    assert.equal(refusal(p), '--delete would destroy 3 dataset(s) (limit 2) and 0 of the 0 snapshots (0%, limit 50%) in datasets that receive nothing new in this run: ' +
      'refusing before anything is received or destroyed, in case the source was wiped or imported empty; check with --dry-run, then allow it with --max-delete 3 (or --max-delete all)');
    assert.equal(ok(planImport(facts('backup', tgt, { sourceTxg: 20n }), [{ dir: '/d/w', manifest: bundleOf(src, true) }], flags({ delete: true, maxDelete: parseMaxDelete(['3']) }))).extras?.datasets.length, 3);
  });

  it('routine rotation (old snapshots go where new ones arrive) does not trip it; the same loss in quiet datasets does', () => {
    const rotated = inv('tank', paths.map((p, i) => ds(p, [['s2', `1${i}2`, 20], ['s3', `1${i}3`, 30]])));
    const m = manifest(rotated, paths.map((p, i) => stream(p, 'incremental', ref('s2', `1${i}2`), [ref('s3', `1${i}3`)])));
    const p = ok(planImport(facts('backup', tgt, { sourceTxg: 20n }), [{ dir: '/d/r', manifest: m }], flags({ delete: true })));
    assert.equal(p.extras?.snapshots.length, 5);
    assert.equal(p.guard?.exceeded, false);
    assert.equal(p.guard?.quietHeld, 0);

    // Nothing new anywhere, and every dataset lost s1 and s2 but for one snapshot at the root: quiet, 90% destroyed.
    const wiped = inv('tank', [ds('', [['s2', '102', 20]]), ...paths.slice(1).map((q) => ds(q, []))]);
    const w = planImport(facts('backup', tgt, { sourceTxg: 20n }), [{ dir: '/d/x', manifest: manifest(wiped, []) }], flags({ delete: true }));
    assert.match(refusal(w), /^--delete would destroy 0 dataset\(s\) \(limit 2\) and 9 of the 10 snapshots \(90%, limit 50%\) .* allow it with --max-delete 90% \(or --max-delete all\)$/);
    // A dry run shows the same figures instead of refusing.
    const dry = ok(planImport(facts('backup', tgt, { sourceTxg: 20n }), [{ dir: '/d/x', manifest: manifest(wiped, []) }], flags({ delete: true, dryRun: true })));
    assert.deepEqual(dry.guard, { datasets: 0, datasetLimit: 2, quietDestroyed: 9, quietHeld: 10, quietSharePercent: 90, quietShareLimit: 50, exceeded: true });
    assert.equal(ok(planImport(facts('backup', tgt, { sourceTxg: 20n }), [{ dir: '/d/x', manifest: manifest(wiped, []) }], flags({ delete: true, maxDelete: parseMaxDelete(['all']) }))).extras?.snapshots.length, 9);
  });

  it('--max-delete takes N, P% and all, and refuses anything else as a usage error', () => {
    assert.deepEqual(parseMaxDelete([]), { datasets: 2, quietSharePercent: 50 });
    assert.deepEqual(parseMaxDelete(['5', '80%']), { datasets: 5, quietSharePercent: 80 });
    assert.deepEqual(parseMaxDelete(['all']), { datasets: null, quietSharePercent: null });
    assert.throws(() => parseMaxDelete(['-1']), /--max-delete "-1": expected a number of datasets \(2\), a share of snapshots \(50%\) or all/);
    assert.throws(() => parseMaxDelete(['101%']), /--max-delete "101%"/);
  });
});

describe('planImport: --delete-after waits before destroying a dataset missing on the source', () => {
  // The source lost `gone` (and its child); the target still has both, plus `kid`.
  const src = inv('tank', [ds('', [['s1', '101', 10], ['s2', '102', 20]]), ds('kid', [['s1', '201', 10], ['s2', '202', 20]])]);
  const tgt = inv('backup', [ds('', [['s1', '101', 3]]), ds('kid', [['s1', '201', 3]]), ds('gone', [['g1', '301', 3]]), ds('gone/sub', [['g1', '401', 3]])]);
  const at = (iso: string) => manifest(src, [stream('', 'incremental', s1, [s2]), stream('kid', 'incremental', k1, [k2])], { createdAt: iso });
  const del = (seconds: number) => flags({ delete: true, deleteAfterSeconds: seconds, maxDelete: { datasets: null, quietSharePercent: null } });

  it('first seen missing: kept with its snapshots and parent, and marked with the bundle\'s time', () => {
    const p = ok(planImport(facts('backup', tgt, { missingSince: new Map() }), [{ dir: '/d/b', manifest: at('2026-11-20T00:00:00.000Z') }], del(7 * 86400)));
    assert.deepEqual(p.extras?.datasets, []);
    assert.deepEqual(p.extras?.snapshots, []);
    assert.deepEqual(p.extras?.kept.map((k) => `${k.dataset}: ${k.reason}`), [
      'gone/sub: missing on the source since 2026-11-20T00:00:00.000Z; destroyed once missing for 7d (--delete-after)',
      'gone: missing on the source since 2026-11-20T00:00:00.000Z; destroyed once missing for 7d (--delete-after)',
    ]);
    assert.deepEqual(p.missingMarks.set.map((m) => m.full).sort(), ['backup/gone', 'backup/gone/sub']);
    assert.deepEqual(p.guard?.datasets, 0);
  });

  it('counted from the mark on the source\'s clock: destroyed once the newest bundle is AGE past it, not before', () => {
    const marks = new Map([['backup/gone', '2026-11-20T00:00:00.000Z'], ['backup/gone/sub', '2026-11-20T00:00:00.000Z']]);
    const early = ok(planImport(facts('backup', tgt, { missingSince: marks }), [{ dir: '/d/b', manifest: at('2026-11-26T23:59:59.000Z') }], del(7 * 86400)));
    assert.deepEqual(early.extras?.datasets, []);
    assert.deepEqual(early.missingMarks.set, [], 'an existing mark is kept, not moved');
    const due = ok(planImport(facts('backup', tgt, { missingSince: marks }), [{ dir: '/d/b', manifest: at('2026-11-27T00:00:00.000Z') }], del(7 * 86400)));
    assert.deepEqual(due.extras?.datasets.map((d) => d.full), ['backup/gone/sub', 'backup/gone']);
    assert.deepEqual(due.extras?.snapshots.map((x) => x.full), ['backup/gone@g1', 'backup/gone/sub@g1']);
  });

  it('a child still waiting keeps its parent; a dataset back on the source loses its mark', () => {
    const marks = new Map([['backup/gone', '2026-11-01T00:00:00.000Z'], ['backup/kid', '2026-11-01T00:00:00.000Z']]);
    const p = ok(planImport(facts('backup', tgt, { missingSince: marks }), [{ dir: '/d/b', manifest: at('2026-11-20T00:00:00.000Z') }], del(7 * 86400)));
    assert.deepEqual(p.extras?.datasets, []);
    assert.match(p.extras?.kept.find((k) => k.dataset === 'gone')?.reason ?? '', /holds datasets waiting for --delete-after/);
    assert.deepEqual(p.missingMarks, { set: [{ full: 'backup/gone/sub', since: '2026-11-20T00:00:00.000Z' }], clear: ['backup/kid'] });
  });

  it('without --delete-after, everything missing goes at once, as before', () => {
    const p = ok(planImport(facts('backup', tgt), [{ dir: '/d/b', manifest: at('2026-11-20T00:00:00.000Z') }], flags({ delete: true, maxDelete: { datasets: null, quietSharePercent: null } })));
    assert.deepEqual(p.extras?.datasets.map((d) => d.full), ['backup/gone/sub', 'backup/gone']);
    assert.deepEqual(p.missingMarks, { set: [], clear: [] });
  });
});

describe('planImport: a target with no pool or parent to receive into', () => {
  const seed = () => [{ dir: '/d/b1', manifest: manifest(source, [stream('', 'full', null, [s1, s2]), stream('kid', 'full', null, [k1, k2])]) }];

  it('refuses a missing parent before anything, naming it and `zfs create -p PARENT`', () => {
    const p = planImport(facts('backup/a/b/c', null, { missingAncestor: 'backup/a' }), seed(), flags());
    assert.ok('refusal' in p);
    assert.equal(p.refusal.message, 'import target backup/a/b/c: backup/a does not exist: create it with `zfs create -p backup/a/b`, or import with --create-parents; nothing was received');
    assert.equal(p.refusal.dataset, 'backup/a');
  });

  it('plans the parent\'s creation with --create-parents', () => {
    const p = ok(planImport(facts('backup/a/b/c', null, { missingAncestor: 'backup/a' }), seed(), flags({ createParents: true })));
    assert.equal(p.createParent, 'backup/a/b');
    assert.equal(p.bundles.length, 1);
  });

  it('refuses a missing pool even with --create-parents: zferry never creates a pool', () => {
    for (const createParents of [false, true]) {
      const p = planImport(facts('nopool/copy', null, { missingAncestor: 'nopool' }), seed(), flags({ createParents }));
      assert.ok('refusal' in p);
      assert.equal(p.refusal.message, 'import target nopool/copy: pool nopool does not exist (zpool list shows the pools here): create or import it first; nothing was received');
    }
    assert.match(refusal(planImport(facts('nopool', null, { missingAncestor: 'nopool' }), seed(), flags())), /^import target nopool: pool nopool does not exist/);
  });

  it('creates nothing when the parent is there', () => {
    assert.equal(ok(planImport(facts('backup/new', null), seed(), flags({ createParents: true }))).createParent, null);
  });
});

describe('planImport: old bundles left on the disk after the target moved on', () => {
  // Round 1 seeded tank at s1, s2 (kid too); round 2 brought s3, and --delete followed the source's
  // rotation of s1. The target is marked with txg 30: the view of round 2.
  const round1Source = inv('tank', [ds('', [['s1', '101', 10], ['s2', '102', 20]]), ds('kid', [['s1', '201', 10], ['s2', '202', 20]]), ds('gone', [['s1', '401', 10], ['s2', '402', 20]])]);
  // A seed is a full stream of the oldest snapshot, then an incremental to the newest.
  const round1 = () => manifest(round1Source, [
    stream('', 'full', null, [s1]), stream('', 'incremental', s1, [s2]),
    stream('kid', 'full', null, [k1]), stream('kid', 'incremental', k1, [k2]),
    stream('gone', 'full', null, [ref('s1', '401')]), stream('gone', 'incremental', ref('s1', '401'), [ref('s2', '402')]),
  ]);
  const round2Source = inv('tank', [ds('', [['s2', '102', 20], ['s3', '103', 30]]), ds('kid', [['s2', '202', 20], ['s3', '203', 30]])]);
  const round2b = () => manifest(round2Source, [stream('', 'incremental', s2, [s3]), stream('kid', 'incremental', k2, [ref('s3', '203')])]);
  // The dataset `gone` was destroyed on the source and, by --delete, on the target.
  const after2 = inv('backup', [ds('', [['s2', '102', 5], ['s3', '103', 8]]), ds('kid', [['s2', '202', 5], ['s3', '203', 8]])]);
  const marked = (extra = {}) => facts('backup', after2, { sourceMark: '42:tank', sourceTxg: 30n, ...extra });

  it('is superseded: named, nothing of it received, and it neither re-creates the destroyed dataset nor stops the import', () => {
    const m = round1();
    const p = ok(planImport(marked(), [{ dir: '/d/r1', manifest: m }, { dir: '/d/r2', manifest: round2b() }], flags({ delete: true })));
    assert.deepEqual(p.superseded, [{
      bundle: '/d/r1', bundleId: m.bundleId,
      message: '/d/r1: superseded: it shows the source as of txg 20, older than what backup already received (zferry:source-txg=30), and what it carries is gone from the target or was overtaken there; nothing of it was received',
    }]);
    assert.deepEqual(p.bundles.map((b) => [b.dir, b.decisions.map((d) => d.action)]), [['/d/r2', ['skip', 'skip']]]);
    assert.deepEqual(p.extras?.datasets, []);
    assert.deepEqual(p.extras?.snapshots, []);
  });

  it('--rollback does not make it apply: the newer snapshots are never discarded for older ones', () => {
    // An incremental from a base the target still holds, to a snapshot rotated away since: with --rollback
    // it would roll back past s3; superseded, it is not planned at all.
    const src = inv('tank', [ds('', [['s1', '101', 10], ['s2', '102', 20], ['x', '150', 25]])]);
    const old = manifest(src, [stream('', 'incremental', s2, [ref('x', '150')])]);
    const p = ok(planImport(marked(), [{ dir: '/d/old', manifest: old }], flags({ rollback: true, delete: true })));
    assert.equal(p.superseded.length, 1);
    assert.deepEqual(p.bundles, []);
  });

  it('a bundle wholly on the target is still "already applied", and one as new as the record is never superseded', () => {
    const whole = manifest(inv('tank', [ds('', [['s2', '102', 20]])]), [stream('', 'full', null, [s2])]);
    const p = ok(planImport(marked(), [{ dir: '/d/w', manifest: whole }], flags()));
    assert.deepEqual(p.superseded, []);
    assert.deepEqual(p.bundles[0].decisions.map((d) => d.action), ['skip']);
    // A part of a seed split across disks lists the same inventory as the part already received:
    // its as-of txg equals the record, and its stream into a dataset the target lacks applies.
    const seed = inv('tank', [ds('', [['s2', '102', 20], ['s3', '103', 30]]), ds('kid', [['s2', '202', 20], ['s3', '203', 30]]), ds('late', [['s3', '503', 30]])]);
    const part = manifest(seed, [stream('late', 'full', null, [ref('s3', '503')])]);
    const q = ok(planImport(marked(), [{ dir: '/d/part2', manifest: part }], flags()));
    assert.deepEqual(q.superseded, []);
    assert.deepEqual(q.bundles[0].decisions.map((d) => d.action), ['apply']);
  });

  it('is not judged against a record of another source, nor on a target with no record', () => {
    // Both fall to the ordinary checks, which refuse the old full streams as before.
    assert.match(refusal(planImport(marked({ sourceMark: '7:elsewhere' }), [{ dir: '/d/r1', manifest: round1() }], flags({ force: true }))), /refusing a full stream into an existing dataset/);
    assert.match(refusal(planImport(marked({ sourceTxg: null }), [{ dir: '/d/r1', manifest: round1() }], flags())), /refusing a full stream into an existing dataset/);
  });
});
