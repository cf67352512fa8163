/** Sites' names, hook command lines, the health verdict, metrics, redaction and the shared config, on literal data. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bookmarkName, checkSite, holdTag, isSiteBookmark } from '../../src/state/site.js';
import { journalFile } from '../../src/state/journal.js';
import { runHook, splitCommandLine } from '../../src/hooks.js';
import { jobSpec } from '../../src/cli/job-options.js';
import { assessSite, assessTarget, overall, DEFAULT_THRESHOLDS, type SiteFacts } from '../../src/plan/health.js';
import { renderPrometheus } from '../../src/status/metrics.js';
import { redact } from '../../src/notify.js';
import { parseJobConfig, parseRelayConfig } from '../../src/relay/config.js';
import { parseManifest } from '../../src/bundle/manifest.js';
import { outcomeFileName, readOutcome } from '../../src/state/outcome.js';
import { runJob } from '../../src/job.js';
import { partialImport } from '../../src/commands/figures.js';
import type { StatusReport } from '../../src/commands/status.js';

const GUID = '12345678901234567890';

test('the default site keeps today\'s names; a named site gets its own tag and bookmarks', () => {
  assert.equal(holdTag('default'), 'zferry');
  assert.equal(bookmarkName('default', GUID), `zferry-${GUID}`);
  assert.equal(holdTag('vault'), 'zferry-vault');
  assert.equal(bookmarkName('vault', GUID), `zferry-vault-${GUID}`);
});

test('no site\'s bookmark pattern matches another site\'s bookmarks, the default site\'s included', () => {
  const sites = ['default', 'vault', 'vault-2', 'a', 'a-1', 'a.b', 'x_y'];
  for (const owner of sites) {
    const name = bookmarkName(owner, GUID);
    for (const reader of sites) assert.equal(isSiteBookmark(reader, name), reader === owner, `${reader} reading ${name}`);
  }
  // Bookmarks zferry never made are nobody's.
  for (const other of ['zferry-', 'zferry-abc', 'mine-123', `zferry-${GUID}x`]) assert.equal(isSiteBookmark('default', other), false, other);
});

test('site names that could pass for a guid, a path or an option are refused', () => {
  assert.equal(checkSite(undefined), 'default');
  assert.equal(checkSite('office-2'), 'office-2');
  for (const bad of ['123', '1abc', 'a/b', '-x', '', 'a b', 'x'.repeat(33), 'a@b']) assert.throws(() => checkSite(bad), /must start with a letter/, bad);
});

test('each site has its own journal file; the default site\'s keeps its old name', () => {
  const src = { host: 'h', pool: 'tank', root: 'tank/data', poolGuid: '42' };
  assert.equal(journalFile('/s', src), '/s/journal-42-tank_data.json');
  assert.equal(journalFile('/s', src, 'vault'), '/s/journal-42-tank_data@vault.json');
  assert.equal(outcomeFileName('export', 'tank/data', 'default'), 'last-export-tank_data.json');
  assert.equal(outcomeFileName('relay-run', 'tank', 'vault'), 'last-relay-run-tank@vault.json');
});

test('hook command lines split like a shell\'s words, with nothing expanded', () => {
  assert.deepEqual(splitCommandLine('zpool import backup', 'x'), ['zpool', 'import', 'backup']);
  assert.deepEqual(splitCommandLine(`sh -c 'echo "$HOME" | mail -s "zferry" root'`, 'x'), ['sh', '-c', 'echo "$HOME" | mail -s "zferry" root']);
  assert.deepEqual(splitCommandLine('a "b c" d\\ e "" $x;', 'x'), ['a', 'b c', 'd e', '', '$x;']);
  assert.throws(() => splitCommandLine('sh -c "unbalanced', '--pre'), /^ZferryError: --pre: unbalanced " quote/);
  assert.throws(() => splitCommandLine('   ', '--post'), /--post: empty command/);
});

const NOW = Date.parse('2026-11-29T08:00:00Z') / 1000;
const iso = (secondsAgo: number) => new Date((NOW - secondsAgo) * 1000).toISOString();

function site(over: Partial<SiteFacts> = {}): SiteFacts {
  return {
    source: 'tank', site: 'default', sourceNewest: { name: 'daily-29', creation: NOW - 3600 },
    receipt: { file: '/mnt/disk/receipt-backup.json', takenAt: iso(3600), newest: { name: 'daily-28', creation: NOW - 86400 } },
    pending: [], firstExportAt: iso(30 * 86400), protections: { kept: ['tank@daily-29'], present: ['tank@daily-29'] },
    lastExport: { outcome: 'ok', finishedAt: iso(3600), error: null, lastSuccessAt: iso(3600) }, lastRelay: null,
    ...over,
  };
}

test('a receipt older than --warn warns, older than --crit is critical; defaults 2 and 7 days', () => {
  const t = DEFAULT_THRESHOLDS;
  assert.equal(assessSite(site(), NOW, t).level, 0);
  const at = (days: number) => assessSite(site({ receipt: { file: 'r', takenAt: iso(days * 86400), newest: null } }), NOW, t);
  assert.equal(at(1.9).level, 0);
  assert.equal(at(2).level, 1);
  assert.match(at(3).reasons[0]!, /newest receipt is 3 d 0 h old \(warning at 2 d 0 h\)/);
  assert.equal(at(7).level, 2);
});

test('no receipt yet counts from the first export; nothing exported at all is critical', () => {
  assert.equal(assessSite(site({ receipt: null, firstExportAt: iso(3600) }), NOW, DEFAULT_THRESHOLDS).level, 0);
  assert.equal(assessSite(site({ receipt: null, firstExportAt: iso(8 * 86400) }), NOW, DEFAULT_THRESHOLDS).level, 2);
  const never = assessSite(site({ receipt: null, firstExportAt: null }), NOW, DEFAULT_THRESHOLDS);
  assert.equal(never.level, 2);
  assert.deepEqual(never.reasons, ['nothing exported for this site yet']);
});

test('a failed relay round or export warns with its error line; a vanished base warns', () => {
  const failed = assessSite(site({ lastRelay: { outcome: 'failed', finishedAt: iso(600), error: 'mbuffer: connection refused', lastSuccessAt: iso(90000) } }), NOW, DEFAULT_THRESHOLDS);
  assert.equal(failed.level, 1);
  assert.match(failed.reasons.join('\n'), /last relay round failed 10 min ago: mbuffer: connection refused/);
  const gone = assessSite(site({ protections: { kept: ['tank#zferry-1', 'tank/a#zferry-2'], present: ['tank#zferry-1'] } }), NOW, DEFAULT_THRESHOLDS);
  assert.equal(gone.level, 1);
  assert.match(gone.reasons[0]!, /1 incremental base\(s\) .* tank\/a#zferry-2/);
});

test('pending bundles and bytes add up; a target\'s age and last import are judged alike', () => {
  const h = assessSite(site({ pending: [{ bundleId: 'a', createdAt: iso(10), bundle: '/d/a', storedBytes: 100 }, { bundleId: 'b', createdAt: iso(5), bundle: '/d/b', storedBytes: null }] }), NOW, DEFAULT_THRESHOLDS);
  assert.equal(h.pendingBundles, 2);
  assert.equal(h.pendingBytes, 100);
  assert.equal(assessTarget({ target: 'backup', exists: true, newest: { name: 'x', creation: NOW - 3 * 86400 }, lastImport: null }, NOW, DEFAULT_THRESHOLDS).level, 1);
  assert.equal(assessTarget({ target: 'backup', exists: false, newest: null, lastImport: null }, NOW, DEFAULT_THRESHOLDS).level, 2);
});

test('the overall level: CRITICAL outranks UNKNOWN, nothing to check is UNKNOWN', () => {
  assert.equal(overall([0, 1], []), 1);
  assert.equal(overall([0, 2], ['unreadable record']), 2);
  assert.equal(overall([0, 1], ['unreadable record']), 3);
  assert.equal(overall([], []), 3);
});

test('the Prometheus textfile names every metric zferry_ and escapes label values', () => {
  const facts = site({ source: 'tank/"odd"\\name' });
  const report: StatusReport = {
    level: 0, status: 'OK', checkedAt: iso(0), stateDir: '/s', thresholds: DEFAULT_THRESHOLDS, problems: [],
    sites: [{ ...facts, health: assessSite(facts, NOW, DEFAULT_THRESHOLDS) }], targets: [],
  };
  const text = renderPrometheus(report);
  for (const line of text.trim().split('\n')) {
    if (line.startsWith('#')) assert.match(line, /^# (HELP|TYPE) zferry_/);
    else assert.match(line, /^zferry_[a-z_]+(\{[^}]*\})? -?\d+(\.\d+)?$/);
  }
  assert.match(text, /^zferry_last_receipt_timestamp_seconds\{source="tank\/\\"odd\\"\\\\name",site="default"\} \d+$/m);
  assert.match(text, /^zferry_last_run_success\{source=".*",site="default",kind="export"\} 1$/m);
  assert.match(text, /^zferry_pending_bytes\{.*\} 0$/m);
  // One HELP and TYPE per family, as the exposition format requires.
  assert.equal(text.match(/^# TYPE zferry_pending_bundles /gm)?.length, 1);
});

test('events never carry an age identity or key material, even quoted in an error line', () => {
  const line = 'identity AGE-SECRET-KEY-1QQQSZ7Z6K6Q2W4E7RS9N2XVWGJ4J5XZ2N0Y3M8L9K7J6H5G4F3D2S1A0P9O8 is not valid';
  assert.doesNotMatch(redact(line), /AGE-SECRET-KEY-1Q/);
  const key = 'RWQAAEIy' + 'A'.repeat(150);
  assert.doesNotMatch(redact(`untrusted comment: minisign secret key\n${key}`), /RWQAAEIyAAAA/);
  // Paths, names and hashes stay readable.
  const plain = '/mnt/disk/zferry-tank-20261126T073000Z-1a2b3c4d tank/data@zfs-auto-snap_daily-2026-11-26 ' + 'ab'.repeat(32);
  assert.equal(redact(plain), plain);
});

test('one config file serves every command: export/import read hooks and site; relay run still needs its four keys', () => {
  const c = parseJobConfig(JSON.stringify({ site: 'vault', pre: 'zpool import vault', post: ['zpool', 'export', 'vault'], notify: 'mail root', identity: 'age.key', trustReceiver: 'receiver.pub' }), '/etc/zferry/z.json');
  assert.equal(c.site, 'vault');
  assert.equal(c.trustReceiver, '/etc/zferry/receiver.pub');
  assert.deepEqual(c.pre, ['zpool', 'import', 'vault']);
  assert.deepEqual(c.post, ['zpool', 'export', 'vault']);
  assert.equal(c.identity, '/etc/zferry/age.key');
  assert.throws(() => parseJobConfig('{"site":"9"}', 'z.json'), /z\.json: \/site must match pattern/);
  assert.throws(() => parseJobConfig('{"pre":"sh -c \'x"}', 'z.json'), /^ZferryError: z\.json: \/pre unbalanced ' quote/);
  assert.throws(() => parseJobConfig('{"hooks":1}', 'z.json'), /z\.json: \/ must NOT have additional properties/);
  assert.throws(() => parseRelayConfig('{"source":"tank","site":"vault"}', 'r.json'), /r\.json: \/ must have required property 'spool'/);
  const relay = parseRelayConfig(JSON.stringify({ source: 'tank', spool: 's', to: 'b:1', replyListen: '2', site: 'vault', notify: 'true' }), '/etc/r.json');
  assert.equal(relay.site, 'vault');
  assert.deepEqual(relay.notify, ['true']);
});

test('the example configs in contrib/ are valid for every command', async () => {
  const { readFile } = await import('node:fs/promises');
  const { join, dirname } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const contrib = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'contrib');
  for (const f of ['zferry.example.json', 'relay.example.json']) {
    const text = await readFile(join(contrib, f), 'utf8');
    parseRelayConfig(text, f);
    parseJobConfig(text, f);
  }
});

test('a site in a format 1 manifest is refused; format 2 carries it, and a reader of the default site sees no field', async () => {
  const { makeBundle } = await import('../helpers/bundles.js');
  const { mkdtemp, readFile, rm } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const parent = await mkdtemp(join(tmpdir(), 'zferry-site-manifest-'));
  const dir = await makeBundle(parent);
  try {
    // The helper writes format 1; the same manifest as format 2 needs only `restore`.
    const v1 = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    assert.equal(v1.site, undefined);
    assert.throws(() => parseManifest(JSON.stringify({ ...v1, site: 'vault' }), 'm.json'), /m\.json: \/site/);
    const v2 = { ...v1, formatVersion: 2, restore: { file: 'RESTORE.txt', bytes: 10, sha256: 'a'.repeat(64) } };
    assert.equal(parseManifest(JSON.stringify(v2), 'm.json').site, undefined);
    assert.equal(parseManifest(JSON.stringify({ ...v2, site: 'vault' }), 'm.json').site, 'vault');
    assert.throws(() => parseManifest(JSON.stringify({ ...v2, site: 'default' }), 'm.json'), /m\.json: \/site/);
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
});

test('a hook that outlives --hook-timeout is stopped and fails the job with one line naming it and the limit', async () => {
  const facts = { kind: 'export', source: 'tank', target: '/mnt/vault', bundle: null, site: 'default' };
  const started = Date.now();
  await assert.rejects(runHook('pre', ['sleep', '30'], facts, undefined, 1), (err: Error) => {
    assert.match(err.message, /^--pre hook "sleep 30" failed \(did not end within 1 s and was stopped; --hook-timeout sets the limit\)$/);
    return true;
  });
  assert.ok(Date.now() - started < 15_000, 'stopped near its limit, not after the sleep');
  // Within the limit a hook runs as before.
  await runHook('post', ['true'], facts, 'ok', 5);
});

test('--hook-timeout takes whole seconds ≥ 1; the default is 30 minutes', async () => {
  const facts = { kind: 'export' as const, source: 'tank', target: null, bundle: null, site: 'default', stateDir: null };
  assert.equal((await jobSpec({}, null, facts)).hookTimeoutS, 1800);
  assert.equal((await jobSpec({ hookTimeout: '90' }, null, facts)).hookTimeoutS, 90);
  for (const bad of ['0', '-5', '1.5', 'ten']) await assert.rejects(jobSpec({ hookTimeout: bad }, null, facts), /--hook-timeout: .* is not a whole number of seconds/);
});

test('a job done in part records why as its error line, and status quotes it: a passed-over bundle is not called a conflict', async () => {
  const why = partialImport({ passedOver: ['/d/x/manifest.json.minisig: missing; passed over'], deferred: [], parts: { staged: [], removed: [], waiting: [] } });
  assert.deepEqual(why, { partial: '1 bundle(s) passed over, not vouched for by the --trust key' });
  assert.deepEqual(partialImport({ passedOver: [], deferred: [], parts: { staged: [], removed: [], waiting: [] } }), {});
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'zferry-partial-'));
  try {
    const spec = { kind: 'import' as const, source: null, target: 'backup', bundle: '/d', site: 'default', pre: null, post: null, notify: null, hookTimeoutS: 30, stateDir: dir };
    await runJob(spec, async () => 1, () => ({ result: 'partial', figures: {}, ...why }));
    const rec = (await readOutcome(join(dir, outcomeFileName('import', 'backup', 'default')), dir))!;
    assert.equal(rec.outcome, 'partial');
    assert.equal(rec.error, '1 bundle(s) passed over, not vouched for by the --trust key');
    const h = assessTarget({ target: 'backup', exists: true, newest: { name: 'x', creation: NOW - 60 }, lastImport: { outcome: rec.outcome, finishedAt: rec.finishedAt, error: rec.error, lastSuccessAt: rec.lastSuccessAt } }, Date.parse(rec.finishedAt) / 1000 + 5, DEFAULT_THRESHOLDS);
    assert.ok(h.reasons.some((r) => /was done in part: 1 bundle\(s\) passed over, not vouched for by the --trust key$/.test(r)), h.reasons.join(' | '));
    // A job that ends well records no error line.
    await runJob(spec, async () => 1, () => ({ result: 'ok', figures: {} }));
    assert.equal((await readOutcome(join(dir, outcomeFileName('import', 'backup', 'default')), dir))?.error, null);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
