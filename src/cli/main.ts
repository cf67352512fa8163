#!/usr/bin/env node
/**
 * The command line: parses arguments, calls a command, prints its result.
 * It decides nothing; every rule lives in src/commands and below.
 */
import { writeFile } from 'node:fs/promises';
import { Command, Option, InvalidArgumentError } from 'commander';
import { Zfs } from '../zfs/index.js';
import { ZferryError, oneLine } from '../errors.js';
import { makeProgress } from '../progress.js';
import { parseSize } from './units.js';
import { ZFERRY_VERSION } from '../bundle/index.js';
import { runExport } from '../commands/export.js';
import { runImport } from '../commands/import.js';
import { runState } from '../commands/state.js';
import { runVerify } from '../commands/verify.js';
import { printExport, printImport, printVerify } from './print.js';
import { relayCommand } from './relay.js';

/** Exit codes: 0 all done; 1 failed; 2 usage; 3 done in part (conflicts left datasets out). */
export const EXIT = { ok: 0, failed: 1, usage: 2, partial: 3 } as const;

function sizeOption(what: string) {
  return (value: string): number => {
    try {
      return parseSize(value, what);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

function levelOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 19) throw new InvalidArgumentError('zstd level must be an integer from 1 to 19');
  return n;
}

function example(text: string): string {
  return `\nExample:\n${text.replace(/^/gm, '  ')}\n`;
}

function emitJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('zferry')
    .description('Carry ZFS pools across a slow or absent link: verified send/recv bundles on a disk or over mbuffer.')
    .version(ZFERRY_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', example(
      '# on the remote side, once: what the half-seeded target already has\n' +
      'zferry state backup -o /mnt/disk/state.json\n' +
      '# on the source: one bundle with everything the target lacks\n' +
      'zferry export tank /mnt/disk --since /mnt/disk/state.json\n' +
      '# on the remote side, disk plugged in\n' +
      'zferry import /mnt/disk backup',
    ));

  program
    .command('export')
    .description('Plan against what the target holds (by snapshot guid), run zfs send, and write one verified bundle under DEST.')
    .argument('<source>', 'pool or dataset to carry, taken recursively (filesystems and volumes)')
    .argument('<dest>', 'folder to write the bundle into (a mounted disk or staging folder)')
    .option('--since <state-file>', 'plan against this state/receipt file (default: the newest receipt for SOURCE under DEST, else an empty target)')
    .addOption(new Option('--level <n>', 'zstd compression level (1-19)').argParser(levelOption).default(3))
    .addOption(new Option('--volume-size <size>', 'split stream files into volumes of this size (e.g. 1G, 4000M)').argParser(sizeOption('volume size')).default(1024 ** 3, '1G'))
    .option('--dry-run', 'print the plan and write nothing', false)
    .option('--json', 'print the result as JSON on stdout (no progress bars)', false)
    .addHelpText('after', example(
      '# first round: the target is empty or half-seeded (state.json from `zferry state`)\n' +
      'zferry export tank /mnt/disk --since state.json\n' +
      '# later rounds: the receipt the import left on the disk is found by itself\n' +
      'zferry export tank /mnt/disk --volume-size 4000M --json',
    ))
    .action(async (source: string, dest: string, o) => {
      const zfs = await Zfs.probe();
      const r = await runExport(zfs, {
        source, dest, since: o.since, level: o.level, volumeSize: o.volumeSize, dryRun: o.dryRun,
        progress: makeProgress(o.json),
      });
      if (o.json) emitJson({ ...r, plan: { ...r.plan, conflicts: r.plan.conflicts } });
      else printExport(r, source, o.dryRun);
      if (r.plan.conflicts.length > 0) process.exitCode = EXIT.partial;
    });

  program
    .command('import')
    .description('Verify every byte of the bundle(s) at PATH, then apply them to TARGET with zfs recv -u, and write a receipt under PATH.')
    .argument('<path>', 'a bundle folder, or a folder holding bundles (applied in order; applied ones are skipped)')
    .argument('<target>', 'dataset the source maps onto (tank/a/b → TARGET/a/b)')
    .option('--dry-run', 'check manifests and what would be received; touch nothing', false)
    .option('--force', 'import even if TARGET mirrors another source', false)
    .option('--json', 'print the result as JSON on stdout (no progress bars)', false)
    .addHelpText('after', example(
      '# see what would happen, then do it\n' +
      'zferry import /mnt/disk backup --dry-run\n' +
      'zferry import /mnt/disk backup',
    ))
    .action(async (path: string, target: string, o) => {
      const zfs = await Zfs.probe();
      const r = await runImport(zfs, { path, target, dryRun: o.dryRun, force: o.force, progress: makeProgress(o.json) });
      if (o.json) emitJson(r);
      else printImport(r, o.dryRun);
    });

  program
    .command('state')
    .description('Print what TARGET holds (datasets, snapshots, guids) in the receipt format that export --since reads.')
    .argument('<target>', 'dataset on the receiving side')
    .option('-o, --output <file>', 'write to FILE instead of stdout')
    .option('--json', 'JSON output (the default; accepted for symmetry)', false)
    .addHelpText('after', example('zferry state backup -o /mnt/disk/state.json'))
    .action(async (target: string, o) => {
      const zfs = await Zfs.probe();
      const state = await runState(zfs, target);
      const text = JSON.stringify(state, null, 2) + '\n';
      if (o.output) await writeFile(o.output, text);
      else process.stdout.write(text);
    });

  program
    .command('verify')
    .description('Check bundle(s) at rest without ZFS: schema, SHA256SUMS, every volume\'s size and sha256.')
    .argument('<path>', 'a bundle folder, or a folder holding bundles')
    .option('--json', 'print the result as JSON on stdout', false)
    .addHelpText('after', example('zferry verify /mnt/disk/zferry-tank-20261126T073000Z-1a2b3c4d'))
    .action(async (path: string, o) => {
      const reports = await runVerify(path, makeProgress(o.json));
      const summary = reports.map((r) => ({ bundle: r.bundle, bundleId: r.manifest.bundleId, streams: r.streams, volumes: r.volumes, storedBytes: r.storedBytes }));
      if (o.json) emitJson({ ok: true, bundles: summary });
      else printVerify(summary);
    });

  program.addCommand(relayCommand());

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      // commander already printed the usage message; help and version are successes.
      return code === 'commander.helpDisplayed' || code === 'commander.version' ? EXIT.ok : EXIT.usage;
    }
    process.stderr.write(`zferry: ${oneLine(err)}\n`);
    if (process.env.ZFERRY_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return err instanceof ZferryError ? err.exitCode : EXIT.failed;
  }
}

process.exitCode = await main(process.argv);
