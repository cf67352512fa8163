/**
 * The bucket side of a bundle without ZFS: the export data path uploading
 * volumes, the manifest written last, listing at scale, against the real
 * Ceph RADOS Gateway of the S3 lane.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { getObject, keysUnder, makeBucket, multipartUploads, putObject, s3, startGateway, stopGateway } from '../helpers/s3.js';
import { ZferryError } from '../../src/errors.js';
import { zferry } from '../helpers/cli.js';
import { writeStream } from '../../src/pipeline/index.js';
import { bundleFolderName } from '../../src/commands/export.js';
import { findBundlesInBucket, finishBundleInBucket } from '../../src/bundle/bucket.js';
import { childPlace, parseS3Url, s3RequestCount, urlOf } from '../../src/store/s3.js';
import { oneStreamManifest } from '../helpers/bundles.js';
import { generateKeyFiles, readSecretKey, signManifest, type SecretKey } from '../../src/trust/minisign.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

let bucket: string;
before(async () => {
  bucket = await makeBucket('zfs');
});

/** A one-stream bundle written into the bucket by export's data path; returns its URL. */
async function bundleInBucket(under: string, rawBytes: number, volumeSize: number, sk?: SecretKey): Promise<string> {
  const id = randomUUID();
  const place = childPlace(parseS3Url(`s3://${bucket}/${under}`), bundleFolderName('tank', id, new Date()));
  const dir = urlOf(place);
  const raw = randomBytes(rawBytes);
  const full = await writeStream(Readable.from([raw]), { dir, place, index: 1, kind: 'full', volumeSize, level: 1 });
  const m = oneStreamManifest(id, 2, full);
  await finishBundleInBucket(dir, m, sk ? { sign: (bytes) => signManifest(bytes, sk, m) } : {});
  return dir;
}

test('volumes streamed into a bucket in parts verify, with no multipart upload left behind', async () => {
  // 20 MiB of random bytes in 12 MiB volumes: the first volume goes up in two parts, the second in one.
  const url = await bundleInBucket('parts', 20 * 1024 * 1024, 12 * 1024 * 1024);
  const keys = (await keysUnder(bucket, 'parts/')).map((k) => k.split('/').slice(2).join('/')).sort();
  assert.deepEqual(keys, ['RESTORE.txt', 'SHA256SUMS', 'manifest.json', 'streams/0001-full.zst.000', 'streams/0001-full.zst.001']);
  const v = await zferry('verify', url, '--json');
  assert.equal(v.code, 0, v.stderr);
  assert.deepEqual(await multipartUploads(bucket), []);
});

test('verify refuses a stray volume, a truncated volume and a changed SHA256SUMS in a bucket, naming the object', async () => {
  const url = await bundleInBucket('bad', 300 * 1024, 64 * 1024);
  const key = url.slice(`s3://${bucket}/`.length);
  await putObject(bucket, `${key}/streams/0001-full.zst.099`, 'x');
  let r = await zferry('verify', url);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /streams\/0001-full\.zst\.099: not listed in manifest\.json/);

  const url2 = await bundleInBucket('bad', 300 * 1024, 64 * 1024);
  const key2 = url2.slice(`s3://${bucket}/`.length);
  const vol = await getObject(bucket, `${key2}/streams/0001-full.zst.001`);
  await putObject(bucket, `${key2}/streams/0001-full.zst.001`, vol.subarray(0, vol.length - 1));
  r = await zferry('verify', url2);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /0001-full\.zst\.001: size is \d+ bytes, manifest says \d+ \(truncated\)/);

  const url3 = await bundleInBucket('sums', 100 * 1024, 64 * 1024);
  const key3 = url3.slice(`s3://${bucket}/`.length);
  await putObject(bucket, `${key3}/SHA256SUMS`, '0000  streams/x\n');
  r = await zferry('verify', url3);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /SHA256SUMS: does not match manifest\.json/);
});

