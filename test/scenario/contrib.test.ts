/**
 * What contrib/ ships for unattended use: the systemd units pass
 * `systemd-analyze verify` (warnings count as failures), and the disk unit's
 * command line with its config runs a real export on the source side and a
 * real import on the remote side. udev cannot run here; the rule is checked
 * for the unit name it asks for.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { makePool, run, snapshotGuids, type TestPool } from '../helpers/zfslab.js';
import { CLI, STATE_DIR } from '../helpers/cli.js';
import { snapshot, writeData } from '../helpers/fixtures.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CONTRIB = path.join(ROOT, 'contrib');
const UNITS = path.join(CONTRIB, 'systemd');
/** Under CI (.ci/run sets ZFERRY_CI; most CI services set CI) a missing tool fails the check instead of skipping it. */
const UNDER_CI = Boolean(process.env.CI || process.env.ZFERRY_CI);

let work: string;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-contrib-'));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function which(program: string): Promise<boolean> {
  const r = await execa('sh', ['-c', 'command -v "$1"', 'sh', program], { reject: false });
  return r.exitCode === 0;
}

/** Every `Exec…=` program of a unit (the leading `-`, `@`, `+`, `!` prefixes dropped). */
function execPrograms(text: string): string[] {
  return [...text.matchAll(/^Exec[A-Za-z]*=\s*[-@+!:]*(\S+)/gm)].map((m) => m[1]!);
}

test('every shipped systemd unit passes systemd-analyze verify, without a warning', async (t) => {
  if (!(await which('systemd-analyze'))) {
    if (UNDER_CI) assert.fail('systemd-analyze is missing: install systemd (scripts/setup.sh does)');
    t.skip('systemd-analyze is not installed (it is required under CI)');
    return;
  }
  // A root of its own: the system's targets, the units, and the programs they name (zferry is not installed here).
  const root = path.join(work, 'root');
  const system = path.join(root, 'usr/lib/systemd/system');
  const etc = path.join(root, 'etc/systemd/system');
  await mkdir(system, { recursive: true });
  await mkdir(etc, { recursive: true });
  for (const f of await readdir('/usr/lib/systemd/system')) {
    if (f.endsWith('.target') || f.endsWith('.slice')) await copyFile(path.join('/usr/lib/systemd/system', f), path.join(system, f)).catch(() => undefined);
  }
  const names: string[] = [];
  for (const f of (await readdir(UNITS)).sort()) {
    const text = await readFile(path.join(UNITS, f), 'utf8');
    assert.doesNotMatch(text, /^Documentation=/m, `${f}: no made-up Documentation URL`);
    await writeFile(path.join(etc, f), text);
    for (const program of execPrograms(text)) {
      await mkdir(path.join(root, path.dirname(program)), { recursive: true });
      await writeFile(path.join(root, program), '#!/bin/sh\n');
      await chmod(path.join(root, program), 0o755);
    }
    names.push(f.endsWith('@.service') ? f.replace('@.service', '@zferry-office.service') : f);
  }
  assert.ok(names.includes('zferry-relay-receive.service'));
  assert.ok(names.includes('zferry-disk@zferry-office.service'));
  const r = await execa('systemd-analyze', ['verify', '--man=no', `--root=${root}`, ...names], { reject: false, cwd: etc });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(String(r.stderr).trim(), '', 'systemd-analyze warned');
});

test('the relay receiver restarts on failure; the relay round runs from the config', async () => {
  const receive = await readFile(path.join(UNITS, 'zferry-relay-receive.service'), 'utf8');
  assert.match(receive, /^Restart=on-failure$/m);
  assert.match(receive, /^ExecStart=\/usr\/local\/bin\/zferry relay receive /m);
  assert.match(receive, /^NoNewPrivileges=yes$/m);
  const round = await readFile(path.join(UNITS, 'zferry-relay.service'), 'utf8');
  assert.match(round, /^ExecStart=\/usr\/local\/bin\/zferry relay run --config \/etc\/zferry\/relay\.json --json$/m);
});

