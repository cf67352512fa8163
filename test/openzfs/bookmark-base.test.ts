/**
 * OpenZFS only (bookmarks): after an export the newest exported snapshot is
 * kept by a bookmark ds#zferry-<guid>; when the snapshot is rotated away on
 * the source, the next export sends -i #bookmark → first newer snapshot and
 * then -I to the newest, so the target ends with every snapshot.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { lane, makePool, run, type TestPool } from '../helpers/zfslab.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let disk: string;

before(async () => {
  if (lane !== 'openzfs') return;
  src = await makePool('obs', 128);
  dst = await makePool('obd', 128);
  disk = await mkdtemp(path.join(os.tmpdir(), 'zferry-bm-'));
});

after(async () => {
  await src?.destroy();
  await dst?.destroy();
  if (disk) await rm(disk, { recursive: true, force: true });
});

test('a rotated-away base is replaced by its zferry bookmark and nothing is lost', { skip: lane !== 'openzfs' && 'bookmarks need OpenZFS' }, async () => {
  const target = `${dst.name}/copy`;
  await run('zfs', ['create', `${src.name}/a`]);
  await writeData(`${src.name}/a`, 'one.bin', 16);
  await snapshot(`${src.name}@s1`, true);
  await zferryOk('export', src.name, disk);
  const guid = (await run('zfs', ['get', '-H', '-p', '-o', 'value', 'guid', `${src.name}/a@s1`])).trim();
  assert.match(await run('zfs', ['list', '-H', '-t', 'bookmark', '-o', 'name', `${src.name}/a#zferry-${guid}`]), /zferry-/);
  await zferryOk('import', disk, target);

  await writeData(`${src.name}/a`, 'two.bin', 16);
  await snapshot(`${src.name}@s2`, true);
  await snapshot(`${src.name}@s3`, true);
  await run('zfs', ['destroy', `${src.name}/a@s1`]);
  const exp = JSON.parse((await zferryOk('export', src.name, disk, '--json')).stdout);
  const aSteps = exp.plan.steps.filter((s: { dataset: string }) => s.dataset === 'a');
  assert.deepEqual(aSteps.map((s: { from: { name: string; bookmark?: boolean }; to: { name: string }; intermediates: boolean }) =>
    `${s.from.bookmark ? '#' : '@'}${s.from.name}>${s.to.name}:${s.intermediates ? '-I' : '-i'}`), [`#zferry-${guid}>s2:-i`, '@s2>s3:-I']);
  await zferryOk('import', disk, target, '--delete');
  const strip = (l: string[]) => l.filter((x) => !x.startsWith('a@s1='));
  assert.deepEqual(strip(await guidList(target)), await guidList(src.name));
});

test('a source left with only bookmarks, whose target moved on past them, is a conflict naming both sides, not a skip', { skip: lane !== 'openzfs' && 'bookmarks need OpenZFS' }, async () => {
  const target = `${dst.name}/diverged`;
  const disk2 = await mkdtemp(path.join(os.tmpdir(), 'zferry-bm2-'));
  try {
    await run('zfs', ['create', `${src.name}/b`]);
    await writeData(`${src.name}/b`, 'one.bin', 16);
    await snapshot(`${src.name}/b@b1`);
    await zferryOk('export', `${src.name}/b`, disk2, '--no-journal');
    await zferryOk('import', disk2, target);
    // The target moves on; the source rotates its only snapshot away, keeping zferry's bookmark.
    await snapshot(`${target}@target-only`);
    await run('zfs', ['destroy', `${src.name}/b@b1`]);
    const state = path.join(disk2, 'state.json');
    await zferryOk('state', target, '-o', state);
    const r = await zferry('export', `${src.name}/b`, path.join(disk2, 'next'), '--no-journal', '--since', state, '--dry-run', '--json');
    assert.equal(r.code, 3, r.stderr);
    const plan = JSON.parse(r.stdout).plan;
    assert.deepEqual(plan.skipped, []);
    assert.equal(plan.conflicts.length, 1);
    assert.match(plan.conflicts[0].message, new RegExp(`^${target}: diverged: .*#zferry-.* that ${src.name}/b lacks \\(target-only: @target-only;`));
  } finally {
    await rm(disk2, { recursive: true, force: true });
  }
});
