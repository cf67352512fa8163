/**
 * `export --parity`: par2 recovery data in parity/, covered by SHA256SUMS and
 * the manifest. A bundle damaged in the post (bytes flipped in several
 * volumes, one volume gone) within the budget is rebuilt by `verify --repair`
 * or by `import`, which then restores byte-exact snapshots; beyond the
 * budget, the refusal is today's, and nothing is received.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, readdir, rm, cp } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../helpers/zfslab.js';
import { zferry, zferryOk } from '../helpers/cli.js';
import { assertSameFiles, guidList, snapshot, writeData } from '../helpers/fixtures.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';

let lab: TwoPools;
let disk: string;
let bundle: string;

before(async () => {
  lab = await twoPools('par', 128);
  disk = path.join(lab.work, 'disk');
  await writeData(lab.src.name, 'a.bin', 768);
  await snapshot(`${lab.src.name}@one`);
  await zferryOk('export', lab.src.name, disk, '--no-journal', '--volume-size', '64K', '--parity', '40');
  bundle = path.join(disk, (await readdir(disk)).find((n) => n.startsWith('zferry-'))!);
});

after(async () => {
  await lab?.teardown();
});

async function flip(file: string, at: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const b = Buffer.alloc(16);
    await fh.read(b, 0, 16, at);
    for (let i = 0; i < b.length; i++) b[i] ^= 0xff;
    await fh.write(b, 0, 16, at);
  } finally {
    await fh.close();
  }
}

/** A fresh copy of the exported bundle, damaged: bytes flipped in volumes 1 and 3, volume 5 deleted. */
async function damagedCopy(name: string): Promise<{ dir: string; copy: string; volumes: string[] }> {
  const dir = path.join(lab.work, name);
  const copy = path.join(dir, path.basename(bundle));
  await cp(bundle, copy, { recursive: true });
  const volumes = (await readdir(path.join(copy, 'streams'))).sort();
  await flip(path.join(copy, 'streams', volumes[1]!), 100);
  await flip(path.join(copy, 'streams', volumes[3]!), 30_000);
  await rm(path.join(copy, 'streams', volumes[5]!));
  return { dir, copy, volumes };
}

test('parity/ lies beside streams/, listed in SHA256SUMS and the manifest, and verify checks it', async () => {
  const names = await readdir(path.join(bundle, 'parity'));
  assert.ok(names.includes('recovery.par2') && names.length >= 2, `par2 index and recovery volumes: ${names}`);
  const sums = await readFile(path.join(bundle, 'SHA256SUMS'), 'utf8');
  for (const n of names) assert.match(sums, new RegExp(`  parity/${n.replace(/[.+]/g, '\\$&')}\n`));
  const manifest = JSON.parse(await readFile(path.join(bundle, 'manifest.json'), 'utf8'));
  assert.equal(manifest.formatVersion, 2);
  assert.equal(manifest.parity.tool, 'par2');
  assert.equal(manifest.parity.percent, 40);
  assert.match(await readFile(path.join(bundle, 'RESTORE.txt'), 'utf8'), /par2 repair -B \. parity\/recovery\.par2/);
  await zferryOk('verify', bundle);

  // A flipped parity file is refused by verify like any other file on the disk.
  const copy = path.join(lab.work, 'parity-flip', path.basename(bundle));
  await cp(bundle, copy, { recursive: true });
  await flip(path.join(copy, manifest.parity.files[1].file), 10);
  const v = await zferry('verify', copy);
  assert.notEqual(v.code, 0);
  assert.match(v.stderr, /parity\/\S+\.par2: sha256 is [0-9a-f]{64}, manifest says/);
});

test('verify --repair rebuilds flipped and deleted volumes within the budget and says which', async () => {
  const { copy, volumes } = await damagedCopy('repair');
  const plain = await zferry('verify', copy);
  assert.notEqual(plain.code, 0, 'without --repair the damage is refused');
  const r = await zferry('verify', copy, '--repair');
  assert.equal(r.code, 0, r.stderr);
  for (const i of [1, 3, 5]) assert.match(r.stdout, new RegExp(`repaired ${copy}/streams/${volumes[i]!.replace(/\./g, '\\.')} from parity/`));
  assert.deepEqual((await readdir(path.join(copy, 'streams'))).sort(), volumes, 'every volume back, no par2 leftovers');
  await zferryOk('verify', copy);
});

test('import rebuilds a damaged bundle from parity before receiving, and restores byte-exact snapshots', async () => {
  const { dir } = await damagedCopy('import');
  const target = `${lab.dst.name}/copy`;
  const r = await zferry('import', dir, target);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /repaired .* from parity\//);
  assert.deepEqual(await guidList(target), await guidList(lab.src.name));
  await assertSameFiles(lab.src.name, target);
});

test('damage beyond the parity budget is refused as today, and nothing is received', async () => {
  const dir = path.join(lab.work, 'beyond');
  const copy = path.join(dir, path.basename(bundle));
  await cp(bundle, copy, { recursive: true });
  const volumes = (await readdir(path.join(copy, 'streams'))).sort();
  // 40% parity cannot bring back more than half of the volumes.
  for (const v of volumes.slice(0, Math.ceil(volumes.length / 2) + 1)) await rm(path.join(copy, 'streams', v));
  const target = `${lab.dst.name}/beyond`;
  const r = await zferry('import', dir, target);
  assert.notEqual(r.code, 0);
  const line = r.stderr.trim();
  assert.equal(line.split('\n').length, 1, line);
  assert.match(line, new RegExp(`^zferry: missing volume ${copy}/streams/${volumes[0]!.replace(/\./g, '\\.')}; parity/ could not repair it \\(.*\\)$`));
  assert.equal((await run('zfs', ['list', '-H', '-o', 'name', '-r', lab.dst.name])).includes(target), false, 'nothing received');
});
