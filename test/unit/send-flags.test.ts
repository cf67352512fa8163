import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sendOptionsFor, sendOptionLetters, sendFlagsOf, sendOptionsOf, checkEncryptionMatch, type SendFeatures, type SendOption } from '../../src/plan/index.js';
import { buildReceiveArgs } from '../../src/zfs/index.js';
import { createStep, stepOf, type Dataset, type Inventory } from '../../src/model.js';

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

test('sendFlags are letters on disk and data in code: every option survives the round trip, and -i/-I follow the step', () => {
  const all: SendOption[] = ['props', 'compressed', 'raw', 'largeBlocks', 'embedded'];
  assert.deepEqual(sendFlagsOf(['props', 'raw'], { kind: 'incremental', intermediates: true }), ['-p', '-w', '-I']);
  assert.deepEqual(sendFlagsOf([], { kind: 'full', intermediates: false }), []);
  assert.deepEqual(sendOptionsOf(sendFlagsOf(all, { kind: 'incremental', intermediates: false })), all);
  assert.deepEqual(sendOptionsOf(['-i', '-X', '-c']), ['compressed']);
});

test('stepOf copies a step\'s own fields and nothing that rode along', () => {
  const from = { name: 's1', guid: '1', bookmark: undefined, dataset: undefined };
  const extra = { kind: 'incremental' as const, dataset: 'a', type: 'filesystem' as const, from, to: { name: 's2', guid: '2' }, intermediates: false, creates: [{ name: 's2', guid: '2' }], force: false, sneaky: 1 };
  assert.deepEqual(stepOf(extra), { kind: 'incremental', dataset: 'a', type: 'filesystem', from: { name: 's1', guid: '1' }, to: { name: 's2', guid: '2' }, intermediates: false, creates: [{ name: 's2', guid: '2' }], force: false });
  assert.deepEqual(stepOf(createStep('x')), { kind: 'create', dataset: 'x', type: 'filesystem', from: null, to: null, intermediates: false, creates: [], force: false });
});
