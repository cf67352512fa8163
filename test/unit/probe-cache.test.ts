/**
 * The probe's answers kept between runs (src/zfs/probe-cache.ts): reused only
 * for the very same program file, young enough, in exactly the shape written;
 * anything else probes afresh. The "program" here is a plain file standing in
 * for the zfs binary, whose identity is what the cache keys on; the probe
 * itself is a counter, since what is under test is when it runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, utimes, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedProbe, parseProbeCache, probeCacheMaxAge, programIdentity, PROBE_CACHE_BINARY_MAX_AGE_MS, PROBE_CACHE_FILE, PROBE_CACHE_MAX_AGE_MS } from '../../src/zfs/probe-cache.js';
import { FLAG_PROBES, type ProbeAnswers, type ProbeName } from '../../src/zfs/probe.js';

const ALL = Object.fromEntries(Object.keys(FLAG_PROBES).map((n) => [n, true])) as Record<ProbeName, boolean>;
const ANSWERS: ProbeAnswers = { has: { ...ALL, bookmarks: false }, version: null };

async function setup(): Promise<{ dir: string; program: string; probes: () => number; probe: () => Promise<ProbeAnswers>; done: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-probe-cache-'));
  const program = join(dir, 'zfs');
  await writeFile(program, '#!/bin/sh\n');
  await chmod(program, 0o755);
  let n = 0;
  return { dir, program, probes: () => n, probe: async () => (n++, ANSWERS), done: () => rm(dir, { recursive: true, force: true }) };
}

test('probes once, then answers from the cache while the program file is the same', async () => {
  const s = await setup();
  try {
    assert.deepEqual(await cachedProbe(s.dir, s.program, s.probe), ANSWERS);
    assert.deepEqual(await cachedProbe(s.dir, s.program, s.probe), ANSWERS);
    assert.equal(s.probes(), 1);
  } finally {
    await s.done();
  }
});

test('probes again when the program file changes (an upgrade replaces it)', async () => {
  const s = await setup();
  try {
    await cachedProbe(s.dir, s.program, s.probe);
    await writeFile(s.program, '#!/bin/sh\n# 2.3.3\n');
    await cachedProbe(s.dir, s.program, s.probe);
    assert.equal(s.probes(), 2);
    // Same size, only the times differ.
    await utimes(s.program, new Date(2020, 0, 1), new Date(2020, 0, 1));
    await cachedProbe(s.dir, s.program, s.probe);
    assert.equal(s.probes(), 3);
  } finally {
    await s.done();
  }
});

test('a cache file that is not exactly ours, or too old, is probed over and rewritten', async () => {
  const s = await setup();
  try {
    await cachedProbe(s.dir, s.program, s.probe);
    const file = join(s.dir, PROBE_CACHE_FILE);
    const good = JSON.parse(await readFile(file, 'utf8'));
    const id = (await programIdentity(s.program))!;
    const now = Date.parse(good.probedAt);
    assert.deepEqual(parseProbeCache(JSON.stringify(good), id, now), ANSWERS);
    const bad = [
      'not json',
      JSON.stringify({ ...good, format: 'other' }),
      JSON.stringify({ ...good, program: `${id}x` }),
      JSON.stringify({ ...good, answers: { ...good.answers, has: { ...good.answers.has, raw: 'yes' } } }),
      JSON.stringify({ ...good, answers: { ...good.answers, has: { listParsable: true } } }),
      JSON.stringify({ ...good, answers: { ...good.answers, version: 3 } }),
      JSON.stringify({ ...good, probedAt: new Date(now + 60_000).toISOString() }),
      JSON.stringify(null),
    ];
    for (const text of bad) assert.equal(parseProbeCache(text, id, now), null, text);
    assert.equal(parseProbeCache(JSON.stringify(good), id, now + PROBE_CACHE_MAX_AGE_MS + 1), null);
    await writeFile(file, bad[3]!);
    await cachedProbe(s.dir, s.program, s.probe);
    assert.equal(s.probes(), 2);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')).answers, ANSWERS);
  } finally {
    await s.done();
  }
});

test('a state folder that cannot be written only costs the cache', async () => {
  const s = await setup();
  try {
    const notAFolder = join(s.dir, 'file');
    await writeFile(notAFolder, '');
    assert.deepEqual(await cachedProbe(notAFolder, s.program, s.probe), ANSWERS);
    assert.deepEqual(await cachedProbe(notAFolder, s.program, s.probe), ANSWERS);
    assert.equal(s.probes(), 2);
    assert.deepEqual(await cachedProbe(s.dir, join(s.dir, 'missing-zfs'), s.probe), ANSWERS);
    assert.equal(s.probes(), 3);
  } finally {
    await s.done();
  }
});

test('a cache file that is a link, a FIFO or huge is not read: the probe runs, nothing hangs', async () => {
  const { symlink, rm: remove, truncate } = await import('node:fs/promises');
  const { execa } = await import('execa');
  const s = await setup();
  try {
    const file = join(s.dir, PROBE_CACHE_FILE);
    // A good cache file elsewhere, linked in: not taken (and not written through when replaced).
    const elsewhere = await mkdtemp(join(tmpdir(), 'zferry-probe-elsewhere-'));
    await cachedProbe(elsewhere, s.program, s.probe);
    await symlink(join(elsewhere, PROBE_CACHE_FILE), file);
    await cachedProbe(s.dir, s.program, s.probe);
    assert.equal(s.probes(), 2);
    await remove(file, { force: true });
    await execa('mkfifo', [file]);
    await cachedProbe(s.dir, s.program, s.probe);
    assert.equal(s.probes(), 3);
    await remove(file, { force: true });
    await writeFile(file, '');
    await truncate(file, 10 * 1024 * 1024);
    await cachedProbe(s.dir, s.program, s.probe);
    assert.equal(s.probes(), 4);
    await rm(elsewhere, { recursive: true, force: true });
  } finally {
    await s.done();
  }
});

test('a binary is kept for 30 days (a daily job reuses it), a script in front of zfs for a day', async () => {
  const s = await setup();
  try {
    assert.equal(await probeCacheMaxAge(s.program), PROBE_CACHE_MAX_AGE_MS);
    const binary = join(s.dir, 'zfs-elf');
    await writeFile(binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]));
    await chmod(binary, 0o755);
    assert.equal(await probeCacheMaxAge(binary), PROBE_CACHE_BINARY_MAX_AGE_MS);
    assert.equal(await probeCacheMaxAge(join(s.dir, 'missing')), PROBE_CACHE_MAX_AGE_MS);
    await cachedProbe(s.dir, binary, s.probe);
    const good = JSON.parse(await readFile(join(s.dir, PROBE_CACHE_FILE), 'utf8'));
    const id = (await programIdentity(binary))!;
    const probed = Date.parse(good.probedAt);
    const day = 24 * 3600 * 1000;
    // A day and a few minutes later, as a daily timer finds it: kept for the binary.
    assert.deepEqual(parseProbeCache(JSON.stringify(good), id, probed + day + 300_000, PROBE_CACHE_BINARY_MAX_AGE_MS), ANSWERS);
    assert.equal(parseProbeCache(JSON.stringify(good), id, probed + day + 300_000, PROBE_CACHE_MAX_AGE_MS), null);
    assert.equal(parseProbeCache(JSON.stringify(good), id, probed + 31 * day, PROBE_CACHE_BINARY_MAX_AGE_MS), null);
    assert.equal(s.probes(), 1);
  } finally {
    await s.done();
  }
});
