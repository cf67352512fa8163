#!/usr/bin/env node
/**
 * The command line: parses arguments, calls a command, prints its result.
 * It decides nothing; every rule lives in src/commands and below.
 */
import { Command, Option, InvalidArgumentError } from 'commander';
import { ZferryError, oneLine } from '../errors.js';
import { parseInterval, parseRate } from '../units.js';
import { ZFERRY_VERSION } from '../version.js';
import { relayCommand } from './relay.js';
import { collect, emitJson, example, levelOption, levelOrAutoOption, sizeOption, unitOption } from './options.js';

// Commands load their modules when they run: `zferry --help` and every
// command start in a fraction of the time it takes to load them all (it
// shows under cron on small machines, and in the test guest under emulation).
const probeZfs = async () => (await import('../zfs/index.js')).Zfs.probe();
const progressFor = async (json: boolean) => (await import('../progress.js')).makeProgress(json);
const printer = () => import('./print.js');

/** Exit codes: 0 all done; 1 failed; 2 usage; 3 done in part (conflicts left datasets out). */
export const EXIT = { ok: 0, failed: 1, usage: 2, partial: 3 } as const;

export function buildProgram(): Command {
  // exitOverride before any subcommand exists: commander copies it to each one as it is added.
  const program = new Command().exitOverride();
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
    .addOption(new Option('--level <n>', 'zstd compression level (1-19), or auto: the highest level that still fills --link, measured on this machine on a sample of the first stream').argParser(levelOrAutoOption).default(3))
    .addOption(new Option('--link <rate>', 'with --level auto: the link the bundle crosses: 10Mbit, 100Mbit/s, 2MB/s').argParser(unitOption(parseRate, 'link rate')))
    .addOption(new Option('--max-memory <size>', 'with --level auto: the most memory zstd may use').argParser(sizeOption('memory')).default(512 * 1024 ** 2, '512M'))
    .addOption(new Option('--volume-size <size>', 'split stream files into volumes of this size (e.g. 1G, 4000M)').argParser(sizeOption('volume size')).default(1024 ** 3, '1G'))
    .option('--exclude <glob>', 'leave out datasets matching GLOB (relative path or full name; * and ?), with their children; repeatable', collect, [])
    .option('--snapshots <glob>', 'send only snapshots whose name matches GLOB; repeatable', collect, [])
    .option('--exclude-snapshots <glob>', 'do not send snapshots whose name matches GLOB (excluded ones between are stepped over with -i); repeatable', collect, [])
    .option('--rollback', 'plan past snapshots only the target has (the import needs --rollback too)', false)
    .option('--journal <dir>', 'journal of exported bundles, for disk rotation (default: $ZFERRY_STATE_DIR or /var/lib/zferry)')
    .option('--no-journal', 'plan from the receipt only and record nothing (e.g. a bundle was lost)')
    .option('--sign <secret-key>', 'sign the manifest with this key (from zferry keygen): manifest.json.minisig')
    .option('--encrypt-to <recipient>', 'encrypt every stream with age to this age1… recipient or recipients file (repeatable)', collect, [])
    .addOption(new Option('--bundle-format <n>', 'bundle format version to write; 1 for a remote whose zferry predates 2 (its RESTORE.txt is then covered by no checksum or signature)').choices(['1', '2']).default('2'))
    .option('--dry-run', 'print the plan and write nothing', false)
    .option('--json', 'print the result as JSON on stdout (no progress bars)', false)
    .addHelpText('after', example(
      '# first round: the target is empty or half-seeded (state.json from `zferry state`)\n' +
      'zferry export tank /mnt/disk --since state.json\n' +
      '# later rounds: the receipt the import left on the disk is found by itself;\n' +
      '# leave out the scratch dataset (zfs set zferry:skip=on does the same) and frequent snapshots\n' +
      'zferry export tank /mnt/disk --exclude scratch --exclude-snapshots \'zfs-auto-snap_frequent-*\'\n' +
      '# two disks: export to disk B while disk A is still away; B is planned on top of A\n' +
      'zferry export tank /mnt/diskB\n' +
      '# signed and encrypted (keys from `zferry keygen -o ~/.zferry/key` and `age-keygen -o key.txt`)\n' +
      'zferry export tank /mnt/disk --sign ~/.zferry/key --encrypt-to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p',
    ))
    .action(async (source: string, dest: string, o) => {
      const zfs = await probeZfs();
      const { runExport } = await import('../commands/export.js');
      const r = await runExport(zfs, {
        source, dest, since: o.since, level: o.level, linkBytesPerSecond: o.link, maxMemory: o.maxMemory, volumeSize: o.volumeSize, dryRun: o.dryRun,
        exclude: o.exclude, snapshots: o.snapshots, excludeSnapshots: o.excludeSnapshots, rollback: o.rollback,
        journal: o.journal === false ? false : o.journal === true ? undefined : o.journal,
        sign: o.sign, encryptTo: o.encryptTo, bundleFormat: Number(o.bundleFormat) as 1 | 2,
        progress: await progressFor(o.json),
      });
      if (o.json) emitJson({ ...r, plan: { ...r.plan, conflicts: r.plan.conflicts } });
      else (await printer()).printExport(r, source, o.dryRun);
      if (r.plan.conflicts.length > 0) process.exitCode = EXIT.partial;
    });

  program
    .command('estimate')
    .description('Estimate the next bundle (per dataset: base, newest, raw and zstd size), its transfer time at --link, and whether the link keeps up with the source\'s churn.')
    .argument('<source>', 'pool or dataset, as for export')
    .option('--since <state-file>', 'plan against this state/receipt file (default: the newest receipt for SOURCE under --dest, else an empty target)')
    .option('--dest <dir>', 'the disk or folder whose receipts export would read')
    .option('--journal <dir>', 'journal of exported bundles, as export reads it (default: $ZFERRY_STATE_DIR or /var/lib/zferry)')
    .option('--no-journal', 'estimate from the receipt only, as if no bundle were pending')
    .addOption(new Option('--link <rate>', 'link rate: 10Mbit, 100Mbit/s, 2MB/s, 500KiB/s').argParser(unitOption(parseRate, 'link rate')).default(10e6 / 8, '10Mbit'))
    .addOption(new Option('--every <interval>', 'how often a bundle would be sent: 1h, 12h, 1d, 1w').argParser(unitOption(parseInterval, 'interval')).default(86400, '1d'))
    .addOption(new Option('--level <n>', 'zstd compression level (1-19), as export will use').argParser(levelOption).default(3))
    .addOption(new Option('--disk <size>', 'disk size for "a disk every N days" when the link falls behind').argParser(sizeOption('disk size')).default(1024 ** 4, '1T'))
    .addOption(new Option('--sample <size>', 'compress at most this much of the next bundle\'s streams to measure the ratio').argParser(sizeOption('sample size')).default(64 * 1024 ** 2, '64M'))
    .addOption(new Option('--sample-seconds <n>', 'and for at most this many seconds').argParser(unitOption(parseInterval, 'sample time')).default(20, '20s'))
    .addOption(new Option('--churn-sends <n>', 'where zfs has no `written`: measure at most N incremental sends for churn').argParser((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('churn sends must be a whole number');
      return n;
    }).default(60))
    .addOption(new Option('--churn-seconds <n>', 'and spend at most this long on them').argParser(unitOption(parseInterval, 'churn time')).default(120, '2m'))
    .option('--json', 'print every figure as JSON on stdout (no progress bars)', false)
    .addHelpText('after', example(
      '# will a 1 Mbit/s link carry a daily bundle, or must disks travel?\n' +
      'zferry estimate tank --dest /mnt/disk --link 1Mbit --every 1d\n' +
      '#   next bundle of tank, against receipt /mnt/disk/receipt-backup.json:\n' +
      '#     dataset  base               newest             raw        zstd -3\n' +
      '#     data     @daily-2026-11-25  @daily-2026-11-26  8.20 GiB   3.10 GiB\n' +
      '#   at 1.00 Mbit/s (122.1 KiB/s): 7 h 24 min to move the next bundle\n' +
      '#   the link moves 10.1 GiB per day; a bundle must carry 12.4 GiB per day (7-day average)\n' +
      '#   verdict: falls behind by 2.3 GiB per day; a 1.00 TiB disk every 445 days would carry the rest\n' +
      '# the same figures for a script\n' +
      'zferry estimate tank --since state.json --link 2MB/s --every 12h --json',
    ))
    .action(async (source: string, o) => {
      const zfs = await probeZfs();
      const { runEstimate } = await import('../commands/estimate.js');
      const r = await runEstimate(zfs, {
        source, since: o.since, dest: o.dest, journal: o.journal === false ? false : o.journal === true ? undefined : o.journal, level: o.level, linkBytesPerSecond: o.link, intervalSeconds: o.every,
        diskBytes: o.disk, sampleBytes: o.sample, sampleSeconds: o.sampleSeconds, churnSends: o.churnSends,
        churnSeconds: o.churnSeconds, progress: await progressFor(o.json),
      });
      const words = await printer();
      // --json keeps the one-sentence summary beside the numbers it is made of.
      if (o.json) emitJson(r.verdict ? { ...r, verdict: { ...r.verdict, summary: words.verdictSummary(r.verdict) } } : r);
      else words.printEstimate(r, o.level);
      if (r.conflicts.length > 0) process.exitCode = EXIT.partial;
    });

  program
    .command('import')
    .description('Apply the bundle(s) at PATH to TARGET with zfs recv -u, checking every byte as it streams (or all first with --verify-first), and write a receipt under PATH.')
    .argument('<path>', 'a bundle folder, or a folder holding bundles (applied in order; applied ones are skipped)')
    .argument('<target>', 'dataset the source maps onto (tank/a/b → TARGET/a/b)')
    .option('--dry-run', 'check manifests and what would be received; touch nothing', false)
    .option('--force', 'import even if TARGET mirrors another source', false)
    .option('--delete', 'like rsync --delete: destroy under TARGET the snapshots and datasets the source no longer has (never out-of-scope data)', false)
    .option('--rollback', 'roll back to the common snapshot when the target has changes or snapshots of its own', false)
    .option('--trust <public-key>', 'accept only bundles whose manifest is signed by this minisign public key (KEY.pub from zferry keygen)')
    .option('--identity <file>', 'age identity file (AGE-SECRET-KEY-1…) for bundles exported with --encrypt-to')
    .option('--max-delete <limit>', 'with --delete: refuse to destroy more than N datasets (default 2), or more than P% of the snapshots of datasets that receive nothing new (default 50%); "all" lifts both; repeatable', collect, [] as string[])
    .option('--verify-first', 'read and check every byte before the first receive (two read passes); by default each volume is checked as it streams into zfs recv, and a stream\'s end reaches zfs only once all its bytes matched', false)
    .option('--json', 'print the result as JSON on stdout (no progress bars)', false)
    .addHelpText('after', example(
      '# see what would be received and destroyed, then do it\n' +
      'zferry import /mnt/disk backup --delete --dry-run\n' +
      'zferry import /mnt/disk backup --delete\n' +
      '# the source really lost three datasets: allow that many\n' +
      'zferry import /mnt/disk backup --delete --max-delete 3\n' +
      '# the target was written to or snapshotted on its own: discard that\n' +
      'zferry import /mnt/disk backup --rollback\n' +
      '# only bundles signed by the source\'s key; decrypt with an age identity\n' +
      'zferry import /mnt/disk backup --trust /etc/zferry/source.pub --identity /root/age-key.txt',
    ))
    .action(async (path: string, target: string, o) => {
      const zfs = await probeZfs();
      const { runImport } = await import('../commands/import.js');
      const { parseMaxDelete } = await import('../plan/import.js');
      const r = await runImport(zfs, {
        path, target, dryRun: o.dryRun, force: o.force, delete: o.delete, rollback: o.rollback,
        trust: o.trust, identity: o.identity, verifyFirst: o.verifyFirst, maxDelete: parseMaxDelete(o.maxDelete), progress: await progressFor(o.json),
      });
      if (o.json) emitJson(r);
      else (await printer()).printImport(r, o.dryRun);
      for (const d of r.deferred) process.stderr.write(`zferry: ${d.message}\n`);
      if (r.deferred.length > 0) process.exitCode = EXIT.partial;
    });

  program
    .command('state')
    .description('Print what TARGET holds (datasets, snapshots, guids) in the receipt format that export --since reads.')
    .argument('<target>', 'dataset on the receiving side')
    .option('-o, --output <file>', 'write to FILE instead of stdout')
    .option('--json', 'JSON output (the default; accepted for symmetry)', false)
    .addHelpText('after', example('zferry state backup -o /mnt/disk/state.json'))
    .action(async (target: string, o) => {
      const zfs = await probeZfs();
      const { runState, writeStateFile } = await import('../commands/state.js');
      const state = await runState(zfs, target);
      if (o.output) await writeStateFile(o.output, state);
      else process.stdout.write(JSON.stringify(state, null, 2) + '\n');
    });

  program
    .command('verify')
    .description('Check bundle(s) at rest without ZFS: schema, SHA256SUMS, every volume\'s size and sha256.')
    .argument('<path>', 'a bundle folder, or a folder holding bundles')
    .option('--trust <public-key>', 'also require a valid signature by this minisign public key')
    .option('--json', 'print the result as JSON on stdout', false)
    .addHelpText('after', example('zferry verify /mnt/disk/zferry-tank-20261126T073000Z-1a2b3c4d --trust source.pub'))
    .action(async (path: string, o) => {
      const { runVerify } = await import('../commands/verify.js');
      const reports = await runVerify(path, await progressFor(o.json), { trust: o.trust });
      const summary = reports.map((r) => ({
        bundle: r.bundle, bundleId: r.manifest.bundleId, formatVersion: r.manifest.formatVersion, streams: r.streams, volumes: r.volumes, storedBytes: r.storedBytes,
        restoreCovered: r.restoreCovered,
      }));
      if (o.json) emitJson({ ok: true, bundles: summary });
      else (await printer()).printVerify(summary);
    });

  program
    .command('keygen')
    .description('Make an ed25519 signing key pair: the secret key in FILE (mode 0600), the minisign public key in FILE.pub.')
    .requiredOption('-o, --output <file>', 'where to write the secret key (never overwritten)')
    .option('--json', 'print the result as JSON on stdout', false)
    .addHelpText('after', example(
      'zferry keygen -o ~/.zferry/key          # on the source; copy key.pub to the target side\n' +
      'minisign -V -p key.pub -m /mnt/disk/zferry-tank-*/manifest.json   # stock check of a signed bundle',
    ))
    .action(async (o) => {
      const { generateKeyFiles } = await import('../trust/minisign.js');
      const r = await generateKeyFiles(o.output);
      if (o.json) emitJson(r);
      else process.stdout.write(`secret key ${r.secretFile} (keep it private)\npublic key ${r.publicFile} (key id ${r.keyId}; give it to import --trust)\n`);
    });

  program.addCommand(relayCommand());
  // addCommand does not pass exitOverride down as .command() does: set it on the whole tree.
  const override = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
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
