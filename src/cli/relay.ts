/** `zferry relay send|receive|run`: argument parsing and printing only. */
import { basename } from 'node:path';
import { Command, Option, InvalidArgumentError } from 'commander';
import type { Zfs } from '../zfs/index.js';
import type { Progress } from '../progress.js';
import { DEFAULT_IDLE_TIMEOUT_SECONDS, formatEndpoint, parseEndpoint, SLOW_LINK_TUNING, type MbufferTuning } from '../mbuffer/index.js';
import type { TransferResult } from '../commands/relay-receive.js';
import type { RelayEvent } from '../commands/relay-run.js';
import { formatBytes, parseInterval } from '../units.js';
import { collect, example, sizeOption, unitOption, WAIT_HELP, waitOption, waitSeconds } from './options.js';
import { stopIfOutputClosed } from './pipes.js';
import { probeZfs } from './zfs.js';
import { addNotifyOption, jobSpec } from './job-options.js';

// Loaded when a relay command runs, as in main.ts: starting zferry stays cheap.
const loadProgress = async (): Promise<(json: boolean) => Progress> => (await import('../progress.js')).makeProgress;

/** `parseEndpoint` with this command's host requirement, as a commander parser. */
function endpoint(what: string, hostRequired: boolean) {
  return unitOption((value: string, w: string) => parseEndpoint(value, w, hostRequired), what);
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number of seconds, at least 1');
  return n;
}

/** Exit code of a job done in part (EXIT.partial in main.ts, which imports this module). */
const EXIT_PARTIAL = 3;

function idleTimeoutOption(what: string): Option {
  return new Option('--idle-timeout <seconds>', `drop ${what} on which no block (--block-size) moved for this long (mbuffer -W)`).argParser(seconds).default(DEFAULT_IDLE_TIMEOUT_SECONDS);
}

function tuningOptions(cmd: Command, sending: boolean): Command {
  cmd.addOption(new Option('--buffer <size>', 'mbuffer memory (-m)').argParser(sizeOption('buffer size')).default(SLOW_LINK_TUNING.memory, '64M'));
  cmd.addOption(new Option('--block-size <size>', 'mbuffer block size (-s)').argParser(sizeOption('block size')).default(SLOW_LINK_TUNING.blockSize, '128k'));
  if (sending) cmd.addOption(new Option('--rate <limit>', 'limit to this many bytes per second (mbuffer -r), e.g. 2M').argParser(sizeOption('rate limit')));
  return cmd;
}

function tuning(o: { buffer: number; blockSize: number; rate?: number }): MbufferTuning {
  return { memory: o.buffer, blockSize: o.blockSize, ...(o.rate !== undefined ? { rate: o.rate } : {}) };
}

const out = (line: string) => process.stdout.write(line + '\n');

/** Journal lines: one JSON object per line when not on a terminal or with --json. */
function lines(json: boolean): boolean {
  return json || !process.stdout.isTTY;
}

/**
 * One transfer's outcome. A failure, an undelivered receipt and deferred
 * bundles go to stderr; with --once the command's own error line says the
 * failure, so it is not printed twice.
 */
function printTransfer(t: TransferResult, asJson: boolean, once: boolean): void {
  if (asJson) {
    out(JSON.stringify({
      event: 'transfer', at: new Date().toISOString(), ...t,
      import: t.import ? {
        receipt: t.import.receipt, bundles: t.import.bundles.map((b) => ({ bundle: b.bundle, status: b.status })), deferred: t.import.deferred.map((d) => d.message),
        superseded: t.import.superseded.map((d) => d.message),
      } : null,
    }));
  } else if (t.ok) {
    out(`received ${t.bundles.length} bundle(s), ${formatBytes(t.bytes)} in ${t.seconds.toFixed(1)} s${t.import ? `; imported, receipt ${t.import.receipt}` : ''}${t.replied ? '; receipt sent back' : ''}`);
    for (const x of t.import?.superseded ?? []) out(x.message);
    if (t.pruned.length > 0) out(`removed from the spool, done with: ${t.pruned.map((d) => basename(d)).join(', ')}`);
  }
  for (const d of t.discarded) process.stderr.write(`zferry: ${d}\n`);
  if (!t.ok && !once) process.stderr.write(`zferry: transfer failed: ${t.error}${t.replied ? ' (reported to the sender)' : ''}\n`);
  if (t.ok && t.replyError !== null && !once) process.stderr.write(`zferry: receipt ${t.replyError}\n`);
  if (t.ok) for (const d of t.import?.deferred ?? []) process.stderr.write(`zferry: ${d.message}\n`);
}

