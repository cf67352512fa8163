/**
 * Bundles in a bucket, against a real S3 server: Ceph's RADOS Gateway from
 * Debian's packages (scripts/ceph-s3.sh), and real ZFS through zfs-fuse.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { makePool, mountpointOf, run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { CLI, STATE_DIR, zferry, zferryOk } from '../helpers/cli.js';
import { killAt } from '../helpers/kill.js';
import { guidList, snapshot, writeData } from '../helpers/fixtures.js';
import { getObject, keysUnder, makeBucket, multipartUploads, putObject, SECRET } from '../helpers/s3.js';
import { listLevel, parseS3Url } from '../../src/store/s3.js';

let pools: TwoPools | undefined;
let src: TestPool;
let dst: TestPool;
let work: string;
let bucket: string;

before(async () => {
  ({ src, dst, work } = pools = await twoPools('s3', 128));
  await run('zfs', ['create', `${src.name}/a`]);
  for (const d of ['', '/a']) await writeData(`${src.name}${d}`, 'one.bin', 64);
  await snapshot(`${src.name}@one`, true);
  bucket = await makeBucket('zf');
});

after(async () => {
  await pools?.teardown();
});

/** Every zferry output and every object under the bucket, as one text to grep for the secret. */
const seen: string[] = [];
async function z(...args: string[]) {
  const r = await zferry(...args);
  seen.push(r.stdout, r.stderr);
  return r;
}
async function zOk(...args: string[]) {
  const r = await zferryOk(...args);
  seen.push(r.stdout, r.stderr);
  return r;
}

test('a bundle exported to a bucket imports into a zfs-fuse target with the same snapshot guids, and the receipt is written back to the bucket', async () => {
  const url = `s3://${bucket}/site-a`;
  const ex = JSON.parse((await zOk('export', src.name, url, '--json')).stdout);
  assert.match(ex.bundle, new RegExp(`^s3://${bucket}/site-a/zferry-`));
  const keys = await keysUnder(bucket, 'site-a/');
  assert.ok(keys.some((k) => k.endsWith('/manifest.json')), keys.join(' '));
  assert.ok(keys.some((k) => /\/streams\/0001-full\.zst\.000$/.test(k)), keys.join(' '));
  await zOk('verify', url);
  const target = `${dst.name}/copy`;
  const im = JSON.parse((await zOk('import', url, target, '--json')).stdout);
  assert.equal(im.receipt, `${url}/receipt-${target.replace(/\//g, '_')}.json`);
  assert.deepEqual(await guidList(target), await guidList(src.name));
  assert.ok((await keysUnder(bucket, 'site-a/')).includes(`site-a/receipt-${target.replace(/\//g, '_')}.json`));

  // The second round is planned from that receipt in the bucket: an incremental, imported on top.
  await writeData(`${src.name}/a`, 'two.bin', 32);
  await snapshot(`${src.name}@two`, true);
  const ex2 = JSON.parse((await zOk('export', src.name, url, '--json', '--no-journal')).stdout);
  assert.ok(ex2.streams.every((s: { kind: string }) => s.kind === 'incremental'), JSON.stringify(ex2.streams));
  await zOk('import', url, target);
  assert.deepEqual(await guidList(target), await guidList(src.name));
});

test('verify and import refuse a bundle whose volume object has one byte flipped, naming the object', async () => {
  const url = `s3://${bucket}/flipped`;
  const ex = JSON.parse((await zOk('export', src.name, url, '--json', '--no-journal')).stdout);
  const key = (await keysUnder(bucket, 'flipped/')).find((k) => k.endsWith('/streams/0001-full.zst.000'))!;
  const bytes = await getObject(bucket, key);
  bytes[Math.floor(bytes.length / 2)] ^= 0x01;
  await putObject(bucket, key, bytes);
  const v = await z('verify', url);
  assert.notEqual(v.code, 0);
  assert.match(v.stderr, new RegExp(`s3://${bucket}/${key.replace(/\./g, '\\.')}: sha256 is [0-9a-f]{64}, manifest says`));
  const target = `${dst.name}/flipped`;
  const im = await z('import', ex.bundle, target);
  assert.notEqual(im.code, 0);
  // Nothing of the bad stream was received.
  assert.equal((await run('zfs', ['list', '-H', '-t', 'snapshot', '-r', dst.name])).includes(`${target}@`), false);
});

