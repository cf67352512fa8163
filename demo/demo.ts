/**
 * `npm run demo`: the user's story on file-backed pools, printed as it runs.
 * A source pool with nested datasets, zfs-auto-snapshot and manual snapshots;
 * a remote whose first `zfs send -R` never finished; one bundle by "disk"
 * brings it level, a second round runs from the receipt the import left.
 *
 * Fixture commands (making pools, writing files) use the test harness; every
 * step of the job itself is the zferry CLI, exactly as a user types it.
 */
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CLI } from '../test/helpers/cli.js';
import { makePool, run } from '../test/helpers/zfslab.js';
import { AUTO, buildSource, guidList, halfSeed, snapshot, writeData, datasetList } from '../test/helpers/fixtures.js';

const bold = process.stdout.isTTY ? (t: string) => `\x1b[1m${t}\x1b[0m` : (t: string) => t;
const say = (text: string) => process.stdout.write(`\n${bold(`== ${text}`)}\n`);

/**
 * Runs one zferry step as the user would type it. `stateDir` (export's
 * journal, outcomes, locks) is a scratch folder of the demo's own, removed at
 * its end: never the user's $ZFERRY_STATE_DIR, which holds their real journal.
 */
async function zferry(stateDir: string, ...args: string[]): Promise<void> {
  process.stdout.write(`$ zferry ${args.join(' ')}\n`);
  const r = await execa(process.execPath, [CLI, ...args], {
    reject: false, stdin: 'ignore', stdout: 'inherit', stderr: 'inherit', env: { ZFERRY_STATE_DIR: stateDir },
  });
  if (r.exitCode !== 0) throw new Error(`zferry ${args[0]} exited ${r.exitCode}`);
}

async function show(root: string): Promise<void> {
  const out = await run('zfs', ['list', '-H', '-r', '-t', 'all', '-o', 'name', root]);
  const lines = out.split('\n').filter(Boolean);
  const datasets = lines.filter((l) => !l.includes('@'));
  for (const d of datasets) {
    const snaps = lines.filter((l) => l.startsWith(`${d}@`)).map((l) => l.split('@')[1]);
    process.stdout.write(`  ${d.padEnd(34)} ${snaps.length} snapshot(s)${snaps.length ? `, newest @${snaps[snaps.length - 1]}` : ''}\n`);
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const src = await makePool('tank', 192);
  const dst = await makePool('remote', 192);
  const disk = await mkdtemp(path.join(os.tmpdir(), 'zferry-demo-disk-'));
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'zferry-demo-state-'));
  const step = (...args: string[]) => zferry(stateDir, ...args);
  const target = `${dst.name}/backup`;
  try {
    say(`source pool ${src.name}: nested datasets, zfs-auto-snapshot and manual snapshots`);
    await buildSource(src.name);
    await show(src.name);

    say(`remote ${target}: the first zfs send -R never finished`);
    await halfSeed(src.name, target);
    await show(target);

    say('1. on the remote: record what the target holds');
    await step('state', target, '-o', path.join(disk, 'state.json'));
    say('2. on the source: export one bundle to the disk, planned by snapshot guid');
    await step('export', src.name, disk, '--since', path.join(disk, 'state.json'), '--volume-size', '256K');
    say('3. the disk travels; on the remote: verify it, then import');
    const bundle = (await run('ls', [disk])).split('\n').find((f) => f.startsWith('zferry-'))!;
    await step('verify', path.join(disk, bundle));
    await step('import', disk, target);
    await show(target);

    say('4. next round: new snapshots and a new dataset; the receipt on the disk is the plan\'s basis');
    await writeData(`${src.name}/home`, 'new.bin', 32);
    await run('zfs', ['create', `${src.name}/home/alice`]);
    await writeData(`${src.name}/home/alice`, 'mail.bin', 16);
    await snapshot(`${src.name}@${AUTO('hourly', 3)}`, true);
    await step('export', src.name, disk);
    await step('import', disk, target);

    say('result');
    const [a, b] = await Promise.all([guidList(src.name), guidList(target)]);
    const same = a.length === b.length && a.every((x, i) => x === b[i]);
    const datasets = (await datasetList(src.name)).length;
    process.stdout.write(`  source: ${datasets} datasets, ${a.length} snapshots; target: ${b.length} snapshots\n`);
    process.stdout.write(`  every snapshot on the target has the source's guid: ${same ? 'yes' : 'NO'}\n`);
    process.stdout.write(`  done in ${((Date.now() - started) / 1000).toFixed(1)} s; the disk held ${disk}\n`);
    if (!same) process.exitCode = 1;
  } finally {
    await src.destroy();
    await dst.destroy();
    await rm(disk, { recursive: true, force: true });
    await rm(stateDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : err}\n`);
  process.exitCode = 1;
});
