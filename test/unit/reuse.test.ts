/** Which finished streams of an unfinished export a new run keeps (src/plan/reuse.ts), on literal steps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStep, type SendStep } from '../../src/model.js';
import { planReuse, type StreamSettings } from '../../src/plan/reuse.js';
import type { StreamEntry } from '../../src/bundle/manifest.js';

const settings: StreamSettings = { level: 3, volumeSize: 1024, recipients: [] };
const snap = (name: string, guid: string) => ({ name, guid });

function full(dataset: string, to: string, guid: string): SendStep {
  return { kind: 'full', dataset, type: 'filesystem', from: null, to: snap(to, guid), intermediates: false, creates: [snap(to, guid)], force: false };
}
function incr(dataset: string, from: [string, string], to: [string, string]): SendStep {
  return { kind: 'incremental', dataset, type: 'filesystem', from: snap(...from), to: snap(...to), intermediates: true, creates: [snap(...to)], force: false };
}
function entry(step: SendStep, index: number, flags: string[], volumes = 2): StreamEntry {
  const tag = step.kind === 'full' ? 'full' : 'incr';
  return {
    ...step, index, sendFlags: flags, rawBytes: 10, storedBytes: 2 * volumes, rawSha256: 'r'.repeat(64),
    volumes: Array.from({ length: volumes }, (_, n) => ({ file: `streams/${String(index).padStart(4, '0')}-${tag}.zst.${String(n).padStart(3, '0')}`, bytes: 2, sha256: String(n).repeat(64) })),
  };
}

test('keeps a finished stream whose step and send options are unchanged, at the same place', () => {
  const a = full('a', 'one', '11');
  const b = full('b', 'one', '22');
  const r = planReuse([{ step: a, sendFlags: ['-p'] }, { step: b, sendFlags: ['-p'] }], [entry(a, 1, ['-p'])], settings, settings);
  assert.equal(r.length, 1);
  assert.equal(r[0].index, 1);
  assert.deepEqual(r[0].renames, []);
  assert.deepEqual(r[0].entry.volumes.map((v) => v.file), ['streams/0001-full.zst.000', 'streams/0001-full.zst.001']);
});

test('renumbers a kept stream that a changed plan puts elsewhere, volumes renamed with it', () => {
  const a = full('a', 'one', '11');
  const r = planReuse([{ step: createStep('p'), sendFlags: [] }, { step: full('p/x', 'one', '33'), sendFlags: [] }, { step: a, sendFlags: [] }], [entry(a, 1, [])], settings, settings);
  assert.equal(r[0].index, 3);
  assert.deepEqual(r[0].renames, [
    { from: 'streams/0001-full.zst.000', to: 'streams/0003-full.zst.000' },
    { from: 'streams/0001-full.zst.001', to: 'streams/0003-full.zst.001' },
  ]);
  assert.equal(r[0].entry.volumes[1].sha256, '1'.repeat(64), 'the recorded sha256 travels with the volume');
});

test('does not keep a stream whose step changed: another target snapshot, another base, other send options', () => {
  const kept = [entry(full('a', 'one', '11'), 1, ['-p']), entry(incr('b', ['one', '21'], ['two', '22']), 2, ['-p', '-I'])];
  const planned = [
    { step: full('a', 'two', '12'), sendFlags: ['-p'] },
    { step: incr('b', ['one', '21'], ['three', '23']), sendFlags: ['-p', '-I'] },
  ];
  assert.deepEqual(planReuse(planned, kept, settings, settings), []);
  assert.deepEqual(planReuse([{ step: full('a', 'one', '11'), sendFlags: ['-p', '-w'] }], kept, settings, settings), []);
});

test('keeps nothing when the level, volume size or recipients differ', () => {
  const a = full('a', 'one', '11');
  const planned = [{ step: a, sendFlags: [] }];
  const kept = [entry(a, 1, [])];
  assert.equal(planReuse(planned, kept, settings, { ...settings, level: 9 }).length, 0);
  assert.equal(planReuse(planned, kept, settings, { ...settings, volumeSize: 2048 }).length, 0);
  assert.equal(planReuse(planned, kept, settings, { ...settings, recipients: ['age1x'] }).length, 0);
  assert.equal(planReuse(planned, kept, { ...settings, recipients: ['b', 'a'] }, { ...settings, recipients: ['a', 'b'] }).length, 1, 'recipients in any order');
});
