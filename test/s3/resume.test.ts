/**
 * A resumed export into a bucket, against the real gateway: a kept volume
 * moved by the server's range copy, and markers a stranger planted under the
 * prefix.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { makePool, mountpointOf, run, type TestPool } from '../helpers/zfslab.js';
import { zferryOk, zferryOkWith } from '../helpers/cli.js';
import { killAt } from '../helpers/kill.js';
import { snapshot, writeData } from '../helpers/fixtures.js';
import { getObject, keysUnder, makeBucket, multipartUploads, putObject, s3 } from '../helpers/s3.js';

let src: TestPool;
let work: string;
let bucket: string;
/** The marker a real export of `src` wrote (test 1): the stranger's forgeries copy its source tag and settings. */
let genuine: { source: string; settings: unknown; streams: Array<{ dataset: string; volumes: Array<{ file: string; bytes: number; sha256: string }> }> } | undefined;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-s3r-'));
  src = await makePool('s3r', 96);
  await writeData(src.name, 'root.bin', 32);
  await run('zfs', ['create', `${src.name}/b`]);
  // Random bytes zstd cannot shrink: one volume of 12 MiB, over the lowered copy limit below.
  await writeFile(path.join(await mountpointOf(`${src.name}/b`), 'big.bin'), randomBytes(12 * 1024 * 1024));
  await snapshot(`${src.name}@one`, true);
  bucket = await makeBucket('zfr');
});

after(async () => {
  await src?.destroy();
  await rm(work, { recursive: true, force: true });
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');


test('a resumed bucket export moves a kept volume over the copy limit by ranged UploadPartCopy on the server: same bytes, no multipart upload left', async () => {
  const url = `s3://${bucket}/copy`;
  const args = ['export', src.name, url, '--no-journal', '--volume-size', '64M'];
  // Killed with both streams (root, then b) whole in the bucket and no manifest yet.
  await killAt('export:manifest', { dir: work }, ...args);
  const folder = [...new Set((await keysUnder(bucket, 'copy/')).map((k) => k.split('/')[1]))];
  assert.equal(folder.length, 1, folder.join(' '));
  const at = `copy/${folder[0]}`;
  genuine = JSON.parse((await getObject(bucket, `${at}/.zferry-export.json`)).toString('utf8'));
  assert.equal(genuine?.streams.find((s) => s.dataset === 'b')?.volumes[0]?.file, 'streams/0002-full.zst.000');
  const before = await getObject(bucket, `${at}/streams/0002-full.zst.000`);
  assert.ok(before.length > 12 * 1024 * 1024, `b's volume is ${before.length} bytes`);

  // A new dataset sorts before b: b's kept stream becomes stream 3, so its volume is renamed (copied twice, through .moving).
  await run('zfs', ['create', `${src.name}/a`]);
  await snapshot(`${src.name}/a@one`);
  const r = JSON.parse((await zferryOkWith({ ZFERRY_S3_MAX_COPY_BYTES: String(6 * 1024 * 1024) }, ...args, '--json')).stdout) as {
    bundle: string; resumed: { reused: Array<{ index: number; dataset: string }> } | null;
  };
  assert.equal(r.bundle, `s3://${bucket}/${at}`);
  assert.deepEqual(r.resumed?.reused.map((x) => [x.index, x.dataset]).sort(), [[1, ''], [3, 'b']]);
  const moved = `${at}/streams/0003-full.zst.000`;
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: moved }));
  // A multipart object's ETag ends in -<parts>: 6 MiB ranges of a 12+ MiB volume are 3 parts; CopyObject's would have none.
  assert.match(head.ETag ?? '', /-3"?$/, `ETag ${head.ETag}`);
  assert.equal(sha256(await getObject(bucket, moved)), sha256(before), 'the moved volume has the very bytes it had');
  const keys = await keysUnder(bucket, 'copy/');
  assert.equal(keys.some((k) => k.endsWith('.moving')), false, keys.join(' '));
  assert.deepEqual(await multipartUploads(bucket), []);
  await zferryOk('verify', url);
});

