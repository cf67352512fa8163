/**
 * A receipt planted on the disk cannot stop replication: the target signs
 * the receipt it leaves (import --sign), and export --trust-receiver plans
 * only from signed receipts (a helper's audit: a forged receipt claiming the
 * newest snapshot made export send nothing and release the source's bases).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { zferryOk } from '../helpers/cli.js';
import { guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let pools: TwoPools | undefined;
let work: string;

before(async () => {
  ({ src, dst, work } = pools = await twoPools('rt', 96));
  await writeData(src.name, 'one.bin', 64);
  await snapshot(`${src.name}@one`);
});

after(async () => {
  await pools?.teardown();
});

interface Planned { plan: { steps: Array<{ kind: string; to: { name: string } | null }> }; basis: { origin: string; file: string | null } }

test('export --trust-receiver plans from the receipt import --sign left, not from a newer one planted on the disk that claims everything is there', async () => {
  const disk = path.join(work, 'disk');
  const target = `${dst.name}/mirror`;
  await zferryOk('keygen', '-o', path.join(work, 'receiver.key'));
  const pub = path.join(work, 'receiver.key.pub');
  await zferryOk('export', src.name, disk, '--no-journal');
  await zferryOk('import', disk, target, '--sign', path.join(work, 'receiver.key'));
  const receipt = path.join(disk, `receipt-${dst.name}_mirror.json`);
  assert.ok((await readdir(disk)).includes(path.basename(receipt) + '.minisig'), 'the receipt is signed');
  // Stock minisign checks it without zferry.
  await run('minisign', ['-Vm', receipt, '-p', pub]);

  await writeData(src.name, 'two.bin', 64);
  await snapshot(`${src.name}@two`);
  // Planted: the real receipt, a day newer, its inventory claiming @two (guid and all, read from the source),
  // as the target's newest snapshot. createtxg orders a dataset's snapshots on its own pool: the source's
  // txg for @two may be below the target's for @one (it was on OpenZFS), so the forger writes one above it.
  type Snap = { name: string; createtxg: string };
  const forged = JSON.parse(await readFile(receipt, 'utf8')) as { takenAt: string; inventory: { datasets: Array<{ path: string; snapshots: Snap[] }> } };
  const source = JSON.parse((await zferryOk('state', src.name)).stdout) as { inventory: { datasets: Array<{ path: string; snapshots: Snap[] }> } };
  const two = source.inventory.datasets.find((d) => d.path === '')!.snapshots.find((x) => x.name === 'two')!;
  const held = forged.inventory.datasets.find((d) => d.path === '')!.snapshots;
  forged.takenAt = new Date(Date.now() + 86400_000).toISOString();
  held.push({ ...two, createtxg: String(held.reduce((m, x) => (BigInt(x.createtxg) > m ? BigInt(x.createtxg) : m), 0n) + 1n) });
  await writeFile(path.join(disk, 'receipt-forged.json'), JSON.stringify(forged));

  const plan = async (...extra: string[]) => JSON.parse((await zferryOk('export', src.name, disk, '--no-journal', '--dry-run', '--json', ...extra)).stdout) as Planned & { warnings: string[] };
  const fooled = await plan();
  assert.equal(fooled.basis.file, path.join(disk, 'receipt-forged.json'), 'without the key, the newest receipt rules');
  assert.deepEqual(fooled.plan.steps.filter((s) => s.kind !== 'create'), [], 'and it says nothing is left to send');

  const trusted = await plan('--trust-receiver', pub);
  assert.equal(trusted.basis.file, receipt);
  assert.deepEqual(trusted.plan.steps.map((s) => [s.kind, s.to?.name]), [['incremental', 'two']]);
  assert.ok(trusted.warnings.some((w) => w.includes('receipt-forged.json') && /not signed/.test(w)), trusted.warnings.join(' | '));

  await zferryOk('export', src.name, disk, '--no-journal', '--trust-receiver', pub);
  await zferryOk('import', disk, target, '--sign', path.join(work, 'receiver.key'));
  assert.deepEqual(await guidList(target), await guidList(src.name));
});
