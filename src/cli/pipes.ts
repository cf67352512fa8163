/**
 * A reader that goes away (`zferry --help | head`) ends zferry quietly, the
 * way SIGPIPE ends `yes | head`. Node ignores SIGPIPE and reports the closed
 * pipe as an 'error' event on process.stdout/stderr instead, which nobody
 * handles and which then ends the process with a stack trace.
 */

/** What a shell shows for a writer SIGPIPE ended (128 + 13): `yes | head; echo ${PIPESTATUS[0]}`. */
export const EXIT_CLOSED_PIPE = 141;

/** Thrown where zferry is about to start work whose reader has gone; the command's own cleanup runs as for any error. */
export class ClosedPipe extends Error {
  constructor() {
    super('the reader of zferry\'s output went away');
    this.name = 'ClosedPipe';
  }
}

let closed = false;

/** Whether stdout or stderr lost its reader. */
export function outputClosed(): boolean {
  return closed;
}

/** Call once, before anything is written. */
export function guardPipes(): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', () => {
      // EPIPE is a reader that left; EIO a terminal that vanished: either way nobody reads.
      closed = true;
      // Later lines go nowhere rather than raise again on a destroyed stream.
      s.write = ((_chunk: unknown, encOrDone?: unknown, done?: unknown) => {
        const callback = typeof encOrDone === 'function' ? encOrDone : done;
        if (typeof callback === 'function') queueMicrotask(() => callback());
        return true;
      }) as typeof s.write;
    });
  }
}

/**
 * A checkpoint before long work: lets a write that just failed report itself
 * (Node emits EPIPE a tick after the write), then throws ClosedPipe if the
 * reader is gone, so the work is never started for nobody.
 */
export async function stopIfOutputClosed(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  if (closed) throw new ClosedPipe();
}
