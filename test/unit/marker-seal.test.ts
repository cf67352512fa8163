/**
 * Unfinished exports are resumed only from markers this host sealed
 * (src/bundle/partial.ts, src/state/marker-key.ts), and a bundle is read back
 * as import would before any closing file is written (src/bundle/finish.ts),
 * on literal data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findPartials, parsePartial, partialText, sealedBy, sealPartial, type PartialExport, type PartialPlace } from '../../src/bundle/partial.js';
import { writeBundleFiles } from '../../src/bundle/finish.js';
import { MARKER_KEY_FILE, markerKey } from '../../src/state/marker-key.js';
import { oneStreamManifest } from '../helpers/bundles.js';

const execFileP = promisify(execFile);
const KEY = Buffer.alloc(32, 7);
const OTHER = Buffer.alloc(32, 8);

function marker(createdAt: string, sha256 = 'b'.repeat(64)): PartialExport {
  return {
    format: 'zferry-export-partial', formatVersion: 1, bundleId: '0badf00d-0000-4000-8000-000000000001', createdAt,
    source: '1:pool', host: 'elsewhere', pid: 1, settings: { level: 3, volumeSize: 1024, recipients: [] },
    streams: [{
      index: 1, kind: 'full', dataset: '', type: 'filesystem', from: null, to: { name: 'one', guid: '1' }, intermediates: false, creates: [], force: false,
      sendFlags: [], rawBytes: 10, storedBytes: 5, rawSha256: 'a'.repeat(64), volumes: [{ file: 'streams/0001-full.zst.000', bytes: 5, sha256 }],
    }],
  };
}

/** The marker as the next run reads it: written as text, parsed back. */
const readBack = (p: PartialExport) => parsePartial(partialText(p))!;

test('a sealed marker reads back sealed; any field changed, another key, no seal or no key is not sealed', () => {
  const sealed = readBack(sealPartial(marker('2026-12-02T10:00:00.000Z'), KEY));
  assert.equal(sealedBy(sealed, KEY), true);
  // Sealing again (a later write with more streams) replaces the seal, and still reads back sealed.
  assert.equal(sealedBy(readBack(sealPartial({ ...sealed, createdAt: '2026-12-02T10:00:01.000Z' }, KEY)), KEY), true);
  const changed = structuredClone(sealed);
  changed.streams[0].volumes[0].sha256 = 'c'.repeat(64);
  assert.equal(sealedBy(changed, KEY), false, 'a volume hash changed');
  assert.equal(sealedBy({ ...sealed, createdAt: '2099-01-01T00:00:00.000Z' }, KEY), false, 'the date changed');
  assert.equal(sealedBy(sealed, OTHER), false, 'another host');
  assert.equal(sealedBy(readBack(marker('2026-12-02T10:00:00.000Z')), KEY), false, 'no seal');
  assert.equal(sealedBy({ ...sealed, seal: 'not hex' }, KEY), false, 'a seal of the wrong shape');
  assert.equal(sealedBy(sealed, null), false, 'no key on this host');
  assert.equal(sealPartial(sealed, null).seal, undefined, 'without a key nothing is sealed');
});

/** A place holding one marker (only readMarker is called by findPartials). */
function place(where: string, p: PartialExport): PartialPlace {
  const text = partialText(p);
  const no = () => Promise.reject(new Error(`${where}: findPartials changed something`));
  return { where, readMarker: async () => parsePartial(text), writeMarker: no, removeMarker: no, checkVolume: no, arrange: no, dropUnlisted: no, remove: no };
}

test('a stranger\'s copy of this host\'s marker, newer and with its own volumes, is neither resumed nor made to supersede the genuine one', async () => {
  const genuine = place('disk/zferry-pool-20261202T100000Z-0badf00d', sealPartial(marker('2026-12-02T10:00:00.000Z'), KEY));
  // Copied from the genuine one (its source tag and streams are public in the bucket), seal and all, with the stranger's volume.
  const copy = readBack(sealPartial(marker('2026-12-02T10:00:00.000Z'), KEY));
  const planted = place('disk/zferry-pool-20991231T000000Z-0badf00e', { ...copy, createdAt: '2099-12-31T00:00:00.000Z', streams: marker('', 'e'.repeat(64)).streams });
  const unsealed = place('disk/zferry-pool-20991231T000001Z-0badf00f', marker('2099-12-31T00:00:01.000Z', 'e'.repeat(64)));
  const { found, unsealed: left } = await findPartials([planted, genuine, unsealed], '1:pool', 'default', KEY);
  assert.deepEqual(found.map((f) => f.place.where), [genuine.where]);
  assert.deepEqual(left.map((p) => p.where), [planted.where, unsealed.where]);
  // Another host (or a state folder that could hold no key) resumes none of them.
  const elsewhere = await findPartials([planted, genuine], '1:pool', 'default', OTHER);
  assert.deepEqual(elsewhere.found, []);
  assert.equal((await findPartials([genuine], '1:pool', 'default', null)).found.length, 0);
});

