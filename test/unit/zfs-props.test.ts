import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHeld, parseInventoryGet, parseInventoryList, parseWritten } from '../../src/zfs/index.js';

test('parses written per dataset and drops snapshot rows (OpenZFS capture shape)', () => {
  const out = 'dst/b\t0\ndst/b@s1\t4096\ndst/b/c\t70656\n';
  assert.deepEqual([...parseWritten(out)], [['dst/b', 0n], ['dst/b/c', 70656n]]);
});

test('finds held snapshots by userrefs (zfs-fuse capture)', () => {
  const out = 'zq\t-\nzq@s1\t0\nzq/a\t-\nzq/a@s1\t1\nzq/a/b@s1\t0\n';
  assert.deepEqual(parseHeld(out), ['zq/a@s1']);
});

test('reads zferry:skip from the inventory call, list and get forms (inherited values count)', () => {
  const get = [
    'zq\ttype\tfilesystem', 'zq\tguid\t1', 'zq\tcreatetxg\t1', 'zq\tcreation\t5', 'zq\tzferry:skip\t-',
    'zq/a\ttype\tfilesystem', 'zq/a\tguid\t2', 'zq/a\tcreatetxg\t2', 'zq/a\tcreation\t5', 'zq/a\tzferry:skip\ton',
  ].join('\n');
  assert.deepEqual(parseInventoryGet(get, 'zq').datasets.map((d) => [d.path, d.skip ?? false]), [['', false], ['a', true]]);
  const list = 'zq\tfilesystem\t1\t1\t5\t-\t-\nzq/a\tfilesystem\t2\t2\t5\t-\ton\n';
  assert.deepEqual(parseInventoryList(list, 'zq').datasets.map((d) => [d.path, d.skip ?? false]), [['', false], ['a', true]]);
});
