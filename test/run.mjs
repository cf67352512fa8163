#!/usr/bin/env node
// The one test entry point (README, `npm test` and .ci/run all call it).
// Lanes: `unit` (pure logic, no ZFS), `fuse` (real ZFS through zfs-fuse),
// `package` (npm pack and npm install -g of the tarball into a fresh prefix;
// needs the npm registry), `openzfs` (run inside the QEMU guest by
// test/lab/run-openzfs.sh).
// Default = unit + fuse + package: the fast lane every commit must keep green.
import { readdirSync, readFileSync, rmSync, statSync, existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist', 'test');
const arg = process.argv[2] ?? 'default';
const lanes = {
  default: { dirs: ['unit', 'fuse', 'scenario', 'package'], env: { ZFERRY_LANE: 'fuse' } },
  unit: { dirs: ['unit'], env: {} },
  package: { dirs: ['package'], env: {} },
  fuse: { dirs: ['fuse', 'scenario'], env: { ZFERRY_LANE: 'fuse' } },
  // Bundles in a bucket: needs the Ceph test server (npm run test:s3 starts and stops it).
  s3: { dirs: ['s3'], env: { ZFERRY_LANE: 'fuse' } },
  // Under software emulation every process start costs seconds: the guest runs
  // the adapter, what only OpenZFS can show, and the core scenarios (seed,
  // second round, stock restore, bad input, estimate's -nvP/written path,
  // clones received with -o origin), not the whole zfs-fuse lane again.
  // The same lane runs on both guest images (OpenZFS 2.3 and 2.1,
  // test/lab/README.md).
  openzfs: {
    dirs: ['openzfs'],
    files: ['fuse/zfs-adapter.test.js', 'scenario/seed.test.js', 'scenario/bad-input.test.js', 'scenario/estimate.test.js', 'scenario/clones.test.js', 'scenario/mounted-target.test.js',
      // Receipt signing and marker sealing: bytes zferry writes, but over OpenZFS's inventory and streams.
      'scenario/receipt-trust.test.js', 'scenario/export-resume.test.js',
      // Old bundles a target moved past (zferry:source-txg, --delete, --rollback) on OpenZFS's txgs.
      'scenario/old-bundles.test.js'],
    env: { ZFERRY_LANE: 'openzfs' },
  },
};
// OpenZFS 2.1 (the second guest image): the adapter (what zfs prints and
// accepts), the OpenZFS-only tests (zvols, bookmarks, raw sends, resume
// tokens, holds, destroy lists) and clones (`recv -o origin=`), where
// versions differ (docs/openzfs-versions.md): ≈6 of the 2.3 lane's 18
// minutes under TCG. The scenarios test zferry's own rules, which do not
// change with the version, and run on 2.3 and zfs-fuse; CI's 90 minutes do
// not hold them a third time (.ci/run).
lanes.openzfs21 = {
  ...lanes.openzfs,
  dirs: [],
  files: ['fuse/zfs-adapter.test.js', 'openzfs/openzfs.test.js', 'openzfs/bookmark-base.test.js', 'scenario/clones.test.js'],
};
const lane = lanes[arg];
if (!lane) {
  console.error(`test/run.mjs: unknown lane '${arg}' (known: ${Object.keys(lanes).join(', ')})`);
  process.exit(2);
}

function testFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return testFiles(p);
    return name.endsWith('.test.js') ? [p] : [];
  });
}

// `node test/run.mjs fuse relay seed`: only the lane's files whose path contains one of the words.
const only = process.argv.slice(3);
const files = [...lane.dirs.flatMap((d) => testFiles(join(dist, d))), ...(lane.files ?? []).map((f) => join(dist, f))]
  .filter((f) => only.length === 0 || only.some((w) => f.slice(dist.length).includes(w)));
if (files.length === 0) {
  console.error(`test/run.mjs: no compiled tests for lane '${arg}' under ${dist} (run npm run build)`);
  process.exit(2);
}
// ZFS-touching files share one daemon and the pool namespace: run files one at
// a time so a failure's output is readable; tests inside a file stay sequential.
// A test that hangs fails after this long instead of holding CI to its limit.
// Node applies it to each test file as a whole too: under emulation one
// OpenZFS file (its pools, seed and every case) took close to 10 minutes on a
// loaded machine, so that lane gets 25; the guest's own limit (60 min) still
// bounds the lane.
const TEST_TIMEOUT_MS = (arg.startsWith('openzfs') ? 25 : 10) * 60 * 1000;
const nodeTest = (list) => [process.execPath, ['--test', '--test-concurrency=1', `--test-timeout=${TEST_TIMEOUT_MS}`, '--test-reporter=spec', ...list]];
const env = { ...process.env, ...lane.env };

