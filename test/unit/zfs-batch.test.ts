import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { argumentBatches, resolveProgram } from '../../src/zfs/index.js';

test('snapshot names are batched under the byte limit, in order, none lost', () => {
  const names = Array.from({ length: 10 }, (_, i) => `pool/d${i}@s`);
  const batches = argumentBatches(names, 40);
  assert.deepEqual(batches.flat(), names);
  for (const b of batches) assert.ok(b.join(' ').length + 1 <= 40 || b.length === 1);
  assert.deepEqual(batches.map((b) => b.length), [4, 4, 2]);
  assert.deepEqual(argumentBatches([]), []);
  // A name longer than the limit still goes, alone.
  assert.deepEqual(argumentBatches(['x'.repeat(50), 'y'], 40), [['x'.repeat(50)], ['y']]);
});

test('a program is resolved to the first executable file on PATH, as the shell does', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'zferry-path-'));
  try {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    await mkdir(a);
    await mkdir(b);
    await writeFile(path.join(a, 'zfs'), '#!/bin/sh\n');
    await chmod(path.join(a, 'zfs'), 0o644); // not executable: skipped
    await mkdir(path.join(a, 'zpool')); // a directory: skipped
    await writeFile(path.join(b, 'zfs'), '#!/bin/sh\n');
    await chmod(path.join(b, 'zfs'), 0o755);
    await writeFile(path.join(b, 'zpool'), '#!/bin/sh\n');
    await chmod(path.join(b, 'zpool'), 0o755);
    const search = ['relative/dir', '', a, b].join(path.delimiter);
    assert.equal(resolveProgram('zfs', search), path.join(b, 'zfs'));
    assert.equal(resolveProgram('zpool', search), path.join(b, 'zpool'));
    // Found nowhere, or already a path: unchanged, so the spawn fails as it always did.
    assert.equal(resolveProgram('mbuffer', search), 'mbuffer');
    assert.equal(resolveProgram('./zfs', search), './zfs');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('overrides gathered from many receives become one inherit and one set per value, inherits first, every dataset once', async () => {
  const { PendingOverrides, overrideCommands } = await import('../../src/zfs/index.js');
  const p = new PendingOverrides();
  assert.equal(p.empty, true);
  assert.deepEqual(overrideCommands(p), []);
  // Two streams into the same dataset, then another dataset, then a volume (no overrides).
  p.add('t/a', ['mountpoint'], { canmount: 'noauto' });
  p.add('t/a', ['mountpoint'], { canmount: 'noauto' });
  p.add('t/b', ['mountpoint'], { canmount: 'noauto' });
  p.add('t/vol', [], {});
  assert.deepEqual(overrideCommands(p), [
    ['inherit', 'mountpoint', 't/a', 't/b'],
    ['set', 'canmount=noauto', 't/a', 't/b'],
  ]);
  // Thousands of datasets still go in a few calls, each under the argument limit.
  const q = new PendingOverrides();
  const many = Array.from({ length: 5000 }, (_, i) => `pool/backup/dataset-${String(i).padStart(5, '0')}`);
  for (const d of many) q.add(d, ['mountpoint'], { canmount: 'noauto' });
  const cmds = overrideCommands(q);
  assert.ok(cmds.length <= 8, `${cmds.length} calls`);
  assert.deepEqual(cmds.filter((c) => c[0] === 'inherit').flatMap((c) => c.slice(2)), many);
  assert.deepEqual(cmds.filter((c) => c[0] === 'set').flatMap((c) => c.slice(2)), many);
});

test('overrides that would change nothing are left out; a dataset not listed keeps its commands', async () => {
  const { PendingOverrides, overrideCommands } = await import('../../src/zfs/index.js');
  const p = new PendingOverrides();
  for (const d of ['t/new', 't/recv', 't/local', 't/inh', 't/kept', 't/unlisted']) p.add(d, ['mountpoint'], { canmount: 'noauto' });
  const now = new Map([
    // Just received, nothing carried: default mountpoint, canmount on.
    ['t/new', new Map([['mountpoint', { value: '/t/new', source: 'default' }], ['canmount', { value: 'on', source: 'default' }]])],
    // A stream that carried a mountpoint (zfs send -p).
    ['t/recv', new Map([['mountpoint', { value: '/etc', source: 'received' }], ['canmount', { value: 'on', source: 'default' }]])],
    // Set on this host.
    ['t/local', new Map([['mountpoint', { value: '/srv', source: 'local' }], ['canmount', { value: 'on', source: 'received' }]])],
    ['t/inh', new Map([['mountpoint', { value: '/t/inh', source: 'inherited from t' }], ['canmount', { value: 'noauto', source: 'local' }]])],
    // An earlier round's work: nothing left to do.
    ['t/kept', new Map([['mountpoint', { value: '/t/kept', source: 'default' }], ['canmount', { value: 'noauto', source: 'local' }]])],
  ]);
  assert.deepEqual(overrideCommands(p, now), [
    ['inherit', 'mountpoint', 't/recv', 't/local', 't/unlisted'],
    ['set', 'canmount=noauto', 't/new', 't/recv', 't/local', 't/unlisted'],
  ]);
});

test('overrides for many datasets go in up to four side-by-side calls per property, never a call for a handful', async () => {
  const { PendingOverrides, overrideCommands } = await import('../../src/zfs/index.js');
  const p = new PendingOverrides();
  const names = Array.from({ length: 201 }, (_, i) => `t/d${i}`);
  for (const d of names) p.add(d, ['mountpoint'], { canmount: 'noauto' });
  const cmds = overrideCommands(p, undefined, 4);
  assert.deepEqual(cmds.map((c) => [c[0], c.length - 2]), [
    ['inherit', 51], ['inherit', 51], ['inherit', 51], ['inherit', 48],
    ['set', 51], ['set', 51], ['set', 51], ['set', 48],
  ]);
  assert.deepEqual(cmds.filter((c) => c[0] === 'set').flatMap((c) => c.slice(2)), names, 'every dataset once, in order');
  const few = new PendingOverrides();
  for (const d of names.slice(0, 5)) few.add(d, ['mountpoint'], { canmount: 'noauto' });
  assert.deepEqual(overrideCommands(few, undefined, 4).map((c) => c.length - 2), [5, 5], 'five datasets: one inherit, one set');
});

test('snapshots to destroy become one DATASET@a,b,c list per dataset, in order, under the byte limit; odd names go alone', async () => {
  const { snapshotListOperands } = await import('../../src/zfs/index.js');
  assert.deepEqual(snapshotListOperands([]), []);
  assert.deepEqual(snapshotListOperands(['t/a@h1', 't/b@h1', 't/a@h2', 't/a@h3', 't@x']), ['t/a@h1,h2,h3', 't/b@h1', 't@x']);
  // A name zfs would read as a list or a range is never joined (zfs makes no such name; a hostile inventory might).
  assert.deepEqual(snapshotListOperands(['t/a@x,y', 't/a@p%q', 't/a@ok']), ['t/a@x,y', 't/a@p%q', 't/a@ok']);
  const many = Array.from({ length: 3000 }, (_, i) => `pool/backup/home@zfs-auto-snap_frequent-2026-11-30-${String(i).padStart(4, '0')}`);
  const ops = snapshotListOperands(many, 4096);
  assert.ok(ops.length > 1 && ops.every((o) => o.length <= 4096), `${ops.length} lists`);
  assert.deepEqual(ops.flatMap((o) => o.slice(o.indexOf('@') + 1).split(',').map((s) => `pool/backup/home@${s}`)), many, 'every snapshot once, in order');
});
