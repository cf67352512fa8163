/**
 * Signed or refused (issue 13, point 2): `relay receive --import` starts only
 * with `--trust KEY.pub` or an explicit `--allow-unsigned`, and `--delete`
 * needs `--trust` whatever else is said. A forged manifest that claims the
 * source is empty, pushed to a receiver with `--delete`, leaves the target
 * byte for byte as it was; the signed bundle of a real deletion applies.
 * `import --delete` without `--trust` says so in one line.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { destroyQuietly, fingerprint, guidList, snapshot, writeData } from '../helpers/fixtures.js';
import { bundlesIn, finished, freePortRange, listening, LOOP, sourceId, startZferry, stop, stopAll, untilListening } from '../helpers/relay.js';

/** The first of 10 free ports, found in `before`. */
let BASE: number;

let lab: TwoPools;
let src: TestPool;
let dst: TestPool;
let work: string;
let SRC_ID: string;
let KEY: string;
let target: string;

before(async () => {
  BASE = await freePortRange(10);
  lab = await twoPools('sg', 96);
  ({ src, dst, work } = lab);
  for (const d of ['a', 'b', 'c']) await run('zfs', ['create', `${src.name}/${d}`]);
  for (const d of ['', '/a', '/b', '/c']) await writeData(`${src.name}${d}`, 'one.bin', 32);
  await snapshot(`${src.name}@one`, true);
  for (const d of ['/a', '/b', '/c']) await writeData(`${src.name}${d}`, 'two.bin', 16);
  await snapshot(`${src.name}@two`, true);
  SRC_ID = await sourceId(src.name);
  KEY = path.join(work, 'source-key');
  await zferryOk('keygen', '-o', KEY);
  target = `${dst.name}/mirror`;
});

after(async () => {
  await stopAll();
  await lab?.teardown();
});

/** A receiver set up as the README says: signed only, with --delete; the guard's limits lifted so only the signature stands in the way. */
function receiver(port: number, spool: string) {
  return startZferry(['relay', 'receive', '--listen', `${LOOP}:${port}`, '--source', SRC_ID, '--spool', spool, '--import', target,
    '--trust', `${KEY}.pub`, '--delete', '--max-delete', 'all', '--once', '--buffer', '1M']);
}

/** Pushes one bundle to a fresh --once receiver; resolves to the receiver's exit code and stderr. */
async function push(port: number, spool: string, bundle: string): Promise<{ code: number; stderr: string }> {
  const r = receiver(port, spool);
  try {
    await untilListening(port);
    await zferry('relay', 'send', bundle, '--to', `${LOOP}:${port}`, '--buffer', '1M');
    const done = await finished(r, 60_000);
    assert.ok(done !== null, 'the receiver ended within 60 s');
    return { code: done.exitCode ?? 1, stderr: String(done.stderr) };
  } finally {
    await stop(r);
  }
}

/** sha256 of a file in a target snapshot, read through a clone (the target itself is never mounted). */
async function fileDigest(snap: string, file: string): Promise<string> {
  const clone = `${dst.name}/cmp-${process.pid}`;
  const mnt = path.join(work, 'cmp');
  await run('zfs', ['clone', '-o', `mountpoint=${mnt}`, snap, clone]);
  try {
    return createHash('sha256').update(await readFile(path.join(mnt, file))).digest('hex');
  } finally {
    await destroyQuietly(clone);
  }
}

/** What "byte for byte unchanged" is checked by: every dataset and snapshot by guid, and a file's bytes. */
async function targetState(): Promise<{ guids: string; file: string }> {
  return { guids: await fingerprint(target), file: await fileDigest(`${target}/a@two`, 'two.bin') };
}

/**
 * The forgery an attacker on the link can make: the real bundle's source
 * identity and root, a fresh id, and an inventory in which the source holds
 * nothing but its root; the children's streams and volumes are dropped and
 * SHA256SUMS is rewritten to match, so every check but the signature passes.
 */
async function forge(real: string, into: string, signature: 'none' | 'stale' | 'other-key'): Promise<string> {
  const m = JSON.parse(await readFile(path.join(real, 'manifest.json'), 'utf8'));
  const id = randomUUID();
  const name = path.basename(real).replace(/-[0-9a-f]{8}$/, `-${id.slice(0, 8)}`);
  const dir = path.join(into, name);
  await mkdir(into, { recursive: true });
  await cp(real, dir, { recursive: true });
  const kept = m.streams.filter((s: { dataset: string }) => s.dataset === '');
  const keptFiles = new Set<string>(kept.flatMap((s: { volumes: Array<{ file: string }> }) => s.volumes.map((v) => v.file)));
  for (const f of await readdir(path.join(dir, 'streams'))) if (!keptFiles.has(`streams/${f}`) && !keptFiles.has(f)) await rm(path.join(dir, 'streams', f));
  const sums = (await readFile(path.join(dir, 'SHA256SUMS'), 'utf8')).split('\n')
    .filter((l) => l !== '' && (!l.includes('streams/') || [...keptFiles].some((f) => l.endsWith(f))));
  await writeFile(path.join(dir, 'SHA256SUMS'), sums.join('\n') + '\n');
  const forged = { ...m, bundleId: id, inventory: { ...m.inventory, datasets: m.inventory.datasets.filter((d: { path: string }) => d.path === '') }, streams: kept };
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(forged, null, 2));
  if (signature === 'none') await rm(path.join(dir, 'manifest.json.minisig'));
  if (signature === 'other-key') {
    const other = path.join(work, 'mallory-key');
    await zferry('keygen', '-o', other);
    const { readSecretKey, signManifest } = await import('../../src/trust/minisign.js');
    const bytes = await readFile(path.join(dir, 'manifest.json'));
    await writeFile(path.join(dir, 'manifest.json.minisig'), signManifest(bytes, await readSecretKey(other), forged));
  }
  return dir;
}

