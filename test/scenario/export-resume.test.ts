/**
 * Export resumes (issue 14, point 2): an export killed part way keeps the
 * streams it wrote whole, in a folder no reader takes for a bundle; run again,
 * it keeps every finished stream its new plan still needs (re-hashed from
 * disk, the very same files), writes only the rest, and the bundle imports
 * whole. Kill points come from the ZFERRY_TEST_PAUSE_AT hook.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferry, zferryOk, zferryOkWith } from '../helpers/cli.js';
import { killAt } from '../helpers/kill.js';
import { guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let pools: TwoPools | undefined;
let work: string;

before(async () => {
  ({ src, dst, work } = pools = await twoPools('er', 96));
  for (const d of ['a', 'b']) await run('zfs', ['create', `${src.name}/${d}`]);
  for (const d of ['', '/a', '/b']) await writeData(`${src.name}${d}`, 'one.bin', 256);
  await snapshot(`${src.name}@one`, true);
});

after(async () => {
  await pools?.teardown();
});

interface Stream { index: number; dataset: string; volumes: Array<{ file: string }> }

async function onlyFolder(dest: string): Promise<string> {
  const names = (await readdir(dest)).filter((n) => n.startsWith('zferry-'));
  assert.equal(names.length, 1, `one bundle folder in ${dest}: ${names.join(', ')}`);
  return path.join(dest, names[0]);
}

async function inodes(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const n of await readdir(path.join(dir, 'streams'))) out.set(n, (await stat(path.join(dir, 'streams', n))).ino);
  return out;
}

async function exportJson(...args: string[]): Promise<{ bundle: string | null; resumed: { folder: string; reused: Array<{ index: number; dataset: string }>; dropped: Array<{ index: number; reason: string }> } | null }> {
  return JSON.parse((await zferryOk('export', ...args, '--json')).stdout);
}

async function importAndCompare(dest: string, target: string): Promise<void> {
  await zferryOk('verify', dest);
  await zferryOk('import', dest, target);
  assert.deepEqual(await guidList(target), await guidList(src.name));
  await run('zfs', ['destroy', '-r', target]);
}

test('an export killed between streams keeps stream 1 unbundled, and the re-run reuses its very files and writes only the rest', async () => {
  const dest = path.join(work, 'between');
  const args = [src.name, dest, '--no-journal', '--volume-size', '64K'];
  await killAt('export:between:1', { dir: work }, 'export', ...args);
  const dir = await onlyFolder(dest);
  const before = await inodes(dir);
  assert.ok([...before.keys()].some((n) => n.startsWith('0001-')), 'stream 1 is on disk');
  const v = await zferry('verify', dest);
  assert.notEqual(v.code, 0, 'the unfinished folder is no bundle');
  assert.match(v.stderr, /no zferry bundle here/);
  // The three small sends ran side by side: a and b may have finished beside stream 1 before the kill.
  // The marker lists what finished; exactly that is reused.
  const listed = (JSON.parse(await readFile(path.join(dir, '.zferry-export.json'), 'utf8')) as { streams: Stream[] }).streams.map((s) => s.index);
  assert.ok(listed.includes(1), `the marker lists stream 1: ${listed}`);

  const dry = await exportJson(...args, '--dry-run');
  assert.equal(dry.resumed?.folder, dir);
  assert.deepEqual(dry.resumed?.reused.map((r) => r.index), listed, 'dry run says the listed streams would be reused');
  assert.deepEqual(await inodes(dir), before, 'the dry run touched nothing');

  const r = await exportJson(...args);
  assert.equal(r.bundle, dir, 'the same folder becomes the bundle');
  assert.deepEqual(r.resumed?.reused.map((x) => x.index), listed);
  const after = await inodes(dir);
  const kept = (name: string) => listed.some((i) => name.startsWith(`${String(i).padStart(4, '0')}-`));
  for (const [name, ino] of before) if (kept(name)) assert.equal(after.get(name), ino, `${name} was kept, not rewritten`);
  assert.deepEqual((await readdir(dir)).sort(), ['RESTORE.txt', 'SHA256SUMS', 'manifest.json', 'streams'], 'no marker left in a finished bundle');
  await importAndCompare(dest, `${dst.name}/between`);
});

test('an export killed inside stream 2 drops that stream\'s half-written volumes and redoes it; a kept volume changed on disk is redone, not trusted', async () => {
  const dest = path.join(work, 'inside');
  // One send at a time: --max-memory holds one zstd context at level 3 (about 28 MiB), so b never runs beside a.
  const args = [src.name, dest, '--no-journal', '--volume-size', '64K', '--max-memory', '32M'];
  await killAt('export:stream:2', { dir: work }, 'export', ...args);
  const dir = await onlyFolder(dest);
  const names = await readdir(path.join(dir, 'streams'));
  assert.ok(names.some((n) => n.startsWith('0002-')), 'stream 2 was part written');
  // One byte of stream 1 flipped on the disk: its sha256 no longer matches what the marker recorded.
  const victim = path.join(dir, 'streams', names.filter((n) => n.startsWith('0001-')).sort()[0]);
  const fh = await open(victim, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, 100);
  b[0] ^= 0xff;
  await fh.write(b, 0, 1, 100);
  await fh.close();

  const r = await exportJson(...args);
  assert.deepEqual(r.resumed?.reused, [], 'nothing reused');
  assert.match(r.resumed?.dropped[0]?.reason ?? '', /sha256/);
  await importAndCompare(dest, `${dst.name}/inside`);
});

test('new snapshots after the kill: the streams whose step is unchanged are reused, the changed ones sent again', async () => {
  const dest = path.join(work, 'newsnap');
  const args = [src.name, dest, '--no-journal', '--volume-size', '64K'];
  await killAt('export:manifest', { dir: work }, 'export', ...args);
  const dir = await onlyFolder(dest);
  const m1 = JSON.parse(await readFile(path.join(dir, '.zferry-export.json'), 'utf8')) as { streams: Stream[] };
  const bIndex = m1.streams.find((s) => s.dataset === 'b')!.index;
  await writeData(`${src.name}/b`, 'two.bin', 64);
  await snapshot(`${src.name}/b@two`);

  const r = await exportJson(...args);
  const reused = r.resumed?.reused.map((x) => x.dataset).sort();
  // b's full stream to @one is the same step as before the kill: kept, with an incremental to @two after it.
  assert.deepEqual(reused, ['', 'a', 'b'], `root, a and b's full stream reused: ${JSON.stringify(reused)}`);
  assert.ok(!r.resumed?.dropped.some((d) => d.index === bIndex), 'b\'s stream was not dropped');
  const m2 = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as { streams: Array<Stream & { to: { name: string } }> };
  assert.ok(m2.streams.some((s) => s.dataset === 'b' && s.to.name === 'two'), 'the bundle carries b up to @two');
  await importAndCompare(dest, `${dst.name}/newsnap`);
});

test('a marker this host did not seal is neither resumed nor removed: a stranger\'s newer copy with its own volume rides into no bundle, and another host resumes nothing', async () => {
  const dest = path.join(work, 'forged');
  const args = [src.name, dest, '--no-journal', '--volume-size', '64K'];
  await killAt('export:manifest', { dir: work }, 'export', ...args);
  const genuine = await onlyFolder(dest);
  const marker = JSON.parse(await readFile(path.join(genuine, '.zferry-export.json'), 'utf8')) as { seal: string; streams: Array<Stream & { volumes: Array<{ file: string; bytes: number; sha256: string }> }> };
  assert.match(marker.seal, /^[0-9a-f]{64}$/, 'this host sealed its marker');
  // A stranger's copy (a disk that was away): the newest date, another id, stream 1 its own bytes under their own hash, the seal as it was.
  const id = '0badf00d-0000-4000-8000-00000000f0e0';
  const forged = path.join(dest, `zferry-${src.name}-20991231T000000Z-${id.slice(0, 8)}`);
  const evil = randomBytes(4096);
  const one = marker.streams.find((s) => s.index === 1)!;
  await mkdir(path.join(forged, 'streams'), { recursive: true });
  await writeFile(path.join(forged, one.volumes[0].file), evil);
  await writeFile(path.join(forged, '.zferry-export.json'), JSON.stringify({
    ...marker, bundleId: id, createdAt: '2099-12-31T00:00:00.000Z',
    streams: [{ ...one, volumes: [{ file: one.volumes[0].file, bytes: evil.length, sha256: createHash('sha256').update(evil).digest('hex') }] }],
  }));
  const forgedFiles = async () => JSON.stringify([await readdir(forged), await readFile(path.join(forged, '.zferry-export.json'), 'utf8'), await readFile(path.join(forged, one.volumes[0].file))]);
  const planted = await forgedFiles();

  // Another host (its own key): neither marker is its own.
  const other = path.join(work, 'other-host-state');
  await mkdir(other, { recursive: true });
  await writeFile(path.join(other, 'marker.key'), 'ab'.repeat(32) + '\n');
  const elsewhere = JSON.parse((await zferryOkWith({ ZFERRY_STATE_DIR: other }, 'export', ...args, '--dry-run', '--json')).stdout) as { resumed: unknown; warnings: string[] };
  assert.equal(elsewhere.resumed, null);
  for (const dir of [genuine, forged]) assert.ok(elsewhere.warnings.some((w) => w.startsWith(`${dir}: `) && /did not seal/.test(w)), `${dir} is named: ${elsewhere.warnings.join(' | ')}`);

  // This host resumes its own, names the stranger's, and leaves it as it was.
  const r = JSON.parse((await zferryOk('export', ...args, '--json')).stdout) as { bundle: string; resumed: { folder: string; reused: Array<{ index: number }> } | null; warnings: string[] };
  assert.equal(r.resumed?.folder, genuine);
  assert.equal(r.bundle, genuine);
  assert.ok(r.resumed?.reused.some((x) => x.index === 1), 'stream 1 came from this host\'s own marker');
  assert.ok(r.warnings.some((w) => w.startsWith(`${forged}: `)), r.warnings.join(' | '));
  assert.equal(await forgedFiles(), planted, 'the stranger\'s folder is untouched');
  await importAndCompare(dest, `${dst.name}/forged`);
});
