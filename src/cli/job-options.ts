/**
 * The options every unattended job shares (export, import, relay run; status
 * takes --config and --notify): --config FILE, --pre, --post, --notify. The
 * command line wins over the file; the frame itself is src/job.ts.
 */
import { Command, Option } from 'commander';
import type { JobConfig } from '../relay/config.js';
import type { JobSpec } from '../job.js';

export function addConfigOption(cmd: Command): Command {
  return cmd.option('--config <file>', 'read options from this file (the format of relay run\'s: schemas/relay-config.schema.json); the command line wins');
}

export function addNotifyOption(cmd: Command): Command {
  return cmd.option('--notify <cmd>', 'run CMD with one JSON event (kind, source, site, outcome, error, figures) on stdin when done; its failure never changes the exit code (config: notify)');
}

export function addHookOptions(cmd: Command): Command {
  addConfigOption(cmd);
  cmd.addOption(new Option('--pre <cmd>', 'run CMD first; if it fails, nothing is touched (env ZFERRY_SOURCE, ZFERRY_TARGET, ZFERRY_BUNDLE, ZFERRY_SITE; config: pre)'));
  cmd.addOption(new Option('--post <cmd>', 'run CMD afterwards, after a failure too, with ZFERRY_RESULT=ok|partial|failed (config: post)'));
  return addNotifyOption(cmd);
}

export async function loadJobConfig(file: string | undefined): Promise<JobConfig | null> {
  if (file === undefined) return null;
  const { readJobConfig } = await import('../relay/config.js');
  return readJobConfig(file);
}

/** The option's value when the user gave it on the command line, else undefined (commander's defaults do not count). */
export function given<T>(cmd: Command, name: string): T | undefined {
  const source = cmd.getOptionValueSource(name);
  return source === undefined || source === 'default' ? undefined : (cmd.getOptionValue(name) as T);
}

/** --pre/--post/--notify from the command line, else from the file. */
export async function jobSpec(
  o: { pre?: string; post?: string; notify?: string },
  cfg: Pick<JobConfig, 'pre' | 'post' | 'notify'> | null,
  facts: Omit<JobSpec, 'pre' | 'post' | 'notify'>,
): Promise<JobSpec> {
  const { splitCommandLine } = await import('../hooks.js');
  const pick = (cli: string | undefined, file: string[] | null | undefined, what: string) => (cli !== undefined ? splitCommandLine(cli, what) : file ?? null);
  return { ...facts, pre: pick(o.pre, cfg?.pre, '--pre'), post: pick(o.post, cfg?.post, '--post'), notify: pick(o.notify, cfg?.notify, '--notify') };
}
