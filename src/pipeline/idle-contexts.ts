/**
 * zstd contexts kept between streams, for compress.ts and decompress.ts.
 * Making one costs more than a small stream's whole (de)compression (a
 * multi-threaded compression context starts its workers and job buffers on
 * first use; a decompression context took 1.5 ms, a sixth of a 402-stream
 * import's main-thread time per stream besides forking zfs). A context goes
 * back reset to "no frame started", its parameters, threads and buffers
 * kept. Up to eight streams run side by side (plan/lanes.ts), so up to
 * eight are kept per parameter set; that also bounds what an idle process keeps.
 */
import binding from 'zstd-napi/binding.js';

/** As many as streams run side by side (plan/lanes.ts): fewer kept made a context anew for most small streams. */
const MAX_IDLE = 8;

export class IdleContexts<C extends { reset(directive: binding.ResetDirective): void }> {
  private readonly idle = new Map<string, C[]>();
  /** Contexts made so far (tests pin the reuse with it). */
  created = 0;

  /** An idle context made for `key`, or a new one from `make`. */
  take(key: string, make: () => C): C {
    const reused = this.idle.get(key)?.pop();
    if (reused) return reused;
    this.created++;
    return make();
  }

  giveBack(key: string, ctx: C): void {
    // A stream destroyed mid-frame leaves the context inside it: the next stream starts clean.
    ctx.reset(binding.ResetDirective.sessionOnly);
    const list = this.idle.get(key) ?? [];
    if (list.length < MAX_IDLE) list.push(ctx);
    this.idle.set(key, list);
  }
}