test('relay receive --import refuses to start without --trust unless --allow-unsigned; --delete needs --trust even then', async () => {
  const port = BASE + 1;
  const spool = path.join(work, 'refuse-spool');
  const base = ['relay', 'receive', '--listen', `${LOOP}:${port}`, '--source', SRC_ID, '--spool', spool, '--import', target, '--once'];
  const bare = await zferry(...base);
  assert.equal(bare.code, 2);
  assert.equal(bare.stderr.trim().split('\n').length, 1, bare.stderr);
  assert.match(bare.stderr, /^zferry: relay receive --import needs --trust KEY\.pub .*or --allow-unsigned/);
  const unsignedDelete = await zferry(...base, '--delete', '--allow-unsigned');
  assert.equal(unsignedDelete.code, 2);
  assert.match(unsignedDelete.stderr, /^zferry: relay receive --import --delete needs --trust KEY\.pub .*--allow-unsigned does not lift this/);
  assert.equal(await listening(port), false, 'nothing listened');
  assert.equal(await run('zfs', ['list', '-H', '-o', 'name', target], { allowFailure: true }), '', 'nothing received');
});

test('a forged manifest claiming an empty source, pushed to a --delete receiver, leaves the target byte for byte unchanged; the signed real deletion applies', async () => {
  const spool = path.join(work, 'spool');
  // Seed, signed, over the relay.
  const disk = path.join(work, 'disk-1');
  const seed = JSON.parse((await zferryOk('export', src.name, disk, '--no-journal', '--sign', KEY, '--volume-size', '64K', '--json')).stdout).bundle as string;
  const seeded = await push(BASE + 2, spool, seed);
  assert.equal(seeded.code, 0, seeded.stderr);
  assert.deepEqual(await guidList(target), await guidList(src.name));
  const before = await targetState();

  // Unsigned, the forgery would do what it claims: an import without --trust plans to destroy a, b and c (dry run: nothing touched).
  const unsignedForgery = await forge(seed, path.join(work, 'forged-none'), 'none');
  const would = await zferry('import', path.dirname(unsignedForgery), target, '--delete', '--max-delete', 'all', '--dry-run', '--json');
  assert.equal(would.code, 0, would.stderr);
  const plan = JSON.parse(would.stdout);
  assert.deepEqual([...plan.extras.datasets].sort(), ['a', 'b', 'c'].map((d) => `${target}/${d}`));
  assert.equal(plan.warnings.length, 1);
  assert.match(plan.warnings[0], /--delete without --trust/);

  let port = BASE + 3;
  for (const [signature, why] of [['none', /not signed/], ['stale', /signature|does not match/], ['other-key', /not by the trusted key/]] as const) {
    const forged = signature === 'none' ? unsignedForgery : await forge(seed, path.join(work, `forged-${signature}`), signature);
    const r = await push(port++, spool, forged);
    assert.equal(r.code, 1, `${signature}: the receiver refused`);
    assert.match(r.stderr, why, signature);
    assert.deepEqual(await bundlesIn(spool), [path.basename(seed)], `${signature}: the forgery never entered the spool`);
    assert.deepEqual(await targetState(), before, `${signature}: the target is unchanged`);
  }

  // The positive control: the source really loses c; its signed bundle applies, c goes, a new snapshot arrives.
  await run('zfs', ['release', '-r', 'zferry', `${src.name}/c@two`], { allowFailure: true });
  await run('zfs', ['destroy', '-r', `${src.name}/c`]);
  await writeData(`${src.name}/a`, 'three.bin', 16);
  await snapshot(`${src.name}@three`, true);
  const state = path.join(work, 'state.json');
  await zferryOk('state', target, '-o', state);
  const next = JSON.parse((await zferryOk('export', src.name, path.join(work, 'disk-2'), '--since', state, '--no-journal', '--sign', KEY, '--json')).stdout).bundle as string;
  const applied = await push(port++, spool, next);
  assert.equal(applied.code, 0, applied.stderr);
  assert.deepEqual(await guidList(target), await guidList(src.name));
  assert.equal(await run('zfs', ['list', '-H', '-o', 'name', `${target}/c`], { allowFailure: true }), '', 'c is gone from the target');
});

test('import --delete from a disk without --trust prints one warning line; with --trust none', async () => {
  const disk = path.join(work, 'disk-warn');
  await zferryOk('export', src.name, disk, '--no-journal', '--sign', KEY);
  const plain = await zferry('import', disk, `${dst.name}/warned`, '--delete', '--dry-run');
  assert.equal(plain.code, 0, plain.stderr);
  const lines = plain.stderr.trim().split('\n');
  assert.equal(lines.length, 1, plain.stderr);
  assert.match(lines[0], /^zferry: warning: --delete without --trust: whoever wrote the bundles under .* decides what is destroyed under .*warned; sign exports \(export --sign\) and pass --trust KEY\.pub$/);
  const trusted = await zferry('import', disk, `${dst.name}/warned`, '--delete', '--dry-run', '--trust', `${KEY}.pub`);
  assert.equal(trusted.code, 0, trusted.stderr);
  assert.equal(trusted.stderr, '');
});
