/**
 * Signed and encrypted bundles end to end on real ZFS: keys from
 * `zferry keygen` and stock `age-keygen`, export --sign --encrypt-to, verify
 * --trust, import --trust --identity; the refusals (no identity, wrong trusted
 * key) leave the target untouched; the volumes hold no plaintext; and the
 * stock pipeline in RESTORE.txt restores the bundle into a fresh pool.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { makePool, mountpointOf, run, type TestPool } from '../helpers/zfslab.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { fingerprint, guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let fresh: TestPool;
let work: string;
let bundle: string;
let key: string;
let ageKey: string;
const MARKER = `zferry-plaintext-marker-${randomBytes(8).toString('hex')}`;

before(async () => {
  [src, dst, fresh] = await Promise.all([makePool('encs', 64), makePool('encd', 64), makePool('encf', 64)]);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-enc-'));
  await run('zfs', ['create', `${src.name}/docs`]);
  await writeData(src.name, 'one.bin', 32);
  await writeFile(path.join(await mountpointOf(`${src.name}/docs`), 'marker.txt'), `${MARKER}\n`);
  await snapshot(`${src.name}@one`, true);
  await writeData(`${src.name}/docs`, 'two.bin', 16);
  await snapshot(`${src.name}@two`, true);

  key = path.join(work, 'key');
  ageKey = path.join(work, 'age.txt');
  await zferryOk('keygen', '-o', key);
  await run('age-keygen', ['-o', ageKey]);
  const recipient = (await run('age-keygen', ['-y', ageKey])).trim();
  const disk = path.join(work, 'disk');
  await zferryOk('export', src.name, disk, '--no-journal', '--volume-size', '16K', '--sign', key, '--encrypt-to', recipient);
  bundle = path.join(disk, (await readdir(disk))[0]);
});

after(async () => {
  await Promise.all([src?.destroy(), dst?.destroy(), fresh?.destroy()]);
  await rm(work, { recursive: true, force: true });
});

/** All volumes of the bundle, in stream and volume order, as one buffer per stream. */
async function streamsOf(dir: string): Promise<Buffer[]> {
  const m = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as { streams: Array<{ volumes: Array<{ file: string }> }> };
  return Promise.all(m.streams.filter((s) => s.volumes.length > 0)
    .map(async (s) => Buffer.concat(await Promise.all(s.volumes.map((v) => readFile(path.join(dir, v.file)))))));
}

test('verify --trust accepts the signed, encrypted bundle', async (t) => {
  const r = await zferryOk('verify', bundle, '--trust', `${key}.pub`);
  t.diagnostic(r.stdout.trim());
  assert.match(r.stdout, /^ok /);
  // The stock tool agrees.
  await run('minisign', ['-V', '-q', '-p', `${key}.pub`, '-m', path.join(bundle, 'manifest.json')]);
});

test('the volumes hold no plaintext: zstd -d fails on them, age -d | zstd -d shows the marker', async () => {
  const streams = await streamsOf(bundle);
  assert.ok(streams.length >= 2);
  let seen = 0;
  for (const bytes of streams) {
    assert.equal(bytes.includes(MARKER), false, 'the marker is not in any volume');
    const plain = await execa('zstd', ['-dc'], { input: bytes, encoding: 'buffer', stripFinalNewline: false, reject: false });
    assert.notEqual(plain.exitCode, 0, 'stock zstd -d cannot read an encrypted stream');
    assert.equal(Buffer.from(plain.stdout).includes(MARKER), false);
    const opened = await execa('age', ['-d', '-i', ageKey], { input: bytes, encoding: 'buffer', stripFinalNewline: false })
      .pipe('zstd', ['-dc'], { encoding: 'buffer', stripFinalNewline: false });
    if (Buffer.from(opened.stdout).includes(MARKER)) seen++;
  }
  assert.ok(seen >= 1, 'age -d | zstd -d shows the marker');
});

test('import without --identity is refused before any zfs recv; the target is unchanged', async () => {
  const before = await fingerprint(dst.name);
  const r = await zferry('import', bundle, `${dst.name}/copy`, '--trust', `${key}.pub`);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^zferry: .*manifest\.json: the bundle is encrypted with age .*pass --identity FILE$/);
  assert.equal(r.stderr.split('\n').length, 1, 'one line');
  assert.equal(await fingerprint(dst.name), before);
});

test('import with an age identity the bundle is not encrypted to is refused; the target is unchanged', async (t) => {
  const stranger = path.join(work, 'stranger.txt');
  await run('age-keygen', ['-o', stranger]);
  const before = await fingerprint(dst.name);
  const r = await zferry('import', bundle, `${dst.name}/copy`, '--trust', `${key}.pub`, '--identity', stranger);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.diagnostic(r.stderr);
  assert.match(r.stderr, /stranger\.txt/);
  assert.equal(await fingerprint(dst.name), before);
});

test('import with another trusted key is refused; the target is unchanged', async (t) => {
  const other = path.join(work, 'other');
  await zferryOk('keygen', '-o', other);
  const before = await fingerprint(dst.name);
  const r = await zferry('import', bundle, `${dst.name}/copy`, '--trust', `${other}.pub`, '--identity', ageKey);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.diagnostic(r.stderr);
  assert.match(r.stderr, /manifest\.json\.minisig: signed by key [0-9A-F]{16}, not by the trusted key [0-9A-F]{16} /);
  assert.equal(await fingerprint(dst.name), before);
});

test('import --trust --identity makes the target equal the source by guid', async () => {
  const target = `${dst.name}/copy`;
  await zferryOk('import', bundle, target, '--trust', `${key}.pub`, '--identity', ageKey);
  assert.deepEqual(await guidList(target), await guidList(src.name));
});

test('RESTORE.txt with stock age and zstd restores into a fresh pool with the same guids', async () => {
  const target = `${fresh.name}/restored`;
  const r = await execa('bash', [path.join(bundle, 'RESTORE.txt')], {
    env: { LC_ALL: 'C', TARGET: target, AGE_IDENTITY: ageKey }, reject: false, stdin: 'ignore',
  });
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.deepEqual(await guidList(target), await guidList(src.name));
});
