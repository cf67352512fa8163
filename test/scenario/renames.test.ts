/**
 * Renames, not resends, on real ZFS: a dataset renamed on the source, one
 * moved to another parent and a renamed snapshot reach the target as renames
 * (same dataset, same snapshot guids), the bundle carries no full stream for
 * them, and --delete destroys nothing of the old paths; in two-disk rotation
 * the second bundle is planned on the first one's renames.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../helpers/zfslab.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { datasetList, destroyQuietly, guidList, snapshot, writeData } from '../helpers/fixtures.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';

let lab: TwoPools;
let target: string;
let n = 0;

/** zfs-fuse calls a mounted filesystem busy when it is renamed: the source is unmounted first (snapshots need no mount). */
async function renameOnSource(from: string, to: string, parents = false): Promise<void> {
  await run('zfs', ['unmount', `${lab.src.name}/${from}`], { allowFailure: true });
  await run('zfs', ['rename', ...(parents ? ['-p'] : []), `${lab.src.name}/${from}`, `${lab.src.name}/${to}`]);
}

const datasetGuid = async (name: string) => (await run('zfs', ['get', '-H', '-p', '-o', 'value', 'guid', name])).trim();
/** dataset=guid per snapshot, names left out: the same set means the same snapshots wherever they are called what. */
const guidsOnly = (l: string[]) => l.map((x) => x.replace(/@[^=]*=/, '=')).sort();

async function exportTo(...flags: string[]): Promise<{ disk: string; result: any; bundle: string }> {
  const disk = path.join(lab.work, `disk${++n}`);
  const r = await zferryOk('export', lab.src.name, disk, '--json', ...flags);
  const result = JSON.parse(r.stdout);
  return { disk, result, bundle: result.bundle };
}

before(async () => {
  lab = await twoPools('rn');
  target = `${lab.dst.name}/mirror`;
  for (const d of ['data', 'data/a', 'data/a/kid', 'data/b']) await run('zfs', ['create', `${lab.src.name}/${d}`]);
  await writeData(`${lab.src.name}/data/a`, 'big.bin', 1024);
  await writeData(`${lab.src.name}/data/b`, 'b.bin', 256);
  await snapshot(`${lab.src.name}@s1`, true);
  const { disk } = await exportTo();
  await zferryOk('import', disk, target);
});

after(async () => {
  await lab?.teardown();
});

test('a renamed dataset, a dataset moved to a new parent and a renamed snapshot are renamed on the target, not resent; --delete destroys nothing', async () => {
  const aGuid = await datasetGuid(`${target}/data/a`);
  const bGuid = await datasetGuid(`${target}/data/b`);
  const before = guidsOnly(await guidList(target));
  await renameOnSource('data/a', 'data/a2');
  await renameOnSource('data/b', 'moved/b', true);
  await run('zfs', ['rename', `${lab.src.name}/data@s1`, `${lab.src.name}/data@first`]);
  await snapshot(`${lab.src.name}@s2`, true);

  const { disk, result, bundle } = await exportTo();
  const kinds = result.plan.steps.map((s: any) => `${s.dataset}:${s.kind}${s.kind === 'rename' ? `<${s.renamedFrom}` : ''}`);
  assert.deepEqual(kinds.filter((k: string) => k.includes('rename')).sort(), ['data/a2:rename<data/a', 'data:rename<data', 'moved/b:rename<data/b']);
  const manifest = JSON.parse(await readFile(path.join(bundle, 'manifest.json'), 'utf8'));
  // `moved` is new on the source (made by rename -p, then snapshotted): only its own empty stream is full.
  assert.deepEqual(manifest.streams.filter((s: any) => s.kind === 'full').map((s: any) => s.dataset), ['moved'], 'the renamed data are not sent again');
  assert.ok(result.storedBytes < 256 * 1024, `the bundle holds only incrementals (${result.storedBytes} bytes)`);
  const restore = await readFile(path.join(bundle, 'RESTORE.txt'), 'utf8');
  assert.match(restore, /^zfs rename -p "\$TARGET"'\/data\/a' "\$TARGET"'\/data\/a2'$/m);
  assert.match(restore, /^zfs rename "\$TARGET"'\/data@s1' "\$TARGET"'\/data@first'$/m);

  const dry = JSON.parse((await zferryOk('import', disk, target, '--dry-run', '--delete', '--json')).stdout);
  assert.deepEqual(dry.extras.datasets, []);
  assert.ok(dry.bundles[0].applied.some((a: any) => a.kind === 'rename' && a.renamedFrom === 'data/a' && a.dataset === 'data/a2'));

  const r = JSON.parse((await zferryOk('import', disk, target, '--delete', '--json')).stdout);
  assert.deepEqual(r.extras.datasets, []);
  assert.deepEqual(await datasetList(target), ['', 'data', 'data/a2', 'data/a2/kid', 'moved', 'moved/b']);
  // The same datasets, renamed: their guids did not change, and every old snapshot is still there by guid.
  assert.equal(await datasetGuid(`${target}/data/a2`), aGuid);
  assert.equal(await datasetGuid(`${target}/moved/b`), bGuid);
  const after = guidsOnly(await guidList(target));
  for (const g of before) {
    const moved = g.replace(/^data\/a(\/|=)/, 'data/a2$1').replace(/^data\/b=/, 'moved/b=');
    assert.ok(after.includes(moved), `${g} kept as ${moved}`);
  }
  assert.deepEqual(await guidList(target), await guidList(lab.src.name));
});

