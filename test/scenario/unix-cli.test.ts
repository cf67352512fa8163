/**
 * zferry as a Unix tool (issue 17): a reader that goes away ends it quietly
 * and leaves nothing half done; --json failures are one JSON object on
 * stdout; a missing pool or parent, or a missing zfs or mbuffer, is one line
 * saying what to do; completion offers the host's datasets.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { CLI, STATE_DIR, zferry, zferryOk } from '../helpers/cli.js';
import { buildSource, datasetList, guidList } from '../helpers/fixtures.js';

let pools: TwoPools;
let src: TestPool;
let dst: TestPool;
let work: string;
/** A seed bundle of src, exported once. */
let seed: string;

before(async () => {
  pools = await twoPools('ux', 160);
  ({ src, dst, work } = pools);
  await buildSource(src.name);
  seed = JSON.parse((await zferryOk('export', src.name, path.join(work, 'seed'), '--no-journal', '--json')).stdout).bundle;
});

after(async () => {
  await pools?.teardown();
});

let fifos = 0;
/**
 * The write end of a pipe whose read end is already closed: zferry's first
 * write fails with EPIPE, whenever it comes (no race with a reader exiting).
 */
async function pipeWithoutReader(): Promise<number> {
  const fifo = path.join(work, `fifo-${++fifos}`);
  await run('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY);
  closeSync(reader);
  return writer;
}

/** Runs zferry with stdout (1) or stderr (2) on a pipe nobody reads; the other is captured. */
async function zferryClosed(which: 1 | 2, ...args: string[]): Promise<{ code: number | null; signal: string | null; other: string }> {
  const fd = await pipeWithoutReader();
  const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe'];
  stdio[which] = fd;
  const child = spawn(process.execPath, [CLI, ...args], { stdio, env: { ...process.env, LC_ALL: 'C', ZFERRY_STATE_DIR: STATE_DIR } });
  closeSync(fd);
  let other = '';
  child.stdio[which === 1 ? 2 : 1]!.on('data', (b: Buffer) => { other += b.toString(); });
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, other })));
}

describe('a closed pipe ends zferry quietly', () => {
  test('--help into a closed stdout: no stack trace, the exit status of a writer SIGPIPE ended', async () => {
    const r = await zferryClosed(1, '--help');
    assert.equal(r.other, '');
    assert.equal(r.code, 141);
  });

  test('state --json into a closed stdout ends quietly', async () => {
    const r = await zferryClosed(1, 'state', src.name, '--json');
    assert.equal(r.other, '');
    assert.equal(r.code, 141);
  });

  test('export into a closed stdout stops at its plan: nothing is written to the disk', async () => {
    const dest = path.join(work, 'closed-export');
    const r = await zferryClosed(1, 'export', src.name, dest, '--no-journal');
    assert.equal(r.other, '');
    assert.equal(r.code, 141);
    const left = await readdir(dest).catch(() => []);
    assert.deepEqual(left, [], 'no bundle folder, whole or half');
  });

  test('export --json into a closed stdout finishes its bundle whole before it ends', async () => {
    const dest = path.join(work, 'closed-json');
    const r = await zferryClosed(1, 'export', src.name, dest, '--no-journal', '--json');
    assert.equal(r.other, '');
    assert.equal(r.code, 141);
    const [bundle] = await readdir(dest);
    await zferryOk('verify', path.join(dest, bundle));
  });

  test('import into a closed stdout receives everything and leaves its receipt', async () => {
    const target = `${dst.name}/piped`;
    const r = await zferryClosed(1, 'import', seed, target);
    assert.equal(r.other, '');
    assert.equal(r.code, 141);
    assert.deepEqual((await guidList(target)).map((x) => x.split('=')[1]), (await guidList(src.name)).map((x) => x.split('=')[1]));
    await stat(path.join(seed, `receipt-${target.replace(/\//g, '_')}.json`));
  });

  test('a failure with stderr closed ends quietly too, with its own exit code and its JSON object', async () => {
    const r = await zferryClosed(2, 'verify', path.join(work, 'nothing-here'), '--json');
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.other).ok, false);
  });
});

