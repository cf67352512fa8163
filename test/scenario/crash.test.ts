/**
 * Crash safety: `export` SIGKILLed during a stream, between streams and just
 * before the manifest leaves nothing verify or import accepts, and a re-run
 * produces a good bundle; `import` SIGKILLed between streams completes on
 * re-run. Kill points come from the ZFERRY_TEST_PAUSE_AT hook
 * (src/test-hook.ts): the process announces the point in a file and waits,
 * so the kill lands exactly there, without timing guesses.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { CLI, zferry, zferryOk } from '../helpers/cli.js';
import { fingerprint, guidList, snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let dst: TestPool;
let work: string;

before(async () => {
  src = await makePool('crs', 96);
  dst = await makePool('crd', 96);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-crash-'));
  for (const d of ['a', 'b']) await run('zfs', ['create', `${src.name}/${d}`]);
  for (const d of ['', '/a', '/b']) await writeData(`${src.name}${d}`, 'one.bin', 48);
  await snapshot(`${src.name}@one`, true);
});

after(async () => {
  await src?.destroy();
  await dst?.destroy();
  await rm(work, { recursive: true, force: true });
});

/** Runs zferry until it reaches `point`, then SIGKILLs it. */
async function killAt(point: string, ...args: string[]): Promise<void> {
  const flag = path.join(work, `reached-${point.replace(/:/g, '_')}`);
  const child = execa(process.execPath, [CLI, ...args], {
    reject: false, stdin: 'ignore',
    env: { LC_ALL: 'C', ZFERRY_TEST_PAUSE_AT: point, ZFERRY_TEST_PAUSE_FILE: flag },
  });
  const deadline = Date.now() + 60_000;
  while (!existsSync(flag)) {
    if (child.exitCode !== null) throw new Error(`zferry ${args.join(' ')} ended before ${point}: ${(await child).stderr}`);
    if (Date.now() > deadline) throw new Error(`${point} not reached in 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  const r = await child;
  assert.equal(r.signal, 'SIGKILL');
}

// Every test seeds a fresh target from a fresh disk: --no-journal keeps one test's bundle from being the next one's basis.
for (const point of ['export:stream:2', 'export:between:1', 'export:manifest']) {
  test(`export killed at ${point} leaves nothing that verifies or imports, and a re-run is good`, async () => {
    const dest = path.join(work, point.replace(/:/g, '_'));
    await killAt(point, 'export', src.name, dest, '--no-journal', '--volume-size', '8K');
    assert.equal((await readdir(dest)).length, 1, 'the unfinished bundle folder is there');
    const v = await zferry('verify', dest);
    assert.notEqual(v.code, 0);
    assert.match(v.stderr, /no zferry bundle here/);
    const target = `${dst.name}/k${point.split(':')[1]}`;
    const i = await zferry('import', dest, target);
    assert.notEqual(i.code, 0);
    assert.equal((await run('zfs', ['list', '-H', '-o', 'name', '-r', dst.name])).includes(target), false, 'nothing received');
    await zferryOk('export', src.name, dest, '--no-journal', '--volume-size', '8K');
    await zferryOk('verify', dest);
    await zferryOk('import', dest, target);
    assert.deepEqual(await guidList(target), await guidList(src.name));
    await run('zfs', ['destroy', '-r', target]);
  });
}

for (const point of ['import:between:1', 'import:between:2']) {
  test(`import killed at ${point} completes on re-run`, async () => {
    const dest = path.join(work, `imp-${point.replace(/:/g, '_')}`);
    await zferryOk('export', src.name, dest, '--no-journal', '--volume-size', '8K');
    const target = `${dst.name}/i${point.split(':')[2]}`;
    await killAt(point, 'import', dest, target);
    const partial = await fingerprint(target);
    assert.ok(partial.length > 0, 'something was received before the kill');
    await zferryOk('import', dest, target);
    assert.deepEqual(await guidList(target), await guidList(src.name));
    await run('zfs', ['destroy', '-r', target]);
  });
}
