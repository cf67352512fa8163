#!/usr/bin/env node
// The one test entry point (README, `npm test` and .ci/run all call it).
// Lanes: `unit` (pure logic, no ZFS), `fuse` (real ZFS through zfs-fuse),
// `package` (npm pack and npm install -g of the tarball into a fresh prefix;
// needs the npm registry), `openzfs` (run inside the QEMU guest by
// test/lab/run-openzfs.sh).
// Default = unit + fuse + package: the fast lane every commit must keep green.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist', 'test');
const arg = process.argv[2] ?? 'default';
const lanes = {
  default: { dirs: ['unit', 'fuse', 'scenario', 'package'], env: { ZFERRY_LANE: 'fuse' } },
  unit: { dirs: ['unit'], env: {} },
  package: { dirs: ['package'], env: {} },
  fuse: { dirs: ['fuse', 'scenario'], env: { ZFERRY_LANE: 'fuse' } },
  // Under software emulation every process start costs seconds: the guest runs
  // the adapter, what only OpenZFS can show, and the core scenarios (seed,
  // second round, stock restore, bad input, estimate's -nvP/written path,
  // clones received with -o origin), not the whole zfs-fuse lane again.
  // The same lane runs on both guest images (OpenZFS 2.3 and 2.1,
  // test/lab/README.md).
  openzfs: {
    dirs: ['openzfs'],
    files: ['fuse/zfs-adapter.test.js', 'scenario/seed.test.js', 'scenario/bad-input.test.js', 'scenario/estimate.test.js', 'scenario/clones.test.js', 'scenario/mounted-target.test.js'],
    env: { ZFERRY_LANE: 'openzfs' },
  },
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

const files = [...lane.dirs.flatMap((d) => testFiles(join(dist, d))), ...(lane.files ?? []).map((f) => join(dist, f))];
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
const TEST_TIMEOUT_MS = (arg === 'openzfs' ? 25 : 10) * 60 * 1000;
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', `--test-timeout=${TEST_TIMEOUT_MS}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, ...lane.env },
});
process.exit(r.status ?? 1);