test('two disks in rotation: the second bundle is planned on the first one\'s rename and waits for it', async () => {
  await renameOnSource('data/a2', 'data/a3');
  await snapshot(`${lab.src.name}@s3`, true);
  const first = await exportTo();
  assert.ok(first.result.plan.steps.some((s: any) => s.kind === 'rename' && s.renamedFrom === 'data/a2' && s.dataset === 'data/a3'));
  await snapshot(`${lab.src.name}@s4`, true);
  const second = await exportTo();
  assert.equal(second.result.basis.origin, 'journal');
  assert.deepEqual(second.result.plan.steps.filter((s: any) => s.kind !== 'incremental'), [], 'planned on the projection: no rename, no full stream');

  // Alone, the second bundle is deferred (exit 3): nothing is renamed or received.
  const early = await zferry('import', second.disk, target);
  assert.equal(early.code, 3);
  assert.match(early.stderr, /deferred: it was planned on top of bundle/);
  assert.deepEqual(await datasetList(target), ['', 'data', 'data/a2', 'data/a2/kid', 'moved', 'moved/b']);
  await zferryOk('import', first.disk, target, '--delete');
  await zferryOk('import', second.disk, target, '--delete');
  assert.deepEqual(await datasetList(target), ['', 'data', 'data/a3', 'data/a3/kid', 'moved', 'moved/b']);
  assert.deepEqual(await guidList(target), await guidList(lab.src.name));
});

test('a rename whose new path is taken on the target is a conflict naming both sides; --bundle-format 1 refuses a rename in one line', async () => {
  await run('zfs', ['create', `${target}/data/a4`]);
  await snapshot(`${target}/data/a4@mine`);
  await renameOnSource('data/a3', 'data/a4');
  await snapshot(`${lab.src.name}@s5`, true);
  // Planned against what the target really holds (zferry state), which now includes the dataset in the way.
  const state = path.join(lab.work, 'state.json');
  await zferryOk('state', target, '-o', state);
  const r = await zferry('export', lab.src.name, path.join(lab.work, 'disk-conflict'), '--since', state, '--no-journal', '--dry-run');
  assert.match(r.stderr, new RegExp(`conflict: ${target}/data/a4: ${lab.src.name}/data/a4 was renamed or moved on the source, and the target holds its snapshots as ${target}/data/a3 .*but ${target}/data/a4 is taken there by another dataset .*rename or destroy ${target}/data/a4 on the target`));

  // zfs-fuse calls a just-mounted dataset busy: unmounted and retried, snapshot first.
  await destroyQuietly(`${target}/data/a4@mine`);
  await destroyQuietly(`${target}/data/a4`);
  const state2 = path.join(lab.work, 'state2.json');
  await zferryOk('state', target, '-o', state2);
  const v1 = await zferry('export', lab.src.name, path.join(lab.work, 'disk-v1'), '--since', state2, '--no-journal', '--bundle-format', '1');
  assert.equal(v1.code, 1);
  assert.equal(v1.stderr.trim().split('\n').length, 1);
  assert.match(v1.stderr, /data\/a4: --bundle-format 1 cannot carry a rename/);
});