describe('--json failures are one JSON object on stdout', () => {
  test('import of a path that does not exist', async () => {
    const r = await zferry('import', '/nonexistent', `${dst.name}/backup`, '--json');
    assert.equal(r.code, 1);
    const o = JSON.parse(r.stdout);
    assert.equal(o.ok, false);
    assert.equal(o.exitCode, 1);
    assert.match(o.error, /^\/nonexistent: /);
    assert.equal(o.context.file, '/nonexistent');
    assert.equal(r.stderr, `zferry: ${o.error}`, 'the same line on stderr');
  });

  test('a failing zfs command carries its command line, exit code and stderr', async () => {
    const r = await zferry('export', `${src.name}/nothing`, path.join(work, 'never'), '--json');
    assert.equal(r.code, 1);
    const o = JSON.parse(r.stdout);
    assert.equal(o.ok, false);
    assert.equal(o.context.dataset, `${src.name}/nothing`);
    assert.ok(Array.isArray(o.context.command) && o.context.command.at(-1) === `${src.name}/nothing`, JSON.stringify(o));
    assert.equal(typeof o.context.exitCode, 'number');
    assert.match(o.context.stderr, /does not exist/);
  });

  test('bad usage is exit code 2, as JSON too', async () => {
    const r = await zferry('export', src.name, '--json');
    assert.equal(r.code, 2);
    const o = JSON.parse(r.stdout);
    assert.deepEqual([o.ok, o.exitCode], [false, 2]);
    assert.match(o.error, /missing required argument 'dest'/);
  });
});

describe('a target with no pool or parent is refused before anything is received', () => {
  test('missing parents: one line naming the missing dataset and `zfs create -p PARENT`; the pool is untouched', async () => {
    const before = await datasetList(dst.name);
    const r = await zferry('import', seed, `${dst.name}/a/b/c`);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `zferry: import target ${dst.name}/a/b/c: ${dst.name}/a does not exist: create it with \`zfs create -p ${dst.name}/a/b\`, or import with --create-parents; nothing was received`);
    assert.deepEqual(await datasetList(dst.name), before);
  });

  test('a pool that does not exist is named as a pool', async () => {
    const r = await zferry('import', seed, `nopool${process.pid}/copy`);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^zferry: import target nopool${process.pid}/copy: pool nopool${process.pid} does not exist .*; nothing was received$`));
  });

  test('relay receive --import refuses a target with no parent before it listens', async () => {
    const spool = path.join(work, 'spool');
    const r = await zferry('relay', 'receive', '--allow-unsigned', '--listen', '127.0.0.1:1', '--spool', spool, '--import', `${dst.name}/x/y`, '--once');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `zferry: import target ${dst.name}/x/y: ${dst.name}/x does not exist: create it with \`zfs create -p ${dst.name}/x\`, or import with --create-parents; nothing was received`);
  });

  test('--create-parents creates the parents and receives the copy', async () => {
    const target = `${dst.name}/a/b/c`;
    const r = await zferryOk('import', seed, target, '--create-parents');
    assert.match(r.stdout, new RegExp(`^created ${dst.name}/a/b \\(--create-parents\\)$`, 'm'));
    assert.deepEqual((await guidList(target)).map((x) => x.split('=')[1]), (await guidList(src.name)).map((x) => x.split('=')[1]));
  });
});

describe('a missing outside tool is one line naming its Debian package', () => {
  const bare = (...args: string[]) => execa(process.execPath, [CLI, ...args], {
    reject: false, stdin: 'ignore', env: { PATH: path.join(work, 'empty-path'), LC_ALL: 'C', ZFERRY_STATE_DIR: STATE_DIR }, extendEnv: false,
  });

  test('zfs', async () => {
    const r = await bare('state', src.name);
    assert.equal(r.exitCode, 1);
    assert.equal(r.stderr, 'zferry: zfs is not installed or not on PATH: install OpenZFS (Debian: apt-get install zfsutils-linux) or zfs-fuse (apt-get install zfs-fuse)');
  });

  test('mbuffer', async () => {
    const r = await bare('relay', 'send', seed, '--to', 'localhost:9');
    assert.equal(r.exitCode, 1);
    assert.equal(r.stderr, 'zferry: mbuffer is not installed or not on PATH: install it (Debian: apt-get install mbuffer)');
  });
});

test('bash completion offers the host\'s datasets where an argument is a dataset', async () => {
  const script = [
    `zferry() { ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"; }`,
    'source <(zferry completion bash)',
    'complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _zferry; printf "%s\\n" "${COMPREPLY[@]}"; }',
    `complete_words zferry export ${src.name.slice(0, 4)}`,
    'echo ---',
    `complete_words zferry import /tmp ${dst.name}`,
  ].join('\n');
  const out = (await execa('bash', ['-c', script], { env: { LC_ALL: 'C' } })).stdout;
  const [exportArgs, importArgs] = out.split('---\n');
  assert.ok(exportArgs.split('\n').includes(`${src.name}/data/projects`), exportArgs);
  assert.ok(importArgs.split('\n').includes(dst.name), importArgs);
});
