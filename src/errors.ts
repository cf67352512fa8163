/**
 * One error type for everything a user can be told about. The message is a
 * single line that names what is wrong (file, dataset, field, offset);
 * the context fields let callers and --json output carry the same facts.
 */
import { createReadStream } from 'node:fs';

export interface ErrorContext {
  file?: string;
  dataset?: string;
  /** JSON path of a manifest field, e.g. `/streams/2/volumes/0/sha256`. */
  field?: string;
  offset?: number;
  /** The outside command that failed, as an argument array. */
  command?: string[];
  exitCode?: number;
  stderr?: string;
  /** The file-system error's name (ENOSPC, EDQUOT…), for callers that add what they know. */
  errno?: string;
}

export class ZferryError extends Error {
  readonly context: ErrorContext;
  /** Process exit code the CLI should use. */
  readonly exitCode: number;

  constructor(message: string, context: ErrorContext = {}, exitCode = 1) {
    super(message);
    this.name = 'ZferryError';
    this.context = context;
    this.exitCode = exitCode;
  }
}

/**
 * A bundle that --trust does not accept: no signature, a signature that does
 * not match the key, or signed bytes that are no manifest. Import passes
 * such a bundle over (naming it) and applies the others; a failure to read
 * (a disk error, a bucket that does not answer) is a plain ZferryError and
 * stops the import.
 */
export class UntrustedBundle extends ZferryError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, context);
    this.name = 'UntrustedBundle';
  }
}

/**
 * Formats any thrown value as the one-line message the CLI prints. Control
 * characters are shown escaped: a message may quote bytes of a hostile file
 * (a JSON parse error does), and a terminal must not act on them.
 */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text
    .replace(/\s*\n\s*/g, ' | ')
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .trim();
}

/**
 * Reads a file the user named (state, receipt, config); a failure is one line
 * naming the file and what it is. Past `maxBytes` it stops reading and
 * refuses: the file may be a pipe (`--since <(…)`), whose size stat cannot tell.
 */
export async function readUserFile(file: string, what: string, maxBytes = Infinity): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of createReadStream(file)) {
      n += (chunk as Buffer).length;
      if (n > maxBytes) throw new ZferryError(`${file}: larger than any ${what} zferry writes (limit ${maxBytes} bytes)`, { file });
      parts.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof ZferryError) throw err;
    throw new ZferryError(`${file}: cannot read ${what} (${(err as NodeJS.ErrnoException).code ?? err})`, { file });
  }
  return Buffer.concat(parts).toString('utf8');
}
