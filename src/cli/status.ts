/**
 * `zferry status`: argument parsing, printing and the Nagios exit code
 * (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, usage errors included); the facts
 * and verdict are src/commands/status.ts and src/plan/health.ts.
 */
import { Command, Option } from 'commander';
import { basename, dirname } from 'node:path';
import { collect, emitJson, example, unitOption } from './options.js';
import { formatBytes, parseInterval } from '../units.js';
import { addConfigOption, addNotifyOption, given, loadJobConfig } from './job-options.js';
import { probeZfs } from './zfs.js';
import type { StatusReport } from '../commands/status.js';
import { ZferryError } from '../errors.js';

/** main.ts maps every failure of `status`, usage errors too, to this. */
export const NAGIOS_UNKNOWN = 3;

const out = (line: string) => process.stdout.write(line + '\n');

function when(iso: string | null | undefined, now: number): string {
  if (!iso) return 'never';
  const { formatAge } = healthModule!;
  return `${formatAge(now - Date.parse(iso) / 1000)} ago`;
}

let healthModule: typeof import('../plan/health.js') | null = null;

function printStatus(r: StatusReport): void {
  const now = Date.parse(r.checkedAt) / 1000;
  const { formatAge } = healthModule!;
  const worst = [...r.sites.flatMap((s) => s.health.reasons.map((x) => ({ level: s.health.level, text: `${s.source} (${s.site}): ${x}` }))),
    ...r.targets.flatMap((t) => t.health.reasons.map((x) => ({ level: t.health.level, text: `${t.target}: ${x}` }))),
    ...r.problems.map((p) => ({ level: 3, text: p }))]
    .filter((x) => x.level > 0)
    .sort((a, b) => (b.level === 2 ? 4 : b.level) - (a.level === 2 ? 4 : a.level));
  const headline = worst[0]?.text ?? `${r.sites.length} site(s), ${r.targets.length} target(s) current`;
  // Nagios reads the first line and the performance data after |.
  const perf = r.sites.filter((s) => s.health.receiptAgeSeconds !== null)
    .map((s) => `'${s.source}:${s.site}_receipt_age'=${Math.round(s.health.receiptAgeSeconds!)}s;${r.thresholds.warn};${r.thresholds.crit}`);
  out(`ZFERRY ${r.status} - ${headline}${perf.length > 0 ? ` | ${perf.join(' ')}` : ''}`);
  for (const s of r.sites) {
    out(`${s.source} site ${s.site}: ${healthModule!.LEVELS[s.health.level]}`);
    out(`  newest snapshot     ${s.sourceNewest ? `@${s.sourceNewest.name} (${formatAge(now - s.sourceNewest.creation)} old)` : 'unknown (source not on this host)'}`);
    out(`  confirmed           ${s.receipt ? `${s.receipt.newest ? `@${s.receipt.newest.name}` : '(no snapshot)'} by receipt ${s.receipt.file}, ${when(s.receipt.takenAt, now)}` : 'no receipt yet'}`);
    out(`  in transit          ${s.pending.length} bundle(s), ${formatBytes(s.health.pendingBytes)}${s.pending.length > 0 ? `, oldest exported ${when(s.pending[0]!.createdAt, now)}` : ''}`);
    out(`  protections         ${s.protections.kept.length} kept by the last export${s.protections.present !== null ? `, ${s.protections.present.length} still there` : ''}`);
    if (s.lastExport) out(`  last export         ${s.lastExport.outcome}, ${when(s.lastExport.finishedAt, now)}${s.lastExport.error ? `: ${s.lastExport.error}` : ''}`);
    if (s.lastRelay) out(`  last relay round    ${s.lastRelay.outcome}, ${when(s.lastRelay.finishedAt, now)}${s.lastRelay.error ? `: ${s.lastRelay.error}` : ''}`);
    for (const x of s.health.reasons) out(`  ! ${x}`);
  }
  for (const t of r.targets) {
    out(`target ${t.target}: ${healthModule!.LEVELS[t.health.level]}`);
    out(`  newest snapshot     ${t.newest ? `@${t.newest.name} (${formatAge(now - t.newest.creation)} old)` : t.exists === false ? 'target missing' : 'unknown'}`);
    out(`  last import         ${t.lastImport ? `${t.lastImport.outcome}, ${when(t.lastImport.finishedAt, now)}${t.lastImport.error ? `: ${t.lastImport.error}` : ''}` : 'none recorded'}`);
    for (const x of t.health.reasons) out(`  ! ${x}`);
  }
  for (const p of r.problems) out(`! ${p}`);
}

