/**
 * targetQuery (src/zfs/target.ts): the one zfs call import reads its target
 * with, built and parsed on literal output of both forms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { targetQuery, type ZfsCapabilities } from '../../src/zfs/index.js';
import { OPENZFS_CAPS, ZFS_FUSE_CAPS } from '../helpers/caps.js';

const MARKS = ['zferry:source', 'zferry:source-txg'];

const OPENZFS: ZfsCapabilities = OPENZFS_CAPS;

test('OpenZFS: one zfs list reads the inventory, written, resume tokens and the root\'s marks', () => {
  const q = targetQuery('tank/t', OPENZFS, MARKS);
  assert.deepEqual(q.args, [
    'list', '-H', '-p', '-t', 'filesystem,volume,snapshot,bookmark',
    '-o', 'name,type,guid,createtxg,creation,origin,zferry:skip,encryption,written,receive_resume_token,zferry:source,zferry:source-txg',
    '-r', 'tank/t',
  ]);
  const out = [
    'tank/t\tfilesystem\t111\t10\t1700000000\t-\t-\toff\t0\t-\t42:tank/src\t77',
    'tank/t@a\tsnapshot\t112\t11\t1700000100\t-\t-\toff\t4096\t-\t42:tank/src\t77',
    'tank/t/c\tfilesystem\t121\t12\t1700000200\t-\t-\toff\t8192\t1-abcdef-123-789c\t42:tank/src\t77',
    'tank/t/v\tvolume\t131\t13\t1700000300\t-\t-\toff\t0\t-\t42:tank/src\t77',
    'tank/t/v@a\tsnapshot\t132\t14\t1700000400\t-\t-\toff\t0\t-\t42:tank/src\t77',
    'tank/t#b\tbookmark\t112\t11\t1700000100\t-\t-\t-\t-\t-\t-\t-',
    '',
  ].join('\n');
  const r = q.parse(out);
  assert.deepEqual(r.inventory.datasets.map((d) => [d.path, d.type, d.snapshots.map((s) => s.name)]), [
    ['', 'filesystem', ['a']],
    ['c', 'filesystem', []],
    ['v', 'volume', ['a']],
  ]);
  assert.deepEqual(r.marks, { 'zferry:source': '42:tank/src', 'zferry:source-txg': '77' });
  // Filesystems and volumes only: a snapshot's `written` is another figure.
  assert.deepEqual(r.written, new Map([['tank/t', 0n], ['tank/t/c', 8192n], ['tank/t/v', 0n]]));
  assert.deepEqual([...r.resumeTokens], ['tank/t/c']);
  assert.equal(r.space, null);
  // With recv -o/-x a received mountpoint is overridden in the receive itself: nothing to fix.
  assert.deepEqual(r.receivedMountpoints, []);
});

test('OpenZFS: an unset mark on the root is null, whatever a child holds', () => {
  const r = targetQuery('tank/t', OPENZFS, MARKS).parse([
    'tank/t\tfilesystem\t111\t10\t1700000000\t-\t-\toff\t0\t-\t-\t-',
    'tank/t/c\tfilesystem\t121\t12\t1700000200\t-\t-\toff\t0\t-\t9:elsewhere\t5',
  ].join('\n'));
  assert.deepEqual(r.marks, { 'zferry:source': null, 'zferry:source-txg': null });
});

test('zfs-fuse: one zfs get reads the inventory, referenced/used, the root\'s marks and received mountpoints', () => {
  const q = targetQuery('zp/t', ZFS_FUSE_CAPS, MARKS);
  assert.deepEqual(q.args, [
    'get', '-H', '-p', '-r', '-o', 'name,property,value,source',
    'type,guid,createtxg,creation,origin,zferry:skip,referenced,used,zferry:source,zferry:source-txg,mountpoint',
    'zp/t',
  ]);
  const rows: Array<[string, string, string, string]> = [
    ['zp/t', 'type', 'filesystem', '-'],
    ['zp/t', 'guid', '10815248347649017086', '-'],
    ['zp/t', 'createtxg', '7', '-'],
    ['zp/t', 'creation', '1795678555', '-'],
    ['zp/t', 'origin', '-', '-'],
    ['zp/t', 'zferry:skip', '-', '-'],
    ['zp/t', 'referenced', '21504', '-'],
    ['zp/t', 'used', '43008', '-'],
    ['zp/t', 'zferry:source', '42:tank/src', 'local'],
    ['zp/t', 'zferry:source-txg', '-', '-'],
    ['zp/t', 'mountpoint', '/zp/t', 'default'],
    ['zp/t@s1', 'type', 'snapshot', '-'],
    ['zp/t@s1', 'guid', '4', '-'],
    ['zp/t@s1', 'createtxg', '8', '-'],
    ['zp/t@s1', 'creation', '1795678556', '-'],
    ['zp/t@s1', 'origin', '-', '-'],
    ['zp/t@s1', 'zferry:skip', '-', '-'],
    ['zp/t@s1', 'referenced', '21504', '-'],
    ['zp/t@s1', 'used', '0', '-'],
    ['zp/t@s1', 'zferry:source', '42:tank/src', 'inherited from zp/t'],
    ['zp/t@s1', 'zferry:source-txg', '-', '-'],
    ['zp/t@s1', 'mountpoint', '-', '-'],
    ['zp/t/c', 'type', 'filesystem', '-'],
    ['zp/t/c', 'guid', '5', '-'],
    ['zp/t/c', 'createtxg', '9', '-'],
    ['zp/t/c', 'creation', '1795678557', '-'],
    ['zp/t/c', 'origin', '-', '-'],
    ['zp/t/c', 'zferry:skip', '-', '-'],
    ['zp/t/c', 'referenced', '19456', '-'],
    ['zp/t/c', 'used', '19456', '-'],
    ['zp/t/c', 'zferry:source', '42:tank/src', 'inherited from zp/t'],
    ['zp/t/c', 'zferry:source-txg', '-', '-'],
    ['zp/t/c', 'mountpoint', '/srv/c', 'received'],
  ];
  const r = q.parse(rows.map((x) => x.join('\t')).join('\n') + '\n');
  assert.deepEqual(r.inventory.datasets.map((d) => [d.path, d.snapshots.map((s) => s.guid)]), [['', ['4']], ['c', []]]);
  assert.deepEqual(r.marks, { 'zferry:source': '42:tank/src', 'zferry:source-txg': null });
  assert.equal(r.written, null);
  assert.deepEqual(r.space, new Map([
    ['zp/t', { referenced: 21504n, used: 43008n }],
    ['zp/t@s1', { referenced: 21504n, used: 0n }],
    ['zp/t/c', { referenced: 19456n, used: 19456n }],
  ]));
  assert.deepEqual(r.receivedMountpoints, ['zp/t/c']);
  assert.deepEqual([...r.resumeTokens], []);
});

test('a zfs with list -p but neither written nor recv -o (ZoL 0.6): referenced/used ride the list; mountpoints are left to a call of their own', () => {
  const zol06: ZfsCapabilities = { ...OPENZFS, flavour: 'openzfs', version: null, bookmarks: true, resumable: false, recvPropertyOverride: false, destroySnapshotList: false, send: { ...OPENZFS.send, raw: false } };
  const q = targetQuery('tank/t', zol06, MARKS);
  assert.equal(q.args[q.args.indexOf('-o') + 1], 'name,type,guid,createtxg,creation,origin,zferry:skip,referenced,used,zferry:source,zferry:source-txg');
  const r = q.parse('tank/t\tfilesystem\t111\t10\t1700000000\t-\t-\t100\t200\t-\t3\n');
  assert.deepEqual(r.space, new Map([['tank/t', { referenced: 100n, used: 200n }]]));
  assert.deepEqual(r.marks, { 'zferry:source': null, 'zferry:source-txg': '3' });
  assert.equal(r.receivedMountpoints, null);
});
