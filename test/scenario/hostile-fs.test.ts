/**
 * A disk that passed through a stranger's hands, on real ZFS: what export and
 * import open under it is seen with strace, and links, FIFOs and linked
 * folders planted in it make zferry refuse with one line, quickly, without
 * writing or reading anything outside and without receiving anything.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { twoPools, type TwoPools } from '../helpers/scenario.js';
import { CLI, STATE_DIR, zferry, zferryOk } from '../helpers/cli.js';
import { snapshot, writeData } from '../helpers/fixtures.js';

let src: TestPool;
let pools: TwoPools | undefined;
let dst: TestPool;
let work: string;
let key: string;
/** A signed, multi-volume bundle of the source, never imported: each case damages a copy. */
let good: string;
/** A file outside every disk, with content a leak would show. */
let outside: { file: string; text: string; size: number; sha256: string };

before(async () => {
  ({ src, dst, work: work } = pools = await twoPools('hf', 64));
  key = path.join(work, 'zferry.key');
  await zferryOk('keygen', '-o', key);
  await run('zfs', ['create', `${src.name}/data`]);
  await writeData(src.name, 'a.bin', 48);
  await writeData(`${src.name}/data`, 'b.bin', 48);
  await snapshot(`${src.name}@one`, true);
  await writeData(`${src.name}/data`, 'c.bin', 16);
  await snapshot(`${src.name}@two`, true);
  const r = await zferryOk('export', src.name, path.join(work, 'good'), '--no-journal', '--sign', key, '--volume-size', '16K', '--json');
  good = JSON.parse(r.stdout).bundle;
  // 123457 bytes: a size no pid or folder name in a message can contain by chance.
  const text = 'outside the disk\n'.repeat(7262).slice(0, 123457 - 1) + '\n';
  outside = { file: path.join(work, 'outside.txt'), text, size: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') };
  await writeFile(outside.file, text);
});

after(async () => {
  await pools?.teardown();
});

async function outsideUnchanged(): Promise<void> {
  const st = await lstat(outside.file);
  assert.ok(st.isFile(), 'the outside file is still a regular file');
  assert.equal(createHash('sha256').update(await readFile(outside.file)).digest('hex'), outside.sha256, 'the outside file is unchanged');
}

async function exists(dataset: string): Promise<boolean> {
  const out = await run('zfs', ['list', '-H', '-o', 'name', dataset], { allowFailure: true });
  return out.trim() === dataset;
}

let cases = 0;
/** A disk holding a fresh copy of the good bundle; returns the disk and the bundle in it. */
async function diskWithCopy(): Promise<{ disk: string; bundle: string }> {
  const disk = path.join(work, `disk-${++cases}`);
  const bundle = path.join(disk, path.basename(good));
  await mkdir(disk);
  await cp(good, bundle, { recursive: true });
  return { disk, bundle };
}

async function volumesOf(bundle: string): Promise<string[]> {
  return (await readdir(path.join(bundle, 'streams'))).sort().map((f) => path.join(bundle, 'streams', f));
}

const receiptName = (target: string) => `receipt-${target.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`;

/** zferry with a deadline, so a hang fails the test instead of holding the lane. */
async function timed(...args: string[]): Promise<{ code: number; stderr: string; seconds: number }> {
  const started = Date.now();
  const r = await execa(process.execPath, [CLI, ...args], { reject: false, stdin: 'ignore', timeout: 60_000, env: { LC_ALL: 'C', ZFERRY_STATE_DIR: STATE_DIR } });
  assert.equal(r.timedOut, false, `zferry ${args.join(' ')} hung`);
  return { code: r.exitCode ?? 1, stderr: String(r.stderr), seconds: (Date.now() - started) / 1000 };
}

/**
 * verify and import both refuse, fast, with one line that names `file` and
 * matches `why`; nothing is received and nothing outside changes. `trust`
 * adds --trust to both.
 */
async function assertRefusedQuickly(disk: string, file: string, why: RegExp, target: string, trust?: string): Promise<string[]> {
  const extra = trust ? ['--trust', trust] : [];
  const lines: string[] = [];
  for (const args of [['verify', disk, ...extra], ['import', disk, target, ...extra]]) {
    const r = await timed(...args);
    assert.notEqual(r.code, 0, `${args[0]} must fail`);
    const out = r.stderr.trim().split('\n');
    assert.equal(out.length, 1, `one line from ${args[0]}: ${r.stderr}`);
    assert.ok(out[0].includes(file), `${args[0]} names ${file}: ${out[0]}`);
    assert.match(out[0], why);
    // Node and zfs-fuse start-up take about a second each under load; a hang would be forever.
    assert.ok(r.seconds < 10, `${args[0]} took ${r.seconds} s`);
    lines.push(out[0]);
  }
  assert.equal(await exists(target), false, 'nothing received');
  await outsideUnchanged();
  return lines;
}

interface Traced {
  path: string;
  flags: string;
}

/** Opens and renames from an `strace -f -o` log. */
function parseTrace(log: string): { opens: Traced[]; renames: Array<[string, string]> } {
  const opens: Traced[] = [];
  const renames: Array<[string, string]> = [];
  const quoted = /"((?:[^"\\]|\\.)*)"/g;
  for (const line of log.split('\n')) {
    const call = /^\d+\s+(open|openat|openat2|creat|rename|renameat|renameat2)\((.*)$/.exec(line);
    if (!call) continue;
    const [, name, rest] = call;
    const strings = [...rest.matchAll(quoted)].map((m) => m[1]);
    if (name.startsWith('rename')) {
      if (strings.length >= 2) renames.push([strings[0], strings[1]]);
      continue;
    }
    if (strings.length === 0) continue;
    const flags = name === 'creat' ? 'O_CREAT|O_WRONLY|O_TRUNC'
      : name === 'openat2' ? (/flags=([A-Z0-9_|]+)/.exec(rest)?.[1] ?? '')
      : (/"(?:[^"\\]|\\.)*", ([A-Z0-9_|]+)/.exec(rest)?.[1] ?? '');
    opens.push({ path: strings[0], flags });
  }
  return { opens, renames };
}

