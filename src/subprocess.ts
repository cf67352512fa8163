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
