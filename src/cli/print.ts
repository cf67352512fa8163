/** Human-readable output of each command's result (stdout). */
import { describeStep, spaceVerdict } from '../plan/index.js';
import type { ExportResult } from '../commands/export.js';
import type { ImportResult } from '../commands/import.js';
import type { Verdict } from '../estimate/verdict.js';
import type { EstimateResult } from '../commands/estimate.js';
import { formatBytes, formatDuration, formatInterval, formatRate } from '../units.js';
import { barChart, isUtf8Locale, table } from './chart.js';

const out = (line = '') => process.stdout.write(line + '\n');

/** What export is about to do: printed before any progress bar. */
export function printExportPlan(r: ExportResult, source: string, dest: string, dryRun = false): void {
  const basis = r.basis.origin === 'empty' ? 'an empty target (initial seed)' : `${r.basis.origin} ${r.basis.file}`;
  out(`plan for ${source}, against ${basis}:`);
  for (const step of r.plan.steps) out(`  ${describeStep(step)}`);
  if (r.plan.steps.length === 0) out('  nothing to send: the target is current');
  if (r.plan.current.length > 0) out(`  current: ${r.plan.current.length} dataset(s)`);
  for (const s of r.plan.skipped) out(`  skipped ${s.dataset || '(root)'}: ${s.reason}`);
  for (const u of r.plan.unreachable) out(`  note ${u.dataset || '(root)'}: ${u.snapshots.length} older snapshot(s) cannot be added to the target`);
  for (const b of r.plan.blocked) out(`  blocked ${b.dataset || '(root)'}: ${b.reason}`);
  for (const e of r.plan.excluded) out(`  excluded ${e || '(root)'} and its children`);
  for (const x of r.plan.reseeded) out(`  re-seed ${x.dataset || '(root)'}: the target's copy shares no snapshot with the source (import with --delete replaces it)`);
  for (const x of r.plan.rolledBack) out(`  rollback ${x.dataset || '(root)'}: to @${x.to.name}, discarding ${x.discards.map((d) => '@' + d.name).join(', ')} (import with --rollback)`);
  for (const c of r.plan.clones) {
    if (c.sentAs === 'full') out(`  note ${c.dataset || '(root)'}: a clone of ${c.origin}, sent as a full stream (no space shared on the target): ${c.reason}`);
  }
  for (const c of r.plan.conflicts) process.stderr.write(`zferry: conflict: ${c.message}\n`);
  if (r.levelChoice) out(`zstd ${r.levelChoice.reason}`);
  if (r.resumed) {
    const verb = dryRun ? 'would resume' : 'resuming';
    out(`${verb} the unfinished export ${r.resumed.folder}:`);
    for (const u of r.resumed.reused) {
      const what = u.kind === 'full' ? `@${u.to}` : `@${u.from}→@${u.to}`;
      out(`  ${dryRun ? 'would reuse' : 'reusing'} stream ${u.index}: ${u.dataset || '(root)'} ${what} (${formatBytes(u.storedBytes)}, sha256 re-checked)`);
    }
    for (const d of r.resumed.dropped) out(`  ${dryRun ? 'would drop' : 'dropping'} its stream ${d.index} (${d.dataset || '(root)'}): ${d.reason}`);
  }
  if (r.space && r.space.freeBytes !== null) out(`space: ${spaceVerdict(dest, r.space, formatBytes)}`);
  const l = r.limit;
  if (l?.continued) out(`continues ${l.continued.dataset || '(root)'}@${l.continued.to}: part ${l.continued.part}, from byte ${l.continued.offset} of the stream (earlier parts on earlier disks)`);
  if (l && l.maxBytes !== null) {
    out(`limit: ${formatBytes(l.maxBytes)} (${formatBytes(l.volumeBytes ?? 0)} for volumes): this bundle takes ${l.taken} of the ${l.planned} step(s) in plan order, as planned${l.left > 0 ? `; ${l.left} left for the next bundle` : ''}; a stream that does not fit the rest is written in parts`);
  }
}

