/** What every child process whose output we stream needs, whichever tool it runs. */

/**
 * execa resumes an unread `buffer: false` stdout one tick after the spawn, and
 * whatever it emits before the caller's pipe is attached is then lost: the
 * head of a send stream. Paused explicitly, it waits for pipe(), pipeline()
 * or async iteration (each resumes it; a bare 'data' listener must call
 * resume() itself).
 */
export function holdUntilRead(stream: NodeJS.ReadableStream): void {
  stream.pause();
}

/** A child process we stream to or from: it can be stopped, and `done` says how it ended. */
export interface Child {
  kill(): void;
  done: Promise<unknown>;
}

/** Stops the child and waits for it to exit; resolves to the error it ended with, or null. */
export async function stopAndWait(child: Child): Promise<unknown> {
  child.kill();
  return child.done.then(
    () => null,
    (err: unknown) => err,
  );
}

/**
 * Awaits `work`, which feeds or drains `child`. If the work fails, the child
 * is stopped and waited for (never left running, never an unhandled
 * rejection) before the error is rethrown. `prefer` may pick the child's own
 * error instead: zfs's or mbuffer's complaint often explains more than the
 * EPIPE the work saw.
 */
export async function stopOnFailure<T>(
  child: Child,
  work: Promise<T>,
  prefer: (workErr: unknown, childErr: unknown) => unknown = (workErr) => workErr,
): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw prefer(err, await stopAndWait(child));
  }
}
