/** Which folders under a prefix are bundles, from one listing (src/bundle/bucket.ts prefixContents), on literal listings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prefixContents } from '../../src/bundle/bucket.js';

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
