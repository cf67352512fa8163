/**
 * One source feeding two sites on real ZFS: an office imported every round
 * (the default site, today's names) and a vault whose disks come back three
 * rounds late (`--site vault`). Between rounds the source is rotated as
 * zfs-auto-snapshot would: every snapshot nobody holds is destroyed. Each
 * site keeps its own journal, holds and bookmarks, so neither site's receipt
 * releases the other's base and no round of either falls back to a full send.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makePool, run, snapshotGuids, type TestPool } from '../helpers/zfslab.js';
import { STATE_DIR, zferry, zferryOk } from '../helpers/cli.js';
import { snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let work: string;
const ROUNDS = 7;
const LAG = 3;

before(async () => {
  src = await makePool('sts', 160);
  dst = await makePool('std', 256);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-sites-'));
  await run('zfs', ['create', `${src.name}/data`]);
});

after(async () => {
  await src?.destroy();
  await dst?.destroy();
  await rm(work, { recursive: true, force: true });
});

/** Destroys every source snapshot without a hold, newest included, as an aggressive rotation would. */
async function rotate(pool: string): Promise<string[]> {
  // zfs-fuse's `zfs list` knows no userrefs column; `zfs get` does.
  const out = await run('zfs', ['get', '-H', '-p', '-r', '-o', 'name,value', 'userrefs', pool]);
  const gone: string[] = [];
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const [name, refs] = line.split('\t');
    if (name.includes('@') && refs === '0') {
      await run('zfs', ['destroy', name]);
      gone.push(name);
    }
  }
  return gone;
}

interface Step { dataset: string; kind: string }

async function exportRound(disk: string, site: string | null): Promise<{ kinds: string[]; basis: string }> {
  await mkdir(disk, { recursive: true });
  const r = await zferryOk('export', src.name, disk, '--volume-size', '1M', '--json', ...(site ? ['--site', site] : []));
  const out = JSON.parse(r.stdout);
  return { kinds: out.plan.steps.map((s: Step) => `${s.dataset || '(root)'}:${s.kind}`), basis: out.basis.origin };
}

