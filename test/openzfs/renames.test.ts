/**
 * OpenZFS only: renames, not resends, for what zfs-fuse cannot show — a
 * renamed zvol, a renamed encrypted dataset (raw sends, no key on the
 * target) and a bookmark base after the rename. Each round is export +
 * import --delete; the bundle must carry no full stream for the renamed
 * dataset and the target's copy must be renamed (same dataset guid), never
 * destroyed. Runs in the QEMU guest lane (ZFERRY_LANE=openzfs).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { lane, makePool, mountpointOf, run, type TestPool } from '../helpers/zfslab.js';
import { zferryOk } from '../helpers/cli.js';
import { guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let work: string;
const keyFile = '/tmp/zferry-test-rename.key';
const skip = lane !== 'openzfs' && 'zvols, encryption and bookmarks need OpenZFS';

before(async () => {
  if (lane !== 'openzfs') return;
  src = await makePool('orns', 256);
  dst = await makePool('ornd', 256);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-orn-'));
  await writeFile(keyFile, randomBytes(32));
});

after(async () => {
  await src?.destroy();
  await dst?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
  await rm(keyFile, { force: true });
});

const datasetGuid = async (name: string) => (await run('zfs', ['get', '-H', '-p', '-o', 'value', 'guid', name])).trim();

/** export ROOT + import --delete; returns the export's JSON and its manifest. */
async function round(root: string, target: string, disk: string): Promise<{ result: any; manifest: any }> {
  const result = JSON.parse((await zferryOk('export', root, disk, '--json')).stdout);
  await zferryOk('import', disk, target, '--delete');
  return { result, manifest: result.bundle ? JSON.parse(await readFile(path.join(result.bundle, 'manifest.json'), 'utf8')) : null };
}

