/** `import --keep GRID` on literal inventories: the grammar, the thinning, what is never destroyed, and how it composes with --delete. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Dataset, Inventory } from '../../src/model.js';
import { FULL_SCOPE, parseGrid, planImport, planRetention, type ImportFlags, type ImportPlan, type RetentionFacts } from '../../src/plan/index.js';
import { ZferryError } from '../../src/errors.js';
import { facts, inv, manifest, ref, stream } from '../helpers/literals.js';

const T0 = 1_767_225_600; // 2026-01-01T00:00:00Z
const H = 3600;

/** Snapshots h<n> at T0 + n hours, guid 1000+n (offset by `guidBase` for another dataset). */
function hourly(path: string, hours: number[], extra: Partial<Dataset> = {}, guidBase = 1000): Dataset {
  return {
    path, type: 'filesystem', guid: `ds-${path}`, bookmarks: [], ...extra,
    snapshots: hours.map((n) => ({ name: `h${n}`, guid: String(guidBase + n), createtxg: String(n + 1), creation: T0 + n * H })),
  };
}
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const names = (xs: Array<{ name: string }>) => xs.map((x) => x.name);

function retention(target: Inventory, source: Inventory | null, grid: string, extra: Partial<RetentionFacts> = {}) {
  return planRetention({ target, source, scope: FULL_SCOPE, needed: [], alreadyDestroyed: new Set(), ...extra }, parseGrid(grid));
}

