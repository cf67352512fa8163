import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHeld, parseInventoryGet, parseInventoryList, parseSpace, parseWritten } from '../../src/zfs/index.js';

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

test('parseSpace: referenced and used per dataset and snapshot, as zfs-fuse prints them; rows without a number are left out', () => {
  const out = 'zr\treferenced\t131072\nzr\tused\t667648\nzr@s1\treferenced\t122880\nzr@s1\tused\t90112\nzr/v\treferenced\t-\nzr/v\tused\t5\n';
  assert.deepEqual([...parseSpace(out)], [['zr', { referenced: 131072n, used: 667648n }], ['zr@s1', { referenced: 122880n, used: 90112n }]]);
});
