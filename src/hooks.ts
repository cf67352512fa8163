/**
 * --pre and --post hooks: commands run before and after export, import and
 * relay run (zpool import of the backup pool, zfs load-key, an eject). They
 * are not run by a shell: the text is split into words (quotes and
 * backslashes as a shell reads them, nothing expanded), so an option value
 * never turns into shell code. Their output goes to stderr, so --json on
 * stdout stays one document.
 */
import { execa } from 'execa';
import { ZferryError, oneLine } from './errors.js';

/** ok: done; partial: done except datasets in conflict or deferred bundles; failed: stopped with an error. */
export type JobResult = 'ok' | 'partial' | 'failed';

export interface HookFacts {
  kind: string;
  source: string | null;
  target: string | null;
  bundle: string | null;
  site: string;
}

/**
 * Splits a command line into words: whitespace separates; '…' is literal;
 * "…" and a bare backslash escape the next character. `$`, globs, `|`, `;`
 * are ordinary characters: for those, name `sh -c '…'` yourself.
 */
export function splitCommandLine(text: string, what: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) word += text[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw new ZferryError(`${what}: ends with a lone backslash: ${JSON.stringify(text)}`, { field: what });
      word = (word ?? '') + text[++i];
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote !== null) throw new ZferryError(`${what}: unbalanced ${quote} quote in ${JSON.stringify(text)}`, { field: what });
  if (word !== null) words.push(word);
  if (words.length === 0) throw new ZferryError(`${what}: empty command`, { field: what });
  return words;
}

/** A command from the command line (a string) or a config file (a string or the words). */
export function commandWords(value: string | readonly string[], what: string): string[] {
  if (typeof value === 'string') return splitCommandLine(value, what);
  if (value.length === 0 || value[0] === '') throw new ZferryError(`${what}: empty command`, { field: what });
  return [...value];
}

export function hookEnv(facts: HookFacts, result?: JobResult): Record<string, string> {
  return {
    ZFERRY_KIND: facts.kind,
    ZFERRY_SOURCE: facts.source ?? '',
    ZFERRY_TARGET: facts.target ?? '',
    ZFERRY_BUNDLE: facts.bundle ?? '',
    ZFERRY_SITE: facts.site,
    ...(result !== undefined ? { ZFERRY_RESULT: result } : {}),
  };
}

/**
 * Runs one hook to its end; a non-zero exit, a signal or a missing program is
 * a ZferryError whose one line names the hook and its last stderr line.
 */
export async function runHook(stage: 'pre' | 'post', words: readonly string[], facts: HookFacts, result?: JobResult): Promise<void> {
  const [file, ...args] = words;
  const r = await execa(file!, args, {
    reject: false,
    stdin: 'ignore',
    stdout: ['pipe'],
    stderr: ['pipe'],
    env: hookEnv(facts, result),
    extendEnv: true,
  });
  if (r.stdout) process.stderr.write(`${String(r.stdout).trimEnd()}\n`);
  if (r.stderr) process.stderr.write(`${String(r.stderr).trimEnd()}\n`);
  if (r.exitCode === 0 && !r.failed) return;
  const last = String(r.stderr ?? '').trim().split('\n').pop() ?? '';
  const why = r.exitCode !== undefined ? `exit ${r.exitCode}` : r.signal ? `killed by ${r.signal}` : oneLine(r.cause ?? r.shortMessage);
  throw new ZferryError(`--${stage} hook ${JSON.stringify(words.join(' '))} failed (${why})${last ? `: ${last}` : ''}`, { field: `--${stage}` });
}
