/**
 * A hostile disk against import on real ZFS (issue 11, points 4 and 5): an
 * edited, unsigned manifest can neither ask for `zfs recv -F` nor make an old
 * or empty view of the source the one `--delete` mirrors. Each attack has a
 * positive control: the unedited bundle applies.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makePool, mountpointOf, run, type TestPool } from '../helpers/zfslab.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { receiptFileName } from '../../src/state/receipt.js';
import { datasetList, fingerprint, guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
const disks: string[] = [];

async function disk(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'zferry-hostile-import-'));
  disks.push(d);
  return d;
}

/** The one bundle folder on a disk. */
async function bundleOf(d: string): Promise<string> {
  const names = (await readdir(d)).filter((n) => n.startsWith('zferry-'));
  assert.equal(names.length, 1, `one bundle on ${d}: ${names.join(' ')}`);
  return path.join(d, names[0]);
}

/** Rewrites a bundle's manifest.json (unsigned: nothing else vouches for it). */
async function editManifest(bundle: string, edit: (m: Record<string, any>) => void): Promise<void> {
  const file = path.join(bundle, 'manifest.json');
  const m = JSON.parse(await readFile(file, 'utf8'));
  edit(m);
  await writeFile(file, JSON.stringify(m, null, 2) + '\n');
}

/** Exports to a fresh disk, planned on the receipt an import left on `since` for `target` (else from scratch). */
async function exportTo(since?: { disk: string; target: string }): Promise<string> {
  const d = await disk();
  const basis = since ? ['--since', path.join(since.disk, receiptFileName(since.target))] : [];
  await zferryOk('export', src.name, d, '--no-journal', ...basis);
  return d;
}

before(async () => {
  src = await makePool('hxs', 128);
  dst = await makePool('hxd', 128);
  for (const d of ['a', 'kid']) await run('zfs', ['create', `${src.name}/${d}`]);
  await writeData(`${src.name}/a`, 'f.bin', 16);
  await snapshot(`${src.name}@s1`, true);
});

after(async () => {
  await src?.destroy();
  await dst?.destroy();
  for (const d of disks) await rm(d, { recursive: true, force: true });
});

test('a manifest that marks an incremental force cannot make import run zfs recv -F; the unedited bundle applies to a twin', async () => {
  const seed = await exportTo();
  const target = `${dst.name}/f`;
  const twin = `${dst.name}/twin`;
  await zferryOk('import', seed, target);
  await zferryOk('import', seed, twin);
  // A local change on the target: zfs recv -F would silently roll it back.
  await run('zfs', ['set', `mountpoint=/tmp/zferry-mnt/${dst.name}-fa`, `${target}/a`]);
  await run('zfs', ['mount', `${target}/a`]);
  await writeData(`${target}/a`, 'local-change.bin', 8);
  await run('zfs', ['unmount', `${target}/a`]);

  await writeData(`${src.name}/a`, 'g.bin', 8);
  await snapshot(`${src.name}@s2`, true);
  const d = await exportTo({ disk: seed, target });
  const clean = await disk();
  await cp(d, clean, { recursive: true });
  const bundle = await bundleOf(d);
  let forced = 0;
  await editManifest(bundle, (m) => {
    for (const s of m.streams) if (s.kind === 'incremental') { s.force = true; forced++; }
  });
  assert.ok(forced > 0);

  const before = await fingerprint(target);
  const r = await zferry('import', d, target);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), `zferry: ${bundle}/manifest.json: stream 1: ${target}: incremental stream 1 is marked force (zfs receive -F would discard changes on the target); refusing; use --rollback to allow rolling back to the base (and ${forced - 1} more); nothing was received`);
  assert.equal(await fingerprint(target), before);
  await run('zfs', ['mount', `${target}/a`]);
  try {
    const files = await readdir(await mountpointOf(`${target}/a`));
    assert.ok(files.includes('local-change.bin'), 'the local change is still there');
  } finally {
    await run('zfs', ['unmount', `${target}/a`]);
  }

  // Positive control: the same bundle, unedited, applies to the twin that has no local change.
  await zferryOk('import', clean, twin);
  assert.deepEqual((await guidList(twin)).filter((l) => l.includes('@s2')).length, 3);
});

