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