async function recordTransfer(t: TransferResult, target: string, spool: string): Promise<void> {
  try {
    const figures = await import('../commands/figures.js');
    const { stateDir } = await import('../state/journal.js');
    await figures.recordTransfer(stateDir(), t, target, spool);
  } catch (err) {
    process.stderr.write(`zferry: the outcome was not recorded for zferry status: ${(err as Error).message}\n`);
  }
}

function printEvent(e: RelayEvent, asJson: boolean): void {
  if (asJson) {
    out(JSON.stringify({ at: new Date().toISOString(), ...e }));
    return;
  }
  const { event, ...rest } = e;
  const text = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
  const warn = event === 'failed' || event === 'ignored';
  (warn ? process.stderr : process.stdout).write(`${warn ? 'zferry: ' : ''}${event} ${text}\n`);
}

export function relayCommand(): Command {
  const relay = new Command('relay')
    .description('Move bundles over the network with mbuffer instead of a disk; the receipt comes back over the link.')
    .addHelpText('after', example(
      '# receiving host: keep listening, import each transfer, send the receipt back\n' +
      '# (--source: the source pool\'s guid and root; once backup holds a copy, its mark says it)\n' +
      '# only bundles signed by the source\'s key (zferry keygen on the source; its relay config names it in "sign")\n' +
      'zferry relay receive --listen 9090 --spool /srv/zferry/spool --import backup --source 1234567890123456789:tank --trust /etc/zferry/source.pub --reply-to source.example.net:9091\n' +
      '# sending host, from a systemd timer\n' +
      'zferry relay run --config /etc/zferry/relay.json',
    ));

  tuningOptions(relay
    .command('send')
    .description('Stream bundles (oldest first) as one tar stream through mbuffer -O HOST:PORT.')
    .argument('<path...>', 'bundle folders, or folders holding bundles')
    .requiredOption('--to <host:port>', 'the receiver (zferry relay receive --listen PORT)', endpoint('--to', true))
    .option('--reply-port <[addr:]port>', 'wait here for the receiver\'s receipt (its --reply-to) and write it beside the bundles', endpoint('--reply-port', false))
    .addOption(new Option('--receipt-timeout <seconds>', 'how long to wait for the receipt after the push').argParser(seconds).default(3600))
    .addOption(idleTimeoutOption('the push, or a reply connection,'))
    .option('--trust-receiver <public-key>', 'accept only receipts signed by this minisign public key (the receiver\'s relay receive --sign)')
    .option('--json', 'print the result as JSON on stdout (no progress bars)', false)
    .addHelpText('after', example(
      'zferry relay send /srv/spool/zferry-tank-20261126T073000Z-1a2b3c4d --to backup.example.net:9090 --rate 4M\n' +
      '# and wait for the receipt the receiver sends to port 9091\n' +
      'zferry relay send /srv/spool --to backup.example.net:9090 --reply-port 9091',
    )), true)
    .action(async (paths: string[], o) => {
      const makeProgress = await loadProgress();
      const { runRelaySend } = await import('../commands/relay-send.js');
      const r = await runRelaySend({
        paths, to: o.to, tuning: tuning(o), replyListen: o.replyPort ?? null, receiptTimeoutSeconds: o.receiptTimeout,
        idleTimeoutSeconds: o.idleTimeout, trustReceiver: o.trustReceiver,
        onIgnored: (line) => process.stderr.write(`zferry: ${line}\n`),
        progress: makeProgress(o.json),
      });
      if (o.json) out(JSON.stringify(r, null, 2));
      else {
        out(`sent ${r.bundles.length} bundle(s), ${formatBytes(r.bytes)} to ${r.to} in ${r.seconds.toFixed(1)} s`);
        if (r.resumedBytes > 0) out(`resumed: ${formatBytes(r.resumedBytes)} the receiver kept from an earlier push were not sent again`);
        if (r.receipt) out(`receipt: ${r.receipt}`);
      }
    });

  tuningOptions(relay
    .command('receive')
    .description('Listen with mbuffer -I, verify every file against its manifest as it arrives, and move each complete bundle into the spool.')
    .requiredOption('--listen <[peer:]port>', 'the port to listen on (every address); with PEER:, only that host may connect (mbuffer -I semantics)', endpoint('--listen', false))
    .requiredOption('--spool <dir>', 'folder the verified bundles go to')
    .option('--import <target>', 'after each transfer, import the spool into TARGET (as zferry import)')
    .option('--source <poolguid:root>', 'the source this spool serves (as import marks TARGET: zferry:source); default: TARGET\'s mark. Bundles of any other source are refused before they enter the spool')
    .option('--force', 'with --import: import even if TARGET mirrors another source', false)
    .option('--create-parents', 'with --import: create TARGET\'s missing parent datasets, as import --create-parents', false)
    .option('--delete', 'with --import: import --delete, like rsync --delete (destroy under TARGET what the source no longer has)', false)
    .option('--max-delete <limit>', 'with --delete: the deletion guard, as for import (N datasets, P% of quiet datasets\' snapshots, or all); repeatable', collect, [] as string[])
    .addOption(new Option('--delete-after <age>', 'with --delete: destroy a dataset missing on the source only once it has been missing this long, as for import').argParser(unitOption(parseInterval, '--delete-after age')))
    .option('--reply-to <host:port>', 'send the receipt (or the reason for failure) to the sender\'s --reply-port', endpoint('--reply-to', true))
    .option('--trust <public-key>', 'accept only bundles signed by this minisign public key (zferry keygen\'s KEY.pub): others never enter the spool. Required with --import unless --allow-unsigned, and always with --delete')
    .option('--allow-unsigned', 'with --import and no --trust: import unsigned bundles that anyone who reaches the port can push (never with --delete)', false)
    .addOption(new Option('--wait [seconds]', `one receiver per spool and one import per TARGET: ${WAIT_HELP} (at start for the spool, at each import for TARGET)`).argParser(waitOption))
    .option('--sign <secret-key>', 'with --import: sign each receipt with this key (zferry keygen), receipt-TARGET.json.minisig; the signature goes back to the sender')
    .addOption(idleTimeoutOption('a connection'))
    .option('--identity <file>', 'with --import: age identity file for bundles exported with --encrypt-to')
    .option('--once', 'handle one transfer, then exit with its status', false)
    .option('--json', 'one JSON line per transfer on stdout (no progress bars)', false)
    .addHelpText('after', example(
      '# the source id: on the source host, echo "$(zpool list -H -o guid tank):tank"\n' +
      '# --listen PEER:PORT accepts only that peer (mbuffer -I semantics); a bare PORT accepts any\n' +
      '# only bundles signed by the source\'s key (its relay config has "sign"); --delete requires it\n' +
      'zferry relay receive --listen source.example.net:9090 --spool /srv/zferry/spool --import backup --source 1234567890123456789:tank --trust /etc/zferry/source.pub --delete --reply-to source.example.net:9091\n' +
      '# a lab without keys: say so\n' +
      'zferry relay receive --listen 9090 --spool /srv/zferry/spool --import backup --source 1234567890123456789:tank --allow-unsigned\n' +
      '# signed receipts, for a sender with --trust-receiver / "trustReceiver"\n' +
      'zferry relay receive --listen 9090 --spool /srv/zferry/spool --import backup --trust /etc/zferry/source.pub --reply-to source.example.net:9091 --sign /etc/zferry/receiver-key',
    )), false)
    .action(async (o) => {
      let zfs: Zfs | null = null;
      const asJson = lines(o.json);
      const makeProgress = await loadProgress();
      const { runRelayReceive } = await import('../commands/relay-receive.js');
      const { parseMaxDelete } = await import('../plan/import.js');
      const t = await runRelayReceive({
        listen: o.listen, spool: o.spool, tuning: tuning(o), importTarget: o.import ?? null, force: o.force,
        deleteAfterImport: o.delete, createParents: o.createParents, maxDelete: parseMaxDelete(o.maxDelete),
        ...(o.deleteAfter !== undefined ? { deleteAfterSeconds: o.deleteAfter } : {}), replyTo: o.replyTo ?? null, once: o.once, trust: o.trust, identity: o.identity,
        source: o.source ?? null, sign: o.sign, idleTimeoutSeconds: o.idleTimeout, allowUnsigned: o.allowUnsigned,
        wait: waitSeconds(o.wait), notice: (line) => process.stderr.write(`zferry: ${line}\n`),
        zfs: async () => (zfs ??= await probeZfs()),
        progress: () => makeProgress(o.json),
        onTransfer: async (t) => {
          printTransfer(t, asJson, o.once);
          // For zferry status --target on this side; a record that cannot be written only warns.
          if (o.import) void recordTransfer(t, o.import, o.spool);
          // A reader that went away ends the receiver here, between transfers, with nothing open.
          await stopIfOutputClosed();
        },
      });
      if ((t.import?.deferred.length ?? 0) > 0 || (t.import?.passedOver.length ?? 0) > 0) process.exitCode = EXIT_PARTIAL;
    });

  const run = relay
    .command('run')
    .description('One scheduled round: export what is new since the last receipt into the spool, push pending bundles oldest first, store the receipt, prune confirmed bundles.')
    .requiredOption('--config <file>', 'relay configuration (schemas/relay-config.schema.json)')
    .addOption(new Option('--wait [seconds]', `one round per spool: ${WAIT_HELP}`).argParser(waitOption))
    .option('--json', 'JSON lines on stdout (the default without a terminal, e.g. under systemd)', false)
    .addOption(new Option('--pre <cmd>', 'run CMD first; if it fails, nothing is touched (env ZFERRY_SOURCE, ZFERRY_TARGET, ZFERRY_BUNDLE, ZFERRY_SITE; config: pre)'))
    .addOption(new Option('--post <cmd>', 'run CMD afterwards, after a failure too, with ZFERRY_RESULT=ok|partial|failed (config: post)'));
  addNotifyOption(run)
    .addHelpText('after', example(
      'zferry relay run --config /etc/zferry/relay.json\n' +
      '# a manual round while the timer\'s may be running: wait up to 10 minutes for it\n' +
      'zferry relay run --config /etc/zferry/relay.json --wait 600\n' +
      '# or from systemd: contrib/systemd/zferry-relay.timer; a webhook on every round\n' +
      'zferry relay run --config /etc/zferry/relay.json --notify \'/usr/local/lib/zferry/notify-webhook https://hooks.example.net/zferry\'',
    ))
    .action(async (o) => {
      let zfs: Zfs | null = null;
      const asJson = lines(o.json);
      const makeProgress = await loadProgress();
      const { runRelayRound } = await import('../commands/relay-run.js');
      const { readRelayConfig } = await import('../relay/config.js');
      const { relaySummary } = await import('../commands/figures.js');
      const { stateDir } = await import('../state/journal.js');
      const cfg = await readRelayConfig(o.config);
      const spec = await jobSpec(o, cfg, {
        kind: 'relay-run', source: cfg.source, target: formatEndpoint(cfg.to), bundle: cfg.spool, site: cfg.site, stateDir: stateDir(),
      });
      const r = await (await import('../job.js')).runJob(spec, () => runRelayRound({
        config: cfg,
        wait: waitSeconds(o.wait),
        notice: (line) => process.stderr.write(`zferry: ${line}\n`),
        zfs: async () => (zfs ??= await probeZfs()),
        progress: () => makeProgress(o.json),
        onEvent: (e) => printEvent(e, asJson),
      }), (r) => relaySummary(r, cfg.spool, cfg.site));
      // As export: a bundle went, but datasets in conflict were left out.
      if (r.conflicts.length > 0) process.exitCode = EXIT_PARTIAL;
    });

  return relay;
}