if (lane.env.ZFERRY_LANE !== 'fuse') {
  const [cmd, args] = nodeTest(files);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env });
  process.exit(r.status ?? 1);
}

// zfs-fuse lane. zfs-fuse (0.7, unmaintained) can deadlock: seen on CI and on
// loaded developer machines, a `zfs create` (its mount) then sits in
// uninterruptible sleep for good and every later file hangs behind it until
// its 10-minute limit. That is a fault of the daemon, not of zferry, and no
// OpenZFS user meets it, so the runner watches for it:
// - a process of the test file (its session: node itself writing into a
//   mount, cp, du, zferry) or any zfs/zpool/mount process in state D for
//   WEDGE_S seconds;
// - a zfs command running that long while `zpool list` twice gets no answer;
// - a failed file after which `zpool list` no longer answers, or a process is
//   left in D waiting on a FUSE request (a timed-out file's writer: CI once
//   lost two files to 10-minute limits that way, the second one behind the
//   first's stuck daemon).
// It then restarts zfs-fuse (its FUSE connections aborted through fusectl, so
// nothing stays asleep on the dead daemon), destroys the pools the
// interrupted file left, says so on stderr with what was stuck, and runs that
// file again. A file that wedges past its reruns, or an ordinary failure,
// fails the lane.
const WEDGE_S = 90;
// The deadlock seen most (a `zfs create` right after `zpool create`) sleeps in
// fuse_get_req: waiting for a request slot on a connection whose daemon never
// answered its INIT. A thread may also wait there while the connection is
// congested (too many background requests), but these tests write a few MB at
// a time: 30 s there without CPU time gained is called a deadlock, not 90.
const WEDGE_GET_REQ_S = 30;
// Seen on this 2-core host under load: about one deadlock per lane run; one CI
// run met seven, and one file three in a row (hostile-restore, 2026-12-02).
// A file gets four more runs, the lane ten restarts in all.
const RERUNS_PER_FILE = 4;
const RESTARTS_PER_LANE = 10;
const isZfsFile = (f) => !f.includes(`${join('test', 'unit')}/`) && !f.includes(`${join('test', 'package')}/`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const FUSECTL = '/sys/fs/fuse/connections';

/** Every process: pid → { comm, state letter (D: uninterruptible sleep), process group, session }. */
function processes() {
  const out = new Map();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, , pgrp, session] = stat.slice(close + 2).split(' ');
    out.set(pid, { comm, state, pgrp: Number(pgrp), session: Number(session) });
  }
  return out;
}

const isZfsCommand = (comm) => /^(zfs|zpool|mount|umount)$/.test(comm);
const readProc = (pid, file) => {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return '';
  }
};
const commandLine = (pid) => readProc(pid, 'cmdline').split('\0').filter(Boolean).join(' ');

// Where a thread waits for a FUSE daemon's answer. It may sleep there in S
// (request_wait_answer waits interruptibly first), so state D alone misses it;
// and in node it is a worker thread, not the main one, that waits.
const FUSE_WAIT = /request_wait_answer|fuse_get_req|fuse_wait|fuse_.*_wait/;

/**
 * The threads of process `pid` asleep now in D or on a FUSE answer:
 * "pid/tid" → { state, wchan, where, fuse, cpu }. cpu (ns run, schedstat) tells a
 * stuck thread from one that makes progress through many short waits.
 */
function hungThreads(pid) {
  const out = new Map();
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const t = `${pid}/task/${tid}`;
    const stat = readProc(t, 'stat');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    if (state !== 'D' && state !== 'S') continue;
    const wchan = readProc(t, 'wchan');
    const where = wchan && wchan !== '0' ? wchan : readProc(t, 'stack').split('\n').slice(0, 4).join(' ');
    const fuse = FUSE_WAIT.test(where);
    if (state === 'D' || fuse) out.set(`${pid}/${tid}`, { state, wchan: wchan || '?', where, fuse, cpu: readProc(t, 'schedstat').split(' ')[0] });
  }
  return out;
}

