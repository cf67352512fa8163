/**
 * `zferry status --prometheus FILE`: the report as a node_exporter textfile
 * (text exposition format 0.0.4). Pure; the atomic write is the caller's.
 */
import type { StatusReport } from '../commands/status.js';

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${label(v)}"`);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

const ts = (iso: string | null | undefined): number | null => (iso ? Math.floor(Date.parse(iso) / 1000) : null);

export function renderPrometheus(r: StatusReport): string {
  const families = new Map<string, { help: string; type: 'gauge'; samples: string[] }>();
  const put = (name: string, help: string, l: Record<string, string>, value: number | null) => {
    if (value === null || !Number.isFinite(value)) return;
    const f = families.get(name) ?? { help, type: 'gauge' as const, samples: [] };
    f.samples.push(`${name}${labels(l)} ${value}`);
    families.set(name, f);
  };
  put('zferry_status', 'Overall health as zferry status exits: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.', {}, r.level);
  put('zferry_status_timestamp_seconds', 'When zferry status wrote this file.', {}, ts(r.checkedAt));
  for (const s of r.sites) {
    const l = { source: s.source, site: s.site };
    put('zferry_site_status', 'Health of one source and site: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.', l, s.health.level);
    put('zferry_last_receipt_timestamp_seconds', 'When the newest receipt of this site was written by the import.', l, ts(s.receipt?.takenAt));
    put('zferry_confirmed_snapshot_timestamp_seconds', 'Creation time of the newest snapshot the newest receipt confirms.', l, s.receipt?.newest?.creation ?? null);
    put('zferry_source_snapshot_timestamp_seconds', 'Creation time of the source\'s newest snapshot.', l, s.sourceNewest?.creation ?? null);
    put('zferry_pending_bundles', 'Bundles exported and not yet confirmed by a receipt (disks in transit).', l, s.health.pendingBundles);
    put('zferry_pending_bytes', 'Bytes those bundles hold.', l, s.health.pendingBytes);
    put('zferry_protections', 'Incremental bases (holds or bookmarks) kept by the last export.', l, s.protections.kept.length);
    for (const [kind, run] of [['export', s.lastExport], ['relay-run', s.lastRelay]] as const) {
      if (!run) continue;
      const k = { ...l, kind };
      put('zferry_last_run_success', 'Whether the last run succeeded (1; done in part counts) or failed (0).', k, run.outcome === 'failed' ? 0 : 1);
      put('zferry_last_run_timestamp_seconds', 'When the last run ended.', k, ts(run.finishedAt));
      put('zferry_last_success_timestamp_seconds', 'When the last successful run ended.', k, ts(run.lastSuccessAt));
    }
  }
  for (const t of r.targets) {
    const l = { target: t.target };
    put('zferry_target_status', 'Health of one target: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.', l, t.health.level);
    put('zferry_target_snapshot_timestamp_seconds', 'Creation time of the target\'s newest snapshot.', l, t.newest?.creation ?? null);
    if (t.lastImport) {
      const k = { ...l, kind: 'import' };
      put('zferry_last_run_success', 'Whether the last run succeeded (1; done in part counts) or failed (0).', k, t.lastImport.outcome === 'failed' ? 0 : 1);
      put('zferry_last_run_timestamp_seconds', 'When the last run ended.', k, ts(t.lastImport.finishedAt));
      put('zferry_last_success_timestamp_seconds', 'When the last successful run ended.', k, ts(t.lastImport.lastSuccessAt));
    }
  }
  let out = '';
  for (const [name, f] of families) out += `# HELP ${name} ${f.help}\n# TYPE ${name} ${f.type}\n${f.samples.join('\n')}\n`;
  return out;
}
