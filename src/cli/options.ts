/** Option parsers and help text shared by every command's argument parsing. */
import { InvalidArgumentError } from 'commander';
import { parseSize } from '../units.js';

/** A commander parser from any parser that throws on bad text (units.ts, mbuffer endpoints). */
export function unitOption<T>(parse: (text: string, what: string) => T, what: string): (value: string) => T {
  return (value: string): T => {
    try {
      return parse(value, what);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

export function sizeOption(what: string): (value: string) => number {
  return unitOption(parseSize, what);
}

export function levelOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 19) throw new InvalidArgumentError('zstd level must be an integer from 1 to 19');
  return n;
}

/** A level, or `auto` (export and relay run: chosen for the link, see --link). */
export function levelOrAutoOption(value: string): number | 'auto' {
  return value === 'auto' ? 'auto' : levelOption(value);
}

/** For repeatable options. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Every command's --help ends with a worked example. */
export function example(text: string): string {
  return `\nExample:\n${text.replace(/^/gm, '  ')}\n`;
}

export function emitJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** `--wait [SECONDS]`: a whole number of seconds, or no value to wait as long as it takes. */
export function waitOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('--wait takes a whole number of seconds (or nothing, to wait as long as it takes)');
  return n;
}

export const WAIT_HELP = 'if another run holds the lock, wait for it (up to SECONDS; without a number, as long as it takes) instead of refusing at once';

/** The parsed --wait: absent, seconds, or (bare flag) Infinity. */
export function waitSeconds(value: number | boolean | undefined): number | undefined {
  return value === undefined || value === false ? undefined : value === true ? Infinity : value;
}

/**
 * Where a command's one-line notices go (a stale lock taken over, a risky
 * option): stderr for a person; with --json, the result's `warnings` field.
 */
export function notices(json: boolean): { notice: (line: string) => void; warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, notice: json ? (line) => warnings.push(line) : (line) => process.stderr.write(`zferry: ${line}\n`) };
}
