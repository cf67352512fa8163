import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LANE_MAX_BYTES, laneDependencies, laneStep, type LaneStep } from '../../src/plan/index.js';
import { leftByRun, runInLanes } from '../../src/lanes.js';

const step = (dataset: string, alone = false): LaneStep => ({ dataset, alone });

describe('laneDependencies', () => {
  it('chains a dataset\'s own streams and waits for parents and children, never for strangers', () => {
    const deps = laneDependencies([
      step(''), step(''), // 0, 1: the root, full then incremental
      step('a'), step('b'), step('a'), // 2, 3, 4
      step('a/x'), step('b/y'), // 5, 6
      step('a'), // 7: a parent after its child
      step('c/d'), // 8: a child whose parent has no stream
      step('c'), // 9
    ]);
    assert.deepEqual(deps, [[], [0], [1], [1], [1, 2], [1, 4], [1, 3], [1, 4, 5], [1], [1, 8]]);
  });

  it('a long name that only starts like another is not its child', () => {
    assert.deepEqual(laneDependencies([step('a'), step('ab'), step('a-x/y'), step('a/b')]), [[], [], [], [0]]);
  });
});

describe('laneStep', () => {
  const small = { dataset: 'a', kind: 'incremental', storedBytes: 4096, from: { name: 's1' } };
  const plain = { receive: { force: false } };
  it('small plain receives and creates go side by side', () => {
    assert.equal(laneStep(small, plain, false).alone, false);
    assert.equal(laneStep({ dataset: 'a', kind: 'create', storedBytes: 0, from: null }, {}, false).alone, false);
  });
  it('renames, clones, parts, large, forced, rolled-back or replacing streams go alone', () => {
    assert.equal(laneStep({ ...small, kind: 'rename' }, {}, false).alone, true);
    assert.equal(laneStep({ ...small, from: { name: 's1', dataset: 'b' } }, plain, false).alone, true);
    assert.equal(laneStep(small, { receive: { force: false, origin: {} } }, false).alone, true);
    assert.equal(laneStep(small, plain, true).alone, true);
    assert.equal(laneStep({ ...small, storedBytes: LANE_MAX_BYTES + 1 }, plain, false).alone, true);
    assert.equal(laneStep(small, { receive: { force: true } }, false).alone, true);
    assert.equal(laneStep(small, { ...plain, rollbackTo: {} }, false).alone, true);
    assert.equal(laneStep(small, { ...plain, replaces: [{}] }, false).alone, true);
  });
});

/** Runs steps that each take `ms[i]` ms, recording what ran beside what. */
async function trace(steps: LaneStep[], lanes: number, ms: number[], fail?: number) {
  const log: string[] = [];
  let now = 0;
  let peak = 0;
  const running = new Set<number>();
  const r = await runInLanes(laneDependencies(steps), steps.map((s) => s.alone), lanes, async (i) => {
    running.add(i);
    peak = Math.max(peak, running.size);
    for (const j of running) if (j !== i && (steps[j].alone || steps[i].alone)) log.push(`${i} beside alone ${j}`);
    log.push(`start ${i}`);
    await new Promise((res) => setTimeout(res, ms[i]));
    now++;
    running.delete(i);
    if (i === fail) throw new Error(`step ${i} failed`);
  });
  return { ...r, log, peak, now };
}

describe('runInLanes', () => {
  it('runs unrelated steps side by side, never more than the lanes, a dataset\'s in order', async () => {
    // a's full ends only once b's two streams have: that can happen only if b ran beside it.
    const steps = [step('a'), step('a'), step('b'), step('b'), step('c'), step('c')];
    let bDone!: () => void;
    const bothB = new Promise<void>((res) => (bDone = res));
    const ended: number[] = [];
    let running = 0;
    let peak = 0;
    const r = await runInLanes(laneDependencies(steps), steps.map((s) => s.alone), 2, async (i) => {
      peak = Math.max(peak, ++running);
      if (i === 0) await bothB;
      else await new Promise((res) => setImmediate(res));
      running--;
      ended.push(i);
      if (i === 3) bDone();
    });
    assert.equal(r.failed, null);
    assert.equal(peak, 2);
    assert.deepEqual(r.done, ended);
    assert.deepEqual(ended.slice(0, 3), [2, 3, 0], 'b\'s streams, one after the other, beside a\'s full');
    assert.ok(ended.indexOf(0) < ended.indexOf(1), 'a\'s incremental after its full');
    assert.ok(ended.indexOf(4) < ended.indexOf(5), 'c\'s in order');
  });

  it('a step that runs alone has nothing beside it and keeps its place', async () => {
    const steps = [step('a'), step('b'), step('c', true), step('d'), step('e')];
    const t = await trace(steps, 4, [10, 10, 10, 10, 10]);
    assert.deepEqual(t.log.filter((l) => l.includes('beside')), []);
    assert.deepEqual(t.done.slice(2, 3), [2]);
    assert.deepEqual(new Set(t.done.slice(0, 2)), new Set([0, 1]));
  });

  it('one lane is the plan\'s order', async () => {
    const steps = [step('a'), step('b'), step('a'), step('c')];
    const t = await trace(steps, 1, [10, 1, 1, 1]);
    assert.deepEqual(t.done, [0, 1, 2, 3]);
  });

  it('after a failure nothing new starts; what was running finishes and is counted', async () => {
    const steps = [step('a'), step('b'), step('c'), step('d'), step('a')];
    const t = await trace(steps, 2, [5, 30, 1, 1, 1], 0);
    assert.equal(t.failed?.index, 0);
    assert.match(String(t.failed?.error), /step 0 failed/);
    // b was running beside a and finished; nothing after the failure started.
    assert.deepEqual(t.done, [1]);
    assert.deepEqual(t.log, ['start 0', 'start 1']);
  });
});

describe('leftByRun', () => {
  const failed = (index: number) => ({ index, error: new Error('bad volume') });

  it('one at a time: everything before it is in, and the rest come after it', () => {
    assert.deepEqual(leftByRun({ done: [0, 1], failed: failed(2) }, 5), {
      rest: ', nor the 2 after it',
      received: 'the 2 stream(s) before it were received and stay; a re-run continues from there',
    });
    assert.deepEqual(leftByRun({ done: [], failed: failed(0) }, 3), { rest: ', nor the 2 after it', received: 'nothing was received' });
    assert.deepEqual(leftByRun({ done: [0, 1], failed: failed(2) }, 3), {
      rest: '',
      received: 'the 2 stream(s) before it were received and stay; a re-run continues from there',
    });
  });

  it('streams after it that were received beside it are counted as after it', () => {
    assert.deepEqual(leftByRun({ done: [0, 3, 2], failed: failed(1) }, 5), {
      rest: ', nor 1 other(s)',
      received: '3 stream(s) were received and stay (2 of them after it in the plan, which do not depend on it); a re-run continues from there',
    });
  });

  it('an earlier stream still waiting is not "after it", and no stream after it is claimed', () => {
    // Step 2 failed while step 1 still waited for a step it depends on: 1 comes before 2, so not "the 2 after it".
    const r = leftByRun({ done: [0], failed: failed(2) }, 4);
    assert.equal(r.rest, ', nor 2 other(s)');
    assert.equal(r.received, '1 stream(s) were received and stay; a re-run continues from there');
    assert.deepEqual(leftByRun({ done: [], failed: failed(1) }, 3), { rest: ', nor 2 other(s)', received: 'nothing was received' });
  });
});