test('markers a stranger planted under the prefix (not JSON, volume names outside the bundle, our source tag in another source\'s folder, a copy of our own marker with the stranger\'s volumes) are passed over: nothing they name is read, copied or deleted', async () => {
  assert.ok(genuine, 'the first test left a genuine marker');
  const victim = randomBytes(4096);
  await putObject(bucket, 'hostile/victim.bin', victim);
  await putObject(bucket, 'elsewhere/victim.bin', victim);
  const ours = (stamp: string, id: string) => `hostile/zferry-${src.name}-${stamp}-${id.slice(0, 8)}`;
  const forge = (id: string, createdAt: string, file: string) => JSON.stringify({
    format: 'zferry-export-partial', formatVersion: 1, bundleId: id, createdAt, source: genuine!.source, host: 'elsewhere', pid: 1,
    settings: genuine!.settings,
    streams: genuine!.streams.map((s) => ({ ...s, volumes: s.volumes.map((v) => ({ ...v, file, bytes: victim.length, sha256: sha256(victim) })) })),
  });
  const outside = '0badf00d-0000-4000-8000-000000000001';
  const theirs = '12345678-0000-4000-8000-000000000002';
  // Named as an export of this source would be, but its volumes "are" an object two levels up (keys are literal in S3: that object is planted too).
  const f1 = ours('20200101T000000Z', outside);
  await putObject(bucket, `${f1}/.zferry-export.json`, forge(outside, '2099-01-01T00:00:00.000Z', 'streams/../../victim.bin'));
  await putObject(bucket, `${f1}/streams/../../victim.bin`, victim);
  // Not JSON at all.
  await putObject(bucket, `${ours('20200101T000001Z', 'aaaaaaaa')}/.zferry-export.json`, '{"format": "zferry-export-partial", ');
  // Another source's unfinished export, whose marker claims this source and the newest date: adopting it would delete its objects.
  const f3 = `hostile/zferry-someoneelse-20200101T000002Z-${theirs.slice(0, 8)}`;
  await putObject(bucket, `${f3}/.zferry-export.json`, forge(theirs, '2099-12-31T00:00:00.000Z', 'streams/0001-full.zst.000'));
  await putObject(bucket, `${f3}/streams/0001-full.zst.000`, victim);
  await putObject(bucket, `${f3}/streams/0009-full.zst.000`, victim);
  // This source's own marker copied whole, seal included, the newest of all, its volumes the stranger's bytes under their own hashes:
  // well formed, and every volume matches it, but this host did not seal what it says.
  const f4id = '0badf00d-0000-4000-8000-00000000f0e4';
  const f4 = ours('20991231T000000Z', f4id);
  await putObject(bucket, `${f4}/.zferry-export.json`, JSON.stringify({
    ...genuine, bundleId: f4id, createdAt: '2099-12-31T23:59:59.000Z',
    streams: genuine!.streams.map((s) => ({ ...s, volumes: s.volumes.slice(0, 1).map((v) => ({ ...v, bytes: victim.length, sha256: sha256(victim) })) })),
  }));
  for (const s of genuine!.streams) if (s.volumes[0]) await putObject(bucket, `${f4}/${s.volumes[0].file}`, victim);
  const snapshotOf = async () => new Map(await Promise.all((await keysUnder(bucket)).filter((k) => !k.startsWith('copy/')).map(async (k) => [k, sha256(await getObject(bucket, k))] as const)));
  const planted = await snapshotOf();

  const r = JSON.parse((await zferryOk('export', src.name, `s3://${bucket}/hostile`, '--no-journal', '--json')).stdout) as { bundle: string; resumed: unknown };
  assert.equal(r.resumed, null, 'no planted marker was resumed');
  const now = await snapshotOf();
  for (const [k, h] of planted) assert.equal(now.get(k), h, `${k} is untouched`);
  const mine = r.bundle.slice(`s3://${bucket}/`.length);
  assert.deepEqual([...now.keys()].filter((k) => !planted.has(k) && !k.startsWith(`${mine}/`)), [], 'nothing written outside the new bundle');
  for (const [k, h] of now) if (k.startsWith(`${mine}/`)) assert.notEqual(h, sha256(victim), `${k} is not the planted object`);
  await zferryOk('verify', r.bundle);
});