describe('the --keep grammar', () => {
  it('reads INTERVAL x COUNT parts joined by |, and zrepl\'s COUNTxINTERVAL the same way', () => {
    const g = parseGrid('1h x 24 | 1d x 30 | 30d x 12');
    assert.deepEqual(g.parts.map((p) => [p.interval, p.count, p.keep]), [[3600, 24, 1], [86400, 30, 1], [30 * 86400, 12, 1]]);
    assert.deepEqual(parseGrid('24x1h | 14x1d').parts.map((p) => [p.interval, p.count]), [[3600, 24], [86400, 14]]);
  });

  it('takes (keep=N) and (keep=all) per part, as zrepl does', () => {
    assert.deepEqual(parseGrid('1h x 1 (keep=all) | 1d x 7(keep=2)').parts.map((p) => p.keep), [null, 2]);
  });

  it('refuses a malformed grid with one line naming --keep and the bad part', () => {
    for (const [text, why] of [['1h', /is not INTERVAL x COUNT/], ['1h x 0', /count "0"/], ['1q x 3', /invalid grid interval/], ['1h x 2 (keep=0)', /keeps nothing/], ['1s x 200000', /more than/]] as const) {
      assert.throws(() => parseGrid(text), (e: unknown) => e instanceof ZferryError && /^--keep "/.test(e.message) && why.test(e.message) && !e.message.includes('\n'));
    }
  });
});

describe('thinning by the grid', () => {
  it('keeps the 24 newest hourly snapshots, then the oldest of each older day, and drops what is older than the grid', () => {
    const target = inv('backup', [hourly('', range(0, 71))]); // three days of hourly snapshots
    const p = retention(target, target, '1h x 24 | 1d x 1');
    // The grid is anchored at h71: h48..h71 are the hourly part; (h23, h47] is the one day: h24 stays; h0..h23 are older.
    const gone = names(p.destroy);
    assert.deepEqual(gone, [...range(0, 23), ...range(25, 47)].map((n) => `h${n}`));
    assert.match(p.destroy.find((x) => x.name === 'h30')!.reason, /^interval 1d x 1 \(2026-01-01T23:00:00Z to 2026-01-02T23:00:00Z\) keeps @h24$/);
    assert.match(p.destroy.find((x) => x.name === 'h3')!.reason, /^older than the grid \(before 2026-01-01T23:00:00Z\)$/);
    assert.equal(p.destroy[0]!.full, 'backup@h0');
  });

  it('is anchored at the newest snapshot, not the clock: a backup that stops receiving keeps its grid', () => {
    const target = inv('backup', [hourly('', [0, 1, 2])]);
    assert.deepEqual(retention(target, target, '1h x 3').destroy, []);
  });

  it('keep=all keeps every snapshot of its intervals', () => {
    const target = inv('backup', [hourly('', range(0, 9))]);
    assert.deepEqual(names(retention(target, target, '10h x 1 (keep=all)').destroy), []);
    assert.deepEqual(names(retention(target, target, '10h x 1 (keep=2)').destroy), range(2, 8).map((n) => `h${n}`));
  });
});

describe('what the grid never destroys', () => {
  it('the newest snapshot in common with the source, even when newer target-only snapshots push it out of the grid', () => {
    const source = inv('tank', [hourly('', range(0, 5))]);
    const target = inv('backup', [hourly('', range(0, 7))]);
    const p = retention(target, source, '1h x 1');
    assert.deepEqual(names(p.destroy), ['h0', 'h1', 'h2', 'h3', 'h4', 'h6']);
    assert.deepEqual(names(p.protected), ['h5']);
    assert.match(p.protected[0]!.reason, /^newest snapshot in common with the source .*; the grid would drop it: older than the grid/);
  });

  it('the newest snapshot of each dataset, which its first interval would give up to an older one', () => {
    const target = inv('backup', [hourly('', [0, 0.25, 0.5].map((h) => h * 4))]);
    const p = retention(target, null, '4h x 1');
    assert.deepEqual(names(p.protected), ['h2']);
    assert.deepEqual(names(p.destroy), ['h1']);
  });

  it('a base a bundle on the disk is still waiting to be applied on', () => {
    const target = inv('backup', [hourly('', range(0, 5))]);
    const p = retention(target, target, '1h x 2', { needed: [{ dataset: '', guid: '1002', bundle: '/disk/zferry-b' }] });
    assert.deepEqual(names(p.protected), ['h2']);
    assert.match(p.protected[0]!.reason, /^base of bundle \/disk\/zferry-b, not applied yet/);
    assert.ok(!names(p.destroy).includes('h2'));
  });

  it('a clone\'s origin', () => {
    const target = inv('backup', [hourly('', range(0, 5)), { ...hourly('clone', [5], {}, 5000), origin: 'backup@h1' }]);
    const p = retention(target, target, '1h x 2');
    assert.deepEqual(names(p.protected), ['h1']);
    assert.match(p.protected[0]!.reason, /^origin of a clone on the target/);
  });

  it('snapshots and datasets outside the export\'s scope', () => {
    const target = inv('backup', [hourly('', range(0, 5)), hourly('scratch', range(0, 5), {}, 5000)]);
    const manual = { name: 'manual-1', guid: '9001', createtxg: '2', creation: T0 + 1 };
    target.datasets[0]!.snapshots.splice(1, 0, manual);
    const scope = { ...FULL_SCOPE, exclude: ['scratch'], excludeSnapshots: ['manual-*'] };
    const p = retention(target, target, '1h x 1', { scope });
    assert.deepEqual(p.destroy.map((x) => x.full), ['backup@h0', 'backup@h1', 'backup@h2', 'backup@h3', 'backup@h4']);
  });
});

describe('--keep inside planImport', () => {
  const flags = (extra: Partial<ImportFlags> = {}): ImportFlags => ({ force: false, delete: false, rollback: false, recvNamesOrigin: true, ...extra });
  const ok = (p: ReturnType<typeof planImport>): ImportPlan => {
    if ('refusal' in p) assert.fail(`refused: ${p.refusal.message}`);
    return p;
  };
  // The source pruned h0..h3 and lost dataset `old`; the target holds h0..h5, and the bundle brings h6.
  const source = inv('tank', [hourly('', range(4, 6))]);
  const target = inv('backup', [hourly('', range(0, 5)), hourly('old', range(0, 5), {}, 5000)]);
  const bundle = () => ({ dir: '/disk/b1', manifest: manifest(source, [stream('', 'incremental', ref('h5', '1005'), [ref('h6', '1006')])]) });

  it('with --delete, the dataset the source lost follows --delete while snapshots follow the grid', () => {
    const p = ok(planImport(facts('backup', target), [bundle()], flags({ delete: true, keep: parseGrid('1h x 3 | 2h x 1') })));
    assert.deepEqual(p.extras?.datasets.map((d) => d.full), ['backup/old']);
    assert.deepEqual(p.extras?.snapshots.map((s) => s.full), range(0, 5).map((n) => `backup/old@h${n}`));
    // h0..h3 are gone from the source, but h2 is the oldest of the grid's 2h interval (h2, h3) and stays.
    assert.deepEqual(p.retention?.destroy.map((x) => x.full), ['backup@h0', 'backup@h1', 'backup@h3']);
    assert.ok(!p.retention?.destroy.some((x) => x.dataset === 'old'), 'a dataset --delete destroys is not thinned as well');
  });

  it('retention deletions are not counted by --max-delete\'s guard', () => {
    // `quiet` receives nothing in this run and the source kept only its h5: --delete alone would take 5 of 6 snapshots.
    const src = inv('tank', [hourly('', range(4, 6)), hourly('quiet', [5], {}, 5000)]);
    const t = inv('backup', [hourly('', range(0, 5)), hourly('quiet', range(0, 5), {}, 5000)]);
    const b = [{ dir: '/disk/b1', manifest: manifest(src, [stream('', 'incremental', ref('h5', '1005'), [ref('h6', '1006')])]) }];
    assert.match((planImport(facts('backup', t), b, flags({ delete: true })) as { refusal: { message: string } }).refusal.message, /^--delete would destroy 0 dataset\(s\) .* and 5 of the 6 snapshots/);
    const p = ok(planImport(facts('backup', t), b, flags({ delete: true, keep: parseGrid('1h x 1') })));
    assert.deepEqual(p.retention?.destroy.filter((x) => x.dataset === 'quiet').map((x) => x.name), range(0, 4).map((n) => `h${n}`));
    assert.equal(p.guard?.quietDestroyed, 0);
    assert.equal(p.guard?.exceeded, false);
  });

  it('without --keep nothing is thinned and --delete mirrors snapshots as before', () => {
    const p = ok(planImport(facts('backup', target), [bundle()], flags({ delete: true })));
    assert.equal(p.retention, null);
    assert.ok(p.extras?.snapshots.some((s) => s.full === 'backup@h0'));
  });

  it('a base a deferred bundle on the disk needs is kept', () => {
    // b3 was planned on a bundle b2 that is not here: deferred for its root stream (base h7 missing),
    // while its stream for `kid` starts from k3, which the target holds and the grid would drop.
    const src = inv('tank', [hourly('', range(4, 6)), hourly('kid', range(3, 5), {}, 5000)]);
    const b1 = { dir: '/disk/b1', manifest: manifest(src, [stream('', 'incremental', ref('h5', '1005'), [ref('h6', '1006')])]) };
    const later = inv('tank', [hourly('', range(4, 8)), hourly('kid', range(3, 8), {}, 5000)]);
    const b3 = { dir: '/disk/b3', manifest: manifest(later, [
      stream('', 'incremental', ref('h7', '1007'), [ref('h8', '1008')]),
      stream('kid', 'incremental', ref('h3', '5003'), [ref('h8', '5008')]),
    ], { basis: { origin: 'journal', file: null, target: null, takenAt: null, inventory: null, bundleId: 'missing-b2' } as never }) };
    const t = inv('backup', [hourly('', range(0, 5)), hourly('kid', range(0, 5), {}, 5000)]);
    const p = ok(planImport(facts('backup', t), [b1, b3], flags({ keep: parseGrid('1h x 1') })));
    assert.equal(p.deferred.length, 1);
    const kid = p.retention!.protected.filter((x) => x.dataset === 'kid');
    assert.deepEqual(names(kid), ['h3']);
    assert.match(kid[0]!.reason, /^base of bundle \/disk\/b3, not applied yet/);
    assert.deepEqual(p.retention!.destroy.filter((x) => x.dataset === 'kid').map((x) => x.name), ['h0', 'h1', 'h2', 'h4']);
  });
});
