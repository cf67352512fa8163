/** Human-readable output of each command's result (stdout). */
import { describeStep } from '../plan/index.js';
import type { ExportResult } from '../commands/export.js';
import type { ImportResult } from '../commands/import.js';
import { formatBytes } from './units.js';

const out = (line = '') => process.stdout.write(line + '\n');

export function printExport(r: ExportResult, source: string, dryRun: boolean): void {
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
  for (const c of r.plan.conflicts) process.stderr.write(`zferry: conflict: ${c.message}\n`);
  if (dryRun) {
    out('dry run: nothing written');
    return;
  }
  if (r.bundle) {
    out(`wrote ${r.streams.length} stream(s), ${formatBytes(r.rawBytes)} raw → ${formatBytes(r.storedBytes)} stored, in ${r.seconds.toFixed(1)} s`);
    out(`bundle: ${r.bundle}`);
  }
}

export function printImport(r: ImportResult, dryRun: boolean): void {
  for (const b of r.bundles) {
    out(`${b.bundle}: ${b.status}`);
    if (b.status === 'already-applied') continue;
    for (const a of b.applied) {
      const rb = (a.rollbackTo ? ` (after rolling back to @${a.rollbackTo}${a.discards ? `, discarding ${a.discards.map((x) => '@' + x).join(', ')}` : ''})` : '')
        + (a.replaces ? ` (replacing ${a.replaces.map((x) => '@' + x).join(', ')})` : '');
      out(`  ${dryRun ? 'would receive' : 'received'} ${a.dataset || '(root)'} ${a.kind}${a.to ? ` @${a.to}` : ''}${rb}`);
    }
    for (const s of b.skipped) out(`  skipped ${s.dataset || '(root)'}: ${s.reason}`);
  }
  const doomed = [...r.extras.snapshots, ...r.extras.datasets];
  if (doomed.length > 0) {
    const verb = { destroyed: 'destroyed', 'would-destroy': 'would destroy', reported: 'not on the source; --delete destroys them' }[r.extras.action];
    out(`extras under ${r.target} (${verb}):`);
    for (const n of doomed) out(`  ${n}`);
  }
  if (dryRun) out(`dry run: nothing received or destroyed (${formatBytes(r.storedBytes)} would be read)`);
  else out(`${r.target} updated in ${r.seconds.toFixed(1)} s; receipt: ${r.receipt}`);
}

export function printVerify(bundles: Array<{ bundle: string; streams: number; volumes: number; storedBytes: number }>): void {
  for (const b of bundles) out(`ok ${b.bundle}: ${b.streams} stream(s), ${b.volumes} volume(s), ${formatBytes(b.storedBytes)}`);
}