/** Threads anywhere (zfs-fuse's own aside) asleep on a FUSE answer: "pid/tid" → { what, cpu }. */
function fuseSleepers() {
  const out = new Map();
  for (const [pid, p] of processes()) {
    if (p.comm === 'zfs-fuse') continue;
    for (const [key, t] of hungThreads(pid)) {
      if (t.fuse || /fuse/.test(readProc(`${pid}/task/${key.split('/')[1]}`, 'stack'))) out.set(key, { what: `${p.comm} (pid ${pid}) [${t.state}, ${t.wchan}]`, cpu: t.cpu });
    }
  }
  return out;
}

function zpoolAnswers() {
  const r = spawnSync('zpool', ['list', '-H', '-o', 'name'], { timeout: 10_000, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n').filter(Boolean) : null;
}

/**
 * Test pools whose process is gone: named prefix + pid + n + counter, on
 * their own file under the temp folder (test/helpers/zfslab.ts). Nothing else
 * is touched.
 */
function destroyOrphanPools() {
  for (const name of zpoolAnswers() ?? []) {
    // PREFIX PID n K (test/helpers/zfslab.ts makePool): the prefix may hold digits (s3s…) but ends in a letter.
    const m = /^[a-z0-9]*?[a-z](\d+)n\d+$/.exec(name);
    const img = join(os.tmpdir(), 'zferry-test', `${name}.img`);
    if (!m || existsSync(`/proc/${m[1]}`) || !existsSync(img)) continue;
    const r = spawnSync('zpool', ['destroy', '-f', name], { timeout: 60_000, stdio: 'ignore' });
    if (r.status === 0) rmSync(img, { force: true });
  }
}

/** fusectl, where a FUSE connection can be aborted whatever its daemon does; mounted here if it is not. */
function mountFusectl() {
  if (existsSync(FUSECTL) && readdirSync(FUSECTL).length === 0 && !readFileSync('/proc/mounts', 'utf8').includes(' fusectl ')) {
    spawnSync('mount', ['-t', 'fusectl', 'fusectl', FUSECTL], { stdio: 'ignore', timeout: 10_000 });
  }
}

/** zfs-fuse's FUSE connections (its fuse.zfs mounts and /zfs-kstat), by fusectl id (the mount's minor device number). */
function zfsFuseConnections() {
  const ids = new Set();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const type = f[f.indexOf('-') + 1];
    if (type === 'fuse.zfs' || f[4] === '/zfs-kstat') ids.add(f[2].split(':')[1]);
  }
  return ids;
}

async function restartZfsFuse() {
  const connections = zfsFuseConnections();
  // Connections left over from an earlier restart (lazily unmounted, so in no mount table) go too.
  const mounted = new Set(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[2]?.split(':')[1]));
  for (const id of existsSync(FUSECTL) ? readdirSync(FUSECTL) : []) if (!mounted.has(id)) connections.add(id);
  spawnSync('pkill', ['-9', '-x', 'zfs-fuse']);
  // A daemon thread asleep on one of its own mounts cannot die of SIGKILL; aborting the connections wakes every sleeper with ENOTCONN.
  for (const id of connections) {
    try {
      writeFileSync(join(FUSECTL, id, 'abort'), '1');
    } catch {}
  }
  for (let i = 0; i < 100 && spawnSync('pgrep', ['-x', 'zfs-fuse']).status === 0; i++) await sleep(100);
  if (spawnSync('pgrep', ['-x', 'zfs-fuse']).status === 0) console.error('test/run.mjs: the old zfs-fuse is still alive 10 s after SIGKILL');
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, mnt, type] = line.split(' ');
    if (type === 'fuse.zfs') spawnSync('umount', ['-l', mnt.replace(/\\040/g, ' ')], { stdio: 'ignore' });
  }
  spawn('setsid', ['zfs-fuse', '--no-daemon'], { detached: true, stdio: 'ignore' }).unref();
  for (let i = 0; i < 60 && !zpoolAnswers(); i++) await sleep(500);
  if (!zpoolAnswers()) throw new Error('test/run.mjs: zfs-fuse did not come back within 30 s of a restart');
  destroyOrphanPools();
}

/** What was found hanging by the last wedge: commands, and processes asleep on FUSE. */
let stuckCommands = [];

