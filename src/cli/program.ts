/**
 * The command tree: parses arguments, calls a command, prints its result.
 * It decides nothing; every rule lives in src/commands and below. main.ts
 * runs it; scripts/build-man.mjs and `zferry completion` read it.
 */
import { Command, Option, InvalidArgumentError } from 'commander';
import { parseInterval, parseRate } from '../units.js';
import { ZFERRY_VERSION } from '../version.js';
import { relayCommand } from './relay.js';
import { statusCommand } from './status.js';
import { addHookOptions, given, jobSpec, loadJobConfig } from './job-options.js';
import { parseGrid } from '../plan/retention.js';
import { stopIfOutputClosed } from './pipes.js';
import { probeZfs } from './zfs.js';
import { collect, emitJson, example, levelOption, levelOrAutoOption, notices, sizeOption, unitOption, WAIT_HELP, waitOption, waitSeconds } from './options.js';

// Commands load their modules when they run: `zferry --help` and every
// command start in a fraction of the time it takes to load them all (it
// shows under cron on small machines, and in the test guest under emulation).
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
    // For every command that takes a folder: s3://BUCKET/PREFIX in its place. Credentials: the AWS standard chain only.
    .option('--s3-endpoint <url>', 'S3 endpoint for s3:// locations (a non-AWS store: Ceph RGW, MinIO...); default $AWS_ENDPOINT_URL')
    .option('--s3-path-style', 'address buckets by path, not host name (the default with an endpoint)')
    .hook('preAction', async (cmd) => {
      const o = cmd.opts<{ s3Endpoint?: string; s3PathStyle?: boolean }>();
      if (o.s3Endpoint || o.s3PathStyle) (await import('../store/s3.js')).configureS3({ endpoint: o.s3Endpoint, pathStyle: o.s3PathStyle });
    })
    .addHelpText('after', example(
      '# on the remote side, once: what the half-seeded target already has\n' +
      'zferry state backup -o /mnt/disk/state.json\n' +
      '# on the source: one bundle with everything the target lacks\n' +
      'zferry export tank /mnt/disk --since /mnt/disk/state.json\n' +
      '# on the remote side, disk plugged in\n' +
      'zferry import /mnt/disk backup',
    ));

  const exportCommand = program
    .command('export')
    .description('Plan against what the target holds (by snapshot guid), run zfs send, and write one verified bundle under DEST.')
    .argument('<source>', 'pool or dataset to carry, taken recursively (filesystems and volumes)')
    .argument('<dest>', 'folder to write the bundle into (a mounted disk or staging folder), or s3://BUCKET/PREFIX')
    .option('--since <state-file>', 'plan against this state/receipt file (default: the newest receipt for SOURCE under DEST, else an empty target)')
    .addOption(new Option('--level <n>', 'zstd compression level (1-19), or auto: the level that compresses and moves the bundle over --link soonest, measured on this machine on a 16 MiB sample of the real streams (config: level, link, maxMemory)').argParser(levelOrAutoOption).default(3))
    .addOption(new Option('--link <rate>', 'with --level auto: the link the bundle crosses: 10Mbit, 100Mbit/s, 2MB/s').argParser(unitOption(parseRate, 'link rate')))
    .addOption(new Option('--max-memory <size>', 'the most memory zstd may use: bounds --level auto and how many small streams compress side by side').argParser(sizeOption('memory')).default(512 * 1024 ** 2, '512M'))
    .addOption(new Option('--volume-size <size>', 'split stream files into volumes of this size (e.g. 1G, 4000M)').argParser(sizeOption('volume size')).default(1024 ** 3, '1G'))
    .option('--exclude <glob>', 'leave out datasets matching GLOB (relative path or full name; * and ?), with their children; repeatable', collect, [])
    .option('--snapshots <glob>', 'send only snapshots whose name matches GLOB; repeatable', collect, [])
    .option('--exclude-snapshots <glob>', 'do not send snapshots whose name matches GLOB (excluded ones between are stepped over with -i); repeatable', collect, [])
    .option('--rollback', 'plan past snapshots only the target has (the import needs --rollback too)', false)
    .option('--journal <dir>', 'journal of exported bundles, for disk rotation (default: $ZFERRY_STATE_DIR or /var/lib/zferry)')
    .option('--no-journal', 'plan from the receipt only and record nothing (e.g. a bundle was lost)')
    .option('--sign <secret-key>', 'sign the manifest with this key (from zferry keygen): manifest.json.minisig')
    .option('--trust-receiver <public-key>', 'plan only from receipts signed by this minisign public key (the target\'s import --sign KEY): an unsigned or forged receipt on the disk or in the bucket is passed over')
    .option('--encrypt-to <recipient>', 'encrypt every stream with age to this age1… recipient or recipients file (repeatable)', collect, [])
    .addOption(new Option('--bundle-format <n>', 'bundle format version to write; 1 for a remote whose zferry predates 2 (its RESTORE.txt is then covered by no checksum or signature)').choices(['1', '2']).default('2'))
    .addOption(new Option('--wait [seconds]', `one export of SOURCE at a time (lock in the journal's folder): ${WAIT_HELP}`).argParser(waitOption))
    .addOption(new Option('--parity <percent>', 'write par2 recovery data of this size (1-100% of the volumes) in parity/, so verify --repair and import can rebuild damaged or missing volumes').argParser((v: string) => {
      const n = Number(v.replace(/%$/, ''));
      if (!Number.isInteger(n) || n < 1 || n > 100) throw new InvalidArgumentError('parity must be a whole percentage from 1 to 100');
      return n;
    }))
    .option('--no-space-check', 'do not compare the planned size with DEST\'s free space first (a file system that misreports it)')
    .addOption(new Option('--max-size <size>', 'the bundle takes at most SIZE (e.g. 1800G): streams in plan order, never reordered, up to the first that does not fit by its planned size; a stream larger than SIZE, or one that turns out larger than planned, is cut at the limit and continues as the next part on the next disk; the next export continues from the journal').argParser(sizeOption('max size')))
    .option('--fill', 'as --max-size, with DEST\'s free space less a 2% margin (at least 1 MiB) as the limit', false)
    .option('--site <name>', 'the site this bundle is for, when SOURCE feeds several: its own journal, receipts, hold tag zferry-NAME and bookmarks #zferry-NAME-GUID (default: the default site, today\'s names; config: site)')
    .option('--dry-run', 'print the plan and the free-space check, and write nothing (exit 1 when it would not fit)', false)
    .option('--json', 'print the result as JSON on stdout (no progress bars)', false);
  addHookOptions(exportCommand)
    .addHelpText('after', example(
      '# first round: the target is empty or half-seeded (state.json from `zferry state`)\n' +
      'zferry export tank /mnt/disk --since state.json\n' +
      '# later rounds: the receipt the import left on the disk is found by itself;\n' +
      '# leave out the scratch dataset (zfs set zferry:skip=on does the same) and frequent snapshots\n' +
      'zferry export tank /mnt/disk --exclude scratch --exclude-snapshots \'zfs-auto-snap_frequent-*\'\n' +
      '# two disks: export to disk B while disk A is still away; B is planned on top of A\n' +
      'zferry export tank /mnt/diskB\n' +
      '# a seed bigger than one disk: fill each disk; a stream too big for one is written in parts, one per disk\n' +
      'zferry export tank /mnt/disk1 --fill\n' +
      'zferry export tank /mnt/disk2 --fill      # continues where disk 1 stopped (from the journal)\n' +
      '# signed and encrypted (keys from `zferry keygen -o ~/.zferry/key` and `age-keygen -o key.txt`)\n' +
      'zferry export tank /mnt/disk --sign ~/.zferry/key --encrypt-to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n' +
      '# plan only from receipts the remote signed (its import --sign): a receipt planted on the disk or in a shared bucket is passed over\n' +
      'zferry export tank s3://backups/tank --sign ~/.zferry/key --trust-receiver /etc/zferry/receiver-key.pub\n' +
      '# from cron, while a manual export of tank may still run: wait up to an hour for it\n' +
      'zferry export tank /mnt/disk --wait 3600\n' +
      '# a second site fed from the same pool, unattended: the backup pool imported first, exported after, a mail on every outcome\n' +
      'zferry export tank /mnt/vault --site vault --pre \'zpool import vaultdisk\' --post \'zpool export vaultdisk\' --notify \'/usr/local/lib/zferry/notify-mail root\'',
    ))
    .action(async (source: string, dest: string, o, cmd: Command) => {
      const cfg = await loadJobConfig(o.config);
      const { runExport } = await import('../commands/export.js');
      const { exportSummary } = await import('../commands/figures.js');
      const { stateDir } = await import('../state/journal.js');
      const words = await printer();
      const said = notices(o.json);
      const journal = o.journal === false ? false : o.journal === true ? undefined : o.journal;
      // Checked before the job: a bad name runs no hook and is recorded nowhere.
      const site = (await import('../state/site.js')).checkSite(o.site ?? cfg?.site ?? undefined);
      const spec = await jobSpec(o, cfg, {
        kind: 'export', source, target: dest, bundle: dest, site, stateDir: o.dryRun ? null : stateDir(journal || undefined),
      });
      const r = await (await import('../job.js')).runJob(spec, async () => runExport(await probeZfs(), {
        wait: waitSeconds(o.wait), notice: said.notice,
        source, dest, since: o.since, level: given<number | 'auto'>(cmd, 'level') ?? cfg?.level ?? o.level,
        linkBytesPerSecond: o.link ?? cfg?.linkBytesPerSecond ?? undefined, maxMemory: given<number>(cmd, 'maxMemory') ?? cfg?.maxMemory ?? o.maxMemory,
        volumeSize: given<number>(cmd, 'volumeSize') ?? cfg?.volumeSize ?? o.volumeSize, dryRun: o.dryRun,
        exclude: o.exclude, snapshots: o.snapshots, excludeSnapshots: o.excludeSnapshots, rollback: o.rollback,
        journal, sign: o.sign ?? cfg?.sign ?? undefined, trustReceiver: o.trustReceiver ?? cfg?.trustReceiver ?? undefined, encryptTo: o.encryptTo, bundleFormat: Number(o.bundleFormat) as 1 | 2, site,
        spaceCheck: o.spaceCheck !== false, parity: o.parity, maxSize: o.maxSize, fill: o.fill,
        progress: await progressFor(o.json),
        // The plan first, on stdout; the bars that follow are on stderr (README, "Output").
        onPlan: async (planned) => {
          if (o.json) return;
          words.printExportPlan(planned, source, dest, o.dryRun);
          await stopIfOutputClosed();
        },
      }), (r) => exportSummary(r, dest));
      if (o.json) emitJson({ ...r, plan: { ...r.plan, conflicts: r.plan.conflicts }, warnings: said.warnings });
      else words.printExportResult(r, o.dryRun);
      if (r.plan.conflicts.length > 0) process.exitCode = EXIT.partial;
      // The same verdict the export itself would reach: a script's dry run learns it will not fit.
      if (o.dryRun && r.space?.fits === false) process.exitCode = EXIT.failed;
    });

  program
    .command('estimate')
    .description('Estimate the next bundle (per dataset: base, newest, raw and zstd size), its transfer time at --link, and whether the link keeps up with the source\'s churn.')
    .argument('<source>', 'pool or dataset, as for export')
    .option('--since <state-file>', 'plan against this state/receipt file (default: the newest receipt for SOURCE under --dest, else an empty target)')
    .option('--dest <dir>', 'the disk or folder (or s3://BUCKET/PREFIX) whose receipts export would read')
    .option('--journal <dir>', 'journal of exported bundles, as export reads it (default: $ZFERRY_STATE_DIR or /var/lib/zferry)')
    .option('--no-journal', 'estimate from the receipt only, as if no bundle were pending')
    .option('--site <name>', 'estimate the next bundle of this site (its journal and receipts), as export --site')
    .option('--trust-receiver <public-key>', 'estimate only from receipts signed by this minisign public key (the target\'s import --sign KEY): an unsigned or forged receipt on the disk or in the bucket is passed over')
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
    .option('--no-levels', 'skip the table by zstd level (1, 3, 9, 19, and --long where it helps), which times zstd on one sample of the largest stream')
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
      '#   verdict: falls behind by 2.3 GiB per day; a 1.00 TiB disk every 14 months would carry the rest\n' +
      '# the same figures for a script\n' +
      'zferry estimate tank --since state.json --link 2MB/s --every 12h --json\n' +
      '# the next bundle of the second site, whose disks are still away\n' +
      'zferry estimate tank --site vault --link 1Mbit',
    ))
    .action(async (source: string, o) => {
      const zfs = await probeZfs();
      const { runEstimate } = await import('../commands/estimate.js');
      const r = await runEstimate(zfs, {
        source, since: o.since, dest: o.dest, trustReceiver: o.trustReceiver, notice: (line: string) => process.stderr.write(`zferry: ${line}\n`), journal: o.journal === false ? false : o.journal === true ? undefined : o.journal, site: o.site, level: o.level, linkBytesPerSecond: o.link, intervalSeconds: o.every,
        diskBytes: o.disk, sampleBytes: o.sample, levels: o.levels !== false, sampleSeconds: o.sampleSeconds, churnSends: o.churnSends,
        churnSeconds: o.churnSeconds, progress: await progressFor(o.json),
      });
      const words = await printer();
      // --json keeps the one-sentence summary beside the numbers it is made of.
      if (o.json) emitJson(r.verdict ? { ...r, verdict: { ...r.verdict, summary: words.verdictSummary(r.verdict) } } : r);
      else words.printEstimate(r, o.level);
      if (r.conflicts.length > 0) process.exitCode = EXIT.partial;
    });

  const importCommand = program
    .command('import')
    .description('Apply the bundle(s) at PATH to TARGET with zfs recv -u, checking every byte as it streams (or all first with --verify-first), and write a receipt under PATH.')
    .argument('<path>', 'a bundle folder, or a folder holding bundles (applied in order; applied ones are skipped); or s3://BUCKET/PREFIX')
    .argument('<target>', 'dataset the source maps onto (tank/a/b → TARGET/a/b)')
    .option('--dry-run', 'check manifests and what would be received; touch nothing', false)
    .option('--force', 'import even if TARGET mirrors another source', false)
    .option('--delete', 'like rsync --delete: destroy under TARGET the snapshots and datasets the source no longer has (never out-of-scope data)', false)
    .option('--rollback', 'roll back to the common snapshot when the target has changes or snapshots of its own', false)
    .option('--trust <public-key>', 'accept only bundles whose manifest is signed by this minisign public key (KEY.pub from zferry keygen); others are passed over, each named, and the import exits 3')
    .option('--identity <file>', 'age identity file (AGE-SECRET-KEY-1…) for bundles exported with --encrypt-to')
    .option('--sign <secret-key>', 'sign the receipt with this key (zferry keygen on the receiving side): RECEIPT.minisig beside it, which export --trust-receiver KEY.pub requires')
    .option('--max-delete <limit>', 'with --delete: refuse to destroy more than N datasets (default 2), or more than P% of the snapshots of datasets that receive nothing new (default 50%); "all" lifts both; repeatable', collect, [] as string[])
    .addOption(new Option('--delete-after <age>', 'with --delete: destroy a dataset missing on the source only once it has been missing this long (7d, 12h), counted from the first applied bundle that lacked it').argParser(unitOption(parseInterval, '--delete-after age')))
    .option('--keep <grid>', 'thin the target\'s snapshots by a time grid, e.g. "1h x 24 | 1d x 30 | 30d x 12" (docs/retention.md); never the newest common snapshot, a base a bundle here still needs, or anything out of scope; with --delete, snapshots follow the grid and datasets --delete', unitOption((v: string) => parseGrid(v), 'grid'))
    .option('--create-parents', 'create TARGET\'s missing parent datasets (zfs create -p) instead of refusing; never a pool', false)
    .option('--verify-first', 'read and check every byte before the first receive (two read passes); by default each volume is checked as it streams into zfs recv, and a stream\'s end reaches zfs only once all its bytes matched', false)
    .option('--stage <dir>', 'a stream split across disks (export --max-size/--fill): copy its parts here, every volume checked, until the disk with the last part arrives; then receive the whole stream from here and PATH, and remove the staged copies. No zfs recv waits across a disk swap, and none sees a stream before all its parts are checked. Keep DIR outside PATH, on storage that stays')
    .addOption(new Option('--wait [seconds]', `one import into TARGET at a time (lock in $ZFERRY_STATE_DIR, default /var/lib/zferry): ${WAIT_HELP}`).argParser(waitOption))
    .option('--json', 'print the result as JSON on stdout (no progress bars)', false);
  addHookOptions(importCommand)
    .addHelpText('after', example(
      '# see what would be received and destroyed, then do it\n' +
      'zferry import /mnt/disk backup --delete --dry-run\n' +
      'zferry import /mnt/disk backup --delete\n' +
      '# the source really lost three datasets: allow that many\n' +
      'zferry import /mnt/disk backup --delete --max-delete 3\n' +
      '# give a dataset gone from the source a week before its copy goes too\n' +
      'zferry import /mnt/disk backup --delete --delete-after 7d\n' +
      '# keep a longer, thinned history than the source: hourly for a day, daily for a month, monthly for a year\n' +
      'zferry import /mnt/disk backup --keep \'1h x 24 | 1d x 30 | 30d x 12\' --dry-run\n' +
      '# the target was written to or snapshotted on its own: discard that\n' +
      'zferry import /mnt/disk backup --rollback\n' +
      '# only bundles signed by the source\'s key; decrypt with an age identity\n' +
      'zferry import /mnt/disk backup --trust /etc/zferry/source.pub --identity /root/age-key.txt\n' +
      '# --delete trusts the newest manifest\'s view of the source: sign it (without --trust, one warning line)\n' +
      'zferry import /mnt/disk backup --delete --trust /etc/zferry/source.pub\n' +
      '# another import into backup may be running: wait for it instead of refusing\n' +
      'zferry import /mnt/disk backup --wait\n' +
      '# sign the receipt it leaves on the disk (keygen on this side); the source then plans only from signed receipts\n' +
      'zferry import /mnt/disk backup --trust /etc/zferry/source.pub --sign /etc/zferry/receiver-key\n' +
      '# a seed split across disks (export --fill): each disk in turn; parts wait, verified, in the stage folder\n' +
      'zferry import /mnt/disk1 backup --stage /var/tmp/zferry-stage     # exit 3: names the part it needs next\n' +
      'zferry import /mnt/disk2 backup --stage /var/tmp/zferry-stage     # receives the whole stream, then the rest\n' +
      '# unattended (contrib/systemd/zferry-disk@.service): keys and hooks from the shared config file\n' +
      'zferry import /run/zferry/disk backup --config /etc/zferry/zferry.json --post \'umount /run/zferry/disk\'',
    ))
    .action(async (path: string, target: string, o) => {
      const cfg = await loadJobConfig(o.config);
      const { runImport } = await import('../commands/import.js');
      const { parseMaxDelete } = await import('../plan/import.js');
      const { importSummary, partialImport } = await import('../commands/figures.js');
      const { stateDir } = await import('../state/journal.js');
      const said = notices(o.json);
      const spec = await jobSpec(o, cfg, { kind: 'import', source: null, target, bundle: path, site: 'default', stateDir: o.dryRun ? null : stateDir() });
      const r = await (await import('../job.js')).runJob(spec, async () => runImport(await probeZfs(), {
        wait: waitSeconds(o.wait), notice: said.notice,
        path, target, dryRun: o.dryRun, force: o.force, delete: o.delete, rollback: o.rollback,
        trust: o.trust ?? cfg?.trust ?? undefined, identity: o.identity ?? cfg?.identity ?? undefined, sign: o.sign, verifyFirst: o.verifyFirst,
        createParents: o.createParents, maxDelete: parseMaxDelete(o.maxDelete), keep: o.keep, stage: o.stage,
        ...(o.deleteAfter !== undefined ? { deleteAfterSeconds: o.deleteAfter } : {}), progress: await progressFor(o.json),
      }), (r) => importSummary(r, path));
      if (o.json) emitJson({ ...r, warnings: said.warnings });
      else (await printer()).printImport(r, o.dryRun);
      for (const d of r.deferred) process.stderr.write(`zferry: ${d.message}\n`);
      for (const w of r.parts.waiting) process.stderr.write(`zferry: ${w.message}\n`);
      if (partialImport(r).partial !== undefined) process.exitCode = EXIT.partial;
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
    .argument('<path>', 'a bundle folder, or a folder holding bundles; or s3://BUCKET/PREFIX')
    .option('--trust <public-key>', 'also require a valid signature by this minisign public key')
    .option('--json', 'print the result as JSON on stdout', false)
    .option('--repair', 'rebuild damaged or missing volumes from the bundle\'s parity/ files (export --parity), then check every sha256 again', false)
    .addHelpText('after', example('zferry verify /mnt/disk/zferry-tank-20261126T073000Z-1a2b3c4d --trust source.pub\n' +
      '# a volume was damaged in the post: rebuild it from parity/\n' +
      'zferry verify /mnt/disk --repair'))
    .action(async (path: string, o) => {
      const { runVerify } = await import('../commands/verify.js');
      const reports = await runVerify(path, await progressFor(o.json), { trust: o.trust, repair: o.repair });
      const summary = reports.map((r) => ({
        bundle: r.bundle, bundleId: r.manifest.bundleId, formatVersion: r.manifest.formatVersion, streams: r.streams, volumes: r.volumes, storedBytes: r.storedBytes,
        restoreCovered: r.restoreCovered, parity: r.manifest.parity ? r.manifest.parity.percent : null, repaired: r.repaired,
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
      else process.stdout.write(`secret key ${r.secretFile} (keep it private)\npublic key ${r.publicFile} (key id ${r.keyId}; give it to whoever checks your signatures: import/verify --trust for bundles, export/status/relay send --trust-receiver for receipts)\n`);
    });

  program.addCommand(relayCommand());
  program.addCommand(statusCommand());

  const completion = program
    .command('completion')
    .description('Print a shell completion script: commands, options, and dataset names (from zfs list) where an argument is a dataset.')
    .addHelpText('after', example(
      '# this shell only\n' +
      'source <(zferry completion bash)\n' +
      '# every bash on the host\n' +
      'zferry completion bash > /etc/bash_completion.d/zferry\n' +
      '# zsh, from ~/.zshrc\n' +
      'source <(zferry completion zsh)',
    ));
  completion.command('bash').description('the script for bash').action(async () => {
    process.stdout.write((await import('./completion.js')).bashCompletion(program));
  });
  completion.command('zsh').description('the script for zsh').action(async () => {
    process.stdout.write((await import('./completion.js')).zshCompletion(program));
  });
  // What the scripts call on Tab where a dataset goes; not for people.
  completion.command('datasets', { hidden: true }).action(async () => {
    const names = await (await import('../zfs/index.js')).listDatasetNames();
    process.stdout.write(names.map((n) => `${n}\n`).join(''));
  });
  // addCommand does not pass exitOverride down as .command() does: set it on the whole tree.
  const override = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);

  return program;
}
