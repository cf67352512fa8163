/**
 * What a person at a terminal sees (issue 17, point 3), in a real terminal
 * (tmux): export's plan comes before any progress bar; the bars are on
 * stderr, the plan and the result on stdout.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makePool, run, type TestPool } from '../helpers/zfslab.js';
import { CLI, STATE_DIR } from '../helpers/cli.js';
import { buildSource } from '../helpers/fixtures.js';

/** A tmux server of this test process only. */
const SOCKET = `zferry-test-${process.pid}`;
const tmux = (...args: string[]) => run('tmux', ['-L', SOCKET, ...args]);

let src: TestPool;
let work: string;

before(async () => {
  src = await makePool('tty', 128);
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-tty-'));
  await buildSource(src.name);
});

after(async () => {
  await tmux('kill-server').catch(() => undefined);
  await src?.destroy();
  await rm(work, { recursive: true, force: true });
});

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
let sessions = 0;

/** Runs `zferry ARGS REDIRECT` in a fresh 200×60 terminal and returns the whole screen once it exited. */
async function onTerminal(args: string[], redirect = ''): Promise<{ screen: string; code: number }> {
  const name = `s${++sessions}`;
  const command = `env LC_ALL=C ZFERRY_STATE_DIR=${q(STATE_DIR)} ${q(process.execPath)} ${q(CLI)} ${args.map(q).join(' ')} ${redirect}; echo "EXIT=$?"; sleep 600`;
  await tmux('new-session', '-d', '-s', name, '-x', '200', '-y', '60', command);
  try {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const screen = await tmux('capture-pane', '-p', '-J', '-S', '-', '-t', name);
      const m = /^EXIT=(\d+)$/m.exec(screen);
      if (m) return { screen: screen.slice(0, m.index), code: Number(m[1]) };
      if (Date.now() > deadline) assert.fail(`zferry ${args.join(' ')} did not finish on the terminal:\n${screen}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await tmux('kill-session', '-t', name).catch(() => undefined);
  }
}

const planLine = () => `plan for ${src.name}, against an empty target (initial seed):`;
/** The overall bar's label and its byte counter. */
const barLine = () => new RegExp(`^export ${src.name}\\s.*MiB`, 'm');

test('on a terminal, export prints its plan before the first progress bar, and the result after the bars', async () => {
  const { screen, code } = await onTerminal(['export', src.name, path.join(work, 'both'), '--no-journal']);
  assert.equal(code, 0, screen);
  const plan = screen.indexOf(planLine());
  const bar = screen.search(barLine());
  const result = screen.search(/^wrote \d+ stream\(s\)/m);
  assert.ok(plan >= 0 && bar >= 0 && result >= 0, screen);
  assert.ok(plan < bar && bar < result, `plan at ${plan}, first bar at ${bar}, result at ${result}:\n${screen}`);
});

test('the plan and the result are on stdout: with stderr thrown away, no bar is left', async () => {
  const { screen, code } = await onTerminal(['export', src.name, path.join(work, 'stdout-only'), '--no-journal'], '2>/dev/null');
  assert.equal(code, 0, screen);
  assert.ok(screen.includes(planLine()), screen);
  assert.match(screen, /^bundle: /m);
  assert.doesNotMatch(screen, barLine());
});

test('the bars are on stderr: with stdout thrown away, only the bars are left', async () => {
  const { screen, code } = await onTerminal(['export', src.name, path.join(work, 'stderr-only'), '--no-journal'], '>/dev/null');
  assert.equal(code, 0, screen);
  assert.match(screen, barLine());
  assert.ok(!screen.includes(planLine()), screen);
  assert.doesNotMatch(screen, /^bundle: /m);
});
