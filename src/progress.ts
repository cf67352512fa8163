/**
 * Progress for long work: cli-progress bars on a TTY (one per stream plus an
 * overall bar), nothing at all in scripts, cron or --json runs.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** Starts the overall bar; `totalBytes` may be unknown (0). */
  begin(label: string, totalBytes: number, streams: number): void;
  /** Starts the bar of one stream. */
  stream(label: string, totalBytes: number): void;
  /** Counts bytes into the current stream and the overall total. */
  advance(bytes: number): void;
  endStream(): void;
  /** A line for the user, printed above the bars. */
  note(line: string): void;
  end(): void;
}

export const silentProgress: Progress = {
  begin() {},
  stream() {},
  advance() {},
  endStream() {},
  note() {},
  end() {},
};

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}

/** Bars on stderr, so stdout stays the command's result. */
class BarProgress implements Progress {
  private multibar = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      clearOnComplete: false,
      hideCursor: true,
      format: (options, params, payload: { label: string; rate: string; unit: string }) => {
        const known = params.total > 0;
        const bar = known
          ? cliProgress.Format.BarFormat(params.progress, options)
          : ''.padEnd(options.barsize ?? 30, '·');
        const amount = known ? `${mib(params.value)}/${mib(params.total)} MiB` : `${mib(params.value)} MiB`;
        const eta = known && params.eta > 0 && Number.isFinite(params.eta) ? ` ETA ${params.eta}s` : '';
        return `${payload.label.padEnd(28).slice(0, 28)} ${bar} ${amount} ${payload.rate}${eta}`;
      },
    },
    cliProgress.Presets.shades_classic,
  );
  private overall: cliProgress.SingleBar | null = null;
  private current: cliProgress.SingleBar | null = null;
  private started = Date.now();
  private streamStarted = Date.now();
  private done = 0;
  private streamDone = 0;

  begin(label: string, totalBytes: number): void {
    this.started = Date.now();
    this.overall = this.multibar.create(totalBytes, 0, { label, rate: '' });
  }

  stream(label: string, totalBytes: number): void {
    this.streamStarted = Date.now();
    this.streamDone = 0;
    this.current = this.multibar.create(totalBytes, 0, { label: `  ${label}`, rate: '' });
  }

  advance(bytes: number): void {
    this.done += bytes;
    this.streamDone += bytes;
    const now = Date.now();
    const rate = (n: number, since: number) => `${mib((n * 1000) / Math.max(1, now - since))} MiB/s`;
    this.current?.update(this.streamDone, { rate: rate(this.streamDone, this.streamStarted) });
    this.overall?.update(this.done, { rate: rate(this.done, this.started) });
  }

  endStream(): void {
    if (this.current) {
      this.current.stop();
      this.multibar.remove(this.current);
    }
    this.current = null;
  }

  note(line: string): void {
    this.multibar.log(`${line}\n`);
  }

  end(): void {
    this.multibar.stop();
  }
}

/** Bars only for a person at a terminal; never with --json or without a TTY. */
export function makeProgress(json: boolean): Progress {
  return !json && process.stderr.isTTY ? new BarProgress() : silentProgress;
}
