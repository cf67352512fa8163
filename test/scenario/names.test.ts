/**
 * Dataset and snapshot names are data, never shell text: names with spaces
 * and the punctuation ZFS allows (`_`, `-`, `.`, `:`) round-trip through
 * export, import and the stock RESTORE.txt. Names ZFS itself refuses (`;`,
 * `$(...)`, quotes) cannot exist on a source; a manifest that carries one
 * anyway is refused by zferry before any zfs call — that is proved in
 * test/unit/manifest-hostile.test.ts ('dataset with ;', 'dataset with $()',
 * 'snapshot name with ;' and the fast-check fuzz), not repeated here.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { zferryOk } from '../helpers/cli.js';
import { datasetList, guidList, snapshot, writeData } from '../helpers/fixtures.js';

/** Every character zfs-fuse accepts in a dataset name besides letters and digits. */
const ODD = ['with space', 'with space/in:ner.x', 'a_b-c.d:e'];
const SNAPS = ['snap one', 's_1-a.b:c'];

let src: TestPool;
let dst: TestPool;
let fresh: TestPool;
let work: string;
let bundle: string;

before(async () => {
  [src, dst, fresh] = await Promise.all([makePool('nms', 64), makePool('nmd', 64), makePool('nmf', 64)]);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-names-'));
  for (const d of ODD) await run('zfs', ['create', `${src.name}/${d}`]);
  for (const [i, snap] of SNAPS.entries()) {
    for (const d of ['', ...ODD]) await writeData(d ? `${src.name}/${d}` : src.name, `f${i}.bin`, 8);
    await snapshot(`${src.name}@${snap}`, true);
  }
  const disk = path.join(work, 'disk');
  await zferryOk('export', src.name, disk, '--no-journal');
  bundle = path.join(disk, (await readdir(disk))[0]);
});

after(async () => {
  await Promise.all([src?.destroy(), dst?.destroy(), fresh?.destroy()]);
  await rm(work, { recursive: true, force: true });
});

test('names with spaces, _ - . : round-trip through export and import, into a target whose name has them too', async () => {
  const m = JSON.parse(await readFile(path.join(bundle, 'manifest.json'), 'utf8')) as { streams: Array<{ dataset: string; to: { name: string } | null }> };
  assert.deepEqual([...new Set(m.streams.map((s) => s.dataset))].sort(), ['', ...ODD].sort());
  assert.ok(m.streams.some((s) => s.to?.name === 'snap one'));
  const target = `${dst.name}/my copy:1.x`;
  await zferryOk('import', bundle, target);
  assert.deepEqual(await datasetList(target), await datasetList(src.name));
  assert.deepEqual(await guidList(target), await guidList(src.name));
});

test('RESTORE.txt quotes every name: stock bash restores them into a fresh pool with the same guids', async () => {
  const text = await readFile(path.join(bundle, 'RESTORE.txt'), 'utf8');
  assert.match(text, /zfs recv -u "\$TARGET"'\/with space\/in:ner\.x'$/m);
  const target = `${fresh.name}/re stored`;
  const r = await execa('bash', [path.join(bundle, 'RESTORE.txt')], { env: { LC_ALL: 'C', TARGET: target }, reject: false, stdin: 'ignore' });
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.deepEqual(await guidList(target), await guidList(src.name));
});

test('zfs itself refuses names with ; $(...) and quotes, cleanly, so no source can hold them', async () => {
  const canary = path.join(work, 'canary');
  for (const [name, bad] of [['semi;colon', ';'], [`sub$(touch ${canary})`, '$'], ['back`id`', '`'], ["quo'te", "'"], ['dq"x', '"']] as const) {
    const r = await execa('zfs', ['create', `${src.name}/${name}`], { reject: false, stdin: 'ignore', env: { LC_ALL: 'C' } });
    assert.notEqual(r.exitCode, 0, `zfs create accepted ${name}`);
    assert.ok(String(r.stderr).includes(`invalid character`) && String(r.stderr).includes(bad), `${name}: ${r.stderr}`);
    const snap = await execa('zfs', ['snapshot', `${src.name}@${name}`], { reject: false, stdin: 'ignore', env: { LC_ALL: 'C' } });
    assert.notEqual(snap.exitCode, 0, `zfs snapshot accepted @${name}`);
  }
  assert.equal(existsSync(canary), false, 'nothing ran the $(...)');
  assert.deepEqual(await datasetList(src.name), ['', ...ODD].sort());
});