test('two sites, one three rounds behind, with rotation between rounds: every round of both stays incremental', async () => {
  const office = `${dst.name}/office`;
  const vault = `${dst.name}/vault`;
  const officeDisk = path.join(work, 'office');
  // The vault's disks travel in turn: the one exported at round i is imported at round i+LAG and comes back for round i+LAG+1.
  const vaultDisk = (i: number) => path.join(work, `vault-${i % (LAG + 1)}`);
  const vaultImported: number[] = [];

  for (let i = 1; i <= ROUNDS; i++) {
    await writeData(src.name, `round-${i}.bin`, 32);
    await writeData(`${src.name}/data`, `round-${i}.bin`, 32);
    await snapshot(`${src.name}@r${i}`, true);

    const o = await exportRound(officeDisk, null);
    const full = i === 1 ? 'full' : 'incremental';
    assert.deepEqual(o.kinds, [`(root):${full}`, `data:${full}`], `office round ${i}`);
    await zferryOk('import', officeDisk, office);

    const v = await exportRound(vaultDisk(i), 'vault');
    assert.deepEqual(v.kinds, [`(root):${full}`, `data:${full}`], `vault round ${i}`);
    // Planned on top of the vault's own pending bundle, never the office's.
    if (i > 1) assert.equal(v.basis, 'journal', `vault round ${i}`);
    if (i > LAG) {
      await zferryOk('import', vaultDisk(i - LAG), vault);
      vaultImported.push(i - LAG);
    }
    await rotate(src.name);
  }

  // The office holds every round; the vault holds what its disks brought, the newest LAG rounds still travelling.
  const snapshotsOf = async (ds: string) => (await run('zfs', ['list', '-H', '-r', '-o', 'name', '-t', 'snapshot', ds])).split('\n').filter((l) => l.startsWith(`${ds}@`)).join('\n');
  assert.match(await snapshotsOf(office), new RegExp(`@r${ROUNDS}$`, 'm'));
  const vaultSnaps = await snapshotsOf(vault);
  assert.match(vaultSnaps, new RegExp(`@r${ROUNDS - LAG}$`, 'm'));
  assert.doesNotMatch(vaultSnaps, new RegExp(`@r${ROUNDS - LAG + 1}$`, 'm'));

  // Each site has its own journal; the default site's keeps its name from before sites.
  const journals = (await readdir(STATE_DIR)).filter((f) => f.startsWith('journal-') && f.includes(src.name));
  assert.equal(journals.length, 2, journals.join(', '));
  assert.ok(journals.some((f) => f.endsWith(`-${src.name}.json`)), journals.join(', '));
  assert.ok(journals.some((f) => f.endsWith(`-${src.name}@vault.json`)), journals.join(', '));

  // The vault's bundles say whose they are; the office's carry no site field (readable as before).
  const vaultBundle = (await readdir(vaultDisk(ROUNDS))).find((f) => f.startsWith('zferry-'))!;
  assert.equal(JSON.parse(await readFile(path.join(vaultDisk(ROUNDS), vaultBundle, 'manifest.json'), 'utf8')).site, 'vault');
  const officeBundle = (await readdir(officeDisk)).find((f) => f.startsWith('zferry-'))!;
  assert.equal(JSON.parse(await readFile(path.join(officeDisk, officeBundle, 'manifest.json'), 'utf8')).site, undefined);

  // The vault's travelling disks are lost: plan from its newest receipt alone.
  // Its base, LAG rounds old, survived the office's receipts and the rotation.
  const lastImported = vaultImported[vaultImported.length - 1];
  const fresh = path.join(work, 'vault-fresh');
  await mkdir(fresh);
  const receipt = (await readdir(vaultDisk(lastImported))).find((f) => f.startsWith('receipt-'))!;
  assert.equal(JSON.parse(await readFile(path.join(vaultDisk(lastImported), receipt), 'utf8')).site, 'vault');
  await copyFile(path.join(vaultDisk(lastImported), receipt), path.join(fresh, receipt));
  const r = await zferryOk('export', src.name, fresh, '--site', 'vault', '--no-journal', '--json');
  const out = JSON.parse(r.stdout);
  assert.equal(out.basis.origin, 'receipt');
  assert.deepEqual(out.plan.steps.map((s: Step) => s.kind), ['incremental', 'incremental']);
  await zferryOk('import', fresh, vault);
  const sourceNewest = await run('zfs', ['get', '-H', '-o', 'value', 'guid', `${src.name}@r${ROUNDS}`]);
  const vaultNewest = await run('zfs', ['get', '-H', '-o', 'value', 'guid', `${vault}@r${ROUNDS}`]);
  assert.equal(vaultNewest.trim(), sourceNewest.trim());
  assert.ok([...(await snapshotGuids(vault)).keys()].filter((k) => k.startsWith('@')).length >= 2);
});

test('another site\'s receipt given to --since is refused before anything is sent', async () => {
  const disk = path.join(work, 'office');
  const receipt = (await readdir(disk)).find((f) => f.startsWith('receipt-'))!;
  const r = await zferry('export', src.name, path.join(work, 'nowhere'), '--site', 'vault', '--since', path.join(disk, receipt));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /receipt of site default, not of site vault/);
  await assert.rejects(readdir(path.join(work, 'nowhere')));
});

test('a site name that could pass for a guid or a path is refused in one line', async () => {
  for (const bad of ['123', 'a/b', '.x', 'x'.repeat(40)]) {
    const r = await zferry('export', src.name, path.join(work, 'nowhere'), '--site', bad);
    assert.equal(r.code, 1, bad);
    assert.match(r.stderr, /site name .* must start with a letter/, bad);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
  // Nothing recorded under a name built from them either.
  assert.deepEqual((await readdir(STATE_DIR).catch(() => [] as string[])).filter((f) => f.startsWith('last-') && f.includes('@') && !f.endsWith('@vault.json')), []);
});