/** What export did, once the work is over. */
export function printExportResult(r: ExportResult, dryRun: boolean): void {
  if (dryRun) {
    out('dry run: nothing written');
    return;
  }
  if (r.bundle) {
    out(`wrote ${r.streams.length} stream(s), ${formatBytes(r.rawBytes)} raw → ${formatBytes(r.storedBytes)} stored, in ${r.seconds.toFixed(1)} s`);
    out(`bundle: ${r.bundle}`);
  }
  const l = r.limit;
  if (l?.split) out(`part ${l.split.part} of ${l.split.dataset || '(root)'}@${l.split.to} ends this bundle at byte ${l.split.rawBytes} of the stream: it continues in the next bundle (run export again)`);
  else if (l && l.left > 0) out(`${l.left} step(s) of the plan left for the next bundle (run export again)`);
}

export function printImport(r: ImportResult, dryRun: boolean): void {
  if (r.createdParent !== null) out(`${dryRun ? 'would create' : 'created'} ${r.createdParent} (--create-parents)`);
  for (const x of r.repaired) for (const v of x.volumes) out(`repaired ${x.bundle}/${v} from parity/`);
  for (const x of r.parts.staged) out(`${dryRun ? 'would stage' : 'staged'} ${x} (a part of a stream split across disks, every volume checked)`);
  for (const x of r.parts.removed) out(`removed ${x}: its stream is received whole`);
  for (const x of r.superseded) out(x.message);
  for (const b of r.bundles) {
    out(`${b.bundle}: ${b.status}`);
    if (b.status === 'already-applied' || b.status === 'waiting') continue;
    for (const a of b.applied) {
      const rb = (a.rollbackTo ? ` (after rolling back to @${a.rollbackTo}${a.discards ? `, discarding ${a.discards.map((x) => '@' + x).join(', ')}` : ''})` : '')
        + (a.replaces ? ` (replacing ${a.replaces.map((x) => '@' + x).join(', ')})` : '');
      if (a.kind === 'rename') {
        const what = [
          ...(a.renamedFrom !== undefined ? [`${a.renamedFrom || '(root)'} → ${a.dataset || '(root)'}`] : []),
          ...(a.renamedSnapshots ?? []).map((x) => `${a.dataset || '(root)'}@${x.replace(' → ', ' → @')}`),
        ];
        out(`  ${dryRun ? 'would rename' : 'renamed'} ${what.join(', ')}`);
        continue;
      }
      out(`  ${dryRun ? 'would receive' : 'received'} ${a.dataset || '(root)'} ${a.kind}${a.to ? ` @${a.to}` : ''}${rb}`);
    }
    for (const s of b.skipped) out(`  skipped ${s.dataset || '(root)'}: ${s.reason}`);
  }
  const doomed = [...r.extras.snapshots, ...r.extras.datasets];
  if (doomed.length > 0) {
    const verb = { destroyed: 'destroyed', 'would-destroy': 'would destroy', reported: 'not on the source; --delete destroys them' }[r.extras.action];
    out(`extras under ${r.target} (${verb}):`);
    for (const n of doomed) out(`  ${n}`);
    const g = r.extras.guard;
    if (g && r.extras.action !== 'reported') {
      out(`deletion guard: ${g.datasets} dataset(s) (limit ${g.datasetLimit ?? 'none'}); ${g.quietDestroyed} of ${g.quietHeld} snapshots ` +
        `in datasets receiving nothing new (${g.quietSharePercent}%, limit ${g.quietShareLimit === null ? 'none' : `${g.quietShareLimit}%`})` +
        `${g.exceeded ? ': --delete would be REFUSED; raise --max-delete to allow it' : ''}`);
    }
  }
  // Datasets left standing on purpose (--delete-after's wait, out-of-scope children): say why.
  const keptDatasets = r.extras.action === 'reported' ? [] : r.extras.kept.filter((k) => k.snapshot === undefined);
  for (const k of keptDatasets) out(`kept ${k.dataset ? `${r.target}/${k.dataset}` : r.target}: ${k.reason}`);
  const k = r.retention;
  if (k && (k.destroy.length > 0 || k.protected.length > 0)) {
    out(`retention by the grid ${k.grid} (${k.action === 'destroyed' ? 'destroyed' : 'would destroy'} ${k.destroy.length}):`);
    for (const x of k.destroy) out(`  ${x.full}: ${x.reason}`);
    for (const x of k.protected) out(`  kept ${x.full}: ${x.reason}`);
  }
  if (dryRun) out(`dry run: nothing received or destroyed (${formatBytes(r.storedBytes)} would be read)`);
  else if (r.receipt === null) out(`${r.target}: nothing received in ${r.seconds.toFixed(1)} s; no receipt written`);
  else out(`${r.target} updated in ${r.seconds.toFixed(1)} s; receipt: ${r.receipt}`);
}