test('verify --trust accepts a bundle in a bucket signed by the key and refuses one whose manifest changed after signing', async () => {
  const keys = await mkdtemp(path.join(os.tmpdir(), 'zferry-s3keys-'));
  try {
    const { secretFile, publicFile } = await generateKeyFiles(path.join(keys, 'k'));
    const url = await bundleInBucket('signed', 100 * 1024, 64 * 1024, await readSecretKey(secretFile));
    const ok = await zferry('verify', url, '--trust', publicFile);
    assert.equal(ok.code, 0, ok.stderr);
    const key = `${url.slice(`s3://${bucket}/`.length)}/manifest.json`;
    const text = (await getObject(bucket, key)).toString('utf8').replace('"zferryVersion": "0.1.0"', '"zferryVersion": "0.1.1"');
    await putObject(bucket, key, text);
    const bad = await zferry('verify', url, '--trust', publicFile);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /manifest\.json\.minisig/);
  } finally {
    await rm(keys, { recursive: true, force: true });
  }
});

test('the server stopped mid-upload fails the stream with one line naming the volume, and nothing passes for a bundle', async () => {
  const place = childPlace(parseS3Url(`s3://${bucket}/stopped`), bundleFolderName('tank', randomUUID(), new Date()));
  async function* source() {
    for (let i = 0; i < 40; i++) {
      if (i === 12) await stopGateway();
      yield randomBytes(1 << 20);
    }
  }
  try {
    await assert.rejects(
      writeStream(Readable.from(source()), { dir: urlOf(place), place, index: 1, kind: 'full', volumeSize: 64 << 20, level: 1 }),
      (e: unknown) => e instanceof ZferryError && !e.message.includes('\n')
        && e.message.startsWith(`${urlOf(place)}/streams/0001-full.zst.000: upload failed: `) && /does not answer/.test(e.message),
    );
  } finally {
    await startGateway();
  }
  assert.equal((await keysUnder(bucket, 'stopped/')).some((k) => k.endsWith('manifest.json')), false);
  assert.notEqual((await zferry('verify', `s3://${bucket}/stopped`)).code, 0);
});

test('a prefix whose manifest was never written is not a bundle', async () => {
  const url = await bundleInBucket('unfinished', 100 * 1024, 64 * 1024);
  const key = url.slice(`s3://${bucket}/`.length);
  const { DeleteObjectCommand } = await import('@aws-sdk/client-s3');
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${key}/manifest.json` }));
  const r = await zferry('verify', `s3://${bucket}/unfinished`);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /no zferry bundle here/);
});

test('finding bundles among 10,000 prefixes takes one LIST per 1,000 entries, no request per bundle, and passes over prefixes without manifest.json', async (t) => {
  const keys = Array.from({ length: 10_000 }, (_, i) => `many/zferry-dummy-${String(i).padStart(5, '0')}/manifest.json`);
  // Unfinished exports (a marker and a volume, no manifest) and bundles with many volumes: their volumes are one entry each bundle.
  for (let i = 0; i < 50; i++) keys.push(`many/zferry-unfinished-${i}/.zferry-export.json`, `many/zferry-unfinished-${i}/streams/0001-full.zst.000`);
  for (let i = 0; i < 20; i++) for (let v = 0; v < 5; v++) keys.push(`many/zferry-dummy-${String(i).padStart(5, '0')}/streams/0001-full.zst.00${v}`);
  let next = 0;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < keys.length) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: keys[next++]!, Body: '{}' }));
  }));
  t.diagnostic(`put ${keys.length} objects in ${(Date.now() - t0) / 1000} s`);
  const before = s3RequestCount();
  const t1 = Date.now();
  const found = await findBundlesInBucket(`s3://${bucket}/many`);
  const requests = s3RequestCount() - before;
  t.diagnostic(`found 10,000 bundles among ${keys.length} objects in ${(Date.now() - t1) / 1000} s with ${requests} requests`);
  assert.equal(found.length, 10_000);
  assert.equal(found[9_999], `s3://${bucket}/many/zferry-dummy-09999`);
  assert.equal(found.some((u) => u.includes('unfinished')), false);
  assert.ok(requests <= Math.ceil(keys.length / 1000) + 1, `${requests} requests`);
});
