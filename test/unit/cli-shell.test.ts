/** The completion scripts and the man page, both written from the command tree. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { buildProgram } from '../../src/cli/program.js';
import { bashCompletion, commandShapes, zshCompletion } from '../../src/cli/completion.js';
import { helpText, manPage } from '../../src/cli/manpage.js';

/** What bash offers for the words typed so far (the last one is being completed); `zferry completion datasets` answers `datasets`. */
async function offered(words: string[], datasets: string[] = []): Promise<string[]> {
  const script = [
    `zferry() { [ "$1 $2" = "completion datasets" ] && printf '%s\\n' ${datasets.map((d) => `'${d}'`).join(' ')}; }`,
    bashCompletion(buildProgram()),
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _zferry; printf '%s\\n' "\${COMPREPLY[@]}"`,
  ].join('\n');
  const r = await execa('bash', ['-c', script], { cwd: '/', env: { LC_ALL: 'C' } });
  return r.stdout.split('\n').filter(Boolean).sort();
}

test('bash completion: commands, subcommands and options come from the command tree', async () => {
  assert.deepEqual(await offered(['zferry', '']), ['completion', 'estimate', 'export', 'import', 'keygen', 'relay', 'state', 'status', 'verify']);
  assert.deepEqual(await offered(['zferry', 'relay', '']), ['receive', 'run', 'send']);
  assert.deepEqual(await offered(['zferry', 'completion', '']), ['bash', 'zsh'], 'the helper for datasets stays hidden');
  assert.deepEqual(await offered(['zferry', 'import', '/mnt/disk', 'backup', '--cr']), ['--create-parents']);
  assert.deepEqual(await offered(['zferry', 'export', '--bundle-format', '']), ['1', '2']);
});

test('bash completion: dataset names where an argument or option value is a dataset, files elsewhere', async () => {
  const pools = ['tank', 'tank/data', 'backup'];
  assert.deepEqual(await offered(['zferry', 'export', 'ta'], pools), ['tank', 'tank/data']);
  assert.deepEqual(await offered(['zferry', 'export', '--level', '3', 'tank', 'tm'], pools), ['tmp'], 'DEST is a folder');
  assert.deepEqual(await offered(['zferry', 'import', '/mnt/disk', 'b'], pools), ['backup']);
  assert.deepEqual(await offered(['zferry', 'state', '-o', 'tm'], pools), ['tmp'], '-o takes a file, not a dataset');
  assert.deepEqual(await offered(['zferry', 'relay', 'receive', '--import', 'ba'], pools), ['backup']);
  assert.deepEqual(await offered(['zferry', 'relay', 'send', '/mnt', 'tm'], pools), ['tmp'], 'PATH... repeats');
});

test('shapes: what each placeholder means', () => {
  const shapes = new Map(commandShapes(buildProgram()).map((s) => [s.path, s]));
  assert.deepEqual(shapes.get('export')!.args, [{ kind: 'dataset' }, { kind: 'file' }]);
  assert.deepEqual(shapes.get('import')!.args, [{ kind: 'file' }, { kind: 'dataset' }]);
  assert.deepEqual(shapes.get('relay receive')!.valued.find((v) => v.flags.includes('--source'))!.value, { kind: 'none' });
});

test('zsh completion is the bash script under bashcompinit', () => {
  const z = zshCompletion(buildProgram());
  assert.match(z, /^autoload -U \+X bashcompinit && bashcompinit$/m);
  assert.match(z, /^complete -F _zferry zferry$/m);
});

test('the man page carries every command\'s help text, examples included', () => {
  const program = buildProgram();
  const page = manPage(program, '9.9.9', '2026-11-29');
  assert.match(page, /^\.TH ZFERRY 1 "2026-11-29" "zferry 9\.9\.9"/);
  for (const name of ['export', 'estimate', 'import', 'state', 'verify', 'keygen', 'relay send', 'relay receive', 'relay run', 'status', 'completion']) {
    assert.match(page, new RegExp(`^\\.SS zferry ${name}$`, 'm'), name);
  }
  const exportHelp = helpText(program.commands.find((c) => c.name() === 'export')!);
  assert.match(exportHelp, /^Example:$/m);
  for (const line of exportHelp.trimEnd().split('\n')) assert.ok(page.includes(line.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1')), line);
});
