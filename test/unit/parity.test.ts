/**
 * Parity without ZFS: a bundle written as export writes it, with par2
 * recovery data over its volumes. Damaged within the budget, `verify
 * --repair` (and the stock commands RESTORE.txt carries) rebuild it
 * byte-exact; beyond the budget, the refusal is verify's own.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { cp, mkdtemp, open, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { finishBundle, verifyBundle, verifyOrRepair, type Manifest } from '../../src/bundle/index.js';
import { writeStream } from '../../src/pipeline/index.js';
import { createParity, PARITY_DIR } from '../../src/parity/par2.js';
import { makeFreshFolder } from '../../src/fs/safe.js';
import { bundleFolderName } from '../../src/commands/export.js';
import { zferry } from '../helpers/cli.js';
import { oneStreamManifest } from '../helpers/bundles.js';

let work: string;
let bundle: string;
let original: Map<string, Buffer>;

before(async () => {
  work = await mkdtemp(join(os.tmpdir(), 'zferry-parity-'));
  const id = randomUUID();
  bundle = join(work, 'disk', bundleFolderName('tank', id, new Date()));
  // Incompressible, so each 32 KiB volume is full: 10 volumes.
  const full = await writeStream(Readable.from([randomBytes(320 * 1024)]), { dir: bundle, index: 1, kind: 'full', volumeSize: 32 * 1024, level: 1 });
  await makeFreshFolder(join(bundle, PARITY_DIR));
  const parity = await createParity(bundle, full.volumes.map((v) => v.file), 30);
  const m = oneStreamManifest(id, 2, full, { parity });
  await finishBundle(bundle, m);
  original = new Map();
  for (const n of await readdir(join(bundle, 'streams'))) original.set(n, await readFile(join(bundle, 'streams', n)));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function flip(file: string, at: number): Promise<void> {
  const fh = await open(file, 'r+');
  const b = Buffer.alloc(8);
  await fh.read(b, 0, 8, at);
  for (let i = 0; i < b.length; i++) b[i] ^= 0xff;
  await fh.write(b, 0, 8, at);
  await fh.close();
}

/** A copy with bytes flipped in volumes 1 and 4 and volume 7 deleted (about 12% of the bytes). */
async function damaged(name: string): Promise<string> {
  const copy = join(work, name, 'b');
  await cp(bundle, copy, { recursive: true });
  const vols = [...original.keys()].sort();
  await flip(join(copy, 'streams', vols[1]!), 10);
  await flip(join(copy, 'streams', vols[4]!), 20_000);
  await rm(join(copy, 'streams', vols[7]!));
  return copy;
}

async function assertVolumesAsExported(copy: string): Promise<void> {
  assert.deepEqual((await readdir(join(copy, 'streams'))).sort(), [...original.keys()].sort(), 'every volume, no leftovers');
  for (const [n, bytes] of original) assert.ok((await readFile(join(copy, 'streams', n))).equals(bytes), `${n} byte-exact`);
}

test('the parity files are in the manifest, in SHA256SUMS after the volumes, and verify checks their sha256', async () => {
  const m = JSON.parse(await readFile(join(bundle, 'manifest.json'), 'utf8')) as Manifest;
  assert.equal(m.parity?.percent, 30);
  const sums = (await readFile(join(bundle, 'SHA256SUMS'), 'utf8')).trim().split('\n').map((l) => l.split('  ')[1]);
  assert.deepEqual(sums, [...m.streams[0]!.volumes.map((v) => v.file), ...m.parity!.files.map((f) => f.file), 'RESTORE.txt']);
  await verifyBundle(bundle);
  const copy = join(work, 'flipped-parity', 'b');
  await cp(bundle, copy, { recursive: true });
  await flip(join(copy, m.parity!.files[1]!.file), 100);
  await assert.rejects(verifyBundle(copy), /parity\/recovery\.vol\S+\.par2: sha256 is [0-9a-f]{64}, manifest says/);
});

test('verify --repair rebuilds flipped and deleted volumes byte-exact and names them', async () => {
  const copy = await damaged('cli');
  const plain = await zferry('verify', copy);
  assert.notEqual(plain.code, 0);
  const r = await zferry('verify', copy, '--repair');
  assert.equal(r.code, 0, r.stderr);
  const vols = [...original.keys()].sort();
  for (const i of [1, 4, 7]) assert.ok(r.stdout.includes(`repaired ${copy}/streams/${vols[i]} from parity/`), r.stdout);
  await assertVolumesAsExported(copy);
});

test('RESTORE.txt\'s stock-tool repair (par2, rm, sha256sum) rebuilds the same damage', async () => {
  const copy = await damaged('stock');
  const text = await readFile(join(copy, 'RESTORE.txt'), 'utf8');
  const block = text.slice(text.indexOf('if ! sha256sum'), text.indexOf('\nfi\n') + 4);
  assert.match(block, /par2 repair -B \. parity\/recovery\.par2/);
  const r = await execa('bash', ['-euo', 'pipefail', '-c', block], { cwd: copy, reject: false, all: true });
  assert.equal(r.exitCode, 0, String(r.all));
  await assertVolumesAsExported(copy);
});

test('beyond the budget the refusal is verify\'s own, plus what parity lacked', async () => {
  const copy = join(work, 'beyond', 'b');
  await cp(bundle, copy, { recursive: true });
  const vols = [...original.keys()].sort();
  for (const v of vols.slice(0, 5)) await rm(join(copy, 'streams', v));
  const m = JSON.parse(await readFile(join(copy, 'manifest.json'), 'utf8')) as Manifest;
  await assert.rejects(verifyOrRepair(copy, { manifest: m }), (e: Error) =>
    e.message.startsWith(`missing volume ${copy}/streams/${vols[0]}; parity/ could not repair it (`) && /more recovery blocks/.test(e.message) && !e.message.includes('\n'));
});

test('a bundle with parity travels the relay whole: parity files arrive checked and the spool copy verifies', async () => {
  const { describeBundles, packBundles } = await import('../../src/relay/pack.js');
  const { unpackInto } = await import('../../src/relay/unpack.js');
  const { buffer } = await import('node:stream/consumers');
  const tarBytes = await buffer(packBundles(await describeBundles([bundle])));
  const spool = join(work, 'spool');
  const r = await unpackInto(spool, Readable.from([tarBytes]), { source: '1234567890123456789:tank' });
  assert.equal(r.bundles.length, 1);
  const m = JSON.parse(await readFile(join(bundle, 'manifest.json'), 'utf8')) as Manifest;
  assert.deepEqual((await readdir(join(r.bundles[0]!, 'parity'))).sort(), m.parity!.files.map((f) => f.file.slice('parity/'.length)).sort());
  await verifyBundle(r.bundles[0]!);
});
