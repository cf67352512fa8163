#!/usr/bin/env node
/**
 * The zferry executable: runs the command tree (program.ts) and turns what
 * it throws into one line on stderr, plus one JSON object on stdout under
 * --json, and an exit code.
 */
import { ZferryError, oneLine } from '../errors.js';
import { buildProgram, EXIT } from './program.js';
import { ClosedPipe, EXIT_CLOSED_PIPE, guardPipes, outputClosed } from './pipes.js';
import { emitJson } from './options.js';
import { NAGIOS_UNKNOWN } from './status.js';

/** Whether the user asked for JSON: a --json before any `--`. */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

/**
 * The failure as a script reads it (README, "JSON output"): the same line as
 * on stderr, the context the error carries (file, dataset, field, offset,
 * the failing tool's command, exit code and stderr) and zferry's exit code.
 */
export function errorObject(err: unknown, exitCode: number): Record<string, unknown> {
  const context = err instanceof ZferryError ? err.context : {};
  return { ok: false, error: oneLine(err), exitCode, context };
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const json = wantsJson(argv.slice(2));
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof ClosedPipe) return EXIT_CLOSED_PIPE;
    const code = (err as { code?: string }).code;
    // `status` is a Nagios check: anything but its verdict, a usage error too, is UNKNOWN.
    const failed = (usual: number) => (argv[2] === 'status' ? NAGIOS_UNKNOWN : usual);
    if (typeof code === 'string' && code.startsWith('commander.')) {
      // commander already printed the usage message; help and version are successes.
      if (code === 'commander.helpDisplayed' || code === 'commander.version') return EXIT.ok;
      if (json) emitJson(errorObject(err, failed(EXIT.usage)));
      return failed(EXIT.usage);
    }
    const exitCode = failed(err instanceof ZferryError ? err.exitCode : EXIT.failed);
    process.stderr.write(`zferry: ${oneLine(err)}\n`);
    if (process.env.ZFERRY_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    if (json) emitJson(errorObject(err, exitCode));
    return exitCode;
  }
}

guardPipes();
const code = await main(process.argv);
// A write that failed at the very end reports itself a tick later. Work that
// succeeded but lost its reader ends as `yes | head` does; a failure keeps its own code.
await new Promise((resolve) => setImmediate(resolve));
process.exitCode = outputClosed() && code === EXIT.ok ? EXIT_CLOSED_PIPE : code;
