/** Bucket locations and error lines, on literals (no server). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { bundlePath, checkListed, childPlace, isS3Url, MAX_LIST_KEYS, objectOf, parseS3Url, readAtMost, s3Error, urlOf } from '../../src/store/s3.js';
import { isBundleFolderOf } from '../../src/commands/export.js';
import { ZferryError } from '../../src/errors.js';

test('s3://BUCKET/PREFIX parses into a bucket and a prefix ending in a slash', () => {
  assert.deepEqual(parseS3Url('s3://backups'), { bucket: 'backups', prefix: '' });
  assert.deepEqual(parseS3Url('s3://backups/'), { bucket: 'backups', prefix: '' });
  assert.deepEqual(parseS3Url('s3://backups/site-a/tank/'), { bucket: 'backups', prefix: 'site-a/tank/' });
  assert.equal(urlOf(childPlace(parseS3Url('s3://b0b/x'), 'zferry-t')), 's3://b0b/x/zferry-t');
  assert.equal(isS3Url('/mnt/disk'), false);
});

test('refuses a bucket name S3 does not allow and a prefix with an empty, . or .. part, in one line naming it', () => {
  for (const bad of ['s3://Bad_Bucket', 's3://ab', 's3://b0b/x//y', 's3://b0b/../y', 's3://b0b/./y']) {
    assert.throws(() => parseS3Url(bad), (e: unknown) => e instanceof ZferryError && e.message.startsWith(`${bad}: `) && !e.message.includes('\n'));
  }
});

test('a file of a bundle in a bucket keeps its s3:// (path.join would fold it to s3:/)', () => {
  assert.equal(bundlePath('s3://b0b/x/zferry-t', 'streams/0001-full.zst.000'), 's3://b0b/x/zferry-t/streams/0001-full.zst.000');
  assert.equal(bundlePath('/mnt/disk/b', 'manifest.json'), '/mnt/disk/b/manifest.json');
  assert.deepEqual(objectOf('s3://b0b/x/receipt-t.json'), { place: { bucket: 'b0b', prefix: 'x/' }, name: 'receipt-t.json' });
});

test('an export clears only its own source\'s unfinished bundles, not those of a source whose name starts the same', () => {
  assert.equal(isBundleFolderOf('zferry-tank-20261129T224000Z-0123abcd', 'tank'), true);
  assert.equal(isBundleFolderOf('zferry-tank-x-20261129T224000Z-0123abcd', 'tank'), false);
  assert.equal(isBundleFolderOf('zferry-tank_data-20261129T224000Z-0123abcd', 'tank/data'), true);
  assert.equal(isBundleFolderOf('zferry-tank-20261129T224000Z-0123abcd/extra', 'tank'), false);
});

test('an error line names the object and the store\'s code, and never the secret key', () => {
  const old = process.env.AWS_SECRET_ACCESS_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = 'S3CR3Tvalue';
  try {
    const denied = Object.assign(new Error('denied'), { name: 'SignatureDoesNotMatch', $metadata: { httpStatusCode: 403 } });
    assert.equal(s3Error(denied, 'PUT', 's3://b0b/k').message, 's3://b0b/k: PUT failed: SignatureDoesNotMatch (HTTP 403): check the credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE)');
    const odd = new Error('something odd with S3CR3Tvalue inside\nsecond line');
    const line = s3Error(odd, 'GET', 's3://b0b/k').message;
    assert.equal(line.includes('S3CR3Tvalue'), false);
    assert.equal(line.includes('\n'), false);
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    assert.match(s3Error(refused, 'GET', 's3://b0b/k').message, /ECONNREFUSED: the server does not answer$/);
  } finally {
    if (old === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    else process.env.AWS_SECRET_ACCESS_KEY = old;
  }
});

test('a small object sent without its length is read only up to its limit: a planted giant is refused after the limit, not held', async () => {
  let pulled = 0;
  // 1 MiB pieces for ever: what a chunked answer of a planted 10 GB "manifest.json" would look like.
  const endless = () => new Readable({ read() { pulled++; this.push(Buffer.alloc(1024 * 1024)); } });
  const giant = endless();
  await assert.rejects(readAtMost(giant, 4 * 1024 * 1024, 's3://b/x/manifest.json: too big', 's3://b/x/manifest.json'), (e: unknown) => e instanceof ZferryError && e.message === 's3://b/x/manifest.json: too big');
  assert.ok(pulled <= 8, `${pulled} MiB pulled`);
  assert.equal(giant.destroyed, true);
  assert.deepEqual(await readAtMost(Readable.from([Buffer.from('ab'), Buffer.from('c')]), 3, 'x', 'x'), Buffer.from('abc'));
});

test('an unknown failure\'s line cuts out the session token as well as the secret key', () => {
  const saved = { k: process.env.AWS_SECRET_ACCESS_KEY, t: process.env.AWS_SESSION_TOKEN };
  process.env.AWS_SECRET_ACCESS_KEY = 'SeCrEtKeY0123456789';
  process.env.AWS_SESSION_TOKEN = 'ToKeN-abcdef-0123456789';
  try {
    const line = s3Error(new Error('signing with SeCrEtKeY0123456789 and ToKeN-abcdef-0123456789 failed'), 'GET', 's3://b/x').message;
    assert.doesNotMatch(line, /SeCrEtKeY|ToKeN-abcdef/);
    assert.match(line, /<secret>.*<secret>/);
  } finally {
    for (const [k, v] of [['AWS_SECRET_ACCESS_KEY', saved.k], ['AWS_SESSION_TOKEN', saved.t]] as const) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
});

test('a listing stops, naming the prefix, once it holds more keys than the cap', () => {
  assert.doesNotThrow(() => checkListed(1_000_000, 's3://b/p/'));
  assert.throws(() => checkListed(1_000_001, 's3://b/p/'), (e: Error) => e instanceof ZferryError && /^s3:\/\/b\/p\/: more than 1,000,000 keys under this prefix/.test(e.message) && !e.message.includes('\n'));
  assert.throws(() => checkListed(4, 's3://b/p/', 3), /more than 3 keys/);
  assert.equal(MAX_LIST_KEYS, 1_000_000);
});