export function printVerify(bundles: Array<{ bundle: string; streams: number; volumes: number; storedBytes: number; formatVersion: number; restoreCovered: boolean; parity?: number | null; repaired?: string[] }>): void {
  for (const b of bundles) {
    for (const f of b.repaired ?? []) out(`repaired ${b.bundle}/${f} from parity/`);
    out(`ok ${b.bundle}: ${b.streams} stream(s), ${b.volumes} volume(s), ${formatBytes(b.storedBytes)}${b.parity ? `, ${b.parity}% parity` : ''}`);
    if (!b.restoreCovered) out(`  note: bundle format ${b.formatVersion}: RESTORE.txt is not covered by its checksums or signature; read it before running it`);
  }
}

export function printEstimate(r: EstimateResult, level: number, unicode = isUtf8Locale()): void {
  const size = (n: number | null) => (n === null ? 'unknown' : formatBytes(Math.round(n)));
  const basis = r.basis.origin === 'empty' ? 'an empty target (initial seed)' : `${r.basis.origin} ${r.basis.file}`;
  out(`next bundle of ${r.source}, against ${basis}:`);
  if (r.datasets.length === 0) {
    out('  nothing to send: the target is current');
  } else {
    const rows = [['dataset', 'base', 'newest', 'raw', `zstd -${level}`]];
    for (const d of r.datasets) {
      rows.push([d.dataset || '(root)', d.base === null ? '(full)' : `@${d.base}`, `@${d.newest}`, size(d.rawBytes), size(d.storedBytes)]);
    }
    rows.push(['total', '', '', size(r.total.rawBytes), size(r.total.storedBytes)]);
    for (const line of table(rows, new Set([3, 4]))) out(`  ${line}`);
  }
  if (r.current.length > 0) out(`  current: ${r.current.length} dataset(s)`);
  for (const c of r.conflicts) process.stderr.write(`zferry: conflict: ${c}\n`);
  const methods = new Set(r.streams.map((s) => s.rawMethod));
  if (methods.has('send-dry-run')) out('raw sizes: zfs send -nvP estimates');
  const notes = new Map<string, string[]>();
  for (const s of r.streams) if (s.note) notes.set(s.note, [...(notes.get(s.note) ?? []), `${s.dataset || '(root)'}@${s.to}`]);
  for (const [note, which] of notes) {
    out(`raw sizes${which.length === r.streams.length ? '' : ` of ${which.join(', ')}`}: ${note}`);
  }
  if (r.total.ratio !== null) {
    const t = r.total.sample;
    if (t.rawBytes > 0) {
      out(`zstd -${level} on a sample of ${formatBytes(t.rawBytes)} (limit ${formatBytes(t.limitBytes)}, ${t.limitSeconds} s): ` +
        `${formatBytes(t.storedBytes)}, ratio ${(r.total.ratio * 100).toFixed(1)}%`);
    } else {
      out(`zstd -${level} ratio ${(r.total.ratio * 100).toFixed(1)}%, sampled on recent incrementals (nothing is pending to sample)`);
    }
  }
  const transfer = r.link.transferSeconds === null ? 'unknown' : formatDuration(r.link.transferSeconds);
  out(`at ${formatRate(r.link.bytesPerSecond)}: ${transfer} to move the next bundle`);
  if (r.space) out(`space: ${spaceVerdict(r.space.dest, r.space, formatBytes)}`);
  if (r.levels) {
    const l = r.levels;
    out(`by zstd level, timed here on ${formatBytes(l.sampleBytes)} of ${l.dataset || '(root)'}'s stream, sizes scaled to the -${level} estimate above (--long shown where it saves 2% or more):`);
    const rows = [['level', 'bundle', `at ${formatRate(r.link.bytesPerSecond)}`, 'zstd here', 'memory']];
    for (const x of l.rows) {
      rows.push([`-${x.level}${x.long ? ' --long' : ''}`, size(x.storedBytes), x.linkSeconds === null ? 'unknown' : formatDuration(x.linkSeconds),
        x.compressSeconds === null ? 'unknown' : formatDuration(x.compressSeconds), formatBytes(x.memoryBytes)]);
    }
    for (const line of table(rows, new Set([1, 2, 3, 4]))) out(`  ${line}`);
  }
  out();

  const c = r.churn;
  const how = c.method === 'written'
    ? 'each snapshot\'s `written` (on-disk bytes since the previous snapshot)'
    : `incremental sends between consecutive snapshots, measured (${c.measuredSends} measured` +
      `${c.unmeasuredSends ? `, ${c.unmeasuredSends} left unknown by the budget` : ''})`;
  const every = formatInterval(r.link.intervalSeconds);
  out(`churn, from ${how}:`);
  const wrows = [['', `average per ${every}`, `peak ${every}`, 'history', 'snapshots']];
  for (const w of [c.days7, c.days30]) {
    wrows.push([`last ${w.days} days`, formatBytes(Math.round(w.averagePerInterval)), formatBytes(w.peakPerInterval),
      `${(w.coveredSeconds / 86400).toFixed(1)} days`, `${w.samples}${w.unknown ? ` (+${w.unknown} unknown)` : ''}`]);
  }
  for (const line of table(wrows, new Set([1, 2, 3]))) out(`  ${line}`);
  if (c.daily.length > 0) {
    out('daily churn (UTC):');
    const chart = barChart(c.daily.map((d) => ({
      label: d.date, value: d.bytes, text: `${formatBytes(d.bytes)}${d.unknown ? ` +${d.unknown} unknown` : ''}`,
    })), 40, unicode);
    for (const line of chart) out(`  ${line}`);
  }
  out();
  if (r.verdict === null) {
    out('verdict: unknown — no snapshot history in the last 30 days to judge by');
    return;
  }
  const v = r.verdict;
  out(`the link moves ${formatBytes(Math.round(v.capacityPerInterval))} per ${every}; ` +
    `a bundle must carry ${formatBytes(Math.round(v.needPerInterval))} per ${every} (${v.window}-day average` +
    `${v.ratioApplied === 1 ? '' : `, at the sampled zstd ratio of ${(v.ratioApplied * 100).toFixed(1)}%`})`);
  out(`verdict: ${verdictSummary(v)}`);
}

