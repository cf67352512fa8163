/**
 * A mounted, half-seeded target (issue 13.5): children received without -u
 * were mounted, and their mountpoint folders were written into the parent,
 * so the parent has changed since its newest snapshot. zfs-fuse has no
 * `written`: the change is found from space figures before anything is
 * received, the refusal names --rollback and readonly=on, and --rollback
 * then brings the target up to date.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { guidList, snapshot, stockSendRecv, writeData } from '../helpers/fixtures.js';

let pools: TwoPools | undefined;
let src: TestPool;
let dst: TestPool;
let work: string;

before(async () => {
  ({ src, dst, work } = pools = await twoPools('mtg', 96));
});

after(async () => {
  await pools?.teardown();
});

test('a parent changed by its children\'s mountpoint folders is refused before anything is received, naming --rollback and readonly=on', async () => {
  const a = `${src.name}/a`;
  const target = `${dst.name}/backup`;
  await run('zfs', ['create', a]);
  await writeData(a, 'one.bin', 32);
  await snapshot(`${a}@s1`);
  // The child is newer than the parent's snapshot: its folder is not in @s1.
  await run('zfs', ['create', `${a}/kid`]);
  await writeData(`${a}/kid`, 'k.bin', 16);
  await snapshot(`${a}/kid@k1`);
  await writeData(a, 'two.bin', 16);
  await snapshot(`${a}@s2`);

  // The user's hand-made seed, mounted (no -u): mounting kid writes its folder into backup.
  await stockSendRecv([`${a}@s1`], [target], { mounted: true });
  await stockSendRecv([`${a}/kid@k1`], [`${target}/kid`], { mounted: true });
  // A snapshot elsewhere in the pool commits the open transaction group, as time would.
  await snapshot(`${dst.name}@settle`);

  const state = path.join(work, 'state.json');
  await zferryOk('state', target, '-o', state);
  const disk = path.join(work, 'disk');
  await zferryOk('export', a, disk, '--since', state, '--no-journal');
  const before = await guidList(target);

  const refused = await zferry('import', disk, target);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, new RegExp(`${target} has been modified since its newest snapshot @s1 \\(.+\\); nothing was received; use --rollback .*zfs set readonly=on ${target}`));
  assert.deepEqual(await guidList(target), before, 'nothing was received');

  await zferryOk('import', disk, target, '--rollback');
  const after = await guidList(target);
  assert.ok(after.some((l) => l.startsWith('@s2=')), after.join(' '));
});