test('the udev rule asks for the disk unit by the filesystem label, and only for zferry-* labels', async () => {
  const rule = (await readFile(path.join(CONTRIB, 'udev', '99-zferry-disk.rules'), 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'));
  assert.equal(rule.length, 1);
  assert.match(rule[0]!, /ENV\{ID_FS_LABEL\}=="zferry-\?\*"/);
  assert.match(rule[0]!, /ENV\{SYSTEMD_WANTS\}\+="zferry-disk@\$env\{ID_FS_LABEL\}\.service"/);
});

describeDisk();

function describeDisk(): void {
  let src: TestPool;
  let dst: TestPool;

  test('the disk unit\'s command line and config run the export on the source side and the import on the remote side', async (t) => {
    src = await makePool('cds', 96);
    dst = await makePool('cdd', 96);
    t.after(async () => {
      await src.destroy();
      await dst.destroy();
    });
    await run('zfs', ['create', `${src.name}/data`]);
    await writeData(`${src.name}/data`, 'a.bin', 16);
    await snapshot(`${src.name}@one`, true);

    const unit = await readFile(path.join(UNITS, 'zferry-disk@.service'), 'utf8');
    const label = 'zferry-office';
    const mountpoint = '/run/zferry-disk/%i';
    // The job runs on the folder the unit mounted and unmounts.
    assert.match(unit, new RegExp(`^ExecStartPre=/bin/mount /dev/disk/by-label/%i ${mountpoint}$`, 'm'));
    assert.match(unit, new RegExp(`^ExecStopPost=-/bin/umount ${mountpoint}$`, 'm'));
    assert.match(unit, /^EnvironmentFile=\/etc\/zferry\/disk\/%i\.env$/m);
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(' ');
    assert.deepEqual(exec, ['/usr/local/lib/zferry/zferry-disk-job', mountpoint]);

    // Here the "mounted disk" is a folder, the installed script is contrib's, and zferry is this build.
    const disk = path.join(work, label);
    await mkdir(disk);
    const zferry = path.join(work, 'zferry');
    await writeFile(zferry, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    await chmod(zferry, 0o755);
    const job = (envFile: Record<string, string>) => execa(path.join(CONTRIB, 'zferry-disk-job'), [exec[1]!.replace('%i', label).replace('/run/zferry-disk', work)], {
      reject: false, env: { ...envFile, ZFERRY: zferry, ZFERRY_STATE_DIR: STATE_DIR, LC_ALL: 'C' },
    });

    const config = path.join(work, 'zferry.json');
    const marker = path.join(work, 'post.done');
    await writeFile(config, JSON.stringify({ post: ['sh', '-c', `echo "$ZFERRY_RESULT" > "${marker}"`] }));
    const exported = await job({ ZFERRY_DISK_ROLE: 'export', ZFERRY_DISK_SOURCE: src.name, ZFERRY_CONFIG: config });
    assert.equal(exported.exitCode, 0, String(exported.stderr));
    assert.equal(JSON.parse(String(exported.stdout)).plan.steps.length, 2);
    assert.equal((await readFile(marker, 'utf8')).trim(), 'ok');

    const target = `${dst.name}/backup`;
    const imported = await job({ ZFERRY_DISK_ROLE: 'import', ZFERRY_DISK_TARGET: target, ZFERRY_DISK_ARGS: '--verify-first' });
    assert.equal(imported.exitCode, 0, String(imported.stderr));
    assert.equal(JSON.parse(String(imported.stdout)).bundles[0].status, 'applied');
    assert.equal((await snapshotGuids(target)).get('data@one'), (await snapshotGuids(src.name)).get('data@one'));

    const wrong = await job({ ZFERRY_DISK_ROLE: 'copy' });
    assert.equal(wrong.exitCode, 2);
    assert.equal(String(wrong.stderr).trim(), "zferry-disk-job: ZFERRY_DISK_ROLE must be export or import, not 'copy'");
  });
}