async function traced(log: string, ...args: string[]): Promise<void> {
  const r = await execa('strace', [
    '-f', '--seccomp-bpf', '-qq', '-s', '4096', '-e', 'trace=open,openat,openat2,creat,rename,renameat,renameat2', '-o', log,
    process.execPath, CLI, ...args,
  ], { reject: false, stdin: 'ignore', env: { LC_ALL: 'C', ZFERRY_STATE_DIR: STATE_DIR } });
  if (r.exitCode !== 0) throw new Error(`strace zferry ${args.join(' ')} exited ${r.exitCode}: ${String(r.stderr).trim()}`);
}

test('strace: every file export and import create under the disk and the journal is O_CREAT|O_EXCL|O_NOFOLLOW, every file read there O_NOFOLLOW, every rename within one folder', async () => {
  const disk = path.join(work, 'traced-disk');
  const journal = path.join(work, 'traced-journal');
  const target = `${dst.name}/traced`;
  await traced(path.join(work, 'export.strace'), 'export', src.name, disk, '--journal', journal, '--sign', key, '--volume-size', '16K');
  await traced(path.join(work, 'import.strace'), 'import', disk, target, '--trust', `${key}.pub`);
  assert.equal(await exists(`${target}/data@two`), true, 'the traced import received the bundle');

  const under = (p: string) => [disk, journal].some((d) => p === d || p.startsWith(`${d}/`));
  for (const step of ['export', 'import']) {
    const { opens, renames } = parseTrace(await readFile(path.join(work, `${step}.strace`), 'utf8'));
    const mine = opens.filter((o) => under(o.path));
    const creates = mine.filter((o) => o.flags.split('|').includes('O_CREAT'));
    assert.ok(creates.length >= (step === 'export' ? 6 : 1), `${step}: the trace shows its creates (${creates.length})`);
    for (const o of creates) {
      const f = o.flags.split('|');
      assert.ok(f.includes('O_EXCL') && f.includes('O_NOFOLLOW'), `${step}: ${o.path} created with ${o.flags}`);
      assert.doesNotMatch(path.basename(o.path), /\.\d+\.tmp$/, `${step}: no pid-named temp file (${o.path})`);
    }
    const reads = mine.filter((o) => !o.flags.includes('O_CREAT') && !o.flags.includes('O_DIRECTORY'));
    assert.ok(step === 'export' || reads.length >= 4, `${step}: the trace shows its reads (${reads.length})`);
    for (const o of reads) assert.ok(o.flags.split('|').includes('O_NOFOLLOW'), `${step}: ${o.path} read with ${o.flags}`);
    const moved = renames.filter(([a, b]) => under(a) || under(b));
    assert.ok(moved.length >= 1, `${step}: the trace shows its renames`);
    for (const [a, b] of moved) assert.equal(path.dirname(a), path.dirname(b), `${step}: rename ${a} -> ${b} stays in one folder`);
  }
});

test('links planted at every old pid-named receipt temp name are never written through; import writes its receipt as a new regular file', async () => {
  const { disk } = await diskWithCopy();
  const target = `${dst.name}/r1`;
  const name = receiptName(target);
  // Every pid the next process can get, as the attack did (all of them when pid_max is the classic 32768).
  const pidMax = Number((await readFile('/proc/sys/kernel/pid_max', 'utf8')).trim());
  const last = Number((await readFile('/proc/sys/kernel/ns_last_pid', 'utf8').catch(() => '0')).trim());
  const count = Math.min(pidMax, 32768);
  const planted: string[] = [];
  for (let i = 1; i <= count; i++) planted.push(path.join(disk, `.${name}.${((last + i) % pidMax) || pidMax}.tmp`));
  for (let i = 0; i < planted.length; i += 512) await Promise.all(planted.slice(i, i + 512).map((p) => symlink(outside.file, p)));

  await zferryOk('import', disk, target);
  await outsideUnchanged();
  const receipt = path.join(disk, name);
  assert.ok((await lstat(receipt)).isFile(), 'the receipt is a regular file');
  const state = JSON.parse(await readFile(receipt, 'utf8'));
  assert.equal(state.format, 'zferry-state');
  assert.equal(state.target, target);
  const left = (await readdir(disk)).filter((n) => n.endsWith('.tmp'));
  assert.equal(left.length, planted.length, 'only the planted links end in .tmp: no temp file of zferry is left');
  for (const p of planted.slice(0, 50)) assert.ok((await lstat(p)).isSymbolicLink());
});

