/**
 * Bundles in a bucket, against a real S3 server: Ceph's RADOS Gateway from
 * Debian's packages (scripts/ceph-s3.sh), and real ZFS through zfs-fuse.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { execa } from 'execa';
import { makePool, mountpointOf, run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { CLI, STATE_DIR, zferry, zferryOk, zferryWith } from '../helpers/cli.js';
import { killAt, pauseAt } from '../helpers/kill.js';
import { guidList, snapshot, writeData } from '../helpers/fixtures.js';
import { getObject, keysUnder, makeBucket, multipartUploads, putObject, s3, SECRET } from '../helpers/s3.js';
import { DeleteObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { listLevel, parseS3Url } from '../../src/store/s3.js';
import { bundleFolderName } from '../../src/commands/export.js';

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

test('estimate --dest and status --dest find the receipt import wrote back into the bucket', async () => {
  // After the test above: the target holds @two, and its receipt says so under site-a/.
  const url = `s3://${bucket}/site-a`;
  const est = JSON.parse((await zOk('estimate', src.name, '--dest', url, '--no-journal', '--json')).stdout);
  assert.equal(est.basis.origin, 'receipt');
  assert.match(est.basis.file, new RegExp(`^${url}/receipt-`));
  // Planned from that receipt: nothing to send (from no receipt it would be two full streams).
  assert.deepEqual(est.datasets, []);
  const st = await z('status', src.name, '--dest', url, '--json');
  const site = JSON.parse(st.stdout).sites.find((x: { source: string }) => x.source === src.name);
  assert.match(site.receipt.file, new RegExp(`^${url}/receipt-`), st.stdout);
  assert.equal(site.receipt.newest.name, 'two', st.stdout);
});

test('import --sign leaves the receipt\'s signature in the bucket; export, estimate and status --trust-receiver pass over a newer unsigned receipt planted beside it', async () => {
  // After the tests above: the target holds @two; a new import signs the receipt it writes back.
  const url = `s3://${bucket}/site-a`;
  const target = `${dst.name}/copy`;
  await zOk('keygen', '-o', path.join(work, 'receiver.key'));
  const pub = path.join(work, 'receiver.key.pub');
  await zOk('import', url, target, '--sign', path.join(work, 'receiver.key'));
  const receiptKey = `site-a/receipt-${target.replace(/\//g, '_')}.json`;
  assert.ok((await keysUnder(bucket, 'site-a/')).includes(`${receiptKey}.minisig`), 'the signature is beside the receipt');
  const sigFile = path.join(work, 'receipt.minisig');
  const textFile = path.join(work, 'receipt.json');
  await writeFile(sigFile, await getObject(bucket, `${receiptKey}.minisig`));
  await writeFile(textFile, await getObject(bucket, receiptKey));
  await execa('minisign', ['-Vm', textFile, '-x', sigFile, '-p', pub]);
  // Planted by anyone who can write to the bucket: newer, and claiming the target holds nothing (every stream would be sent again).
  const planted = JSON.parse((await getObject(bucket, receiptKey)).toString('utf8'));
  planted.takenAt = new Date(Date.now() + 86400_000).toISOString();
  planted.inventory.datasets = [];
  await putObject(bucket, 'site-a/receipt-planted.json', JSON.stringify(planted));
  const est = async (...extra: string[]) => JSON.parse((await zOk('estimate', src.name, '--dest', url, '--no-journal', '--json', ...extra)).stdout);
  assert.equal((await est()).basis.file, `${url}/receipt-planted.json`, 'without the key the newest receipt rules');
  const trusted = await est('--trust-receiver', pub);
  assert.equal(trusted.basis.file, `s3://${bucket}/${receiptKey}`);
  assert.deepEqual(trusted.datasets, []);
  const dry = JSON.parse((await zOk('export', src.name, url, '--no-journal', '--dry-run', '--json', '--trust-receiver', pub)).stdout);
  assert.equal(dry.basis.file, `s3://${bucket}/${receiptKey}`);
  assert.ok(dry.warnings.some((w: string) => w.includes('receipt-planted.json')), dry.warnings.join(' | '));
  const st = JSON.parse((await z('status', src.name, '--dest', url, '--trust-receiver', pub, '--json')).stdout);
  assert.equal(st.sites.find((x: { source: string }) => x.source === src.name).receipt.file, `s3://${bucket}/${receiptKey}`);
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'site-a/receipt-planted.json' }));
});

test('an export to a bucket names its bundle after one of its source named in the same second, from the one listing it makes', async () => {
  // A bundle of this source, with the greatest id (a random id sorts before it), for a second a few seconds
  // ahead; the export is held just before it names its bundle and let go in that second.
  const second = (Math.floor(Date.now() / 1000) + 8) * 1000;
  const planted = bundleFolderName(src.name, 'ffffffff', new Date(second));
  await putObject(bucket, `sorted/${planted}/manifest.json`, '{}');
  const { child, resume } = await pauseAt('export:name', { dir: work }, 'export', src.name, `s3://${bucket}/sorted`, '--json', '--no-journal');
  assert.ok(Date.now() < second, 'the export reached its naming before the planted second');
  await sleep(second + 20 - Date.now());
  await resume();
  const r = await child;
  seen.push(String(r.stdout), String(r.stderr));
  assert.equal(r.exitCode, 0, String(r.stderr));
  const name = JSON.parse(String(r.stdout)).bundle.split('/').pop();
  assert.equal(name.slice(0, -9), bundleFolderName(src.name, '', new Date(second + 1000)).slice(0, -1), `${name}: named in the next second`);
  assert.deepEqual([planted, name].sort(), [planted, name]);
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

/** Waits until the store lists a multipart upload under `prefix` (the paused export's parts are on their way). */
function uploadUnder(prefix: string): () => Promise<void> {
  return async () => {
    const deadline = Date.now() + 30_000;
    while (!(await multipartUploads(bucket)).some((k) => k.startsWith(prefix))) {
      if (Date.now() > deadline) throw new Error(`no multipart upload under ${prefix} within 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
}

interface Resumed { bundle: string; resumed: { folder: string; reused: Array<{ index: number }>; dropped: Array<{ index: number; reason: string }> } | null }

/** The one unfinished or finished bundle folder under `prefix`, and its objects' last-modified times. */
async function folderOf(prefix: string): Promise<{ url: string; stamps: Map<string, number> }> {
  const keys = await keysUnder(bucket, `${prefix}/`);
  const folders = [...new Set(keys.map((k) => k.split('/')[1]))];
  assert.equal(folders.length, 1, folders.join(' '));
  const stamps = new Map<string, number>();
  for (const k of keys) stamps.set(k.split('/').slice(2).join('/'), (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: k }))).LastModified!.getTime());
  return { url: `s3://${bucket}/${prefix}/${folders[0]}`, stamps };
}

test('an export to a bucket killed between streams resumes at the streams its marker lists: their volume objects are kept, not uploaded again, and the bundle imports whole', async () => {
  const url = `s3://${bucket}/resume`;
  // Small streams go side by side (eight lanes): when stream 1 is done, stream 2 may be too.
  const args = ['export', src.name, url, '--no-journal', '--volume-size', '16K'];
  await killAt('export:between:1', { dir: work }, ...args);
  const before = await folderOf('resume');
  assert.ok(before.stamps.has('.zferry-export.json'), 'the marker is in the bucket');
  assert.equal(before.stamps.has('manifest.json'), false);
  const markerKey = `${before.url.slice(`s3://${bucket}/`.length)}/.zferry-export.json`;
  const listed = (JSON.parse((await getObject(bucket, markerKey)).toString('utf8')) as { streams: Array<{ index: number }> }).streams.map((x) => x.index);
  assert.ok(listed.includes(1), `the marker lists stream 1: ${listed}`);
  const isListed = (k: string) => listed.some((i) => k.startsWith(`streams/${String(i).padStart(4, '0')}-`));
  const kept = [...before.stamps.keys()].filter(isListed);
  assert.ok(kept.filter((k) => k.startsWith('streams/0001-')).length > 1, `stream 1 is in several volumes: ${[...before.stamps.keys()].join(' ')}`);
  const v = await z('verify', url);
  assert.notEqual(v.code, 0);
  assert.match(v.stderr, /no zferry bundle here/);

  const dry = JSON.parse((await zOk(...args, '--dry-run', '--json')).stdout) as Resumed;
  assert.equal(dry.resumed?.folder, before.url);
  assert.deepEqual(dry.resumed?.reused.map((r) => r.index), listed, 'the dry run says the listed streams would be reused');
  assert.deepEqual((await folderOf('resume')).stamps, before.stamps, 'the dry run touched nothing');

  // Last-modified has one-second steps: a volume uploaded again would show a later one.
  await new Promise((r) => setTimeout(r, 1100));
  const r = JSON.parse((await zOk(...args, '--json')).stdout) as Resumed;
  assert.equal(r.bundle, before.url, 'the same prefix becomes the bundle');
  assert.deepEqual(r.resumed?.reused.map((x) => x.index), listed);
  const after = await folderOf('resume');
  for (const k of kept) assert.equal(after.stamps.get(k), before.stamps.get(k), `${k} was kept, not uploaded again`);
  assert.equal(after.stamps.has('.zferry-export.json'), false, 'no marker in a finished bundle');
  assert.deepEqual(await multipartUploads(bucket), []);
  const target = `${dst.name}/resumed`;
  await zOk('import', url, target);
  assert.deepEqual(await guidList(target), await guidList(src.name));
});

test('a resumed bucket export whose kept volume changed in the bucket uploads that stream again, trusting neither the marker nor the ETag', async () => {
  const url = `s3://${bucket}/changed`;
  // One send at a time (--max-memory holds one zstd context at level 3): stream 1 is whole when stream 2 is.
  const args = ['export', src.name, url, '--no-journal', '--volume-size', '64K', '--max-memory', '32M'];
  await killAt('export:between:2', { dir: work }, ...args);
  const { url: folder } = await folderOf('changed');
  const key = `${folder.slice(`s3://${bucket}/`.length)}/streams/0001-full.zst.000`;
  const bytes = await getObject(bucket, key);
  bytes[100] ^= 0xff;
  await putObject(bucket, key, bytes);
  const r = JSON.parse((await zOk(...args, '--json')).stdout) as Resumed;
  assert.deepEqual(r.resumed?.reused.map((x) => x.index), [2], 'stream 2 kept, stream 1 redone');
  assert.match(r.resumed?.dropped.find((d) => d.index === 1)?.reason ?? '', /0001-full\.zst\.000 has sha256 [0-9a-f]{64}, recorded/);
  await zOk('verify', url);
});

test('an encrypted bundle in a bucket resumes with its whole streams kept and imports byte-exact with the identity', async () => {
  const ageKey = path.join(work, 'age.txt');
  await run('age-keygen', ['-o', ageKey]);
  const recipient = (await run('age-keygen', ['-y', ageKey])).trim();
  const url = `s3://${bucket}/sealed`;
  // One send at a time: stream 2 has not begun when stream 1 is whole, so it is encrypted afresh below.
  const args = ['export', src.name, url, '--no-journal', '--volume-size', '64K', '--encrypt-to', recipient, '--max-memory', '32M'];
  await killAt('export:between:1', { dir: work }, ...args);
  const before = await folderOf('sealed');
  assert.ok([...before.stamps.keys()].some((k) => /^streams\/0001-full\.zst\.age\.000$/.test(k)), [...before.stamps.keys()].join(' '));
  await new Promise((r) => setTimeout(r, 1100));
  const r = JSON.parse((await zOk(...args, '--json')).stdout) as Resumed;
  assert.deepEqual(r.resumed?.reused.map((x) => x.index), [1], 'the whole encrypted stream is reused');
  const after = await folderOf('sealed');
  for (const [k, t] of before.stamps) if (k.startsWith('streams/0001-')) assert.equal(after.stamps.get(k), t, `${k} kept`);
  // The other streams were encrypted afresh (a new file key), and their plaintext is nowhere in the bucket.
  assert.ok([...after.stamps.keys()].some((k) => k.startsWith('streams/0002-') && k.includes('.age.')));
  const target = `${dst.name}/sealed`;
  const refused = await z('import', url, target);
  assert.notEqual(refused.code, 0, 'no identity, no import');
  await zOk('import', url, target, '--identity', ageKey);
  assert.deepEqual(await guidList(target), await guidList(src.name));
});

test('an export killed mid-upload leaves no manifest; the re-run aborts its multipart upload and finishes the bundle in the same prefix', async () => {
  // Random bytes zstd cannot shrink: more than two 8 MiB parts in one volume (the root's incremental).
  const big = path.join(await mountpointOf(src.name), 'big.bin');
  await writeFile(big, randomBytes(24 * 1024 * 1024));
  await snapshot(`${src.name}@big`, true);
  const url = `s3://${bucket}/killed`;
  await killAt('export:upload', { dir: work, settle: uploadUnder('killed/') }, 'export', src.name, url, '--no-journal', '--volume-size', '64M');
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

test('SIGTERM during an upload to a bucket aborts its multipart upload before the process ends, keeps the marker, and the next run resumes', async () => {
  // The last stream (a new dataset) is big enough for a multipart upload; the ones before it finish first.
  await run('zfs', ['create', `${src.name}/zz`]);
  await writeFile(path.join(await mountpointOf(`${src.name}/zz`), 'big.bin'), randomBytes(24 * 1024 * 1024));
  await snapshot(`${src.name}@zz`, true);
  const url = `s3://${bucket}/sigterm`;
  const args = ['export', src.name, url, '--no-journal', '--volume-size', '64M'];
  await killAt('export:upload', { dir: work, signal: 'SIGTERM', settle: uploadUnder('sigterm/') }, ...args);
  assert.deepEqual((await multipartUploads(bucket)).filter((k) => k.startsWith('sigterm/')), [], 'no multipart upload left in the store');
  const { stamps } = await folderOf('sigterm');
  assert.ok(stamps.has('.zferry-export.json'), 'the marker stays for the next run');
  const r = JSON.parse((await zOk(...args, '--json')).stdout) as Resumed;
  assert.ok((r.resumed?.reused.length ?? 0) > 0, JSON.stringify(r.resumed));
  await zOk('verify', url);
});

test('a full quota stops the export with one line, leaves no multipart upload and no manifest, and keeps only the streams written whole, for the next run', async () => {
  const small = await makeBucket('zfq');
  const conf = process.env.ZFERRY_CEPH_CONF!;
  await run('radosgw-admin', ['-c', conf, '-n', 'client.rgw.a', '--admin_socket=', 'quota', 'set', '--quota-scope=bucket', `--bucket=${small}`, '--max-size=4194304']);
  await run('radosgw-admin', ['-c', conf, '-n', 'client.rgw.a', '--admin_socket=', 'quota', 'enable', '--quota-scope=bucket', `--bucket=${small}`]);
  const r = await z('export', src.name, `s3://${small}/q`, '--no-journal', '--volume-size', '64M');
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /QuotaExceeded \(HTTP 403\): the bucket or user quota is full/);
  assert.deepEqual(await multipartUploads(small), []);
  const left = await keysUnder(small);
  assert.equal(left.some((k) => k.endsWith('/manifest.json')), false, left.join(' '));
  const markerKey = left.find((k) => k.endsWith('/.zferry-export.json'));
  const listed = markerKey ? (JSON.parse((await getObject(small, markerKey)).toString('utf8')) as { streams: Array<{ volumes: Array<{ file: string }> }> }).streams.flatMap((x) => x.volumes.map((v) => v.file)) : [];
  assert.deepEqual(left.filter((k) => k !== markerKey).map((k) => k.split('/').slice(2).join('/')).sort(), listed.sort(), 'only the volumes of whole streams stay');
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

test('export --max-size into a bucket splits a stream across bundles; an import on its own timer receives nothing of it until the last part is there, then the whole stream', async () => {
  const big = await makePool('s3m', 96);
  try {
    await writeData(big.name, 'big.bin', 8192);
    await snapshot(`${big.name}@x`);
    const url = `s3://${bucket}/capped`;
    const target = `${dst.name}/capped`;
    const exportOnce = async () => JSON.parse((await zOk('export', big.name, url, '--max-size', '3M', '--json')).stdout) as { limit: { split: { part: number } | null; left: number } };
    const first = await exportOnce();
    assert.equal(first.limit.split?.part, 1, JSON.stringify(first.limit));
    // The first part alone: nothing received, the target not even made, exit 3 with the one line that says what it waits for.
    const waiting = await z('import', url, target);
    assert.equal(waiting.code, 3, waiting.stderr);
    assert.match(waiting.stderr, /@x is split across bundles: part 1 in s3:\/\/[^ ]+\/capped; part 2 is not there yet \(the bundle exported after [0-9a-f-]+\): import again once it is/);
    assert.equal((await execa('zfs', ['list', target], { reject: false })).exitCode, 1, 'no target made');
    // With --stage the part is copied out of the bucket, verified, into a local folder: the bucket's own objects, byte for byte.
    const stage = path.join(work, 'capped-stage');
    const staging = await z('import', url, target, '--stage', stage);
    assert.equal(staging.code, 3, staging.stderr);
    const [copy] = (await readdir(stage)).filter((n) => n.startsWith('zferry-'));
    assert.ok(copy, `a staged copy in ${stage}`);
    const key = (name: string) => `capped/${copy}/${name}`;
    for (const name of ['manifest.json', 'SHA256SUMS', 'RESTORE.txt', ...(await readdir(path.join(stage, copy, 'streams'))).map((v) => `streams/${v}`)]) {
      assert.deepEqual(await readFile(path.join(stage, copy, name)), await getObject(bucket, key(name)), `${name} staged as it is in the bucket`);
    }
    assert.equal((await execa('zfs', ['list', target], { reject: false })).exitCode, 1, 'still no target made');
    let rounds = 1;
    for (let r = first; r.limit.split !== null || r.limit.left > 0; rounds++) {
      assert.ok(rounds < 8, 'the export ends within 8 bundles');
      r = await exportOnce();
    }
    assert.ok(rounds >= 3, `split into ${rounds} bundles`);
    await zOk('import', url, target, '--stage', stage);
    assert.deepEqual(await guidList(target), await guidList(big.name));
    assert.deepEqual((await readdir(stage)).filter((n) => n.startsWith('zferry-')), [], 'the staged copy goes once its stream is in');
    assert.deepEqual(await multipartUploads(bucket), []);
  } finally {
    await big.destroy();
  }
});

test('a wrong key, a missing bucket and a stopped server each give one line without the secret', async () => {
  const runWith = async (env: Record<string, string>, ...args: string[]) => {
    const r = await zferryWith(env, ...args);
    seen.push(r.stdout, r.stderr);
    return { code: r.code, stderr: r.stderr.trim() };
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

test('import --trust from a shared prefix passes over a folder planted beside the signed bundle, naming it, and applies the bundle (exit 3)', async () => {
  // A small source of its own: the shared pools are nearly full by now.
  const small = await makePool('s3po', 64);
  const target = `${dst.name}/planted`;
  try {
    await writeData(small.name, 'one.bin', 1);
    await snapshot(`${small.name}@one`);
    const url = `s3://${bucket}/planted`;
    const key = path.join(work, 'planted-source.key');
    await zOk('keygen', '-o', key);
    await zOk('export', small.name, url, '--sign', key, '--no-journal');
    await putObject(bucket, 'planted/zferry-stranger/manifest.json', '{"format": "zferry-bundle"}');
    const r = await z('import', url, target, '--trust', `${key}.pub`);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`${url}/zferry-stranger/manifest\\.json\\.minisig: missing.*passed over`), r.stderr);
    assert.deepEqual(await guidList(target), await guidList(small.name));
  } finally {
    await run('zfs', ['destroy', '-r', target], { allowFailure: true });
    await small.destroy();
  }
});

test('a prefix holding more keys than a listing may hold stops import, verify and export with one line naming it; nothing is received or uploaded', async () => {
  // The cap is a million keys; the test lowers it rather than plant a million objects.
  for (let i = 0; i < 5; i++) await putObject(bucket, `crowded/junk-${i}`, Buffer.from('x'));
  const env = { ZFERRY_S3_MAX_LIST_KEYS: '3' };
  const target = `${dst.name}/crowded`;
  for (const args of [['import', `s3://${bucket}/crowded`, target], ['verify', `s3://${bucket}/crowded`], ['export', src.name, `s3://${bucket}/crowded`, '--no-journal']]) {
    const r = await zferryWith(env, ...args);
    seen.push(r.stdout, r.stderr);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`s3://${bucket}/crowded/?: more than 3 keys under this prefix`), r.stderr);
  }
  assert.equal((await run('zfs', ['list', '-H', '-o', 'name', '-r', dst.name])).split('\n').includes(target), false, 'no target was made');
  assert.deepEqual((await keysUnder(bucket, 'crowded/')).sort(), [0, 1, 2, 3, 4].map((i) => `crowded/junk-${i}`));
  assert.deepEqual(await multipartUploads(bucket), []);
});

test('a gateway that takes requests but never answers (frozen) fails after the idle time with one line, nothing received', async () => {
  // A full Ceph OSD stops answering writes rather than refusing them; a stopped (SIGSTOP) gateway does the same to every request.
  const pidFile = path.join(process.env.ZFERRY_CEPH_DIR ?? '/var/tmp/zferry-ceph', 'run', 'client.rgw.a.pid');
  const pid = Number((await readFile(pidFile, 'utf8')).trim());
  const target = `${dst.name}/frozen`;
  process.kill(pid, 'SIGSTOP');
  let r;
  try {
    r = await execa(process.execPath, [CLI, 'import', `s3://${bucket}/site-a`, target], {
      reject: false, stdin: 'ignore', timeout: 120_000, env: { LC_ALL: 'C', ZFERRY_STATE_DIR: STATE_DIR, ZFERRY_S3_IDLE_SECONDS: '2' },
    });
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  seen.push(String(r.stdout), String(r.stderr));
  assert.equal(r.timedOut, false, 'zferry gave up by itself');
  assert.notEqual(r.exitCode, 0);
  const err = String(r.stderr).trim();
  assert.equal(err.split('\n').length, 1, err);
  assert.match(err, /does not answer/);
  assert.equal((await execa('zfs', ['list', target], { reject: false, stdin: 'ignore' })).exitCode, 1, 'nothing was received');
});

test('the secret key appears in no output, no --json and no object in the bucket', async () => {
  for (const text of seen) assert.equal(text.includes(SECRET), false);
  for (const key of await keysUnder(bucket)) {
    if (key.startsWith('many/')) continue;
    assert.equal((await getObject(bucket, key)).includes(SECRET), false, key);
  }
});