test('createdAt decides nothing: an old bundle re-dated 2099 cannot make --delete undo a newer round', async () => {
  const target = `${dst.name}/l`;
  const first = await exportTo();
  await zferryOk('import', first, target, '--delete');
  // Round 2: the source moves on and drops a snapshot.
  await snapshot(`${src.name}@s3`, true);
  const second = await exportTo({ disk: first, target });
  await zferryOk('import', second, target, '--delete');
  const after2 = await fingerprint(target);
  const txg = (await run('zfs', ['get', '-H', '-o', 'value', 'zferry:source-txg', target])).trim();
  assert.match(txg, /^[0-9]+$/);

  // The first (genuine, older) bundle, re-dated and replayed alone.
  const replay = await disk();
  await cp(first, replay, { recursive: true });
  const old = await bundleOf(replay);
  await editManifest(old, (m) => { m.createdAt = '2099-01-01T00:00:00.000Z'; });
  const oldTxg = JSON.parse(await readFile(path.join(old, 'manifest.json'), 'utf8')).inventory.datasets
    .flatMap((x: { snapshots: Array<{ createtxg: string }> }) => x.snapshots.map((s) => BigInt(s.createtxg)))
    .reduce((a: bigint, b: bigint) => (b > a ? b : a), 0n);
  // --max-delete all: no other guard may stop the bundle first; the refusal must be the latest view's.
  const r = await zferry('import', replay, target, '--delete', '--max-delete', 'all');
  assert.equal(r.code, 1);
  assert.equal(refusalOf(r.stderr),
    `zferry: --delete: no bundle here can speak for the source's current state: ${old}/manifest.json shows the source as of txg ${oldTxg}, older than what ${target} already received (zferry:source-txg=${txg}); nothing was received`);
  assert.equal(await fingerprint(target), after2, 'nothing received or destroyed');

  // Beside a real newer bundle (as in a relay spool), the re-dated one is neither applied last nor believed.
  await run('zfs', ['destroy', '-r', `${src.name}@s1`]);
  await snapshot(`${src.name}@s4`, true);
  const third = await exportTo({ disk: second, target });
  await cp(await bundleOf(third), path.join(replay, path.basename(await bundleOf(third))), { recursive: true });
  await zferryOk('import', replay, target, '--delete', '--max-delete', 'all');
  const want = (await guidList(src.name)).map((l) => l.replace(/@[^=]*=/, '='));
  assert.deepEqual((await guidList(target)).map((l) => l.replace(/@[^=]*=/, '=')), want);
  assert.deepEqual(await datasetList(target), ['', 'a', 'kid']);
});

test('a manifest whose inventory lacks its root, or contradicts its streams, is refused before anything is touched', async () => {
  const target = `${dst.name}/e`;
  await zferryOk('import', await exportTo(), target);
  await snapshot(`${src.name}@s5`, true);
  const before = await fingerprint(target);
  for (const [what, edit, line] of [
    ['an empty inventory dated 2099', (m: Record<string, any>) => { m.createdAt = '2099-01-01T00:00:00.000Z'; m.inventory.datasets = []; },
      (file: string, _m: Record<string, any>) => `${file}: /inventory/datasets lacks the root dataset ${src.name} (path "")`],
    ['a stream of a dataset the inventory leaves out', (m: Record<string, any>) => { m.inventory.datasets = m.inventory.datasets.filter((x: { path: string }) => x.path !== 'kid'); },
      (file: string, m: Record<string, any>) => `${file}: /streams/${m.streams.findIndex((x: { dataset: string }) => x.dataset === 'kid')}/dataset "kid" is not in the manifest's own inventory`],
  ] as const) {
    const d = await exportTo();
    const bundle = await bundleOf(d);
    const original = JSON.parse(await readFile(path.join(bundle, 'manifest.json'), 'utf8'));
    await editManifest(bundle, edit);
    const r = await zferry('import', d, target, '--delete');
    assert.equal(r.code, 1, what);
    assert.equal(refusalOf(r.stderr), "zferry: " + line(path.join(bundle, 'manifest.json'), original), what);
    assert.equal(await fingerprint(target), before, what);
    await rm(d, { recursive: true, force: true });
  }
});

/** stderr without `import --delete`'s warning about unsigned bundles (these bundles are unsigned on purpose). */
function refusalOf(stderr: string): string {
  return stderr.trim().split('\n').filter((l) => !l.startsWith('zferry: warning: --delete without --trust')).join('\n');
}
