/**
 * Runs steps side by side as their dependencies allow (see plan/lanes.ts),
 * starting them in order among those ready, never more than `lanes` at once.
 * The first failure starts nothing more; the steps already running finish
 * (each is whole on its own: a snapshot received, or not at all), and the
 * result says which ran and which failed.
 */

export interface LaneRun {
  /** The steps that finished, in the order they finished. */
  done: number[];
  /** The first step that failed, and its error; null when all finished. */
  failed: { index: number; error: unknown } | null;
}

/** How far past the first step not started a ready one is looked for: the scan stays short on a long plan. */
const LOOKAHEAD = 64;

export async function runInLanes(
  deps: readonly (readonly number[])[],
  alone: readonly boolean[],
  lanes: number,
  run: (index: number) => Promise<void>,
): Promise<LaneRun> {
  const n = deps.length;
  const finished = new Array<boolean>(n).fill(false);
  const started = new Array<boolean>(n).fill(false);
  const running = new Map<number, Promise<number>>();
  const done: number[] = [];
  let failed: LaneRun['failed'] = null;
  let first = 0;
  let aloneRunning = false;
  const start = (i: number) => {
    started[i] = true;
    aloneRunning = alone[i];
    running.set(i, run(i).then(
      () => {
        finished[i] = true;
        done.push(i);
        return i;
      },
      (error: unknown) => {
        failed ??= { index: i, error };
        return i;
      },
    ));
  };
  for (;;) {
    while (first < n && started[first]) first++;
    if (failed === null && !aloneRunning) {
      for (let i = first; i < n && i < first + LOOKAHEAD && running.size < Math.max(1, lanes); i++) {
        if (started[i]) continue;
        // A step that runs alone waits for everything before it, and nothing after it starts first.
        if (alone[i]) {
          if (running.size === 0) start(i);
          break;
        }
        if (deps[i].every((d) => finished[d])) start(i);
      }
    }
    if (running.size === 0) break;
    const i = await Promise.race(running.values());
    running.delete(i);
    if (alone[i]) aloneRunning = false;
  }
  return { done, failed };
}

/**
 * What a failed run left, in words, for the failing stream's line: the part
 * after "stream N … was not received", for the run's failed step in a plan
 * of `steps` steps. When the run ended as one at a time would have left it
 * (everything before it in, nothing after it), the line says so; otherwise
 * it counts what is in, and how much of that comes after it in the plan.
 */
export function leftByRun(run: LaneRun, steps: number): { rest: string; received: string } {
  const at = run.failed!.index;
  const before = run.done.filter((i) => i < at).length;
  const after = run.done.length - before;
  const left = steps - run.done.length - 1;
  const inOrder = after === 0 && before === at;
  const rest = left > 0 ? (inOrder ? `, nor the ${left} after it` : `, nor ${left} other(s)`) : '';
  const beside = after > 0 ? ` (${after} of them after it in the plan, which do not depend on it)` : '';
  const received = run.done.length === 0
    ? 'nothing was received'
    : inOrder
      ? `the ${before} stream(s) before it were received and stay; a re-run continues from there`
      : `${run.done.length} stream(s) were received and stay${beside}; a re-run continues from there`;
  return { rest, received };
}