/** Waits until udev has made the zvol's node (it may take seconds under emulation). */
async function untilDevice(dev: string): Promise<void> {
  await execa('udevadm', ['settle'], { reject: false });
  for (let i = 0; i < 300; i++) {
    if ((await execa('test', ['-e', dev], { reject: false })).exitCode === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${dev}: udev made no node within 30 s`);
}

async function deviceSha(dev: string): Promise<string> {
  await untilDevice(dev);
  const h = createHash('sha256');
  for await (const chunk of createReadStream(dev)) h.update(chunk as Buffer);
  return h.digest('hex');
}

test('a zvol renamed and moved on the source is renamed on the target, then sent incrementally', { skip }, async () => {
  const root = `${src.name}/z`;
  const target = `${dst.name}/z`;
  const disk = path.join(work, 'zvol');
  await run('zfs', ['create', '-p', '-V', '32M', '-o', 'volblocksize=16k', `${root}/vms/disk0`]);
  await untilDevice(`/dev/zvol/${root}/vms/disk0`);
  await run('dd', ['if=/dev/urandom', `of=/dev/zvol/${root}/vms/disk0`, 'bs=1M', 'count=8', 'conv=fsync']);
  await snapshot(`${root}@v1`, true);
  await round(root, target, disk);
  const before = await datasetGuid(`${target}/vms/disk0`);

  await run('zfs', ['rename', '-p', `${root}/vms/disk0`, `${root}/old/disk0-archived`]);
  await snapshot(`${root}@v2`, true);
  const { result, manifest } = await round(root, target, disk);
  assert.ok(result.plan.steps.some((s: any) => s.kind === 'rename' && s.renamedFrom === 'vms/disk0' && s.dataset === 'old/disk0-archived'));
  assert.equal(manifest.streams.filter((s: any) => s.kind === 'full' && s.dataset === 'old/disk0-archived').length, 0);
  const copy = `${target}/old/disk0-archived`;
  assert.equal(await datasetGuid(copy), before, 'the same zvol, renamed');
  assert.equal((await run('zfs', ['get', '-H', '-o', 'value', 'type', copy])).trim(), 'volume');
  await run('zfs', ['set', 'snapdev=visible', copy]);
  await run('zfs', ['set', 'snapdev=visible', `${root}/old/disk0-archived`]);
  assert.equal(await deviceSha(`/dev/zvol/${copy}@v2`), await deviceSha(`/dev/zvol/${root}/old/disk0-archived@v2`));
  assert.deepEqual(await guidList(target), await guidList(root));
});

test('a renamed encrypted dataset is renamed on the target and stays raw: no key loaded, no full stream', { skip }, async () => {
  const root = `${src.name}/e`;
  const target = `${dst.name}/e`;
  const disk = path.join(work, 'enc');
  await run('zfs', ['create', root]);
  await run('zfs', ['create', '-o', 'encryption=aes-256-gcm', '-o', 'keyformat=raw', '-o', `keylocation=file://${keyFile}`, `${root}/secret`]);
  await writeData(`${root}/secret`, 'one.bin', 512);
  await snapshot(`${root}@e1`, true);
  await round(root, target, disk);
  const before = await datasetGuid(`${target}/secret`);

  await run('zfs', ['rename', `${root}/secret`, `${root}/vault`]);
  await writeData(`${root}/vault`, 'two.bin', 64);
  await snapshot(`${root}@e2`, true);
  const { manifest } = await round(root, target, disk);
  assert.deepEqual(manifest.streams.filter((s: any) => s.dataset === 'vault').map((s: any) => s.kind), ['rename', 'incremental']);
  assert.ok(manifest.streams.filter((s: any) => s.kind === 'incremental' && s.dataset === 'vault').every((s: any) => s.sendFlags.includes('-w')));
  const copy = `${target}/vault`;
  assert.equal(await datasetGuid(copy), before);
  assert.equal((await run('zfs', ['get', '-H', '-o', 'value', 'keystatus', copy])).trim(), 'unavailable');
  await run('zfs', ['load-key', '-L', `file://${keyFile}`, copy]);
  await run('zfs', ['mount', copy]);
  try {
    const mp = await mountpointOf(copy);
    assert.equal((await readFile(path.join(mp, 'two.bin'))).length > 0, true);
  } finally {
    await run('zfs', ['unmount', copy]);
    await run('zfs', ['unload-key', copy]);
  }
  assert.deepEqual(await guidList(target), await guidList(root));
});

test('after a rename, the base kept only as a zferry bookmark still finds the target copy and is sent from', { skip }, async () => {
  const root = `${src.name}/b`;
  const target = `${dst.name}/b`;
  const disk = path.join(work, 'bm');
  await run('zfs', ['create', '-p', `${root}/a`]);
  await writeData(`${root}/a`, 'one.bin', 64);
  await snapshot(`${root}@s1`, true);
  await round(root, target, disk);
  const guid = (await run('zfs', ['get', '-H', '-p', '-o', 'value', 'guid', `${root}/a@s1`])).trim();

  await run('zfs', ['rename', `${root}/a`, `${root}/a2`]);
  await writeData(`${root}/a2`, 'two.bin', 64);
  await snapshot(`${root}@s2`, true);
  // The base snapshot goes; zferry's bookmark of it (renamed with its dataset) stays.
  await run('zfs', ['destroy', `${root}/a2@s1`]);
  const { result, manifest } = await round(root, target, disk);
  const steps = result.plan.steps.filter((s: any) => s.dataset === 'a2');
  assert.deepEqual(steps.map((s: any) => s.kind === 'rename' ? `rename<${s.renamedFrom}` : `${s.from.bookmark ? '#' : '@'}${s.from.name}>${s.to.name}`),
    ['rename<a', `#zferry-${guid}>s2`]);
  assert.equal(manifest.streams.filter((s: any) => s.kind === 'full').length, 0);
  // --delete follows the source: a2@s1 went there, so it goes here too; a2@s2 is new.
  assert.deepEqual((await guidList(target)).filter((l) => l.startsWith('a2@')).map((l) => l.split('=')[0]), ['a2@s2']);
  assert.deepEqual(await guidList(target), await guidList(root));
});