test('markers with a zstd level, volume size or part zferry never writes are not taken', () => {
  const m = marker('2026-12-02T10:00:00.000Z');
  assert.ok(parsePartial(JSON.stringify(m)));
  for (const bad of [
    { ...m, settings: { ...m.settings, level: 99 } },
    { ...m, settings: { ...m.settings, level: 3.5 } },
    { ...m, settings: { ...m.settings, volumeSize: 0 } },
    { ...m, settings: { ...m.settings, recipients: [7] } },
    { ...m, streams: [{ ...m.streams[0], part: { number: '1\ntouch /tmp/owned', offset: 0, previous: null, continues: true } }] },
    { ...m, streams: [{ ...m.streams[0], part: null }] },
  ]) assert.equal(parsePartial(JSON.stringify(bad)), null, JSON.stringify(bad).slice(0, 300));
});

test('the marker key is made once, owner-only, and read back the same; a dry run makes none; a damaged key seals nothing and is not replaced', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'zferry-key-'));
  try {
    const state = path.join(dir, 'state');
    assert.equal(await markerKey(state, false), null);
    await assert.rejects(readdir(state), { code: 'ENOENT' }, 'a dry run made no folder');
    const key = await markerKey(state);
    assert.equal(key?.length, 32);
    assert.equal((await stat(path.join(state, MARKER_KEY_FILE))).mode & 0o777, 0o600);
    assert.deepEqual(await markerKey(state), key);
    const [a, b] = await Promise.all([markerKey(path.join(dir, 'race')), markerKey(path.join(dir, 'race'))]);
    assert.deepEqual(a, b, 'two exports making a key at once get the same one');
    await writeFile(path.join(state, MARKER_KEY_FILE), 'not a key\n');
    assert.equal(await markerKey(state), null);
    assert.deepEqual(await readdir(state), [MARKER_KEY_FILE]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a bundle whose manifest import would refuse is not written: no closing file, no signature', async () => {
  const good = oneStreamManifest('0badf00d-0000-4000-8000-000000000001', 2, {
    rawBytes: 10, storedBytes: 5, rawSha256: 'a'.repeat(64), volumes: [{ file: 'streams/0001-full.zst.000', bytes: 5, sha256: 'b'.repeat(64) }],
  });
  const written: string[] = [];
  await writeBundleFiles(good, {}, async (name) => { written.push(name); });
  assert.deepEqual(written, ['RESTORE.txt', 'SHA256SUMS', 'manifest.json']);
  // A part number that is not a number: in RESTORE.txt it would end a comment line and start a command.
  const bad = structuredClone(good);
  (bad.streams[0] as unknown as { part: unknown }).part = { number: '1\ntouch /tmp/owned', offset: 0, previous: null, continues: false, streamRawBytes: 10, streamRawSha256: 'a'.repeat(64) };
  written.length = 0;
  let signed = false;
  await assert.rejects(writeBundleFiles(bad, { sign: () => { signed = true; return ''; } }, async (name) => { written.push(name); }), /manifest\.json \(before it was written\).*part/);
  assert.deepEqual(written, []);
  assert.equal(signed, false);
});

test('a marker key that is a link (to a key someone else chose) or a FIFO is not read: nothing is sealed, nothing hangs, nothing is replaced', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'zferry-key-'));
  try {
    const linked = path.join(dir, 'linked');
    await mkdir(linked);
    const chosen = path.join(dir, 'chosen.key');
    await writeFile(chosen, 'ab'.repeat(32) + '\n');
    await symlink(chosen, path.join(linked, MARKER_KEY_FILE));
    assert.equal(await markerKey(linked), null);
    assert.ok((await lstat(path.join(linked, MARKER_KEY_FILE))).isSymbolicLink(), 'the link is left as it was');

    const fifo = path.join(dir, 'fifo');
    await mkdir(fifo);
    await execFileP('mkfifo', [path.join(fifo, MARKER_KEY_FILE)]);
    const t0 = Date.now();
    assert.equal(await markerKey(fifo), null);
    assert.ok(Date.now() - t0 < 5000, 'no open of the FIFO waited for a writer');
    assert.ok((await lstat(path.join(fifo, MARKER_KEY_FILE))).isFIFO());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
