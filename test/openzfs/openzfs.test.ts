/**
 * What only real OpenZFS can show: zvols, native encryption and raw sends,
 * compressed/large-block sends, properties kept off the target host's paths,
 * bookmarks, and interrupted receives. Runs in the QEMU guest lane
 * (ZFERRY_LANE=openzfs, `npm run test:openzfs`).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { makePool, mountpointOf, run, type TestPool } from '../helpers/zfslab.js';
import { CLI, zferry, zferryOk } from '../helpers/cli.js';
import { datasetList, guidList, snapshot, stockSendRecv, writeData } from '../helpers/fixtures.js';
import { Zfs } from '../../src/zfs/index.js';

let src: TestPool;
let dst: TestPool;
let work: string;
const keyFile = '/tmp/zferry-test-raw.key';
const MARKER = 'ZFERRY-PLAINTEXT-MARKER-7d1c';

before(async () => {
  src = await makePool('ozs', 512);
  dst = await makePool('ozd', 512);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-oz-'));
  await writeFile(keyFile, randomBytes(32));
});

after(async () => {
  await src?.destroy();
  await dst?.destroy();
  await rm(work, { recursive: true, force: true });
});

async function settle(): Promise<void> {
  await run('udevadm', ['settle'], { allowFailure: true });
}

/** sha256 of a block device, after udev made its node. */
async function deviceSha(dev: string): Promise<string> {
  await settle();
  const h = createHash('sha256');
  for await (const chunk of createReadStream(dev)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function writeZvol(vol: string, offsetMiB: number, mib: number): Promise<void> {
  await settle();
  await run('dd', [`if=/dev/urandom`, `of=/dev/zvol/${vol}`, 'bs=1M', `seek=${offsetMiB}`, `count=${mib}`, 'conv=fsync,notrunc', 'status=none']);
}

async function exportImport(source: string, target: string, disk: string, ...extra: string[]): Promise<{ bundle: string; manifest: { streams: Array<{ dataset: string; sendFlags: string[] }> } }> {
  const r = JSON.parse((await zferryOk('export', source, disk, '--json', ...extra)).stdout);
  await zferryOk('import', disk, target);
  return { bundle: r.bundle, manifest: r.bundle ? JSON.parse(await readFile(path.join(r.bundle, 'manifest.json'), 'utf8')) : null };
}

test('zvols: full and incremental, the target device equals the source at every snapshot', async () => {
  const vol = `${src.name}/vm/disk0`;
  await run('zfs', ['create', '-p', '-V', '32M', '-o', 'volblocksize=16k', vol]);
  await writeZvol(vol, 0, 8);
  await snapshot(`${vol}@v1`);
  await writeZvol(vol, 16, 4);
  await snapshot(`${vol}@v2`);
  const disk = path.join(work, 'zvol');
  await exportImport(`${src.name}/vm`, `${dst.name}/vm`, disk);
  await writeZvol(vol, 4, 4);
  await snapshot(`${vol}@v3`);
  await exportImport(`${src.name}/vm`, `${dst.name}/vm`, disk);

  const copy = `${dst.name}/vm/disk0`;
  assert.equal((await run('zfs', ['get', '-H', '-o', 'value', 'type', copy])).trim(), 'volume');
  await run('zfs', ['set', 'snapdev=visible', vol]);
  await run('zfs', ['set', 'snapdev=visible', copy]);
  for (const s of ['v1', 'v2', 'v3']) {
    assert.equal(await deviceSha(`/dev/zvol/${copy}@${s}`), await deviceSha(`/dev/zvol/${vol}@${s}`), `zvol at @${s}`);
  }
  assert.equal(await deviceSha(`/dev/zvol/${copy}`), await deviceSha(`/dev/zvol/${vol}`));
});

test('import --delete: a zvol gone from the source goes from the target with its snapshots, and a zvol\'s snapshots gone from the source go too', async () => {
  // After the test above: vm/disk0 @v1 @v2 @v3 on both sides. A second zvol, carried over once.
  const vol = `${src.name}/vm/disk1`;
  await run('zfs', ['create', '-V', '16M', '-o', 'volblocksize=16k', vol]);
  await writeZvol(vol, 0, 4);
  await snapshot(`${vol}@w1`);
  const disk = path.join(work, 'zvol');
  await exportImport(`${src.name}/vm`, `${dst.name}/vm`, disk);
  assert.deepEqual(await datasetList(`${dst.name}/vm`), ['', 'disk0', 'disk1']);

  // Gone on the source: the whole of disk1, and disk0's two older snapshots; disk0 moves on to @v4.
  // (zferry's holds on bases are released first, as a user deleting by hand would.)
  for (const snap of [`${vol}@w1`, `${src.name}/vm/disk0@v1`, `${src.name}/vm/disk0@v2`, `${src.name}/vm/disk0@v3`]) {
    for (const tag of (await run('zfs', ['holds', '-H', snap])).split('\n').filter(Boolean).map((l) => l.split('\t')[1])) await run('zfs', ['release', tag!, snap]);
  }
  await settle();
  await run('zfs', ['destroy', '-r', vol]);
  await run('zfs', ['destroy', `${src.name}/vm/disk0@v1,v2`]);
  await writeZvol(`${src.name}/vm/disk0`, 8, 2);
  await snapshot(`${src.name}/vm/disk0@v4`);

  const r = JSON.parse((await zferryOk('export', `${src.name}/vm`, disk, '--json')).stdout);
  const dry = JSON.parse((await zferryOk('import', disk, `${dst.name}/vm`, '--dry-run', '--delete', '--json')).stdout).extras;
  assert.deepEqual(dry.datasets, [`${dst.name}/vm/disk1`]);
  // The gone zvol's snapshots are listed with it: they go with it.
  assert.deepEqual([...dry.snapshots].sort(), [`${dst.name}/vm/disk0@v1`, `${dst.name}/vm/disk0@v2`, `${dst.name}/vm/disk1@w1`]);
  // disk1 goes, its device node with it, and disk0's @v1 and @v2 in one destroy list.
  await zferryOk('import', disk, `${dst.name}/vm`, '--delete');
  assert.ok(r.bundle, 'a bundle was written');
  assert.deepEqual(await datasetList(`${dst.name}/vm`), ['', 'disk0']);
  assert.deepEqual(await guidList(`${dst.name}/vm`), await guidList(`${src.name}/vm`));
  await settle();
  await assert.rejects(stat(`/dev/zvol/${dst.name}/vm/disk1`), 'the destroyed zvol\'s device is gone');
});

test('an encrypted dataset travels raw: no plaintext in the bundle, no key on the target, files intact after load-key', async () => {
  const secret = `${src.name}/secret`;
  await run('zfs', ['create', '-o', 'encryption=aes-256-gcm', '-o', 'keyformat=raw', '-o', `keylocation=file://${keyFile}`, secret]);
  await writeFile(path.join(await mountpointOf(secret), 'marker.txt'), `${MARKER}\n`.repeat(2000));
  await snapshot(`${secret}@e1`);
  const disk = path.join(work, 'enc');
  const { bundle, manifest } = await exportImport(secret, `${dst.name}/secret`, disk);
  assert.ok(manifest.streams.every((s) => s.sendFlags.includes('-w')), JSON.stringify(manifest.streams.map((s) => s.sendFlags)));

  // Nothing in the bundle, compressed or not, contains the marker.
  for (const f of await readdir(path.join(bundle, 'streams'))) {
    const raw = await execa('zstd', ['-dc', path.join(bundle, 'streams', f)], { encoding: 'buffer', stripFinalNewline: false, reject: false });
    assert.ok(!Buffer.from(raw.stdout).includes(MARKER), `${f} holds plaintext`);
  }
  const copy = `${dst.name}/secret`;
  assert.equal((await run('zfs', ['get', '-H', '-o', 'value', 'keystatus', copy])).trim(), 'unavailable');
  assert.equal((await run('zfs', ['get', '-H', '-o', 'value', 'encryption', copy])).trim(), 'aes-256-gcm');
  await run('zfs', ['load-key', '-L', `file://${keyFile}`, copy]);
  await run('zfs', ['mount', copy]);
  try {
    assert.equal(await readFile(path.join(await mountpointOf(copy), 'marker.txt'), 'utf8'), `${MARKER}\n`.repeat(2000));
  } finally {
    await run('zfs', ['unmount', copy]);
    await run('zfs', ['unload-key', copy]);
  }
});

test('mixing raw and non-raw for one dataset is refused with a clear message', async () => {
  // A copy seeded by hand without -w holds the secret decrypted.
  const plainCopy = `${dst.name}/plaincopy`;
  await stockSendRecv([`${src.name}/secret@e1`], [plainCopy]);
  assert.equal((await run('zfs', ['get', '-H', '-o', 'value', 'encryption', plainCopy])).trim(), 'off');
  await zferryOk('state', plainCopy, '-o', path.join(work, 'plain-state.json'));
  await snapshot(`${src.name}/secret@e2`);
  const r = await zferry('export', `${src.name}/secret`, path.join(work, 'mixed'), '--since', path.join(work, 'plain-state.json'));
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /encrypted and is sent raw.*received unencrypted.*refused/);
});

test('compressed, large-block and embedded sends are used, and properties travel without mounting over host paths', async () => {
  const fs = `${src.name}/props`;
  await run('zfs', ['create', '-o', 'compression=zstd', '-o', 'recordsize=1M', '-o', 'mountpoint=/srv/zferry-host-path', '-o', 'com.example:tag=blue', fs]);
  await writeData(fs, 'big.bin', 4096);
  await snapshot(`${fs}@p1`);
  const { manifest } = await exportImport(fs, `${dst.name}/props`, path.join(work, 'props'));
  for (const flag of ['-p', '-c', '-L', '-e']) assert.ok(manifest.streams[0].sendFlags.includes(flag), `${flag} in ${manifest.streams[0].sendFlags}`);
  const copy = `${dst.name}/props`;
  const get = async (p: string) => (await run('zfs', ['get', '-H', '-o', 'value,source', p, copy])).trim();
  assert.match(await get('com.example:tag'), /^blue\treceived$/);
  assert.match(await get('compression'), /^zstd\treceived$/);
  assert.match(await get('recordsize'), /^1M\treceived$/);
  // The source's mountpoint is not the copy's: it inherits from the target pool, and never mounts itself.
  assert.doesNotMatch(await get('mountpoint'), /zferry-host-path/);
  assert.match(await get('canmount'), /^noauto\tlocal$/);
  assert.equal((await run('zfs', ['get', '-H', '-o', 'value', 'mounted', copy])).trim(), 'no');
});

test('the inventory is one zfs list call and shows bookmarks with their snapshot guid and createtxg', async () => {
  const fs = `${src.name}/bm`;
  await run('zfs', ['create', fs]);
  await snapshot(`${fs}@b1`);
  await run('zfs', ['bookmark', `${fs}@b1`, `${fs}#b1`]);
  const zfs = await Zfs.probe();
  assert.equal(zfs.caps.flavour, 'openzfs');
  assert.ok(zfs.caps.bookmarks && zfs.caps.sendDryRun && zfs.caps.volumes && zfs.caps.send.raw && zfs.caps.recvPropertyOverride);
  const calls = zfs.callCount;
  const inv = await zfs.inventory(fs);
  assert.equal(zfs.callCount - calls, 1);
  const ds = inv.datasets[0];
  assert.equal(ds.bookmarks.length, 1);
  assert.equal(ds.bookmarks[0].guid, ds.snapshots[0].guid);
  assert.equal(ds.bookmarks[0].createtxg, ds.snapshots[0].createtxg);
});

test('snapshots to destroy go in one zfs call per dataset; a held one in a list is named, those before it gone, those after it kept', async () => {
  const zfs = await Zfs.probe();
  assert.equal(zfs.caps.destroySnapshotList, true);
  const fs1 = `${src.name}/dl1`;
  const fs2 = `${src.name}/dl2`;
  for (const fs of [fs1, fs2]) await run('zfs', ['create', fs]);
  for (const n of ['a', 'b', 'c', 'd', 'e']) await snapshot(`${fs1}@${n}`);
  for (const n of ['a', 'b']) await snapshot(`${fs2}@${n}`);
  const snaps = async (fs: string) => (await run('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot', '-d', '1', fs])).split('\n').filter(Boolean).map((x) => x.split('@')[1]);
  const calls = zfs.callCount;
  await zfs.destroySnapshots([`${fs1}@a`, `${fs2}@a`, `${fs1}@b`, `${fs1}@c`, `${fs1}@d`]);
  assert.equal(zfs.callCount - calls, 2, 'one call for dl1 (four snapshots), one for dl2');
  assert.deepEqual(await snaps(fs1), ['e']);
  assert.deepEqual(await snaps(fs2), ['b']);

  const fs3 = `${src.name}/dl3`;
  await run('zfs', ['create', fs3]);
  for (const n of ['h1', 'h2', 'h3']) await snapshot(`${fs3}@${n}`);
  await run('zfs', ['hold', 'keep', `${fs3}@h2`]);
  await assert.rejects(zfs.destroySnapshots([`${fs3}@h1`, `${fs3}@h2`, `${fs3}@h3`]), (err: Error) => {
    assert.match(err.message, new RegExp(`snapshot ${fs3}@h2 is held`));
    return true;
  });
  assert.deepEqual(await snaps(fs3), ['h2', 'h3'], 'the list failed whole; one by one, h1 went and h3 was not reached');
  await run('zfs', ['release', 'keep', `${fs3}@h2`]);
});

