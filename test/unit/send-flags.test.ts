import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sendOptionsFor, sendOptionLetters, checkEncryptionMatch, type SendFeatures } from '../../src/plan/index.js';
import { buildReceiveArgs } from '../../src/zfs/index.js';
import type { Dataset, Inventory } from '../../src/model.js';

const openzfs: SendFeatures = {
  send: { props: true, compressed: true, raw: true, largeBlocks: true, embedded: true },
  recvPropertyOverride: true,
};
const fuse: SendFeatures = {
  send: { props: true, compressed: false, raw: false, largeBlocks: false, embedded: false },
  recvPropertyOverride: false,
};
const ds = (path: string, encrypted?: boolean): Dataset => ({ path, type: 'filesystem', guid: '1', snapshots: [], bookmarks: [], ...(encrypted === undefined ? {} : { encrypted }) });
const inv = (root: string, ...d: Dataset[]): Inventory => ({ root, datasets: d });

test('an encrypted dataset is sent raw, with properties, and nothing -w already implies', () => {
  assert.deepEqual(sendOptionLetters(sendOptionsFor(ds('secret', true), 'tank', openzfs)), ['-p', '-w']);
});

test('a plain dataset on OpenZFS travels as stored: -c -L -e, with properties', () => {
  assert.deepEqual(sendOptionLetters(sendOptionsFor(ds('a', false), 'tank', openzfs)), ['-p', '-c', '-L', '-e']);
});

test('zfs-fuse sends plain streams: no -p where the receiver could not keep a mountpoint off its paths', () => {
  assert.deepEqual(sendOptionsFor(ds('a'), 'tank', fuse), []);
});

test('an encrypted dataset on a zfs without raw sends is refused by name', () => {
  assert.throws(() => sendOptionsFor(ds('secret', true), 'tank', fuse), /tank\/secret is encrypted/);
});

test('mixing raw and non-raw for one dataset is refused, naming both sides and the remedy', () => {
  const m = checkEncryptionMatch(inv('tank', ds(''), ds('secret', true)), inv('backup', ds(''), ds('secret', false)));
  assert.ok(m);
  assert.equal(m.dataset, 'secret');
  assert.match(m.message, /tank\/secret is encrypted.*backup\/secret.*received unencrypted.*destroy backup\/secret/);
  const back = checkEncryptionMatch(inv('tank', ds('x', false)), inv('backup', ds('x', true)));
  assert.match(back!.message, /backup\/x on the target is \(received raw\)/);
});

test('unknown encryption on either side (zfs-fuse, old receipts) is not a mismatch', () => {
  assert.equal(checkEncryptionMatch(inv('tank', ds('a', true)), inv('backup', ds('a'))), null);
  assert.equal(checkEncryptionMatch(inv('tank', ds('a', true)), null), null);
});

test('receive overrides become -x/-o arguments, refused where zfs cannot take them', () => {
  const caps = { recvNoMount: true, resumable: true, recvPropertyOverride: true } as Parameters<typeof buildReceiveArgs>[1];
  assert.deepEqual(buildReceiveArgs({ dataset: 'b/a', exclude: ['mountpoint'], set: { canmount: 'noauto' } }, caps),
    ['receive', '-u', '-x', 'mountpoint', '-o', 'canmount=noauto', 'b/a']);
  assert.throws(() => buildReceiveArgs({ dataset: 'b/a', exclude: ['mountpoint'] }, { ...caps, recvPropertyOverride: false }), /cannot override received properties/);
});