/** After a failed file: is the daemon gone quiet, or is something still asleep on one of its mounts (seen twice, 5 s apart, with no CPU time gained)? */
async function leftWedged() {
  if (!zpoolAnswers()) return true;
  const first = fuseSleepers();
  if (first.size === 0) return false;
  await sleep(5_000);
  const still = [...fuseSleepers()].filter(([pid, s]) => first.get(pid)?.cpu === s.cpu).map(([, s]) => s.what);
  stuckCommands.push(...still.map((w) => `asleep on FUSE: ${w}`));
  return still.length > 0;
}

/**
 * What a file left running in its process group is killed when the file
 * ends, and named on stderr. It was once an mbuffer listener of a receiver a
 * test had killed as a power cut, bound to its port until a peer came: a
 * later file pushed into it and waited for a receipt that never came (two
 * relay files failed so in one lane). zferry now runs mbuffer under setpriv
 * --pdeathsig and the relay tests take free ports, so a report here is news.
 */
function reapLeftovers(group, list) {
  // A zombie holds no port: its parent (a zferry the test killed) is gone, and
  // an init that does not reap (a container's) keeps it listed. Not counted.
  const left = [...processes()].filter(([, p]) => p.pgrp === group && p.state !== 'Z');
  if (left.length === 0) return;
  try {
    process.kill(-group, 'SIGKILL');
  } catch {}
  const names = [...new Set(left.map(([, p]) => p.comm))].join(', ');
  console.error(`test/run.mjs: ${list.length === 1 ? list[0].slice(dist.length + 1) : 'the files'} left ${left.length} process(es) running (${names}); killed`);
}

/**
 * Passes a file's stdout and stderr through as they come and keeps their last
 * 256 KiB, so that a failure can be shown again where a log's tail shows it.
 */
function keepTail(child) {
  let kept = '';
  const keep = (from, sink) => {
    from.setEncoding('utf8');
    from.on('data', (text) => {
      sink.write(text);
      kept = (kept + text).slice(-256 * 1024);
    });
  };
  keep(child.stdout, process.stdout);
  keep(child.stderr, process.stderr);
  return () => kept;
}

/**
 * What a failed file said of its failures: node's spec reporter ends with a
 * "failing tests" section (each failure with its error and stack); a file that
 * ended without one (killed, timed out, crashed) is shown by its last lines.
 */