test('an export killed mid-upload leaves no manifest; the re-run aborts its multipart upload, removes its objects and writes a complete bundle', async () => {
  // Random bytes zstd cannot shrink: more than two 8 MiB parts in one volume (the root's incremental).
  const big = path.join(await mountpointOf(src.name), 'big.bin');
  await writeFile(big, randomBytes(24 * 1024 * 1024));
  await snapshot(`${src.name}@big`, true);
  const url = `s3://${bucket}/killed`;
  await killAt('export:upload', { dir: work }, 'export', src.name, url, '--no-journal', '--volume-size', '64M');
  const left = await keysUnder(bucket, 'killed/');
  assert.equal(left.some((k) => k.endsWith('manifest.json')), false, left.join(' '));
  assert.ok((await multipartUploads(bucket)).some((k) => k.startsWith('killed/')), 'the kill left a multipart upload in flight');
  assert.notEqual((await z('verify', url)).code, 0, 'nothing under the prefix passes for a bundle');

  const ex = JSON.parse((await zOk('export', src.name, url, '--json', '--no-journal', '--volume-size', '64M')).stdout);
  assert.deepEqual((await multipartUploads(bucket)).filter((k) => k.startsWith('killed/')), []);
  const folders = new Set((await keysUnder(bucket, 'killed/')).map((k) => k.split('/')[1]));
  assert.deepEqual([...folders], [ex.bundle.split('/').pop()]);
  await zOk('verify', url);
});

test('a full quota stops the export with one line, and leaves no object and no multipart upload behind', async () => {
  const small = await makeBucket('zfq');
  const conf = process.env.ZFERRY_CEPH_CONF!;
  await run('radosgw-admin', ['-c', conf, '-n', 'client.rgw.a', '--admin_socket=', 'quota', 'set', '--quota-scope=bucket', `--bucket=${small}`, '--max-size=4194304']);
  await run('radosgw-admin', ['-c', conf, '-n', 'client.rgw.a', '--admin_socket=', 'quota', 'enable', '--quota-scope=bucket', `--bucket=${small}`]);
  const r = await z('export', src.name, `s3://${small}/q`, '--no-journal', '--volume-size', '64M');
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /QuotaExceeded \(HTTP 403\): the bucket or user quota is full/);
  assert.deepEqual(await keysUnder(small), []);
  assert.deepEqual(await multipartUploads(small), []);
});

test('two sources share one bucket under their own prefixes, each imported into its own target', async () => {
  const other = await makePool('s3o', 96);
  try {
    await writeData(other.name, 'x.bin', 32);
    await snapshot(`${other.name}@x`);
    await zOk('export', src.name, `s3://${bucket}/two/first`, '--no-journal');
    await zOk('export', other.name, `s3://${bucket}/two/second`, '--no-journal');
    await zOk('import', `s3://${bucket}/two/first`, `${dst.name}/first`);
    await zOk('import', `s3://${bucket}/two/second`, `${dst.name}/second`);
    assert.deepEqual(await guidList(`${dst.name}/first`), await guidList(src.name));
    assert.deepEqual(await guidList(`${dst.name}/second`), await guidList(other.name));
    assert.deepEqual((await listLevel(parseS3Url(`s3://${bucket}/two`))).folders, ['first', 'second']);
  } finally {
    await other.destroy();
  }
});

test('a wrong key, a missing bucket and a stopped server each give one line without the secret', async () => {
  const runWith = async (env: Record<string, string>, ...args: string[]) => {
    const r = await execa(process.execPath, [CLI, ...args], { reject: false, stdin: 'ignore', env: { LC_ALL: 'C', ZFERRY_STATE_DIR: STATE_DIR, ...env } });
    seen.push(String(r.stdout), String(r.stderr));
    return { code: r.exitCode ?? 1, stderr: String(r.stderr).trim() };
  };
  const wrongSecret = `WRONG${SECRET.slice(5)}`;
  const wrong = await runWith({ AWS_SECRET_ACCESS_KEY: wrongSecret }, 'verify', `s3://${bucket}/site-a`);
  assert.notEqual(wrong.code, 0);
  assert.equal(wrong.stderr.split('\n').length, 1, wrong.stderr);
  assert.match(wrong.stderr, /(SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId|Forbidden).*check the credentials/);
  assert.equal(wrong.stderr.includes(wrongSecret), false);

  const missing = await runWith({}, 'verify', 's3://no-such-bucket-zferry/x');
  assert.notEqual(missing.code, 0);
  assert.equal(missing.stderr.split('\n').length, 1, missing.stderr);
  assert.match(missing.stderr, /NoSuchBucket|no zferry bundle/);

  const down = await runWith({ AWS_ENDPOINT_URL: 'http://127.0.0.1:1' }, 'export', src.name, `s3://${bucket}/down`, '--no-journal');
  assert.notEqual(down.code, 0);
  assert.equal(down.stderr.split('\n').length, 1, down.stderr);
  assert.match(down.stderr, /does not answer|ECONNREFUSED/);
});

test('the secret key appears in no output, no --json and no object in the bucket', async () => {
  for (const text of seen) assert.equal(text.includes(SECRET), false);
  for (const key of await keysUnder(bucket)) {
    if (key.startsWith('many/')) continue;
    assert.equal((await getObject(bucket, key)).includes(SECRET), false, key);
  }
});