/** The verdict in one sentence. */
export function verdictSummary(v: Verdict): string {
  if (v.keepsUp) {
    const peakNote = v.peakFits ? '' : `; the busiest interval (${formatBytes(Math.round(v.peakNeedPerInterval))}) does not fit and waits for the next`;
    return `keeps up with ${Math.floor(v.headroomPercent ?? 0)}% headroom${peakNote}`;
  }
  const days = v.diskEveryDays!;
  const disk = formatBytes(v.diskBytes);
  const every = days > TEN_YEARS_DAYS
    ? `one ${disk} disk would carry more than 10 years of it`
    : days >= 1
      ? `a ${disk} disk every ${spanOfDays(days)} would carry the rest`
      : `a ${disk} disk would fill in ${(days * 24).toFixed(1)} h: ship ${Math.ceil(1 / days)} disks a day or a faster link`;
  return `falls behind by ${formatBytes(Math.round(v.behindPerDay!))} per day; ${every}`;
}

const DAYS_PER_MONTH = 365.25 / 12;
export const TEN_YEARS_DAYS = 3652.5;

/**
 * A span of at least one day in the unit a person reads at a glance: days up
 * to 60, then months up to two years, then years up to ten. Rounded down: a
 * disk shipped a little early is safe, one shipped late is not.
 */
export function spanOfDays(days: number): string {
  if (days < 61) {
    const n = Math.floor(days);
    return `${n} day${n === 1 ? '' : 's'}`;
  }
  if (days < 2 * 365.25) return `${Math.floor(days / DAYS_PER_MONTH)} months`;
  if (days <= TEN_YEARS_DAYS) return `${Math.floor(days / 365.25)} years`;
  return 'more than 10 years';
}