test('a link planted at the final receipt name is refused with one line before anything is received', async () => {
  // Replacing the link would silently hide that something hostile is on the
  // disk, and following it writes outside: refusing loses nothing (remove the
  // link, run import again).
  const { disk } = await diskWithCopy();
  const target = `${dst.name}/r2`;
  const receipt = path.join(disk, receiptName(target));
  await symlink(outside.file, receipt);
  const r = await zferry('import', disk, target);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim(), `zferry: ${receipt}: is a symbolic link, not a regular file; zferry will not replace it (remove it if it is not yours)`);
  assert.equal(await exists(target), false, 'nothing received');
  assert.ok((await lstat(receipt)).isSymbolicLink(), 'the link is left for the user to see');
  await outsideUnchanged();
});

test('state -o onto a link does not follow it: refused with one line, the outside file unchanged', async () => {
  const disk = path.join(work, `disk-${++cases}`);
  await mkdir(disk);
  const file = path.join(disk, 'state.json');
  await symlink(outside.file, file);
  const r = await zferry('state', src.name, '-o', file);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim(), `zferry: ${file}: is a symbolic link, not a regular file; zferry will not replace it (remove it if it is not yours)`);
  assert.ok((await lstat(file)).isSymbolicLink());
  assert.deepEqual(await readdir(disk), ['state.json'], 'no temp file left');
  await outsideUnchanged();
  // The positive control: onto a plain file, state -o writes the state.
  await rm(file);
  await zferryOk('state', src.name, '-o', file);
  assert.equal(JSON.parse(await readFile(file, 'utf8')).format, 'zferry-state');
});

test('a FIFO named SHA256SUMS makes verify and import fail at once with one line naming it; nothing received', async () => {
  const { disk, bundle } = await diskWithCopy();
  const file = path.join(bundle, 'SHA256SUMS');
  await rm(file);
  await execa('mkfifo', [file]);
  await assertRefusedQuickly(disk, file, /: is a FIFO, not a regular file$/, `${dst.name}/f1`);
});

test('a FIFO volume makes verify and import fail at once with one line naming it; nothing received', async () => {
  const { disk, bundle } = await diskWithCopy();
  const file = (await volumesOf(bundle))[1];
  await rm(file);
  await execa('mkfifo', [file]);
  await assertRefusedQuickly(disk, file, /: is a FIFO, not a regular file$/, `${dst.name}/f2`);
});

test('a FIFO manifest.json.minisig makes verify --trust and import --trust fail at once with one line naming it; nothing received', async () => {
  const { disk, bundle } = await diskWithCopy();
  const file = path.join(bundle, 'manifest.json.minisig');
  await rm(file);
  await execa('mkfifo', [file]);
  await assertRefusedQuickly(disk, file, /: is a FIFO, not a regular file$/, `${dst.name}/f3`, `${key}.pub`);
});

test('a FIFO manifest.json makes verify and import fail at once with one line naming it; nothing received', async () => {
  const { disk, bundle } = await diskWithCopy();
  const file = path.join(bundle, 'manifest.json');
  await rm(file);
  await execa('mkfifo', [file]);
  await assertRefusedQuickly(disk, file, /: is a FIFO, not a regular file$/, `${dst.name}/f4`);
});

test('a volume that is a link to a file outside is refused, and neither its size nor its sha256 is printed', async () => {
  const { disk, bundle } = await diskWithCopy();
  const file = (await volumesOf(bundle))[0];
  await rm(file);
  await symlink(outside.file, file);
  const lines = await assertRefusedQuickly(disk, file, /: is a symbolic link, not a regular file$/, `${dst.name}/l1`);
  for (const line of lines) {
    assert.ok(!line.includes(String(outside.size)), `the outside file's size is not printed: ${line}`);
    assert.ok(!line.includes(outside.sha256), `the outside file's sha256 is not printed: ${line}`);
  }
});

test('streams/ as a link to another folder is refused with one line naming it; nothing received', async () => {
  const { disk, bundle } = await diskWithCopy();
  const elsewhere = path.join(work, `elsewhere-${cases}`);
  await mkdir(elsewhere);
  await rename(path.join(bundle, 'streams'), path.join(elsewhere, 'streams'));
  await symlink(path.join(elsewhere, 'streams'), path.join(bundle, 'streams'));
  await assertRefusedQuickly(disk, path.join(bundle, 'streams'), /: is a symbolic link inside \S+; zferry follows no links there$/, `${dst.name}/l2`);
});