export function statusCommand(): Command {
  const cmd = new Command('status')
    .description('Is every off-site copy current? Per source and site: newest snapshot, newest receipt and its age, bundles in transit, base protections, last export and relay round; per target: last import and newest snapshot. Exits like a Nagios check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.')
    .argument('[source]', 'only this pool or dataset (default: every source the state folder knows)')
    .option('--site <name>', 'only this site')
    .option('--dest <dir>', 'also look for receipts here (a disk that came back, or s3://BUCKET/PREFIX); repeatable', collect, [] as string[])
    .option('--spool <dir>', 'also look for receipts in this relay spool')
    .option('--trust-receiver <public-key>', 'count only receipts in those folders signed by this minisign public key (the target\'s import --sign KEY)')
    .option('--target <dataset>', 'on the receiving side: report this target\'s last import and newest snapshot; repeatable', collect, [] as string[])
    .option('--state-dir <dir>', 'where export, import and relay run record their outcome and journal (default: $ZFERRY_STATE_DIR or /var/lib/zferry)')
    .addOption(new Option('--warn <age>', 'WARNING when the newest receipt (or target snapshot) is this old: 12h, 2d, 1w').argParser(unitOption(parseInterval, 'warning age')).default(2 * 86400, '2d'))
    .addOption(new Option('--crit <age>', 'CRITICAL when it is this old').argParser(unitOption(parseInterval, 'critical age')).default(7 * 86400, '7d'))
    .option('--prometheus <file>', 'also write the figures as a node_exporter textfile (replaced atomically), e.g. /var/lib/node_exporter/textfile_collector/zferry.prom')
    .option('--json', 'print the whole report as JSON on stdout', false);
  addConfigOption(cmd);
  addNotifyOption(cmd)
    .addHelpText('after', example(
      '# at 8 a.m.: every source and site this host exports, and the disks that came back\n' +
      'zferry status --dest /mnt/disk\n' +
      '#   ZFERRY CRITICAL - tank (vault): newest receipt is 8 d 2 h old (critical at 7 d 0 h) | \'tank:vault_receipt_age\'=698400s;172800;604800\n' +
      '# as a Nagios/Icinga check, and for Prometheus\'s node_exporter (cron, every 5 minutes)\n' +
      'zferry status tank --warn 36h --crit 4d --prometheus /var/lib/node_exporter/textfile_collector/zferry.prom\n' +
      '# on the receiving side\n' +
      'zferry status --target backup --json',
    ))
    .action(async (source: string | undefined, o, self: Command) => {
      const cfg = await loadJobConfig(o.config);
      healthModule = await import('../plan/health.js');
      const { checkSite } = await import('../state/site.js');
      const site = o.site ?? cfg?.site ?? undefined;
      if (site !== undefined) checkSite(site);
      const cfgAge = (v: string | null | undefined, what: string) => (v ? unitOption(parseInterval, what)(v) : undefined);
      const warn = given<number>(self, 'warn') ?? cfgAge(cfg?.warn, 'warning age') ?? o.warn;
      const crit = given<number>(self, 'crit') ?? cfgAge(cfg?.crit, 'critical age') ?? o.crit;
      if (warn > crit) throw new ZferryError(`--warn (${warn} s) must not be longer than --crit (${crit} s)`, { field: '--warn' });
      // Records alone still tell most of the story on a host without zfs (a monitoring box reading a copied state folder).
      const zfs = await probeZfs(o.stateDir).catch(() => null);
      const { runStatus } = await import('../commands/status.js');
      const r = await runStatus({
        source: source ?? cfg?.source ?? undefined, site, dests: o.dest, spool: o.spool ?? cfg?.spool ?? undefined, targets: o.target,
        stateDir: o.stateDir, trustReceiver: o.trustReceiver ?? cfg?.trustReceiver ?? undefined, thresholds: { warn, crit }, zfs,
      });
      if (o.prometheus) {
        const { renderPrometheus } = await import('../status/metrics.js');
        const { writeFileAtomic } = await import('../fs/safe.js');
        await writeFileAtomic(dirname(o.prometheus), basename(o.prometheus), renderPrometheus(r));
      }
      if (o.json) emitJson(r);
      else printStatus(r);
      const notifyWords = o.notify !== undefined ? (await import('../hooks.js')).splitCommandLine(o.notify, '--notify') : cfg?.notify ?? null;
      await recordAndNotify(r, source ?? cfg?.source ?? null, site ?? 'default', notifyWords);
      process.exitCode = r.level;
    });
  return cmd;
}

/** Status notifies when something is wrong, and once more when it is right again; it records its level to know. */
async function recordAndNotify(r: StatusReport, source: string | null, site: string, words: string[] | null): Promise<void> {
  const { makeEvent, outcomeFileName, readOutcome, recordOutcome } = await import('../state/outcome.js');
  const { join } = await import('node:path');
  const outcome = (['ok', 'warning', 'critical', 'unknown'] as const)[r.level];
  const previous = await readOutcome(join(r.stateDir, outcomeFileName('status', source ?? 'all', site)), r.stateDir).catch(() => null);
  const event = makeEvent({
    kind: 'status', outcome, source, site, target: null, error: null, startedAt: r.checkedAt, finishedAt: new Date().toISOString(),
    figures: {
      status: r.status,
      sites: r.sites.map((s) => ({ source: s.source, site: s.site, level: s.health.level, reasons: s.health.reasons, receiptAt: s.receipt?.takenAt ?? null, pendingBundles: s.health.pendingBundles, pendingBytes: s.health.pendingBytes })),
      targets: r.targets.map((t) => ({ target: t.target, level: t.health.level, reasons: t.health.reasons })),
      problems: r.problems,
    },
  });
  await recordOutcome(r.stateDir, event).catch(() => undefined);
  if (words && (r.level !== 0 || (previous !== null && previous.outcome !== 'ok'))) {
    const { notify } = await import('../notify.js');
    const problem = await notify(words, event);
    if (problem) process.stderr.write(`zferry: ${problem}\n`);
  }
}
