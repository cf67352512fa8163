/**
 * zferry.1, written at build time (scripts/build-man.mjs) from the very help
 * text `zferry … --help` prints: one section per command, its examples
 * included, so the page cannot drift from the program. Pure.
 */
import type { Command } from 'commander';

/** Help text as `--help` prints it, `after` text (the examples) included, at a fixed width. */
export function helpText(cmd: Command, width = 78): string {
  let text = '';
  cmd.configureHelp({ helpWidth: width });
  cmd.configureOutput({ writeOut: (s) => { text += s; }, getOutHelpWidth: () => width });
  cmd.outputHelp();
  return text;
}

/** Escapes text for roff: backslashes, and lines that would start a request. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

function commands(cmd: Command, prefix: string): Array<{ name: string; cmd: Command }> {
  return cmd.commands
    .filter((c) => !(c as unknown as { _hidden?: boolean })._hidden)
    .flatMap((c) => {
      const name = `${prefix} ${c.name()}`;
      return [{ name, cmd: c }, ...commands(c, name)];
    });
}

export function manPage(program: Command, version: string, date: string): string {
  const name = program.name();
  const lines = [
    `.TH ${name.toUpperCase()} 1 "${date}" "${name} ${version}" "User Commands"`,
    '.SH NAME',
    `${name} \\- ${roff(program.description().replace(/\.$/, ''))}`,
    '.SH SYNOPSIS',
    `.B ${name}`,
    '.I command',
    '[\\fIoptions\\fR] [\\fIarguments\\fR]',
    '.SH DESCRIPTION',
    '.nf',
    roff(helpText(program).trimEnd()),
    '.fi',
    '.SH COMMANDS',
  ];
  for (const c of commands(program, name)) {
    lines.push(`.SS ${roff(c.name)}`, '.nf', roff(helpText(c.cmd).trimEnd()), '.fi');
  }
  lines.push(
    '.SH EXIT STATUS',
    '0 the whole job succeeded; 1 failed; 2 bad usage; 3 done in part (datasets in conflict left out, or a bundle deferred);',
    '141 the reader of the output went away (as SIGPIPE ends other tools).',
    '.SH SEE ALSO',
    '.BR zfs (8),',
    '.BR zfs-send (8),',
    '.BR zfs-receive (8),',
    '.BR mbuffer (1)',
    '',
  );
  return lines.join('\n');
}