test('an incremental is still produced from a bookmark when the base snapshot was destroyed on the source', async () => {
  const fs = `${src.name}/rot`;
  await run('zfs', ['create', fs]);
  await writeData(fs, 'a.bin', 64);
  await snapshot(`${fs}@auto-1`);
  const disk = path.join(work, 'rot');
  await exportImport(fs, `${dst.name}/rot`, disk);
  // zfs-auto-snapshot rotates the base away; a bookmark of it remains.
  await run('zfs', ['bookmark', `${fs}@auto-1`, `${fs}#auto-1`]);
  await writeData(fs, 'b.bin', 64);
  await snapshot(`${fs}@auto-2`);
  await run('zfs', ['destroy', `${fs}@auto-1`]);
  const r = JSON.parse((await zferryOk('export', fs, disk, '--json')).stdout);
  assert.equal(r.plan.steps[0].from.bookmark, true);
  await zferryOk('import', disk, `${dst.name}/rot`);
  const guids = await guidList(`${dst.name}/rot`);
  const srcGuid = (await run('zfs', ['get', '-H', '-p', '-o', 'value', 'guid', `${fs}@auto-2`])).trim();
  assert.ok(guids.includes(`@auto-2=${srcGuid}`), guids.join(' '));
});

test('an import killed mid-stream leaves no partial receive state and completes on re-run', async () => {
  const fs = `${src.name}/kill`;
  await run('zfs', ['create', '-o', 'compression=off', fs]);
  await writeFile(path.join(await mountpointOf(fs), 'big.bin'), randomBytes(96 * 1024 * 1024));
  await snapshot(`${fs}@k1`);
  const disk = path.join(work, 'kill');
  await zferryOk('export', fs, disk);
  const target = `${dst.name}/kill`;
  const child = execa(process.execPath, [CLI, 'import', disk, target], { reject: false });
  // Kill once zfs receive is running for the target.
  const deadline = Date.now() + 120_000;
  let receiving = false;
  while (!receiving && Date.now() < deadline) {
    receiving = (await execa('pgrep', ['-f', `receive.*${target}`], { reject: false })).exitCode === 0;
    if (!receiving) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(receiving, 'zfs receive was seen running for the target');
  child.kill('SIGKILL');
  assert.equal((await child).signal, 'SIGKILL', 'the import was killed, not finished first');
  await run('pkill', ['-KILL', '-f', `receive.*${target}`], { allowFailure: true });
  await new Promise((r) => setTimeout(r, 1000));
  const left = await run('zfs', ['list', '-H', '-r', '-t', 'all', '-o', 'name,receive_resume_token', dst.name]);
  assert.doesNotMatch(left, /%recv/);
  assert.ok(left.split('\n').filter((l) => l.startsWith(`${target}`)).every((l) => l.endsWith('\t-')), left);
  await zferryOk('import', disk, target);
  assert.deepEqual(await guidList(target), await guidList(fs));
});

test('a resumable receive someone else left half-done is aborted, and the import completes', async () => {
  const fs = `${src.name}/kill`;
  const target = `${dst.name}/resume`;
  // A stock `zfs recv -s` cut short by a truncated stream leaves a resume token.
  const stream = path.join(work, 'kill.stream');
  await execa('zfs', ['send', `${fs}@k1`], { stdout: { file: stream } });
  await execa('bash', ['-c', 'head -c 20000000 "$1" | zfs recv -s "$2"', 'bash', stream, target], { reject: false });
  const token = (await run('zfs', ['get', '-H', '-o', 'value', 'receive_resume_token', target])).trim();
  assert.notEqual(token, '-');
  await zferryOk('import', path.join(work, 'kill'), target);
  assert.equal((await run('zfs', ['get', '-H', '-o', 'value', 'receive_resume_token', target])).trim(), '-');
  assert.deepEqual(await guidList(target), await guidList(fs));
});
