/** Which folders under a prefix are bundles, from one listing (src/bundle/bucket.ts prefixContents), and which markers are taken (partial.ts parsePartial), on literal data. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prefixContents } from '../../src/bundle/bucket.js';
import { parsePartial } from '../../src/bundle/partial.js';

const o = (...names: string[]) => names.map((name) => ({ name }));

test('a folder with manifest.json is a bundle; one with only a marker and volumes is an unfinished export, marked', () => {
  const r = prefixContents({
    objects: o('zferry-b/RESTORE.txt', 'zferry-b/manifest.json', 'zferry-a/SHA256SUMS', 'zferry-a/manifest.json', 'zferry-c/.zferry-export.json'),
    streamFolders: ['zferry-a/streams/', 'zferry-b/streams/', 'zferry-c/streams/', 'zferry-d/streams/'],
  });
  assert.equal(r.self, false);
  assert.deepEqual(r.bundles, ['zferry-a', 'zferry-b']);
  assert.deepEqual(r.unfinished, [{ name: 'zferry-c', marked: true }, { name: 'zferry-d', marked: false }]);
});

test('the prefix holding manifest.json itself is the bundle', () => {
  assert.equal(prefixContents({ objects: o('manifest.json', 'streams/0001-full.zst.000'), streamFolders: [] }).self, true);
});

test('a manifest.json two levels down, or a file named like one, makes no bundle one level down', () => {
  const r = prefixContents({ objects: o('site/zferry-x/manifest.json', 'zferry-y/manifest.json.minisig', 'zferry-y/RESTORE.txt'), streamFolders: ['site/zferry-x/streams/'] });
  assert.deepEqual(r.bundles, []);
  assert.deepEqual(r.unfinished, [{ name: 'zferry-y', marked: false }]);
});

test('a marker is taken only when well formed: volume names as zferry gives them, sizes and sha256 of the right shape', () => {
  const stream = (index: number, file: string, extra: Record<string, unknown> = {}) => ({
    index, kind: 'full', dataset: '', type: 'filesystem', from: null, to: { name: 'one', guid: '1' }, intermediates: false, creates: [], force: false,
    sendFlags: [], rawBytes: 10, storedBytes: 5, rawSha256: 'a'.repeat(64), volumes: [{ file, bytes: 5, sha256: 'b'.repeat(64) }], ...extra,
  });
  const marker = (streams: unknown[], recipients: string[] = []) => JSON.stringify({
    format: 'zferry-export-partial', formatVersion: 1, bundleId: '0badf00d-0000-4000-8000-000000000001', createdAt: '2026-11-30T00:00:00.000Z',
    source: '1:pool', host: 'h', pid: 1, settings: { level: 3, volumeSize: 1024, recipients }, streams,
  });
  assert.ok(parsePartial(marker([stream(1, 'streams/0001-full.zst.000')])));
  assert.ok(parsePartial(marker([stream(2, 'streams/0002-full.zst.age.000')], ['age1x'])));
  for (const bad of [
    marker([stream(1, 'streams/../../victim.bin')]),
    marker([stream(1, 'streams/0002-full.zst.000')]),
    marker([stream(1, 'streams/0001-full.zst.000')], ['age1x']),
    marker([stream(1, 'streams/0001-full.zst.000', { sendFlags: 'pw' })]),
    marker([stream(1, 'streams/0001-full.zst.000', { volumes: {} })]),
    marker([{ ...stream(1, 'streams/0001-full.zst.000'), volumes: [{ file: 'streams/0001-full.zst.000', bytes: -1, sha256: 'b'.repeat(64) }] }]),
    marker([null]),
    marker([stream(1, 'streams/0001-full.zst.000')]).replace('0badf00d-0000-4000-8000-000000000001', '../x'),
    '{"format": "zferry-export-partial", ',
  ]) assert.equal(parsePartial(bad), null, bad.slice(0, 200));
});