function failureSummary(text) {
  const at = text.lastIndexOf('✖ failing tests:');
  // Frames inside node itself say nothing about the test.
  const lines = (at >= 0 ? text.slice(at) : text).trimEnd().split('\n').filter((l) => !/^\s+at .*\(node:/.test(l));
  const shown = at >= 0 ? lines.slice(0, 120) : lines.slice(-60);
  return shown.join('\n') + (at >= 0 && lines.length > shown.length ? `\n… (${lines.length - shown.length} more lines: the file's own output above has them)` : '');
}

/** Runs `node --test` on `list`; resolves to 'ok', 'failed' or 'wedged'. */
function runFiles(list, watch) {
  const [cmd, args] = nodeTest(list);
  // detached: the file runs in its own session, whose id is its pid.
  const child = spawn(cmd, args, { stdio: ['inherit', 'pipe', 'pipe'], env, detached: true });
  const output = keepTail(child);
  return new Promise((resolve) => {
    // Watched processes: pid → when first seen; their threads asleep: "pid/tid" → since when, while they gain no CPU time.
    const seen = new Map();
    const hung = new Map();
    let failedProbes = 0;
    let lastProbe = 0;
    let wedged = false;
    const timer = watch
      ? setInterval(() => {
          const now = Date.now();
          const procs = new Map([...processes()].filter(([, p]) => p.session === child.pid || isZfsCommand(p.comm)));
          for (const pid of seen.keys()) if (!procs.has(pid)) seen.delete(pid);
          const threads = new Map();
          for (const [pid, p] of procs) {
            if (!seen.has(pid)) seen.set(pid, { since: now, zfs: isZfsCommand(p.comm), comm: p.comm });
            for (const [key, t] of hungThreads(pid)) threads.set(key, { ...t, pid });
          }
          for (const key of hung.keys()) if (!threads.has(key)) hung.delete(key);
          for (const [key, t] of threads) {
            const h = hung.get(key);
            hung.set(key, { ...t, since: h && h.cpu === t.cpu ? h.since : now });
          }
          const long = (since) => now - since > WEDGE_S * 1000;
          // `since` is when the thread last gained CPU time; `where` is its wchan, or its stack's top where wchan reads 0.
          const stuckAt = (h) => long(h.since) || (/fuse_get_req/.test(h.where) && now - h.since > WEDGE_GET_REQ_S * 1000);
          let stuck = [...hung.values()].some(stuckAt);
          // A zfs command that waits on the daemon's socket sleeps in S, not D:
          // when one has run for WEDGE_S, ask the daemon itself (twice, 30 s apart).
          if (!stuck && [...seen.values()].some((s) => s.zfs && long(s.since)) && now - lastProbe > 30_000) {
            lastProbe = now;
            failedProbes = zpoolAnswers() ? 0 : failedProbes + 1;
            stuck = failedProbes >= 2;
          }
          if (stuck && !wedged) {
            wedged = true;
            // Named in the runner's line: which call the daemon left hanging, and where it sleeps.
            const named = new Map();
            for (const h of hung.values()) {
              const p = seen.get(h.pid);
              if (p && stuckAt(h) && !named.has(h.pid)) named.set(h.pid, `${p.zfs ? commandLine(h.pid) : `${p.comm} (pid ${h.pid})`} [${h.state}, ${h.wchan}]`);
            }
            for (const [pid, p] of seen) if (p.zfs && long(p.since) && !named.has(pid)) named.set(pid, commandLine(pid));
            stuckCommands.push(...[...named.values()].filter(Boolean));
            try {
              process.kill(-child.pid, 'SIGKILL');
            } catch {}
          }
        }, 5_000)
      : null;
    child.on('exit', async (code) => {
      if (timer) clearInterval(timer);
      reapLeftovers(child.pid, list);
      // The file's last output (its failure summary) is read once its pipes close; a process it left outside its group could hold them open.
      await Promise.race([new Promise((r) => child.once('close', r)), new Promise((r) => setTimeout(r, 5_000))]);
      if (wedged) return resolve('wedged');
      if (code === 0) return resolve('ok');
      const outcome = watch && (await leftWedged()) ? 'wedged' : 'failed';
      if (outcome === 'failed') failures.push({ name: list.length === 1 ? list[0].slice(dist.length + 1) : 'unit/package files', text: failureSummary(output()) });
      resolve(outcome);
    });
  });
}

const failed = [];
const restarts = [];
// A failed file's summary, printed again at the end of the lane: CI logs are read from the tail.
const failures = [];
const plain = files.filter((f) => !isZfsFile(f));
if (plain.length > 0 && (await runFiles(plain, false)) !== 'ok') failed.push('unit/package files');
if (files.some(isZfsFile)) {
  mountFusectl();
  if (!zpoolAnswers()) await restartZfsFuse();
  destroyOrphanPools();
}
for (const file of files.filter(isZfsFile)) {
  const name = file.slice(dist.length + 1);
  let outcome = await runFiles([file], true);
  for (let again = 1; outcome === 'wedged' && again <= RERUNS_PER_FILE && restarts.length < RESTARTS_PER_LANE; again++) {
    const hung = stuckCommands.length ? `: ${stuckCommands.slice(0, 4).join('; ')}` : '';
    console.error(`test/run.mjs: zfs-fuse deadlocked during ${name} (a process asleep on it ${WEDGE_S} s, ${WEDGE_GET_REQ_S} s in fuse_get_req, or zpool list not answering${hung}); restarting zfs-fuse and running ${name} again (${again} of at most ${RERUNS_PER_FILE})`);
    stuckCommands = [];
    restarts.push(name);
    await restartZfsFuse();
    outcome = await runFiles([file], true);
  }
  if (outcome !== 'ok') failed.push(outcome === 'wedged' ? `${name} (zfs-fuse deadlocked)` : name);
}
// The pools of a wedged run outlive the restart that follows it: their test process, asleep on the aborted
// connection, is still dying when destroyOrphanPools looks (seen: an S3 lane left s3s…n1 and s3d…n2). By now it is gone.
if (files.some(isZfsFile)) destroyOrphanPools();
for (const f of failures) console.log(`\ntest/run.mjs: ${f.name} failed; what it said, again:\n${f.text}`);
const zfsCount = files.filter(isZfsFile).length;
console.log(`\ntest/run.mjs: lane ${arg}: ${files.length} files (${zfsCount} on zfs-fuse, one at a time); zfs-fuse restarts: ${restarts.length}${restarts.length ? ` (${restarts.join(', ')})` : ''}; failed: ${failed.length ? failed.join(', ') : 'none'}`);
process.exit(failed.length ? 1 : 0);
