/**
 * `import --delete --delete-after AGE` on real ZFS: a dataset gone from the
 * source stays on the target, marked with when it was first missing, until
 * a bundle AGE later says it is still gone; then it is destroyed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferryOk } from '../helpers/cli.js';
import { datasetList, snapshot, writeData } from '../helpers/fixtures.js';

let pools: TwoPools | undefined;
let src: TestPool;
let dst: TestPool;
let work: string;

before(async () => {
  ({ src, dst, work } = pools = await twoPools('dla', 96));
});

after(async () => {
  await pools?.teardown();
});

test('a dataset missing on the source is kept and marked until it has been missing for --delete-after, then destroyed', async () => {
  const target = `${dst.name}/backup`;
  for (const d of ['keep', 'gone']) await run('zfs', ['create', `${src.name}/${d}`]);
  await writeData(`${src.name}/gone`, 'g.bin', 16);
  await snapshot(`${src.name}@s1`, true);
  await zferryOk('export', src.name, path.join(work, 'd1'));
  await zferryOk('import', path.join(work, 'd1'), target);

  // The source loses `gone` (the user releases zferry's base hold first); the next bundle says so.
  await run('zfs', ['release', 'zferry', `${src.name}/gone@s1`], { allowFailure: true });
  await run('zfs', ['destroy', '-r', `${src.name}/gone`]);
  await snapshot(`${src.name}@s2`, true);
  const first = JSON.parse((await zferryOk('export', src.name, path.join(work, 'd2'), '--json')).stdout);
  const r2 = JSON.parse((await zferryOk('import', path.join(work, 'd2'), target, '--delete', '--delete-after', '3s', '--json')).stdout);
  assert.deepEqual(r2.extras.datasets, []);
  assert.match(JSON.stringify(r2.extras.kept), /gone.*--delete-after/);
  assert.deepEqual(await datasetList(target), ['', 'gone', 'keep']);
  const mark = (await run('zfs', ['get', '-H', '-o', 'value', 'zferry:missing-since', `${target}/gone`])).trim();
  const createdAt = JSON.parse(await (await import('node:fs/promises')).readFile(path.join(first.bundle, 'manifest.json'), 'utf8')).createdAt;
  assert.equal(mark, createdAt, 'the clock starts at the first applied bundle that lacked it');

  // A bundle made AGE later: the dataset has been missing long enough.
  await new Promise((r) => setTimeout(r, 3500));
  await snapshot(`${src.name}@s3`, true);
  await zferryOk('export', src.name, path.join(work, 'd3'));
  const r3 = JSON.parse((await zferryOk('import', path.join(work, 'd3'), target, '--delete', '--delete-after', '3s', '--json')).stdout);
  assert.deepEqual(r3.extras.datasets, [`${target}/gone`]);
  assert.deepEqual(await datasetList(target), ['', 'keep']);
});
