/**
 * Hostile manifests: every one is refused by the reader with a ZferryError
 * naming the field, and import's pre-flight never starts zfs for them. A
 * fast-check property feeds mutated manifests for a bounded number of runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ZferryError } from '../../src/errors.js';
import { MAX_MANIFEST_BYTES, manifestText, parseManifest, readManifest, type Manifest } from '../../src/bundle/manifest.js';
import { Zfs, type Runner, type ZfsCapabilities } from '../../src/zfs/index.js';
import { runImport } from '../../src/commands/import.js';
import { ZFS_FUSE_CAPS } from '../helpers/caps.js';

const SHA = 'a'.repeat(64);

function good(): Manifest {
  return {
    format: 'zferry-bundle', formatVersion: 1, bundleId: '0b7c2f0e-1d2a-4b3c-8d4e-5f6a7b8c9d0e', createdAt: '2026-11-26T07:00:00.000Z', zferryVersion: '0.1.0',
    source: { host: 'src', pool: 'tank', root: 'tank/data', poolGuid: '42' },
    basis: { origin: 'empty', file: null, target: null, takenAt: null, inventory: null },
    inventory: {
      root: 'tank/data',
      datasets: [
        { path: '', type: 'filesystem', guid: '7', snapshots: [{ name: 's1', guid: '1000', createtxg: '10', creation: 1700000000 }], bookmarks: [] },
        { path: 'my data', type: 'filesystem', guid: '8', snapshots: [], bookmarks: [] },
      ],
    },
    compression: { algorithm: 'zstd', level: 3 },
    streams: [
      { index: 1, dataset: '', type: 'filesystem', kind: 'full', from: null, to: { name: 's1', guid: '1000' }, intermediates: false,
        creates: [{ name: 's1', guid: '1000' }], force: false, sendFlags: [], rawBytes: 100, storedBytes: 30, rawSha256: SHA,
        volumes: [{ file: 'streams/0001-full.zst.000', bytes: 20, sha256: SHA }, { file: 'streams/0001-full.zst.001', bytes: 10, sha256: SHA }] },
      { index: 2, dataset: 'my data', type: 'filesystem', kind: 'create', from: null, to: null, intermediates: false,
        creates: [], force: false, sendFlags: [], rawBytes: 0, storedBytes: 0, rawSha256: null, volumes: [] },
    ],
  };
}

type Mutable = Record<string, any>;

/** Each case: what it does to a good manifest, and what the refusal must mention. */
const DEEP = '__deep__';
const DEEP_TEXT = '['.repeat(200000) + ']'.repeat(200000);

const CASES: Array<[string, (m: Mutable) => void, RegExp]> = [
  ['volume name with ..', (m) => { m.streams[0].volumes[0].file = 'streams/../../etc/passwd'; }, /\/streams\/0\/volumes\/0\/file/],
  ['volume name absolute', (m) => { m.streams[0].volumes[0].file = '/etc/passwd'; }, /\/streams\/0\/volumes\/0\/file/],
  ['volume name with a NUL', (m) => { m.streams[0].volumes[0].file = 'streams/0001-full.zst.000\u0000'; }, /\/streams\/0\/volumes\/0\/file/],
  ['volume name with a slash inside', (m) => { m.streams[0].volumes[0].file = 'streams/0001-full.zst.000/x'; }, /\/streams\/0\/volumes\/0\/file/],
  ['volume of another stream', (m) => { m.streams[0].volumes[1].file = 'streams/0002-full.zst.001'; }, /\/streams\/0\/volumes\/1\/file/],
  ['dataset ..', (m) => { m.streams[1].dataset = '..'; }, /\/streams\/1\/dataset/],
  ['dataset climbing out', (m) => { m.streams[1].dataset = 'a/../../b'; }, /\/streams\/1\/dataset/],
  ['dataset absolute', (m) => { m.streams[1].dataset = '/pool/other'; }, /\/streams\/1\/dataset/],
  ['dataset with ;', (m) => { m.streams[1].dataset = 'a;rm -rf /'; }, /\/streams\/1\/dataset/],
  ['dataset with $()', (m) => { m.streams[1].dataset = '$(reboot)'; }, /\/streams\/1\/dataset/],
  ['dataset with backquote', (m) => { m.streams[1].dataset = 'a`id`'; }, /\/streams\/1\/dataset/],
  ['dataset with newline', (m) => { m.streams[1].dataset = 'a\nb'; }, /\/streams\/1\/dataset/],
  ['dataset with @', (m) => { m.streams[1].dataset = 'a@b'; }, /\/streams\/1\/dataset/],
  ['dataset with trailing /', (m) => { m.streams[1].dataset = 'a/'; }, /\/streams\/1\/dataset/],
  ['inventory path climbing out', (m) => { m.inventory.datasets[1].path = '../x'; }, /\/inventory\/datasets\/1\/path/],
  ['source root ..', (m) => { m.source.root = '../tank'; }, /\/source\/root/],
  ['snapshot name with /', (m) => { m.streams[0].to.name = 's1/../x'; }, /\/streams\/0\/to\/name/],
  ['snapshot name with ;', (m) => { m.streams[0].creates[0].name = 's1;id'; }, /\/streams\/0\/creates\/0\/name/],
  ['host with NUL', (m) => { m.source.host = 'a\u0000b'; }, /\/source\/host/],
  ['guid beyond 2^64', (m) => { m.streams[0].to.guid = '18446744073709551616'; }, /\/streams\/0\/to\/guid.*18446744073709551615/],
  ['guid negative', (m) => { m.streams[0].to.guid = '-1'; }, /\/streams\/0\/to\/guid/],
  ['guid as a JSON number', (m) => { m.source.poolGuid = 9007199254740993; }, /\/source\/poolGuid/],
  ['size beyond 2^53', (m) => { m.streams[0].rawBytes = 2 ** 53; }, /\/streams\/0\/rawBytes/],
  ['size negative', (m) => { m.streams[0].volumes[0].bytes = -20; }, /\/streams\/0\/volumes\/0\/bytes/],
  ['size fractional', (m) => { m.streams[0].storedBytes = 30.5; }, /\/streams\/0\/storedBytes/],
  ['sizes that do not add up', (m) => { m.streams[0].storedBytes = 31; }, /\/streams\/0\/storedBytes/],
  ['volume sizes adding past 2^53', (m) => { m.streams[0].volumes[0].bytes = 2 ** 53 - 1; m.streams[0].storedBytes = 2 ** 53 - 1; }, /\/streams\/0\/(volumes|storedBytes)/],
  ['10000 streams', (m) => { m.streams = Array.from({ length: 10000 }, () => m.streams[1]); }, /\/streams/],
  ['1001 volumes', (m) => { m.streams[0].volumes = Array.from({ length: 1001 }, () => m.streams[0].volumes[0]); }, /\/streams\/0\/volumes/],
  ['17 send flags', (m) => { m.streams[0].sendFlags = Array(17).fill('-I'); }, /\/streams\/0\/sendFlags/],
  ['send flag that is not one', (m) => { m.streams[0].sendFlags = ['--exec=sh']; }, /\/streams\/0\/sendFlags\/0/],
  // The text is built by hand (JSON.stringify itself would overflow the stack): see DEEP.
  ['deep nesting', (m) => { m.basis.inventory = DEEP; }, /\/basis\/inventory/],
  ['unknown field', (m) => { m.streams[0].exec = 'sh'; }, /\/streams\/0/],
  ['stream numbering', (m) => { m.streams[1].index = 7; }, /\/streams\/1\/index/],
  ['unknown format version', (m) => { m.formatVersion = 3; }, /format version 3 is not supported by zferry \S+ \(supports 1, 2\)/],
  ['format version as a string', (m) => { m.formatVersion = '1'; }, /format version "1" is not supported/],
  ['not a zferry manifest', (m) => { m.format = 'zfs-bundle'; }, /not a zferry manifest/],
  ['encryption with a bad recipient', (m) => { m.encryption = { algorithm: 'age', recipients: ['age1$(id)'] }; }, /\/encryption\/recipients\/0/],
  ['encrypted, but plain volume names', (m) => { m.encryption = { algorithm: 'age', recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'] }; }, /\/streams\/0\/volumes\/0\/file.*\.zst\.age\.000/],
];

/** Caps as zfs-fuse's, minus -p: nothing here may depend on what zfs can do. */
const CAPS: ZfsCapabilities = { ...ZFS_FUSE_CAPS, send: { ...ZFS_FUSE_CAPS.send, props: false } };

/** A zfs adapter whose every command is recorded and fails: proof that nothing reached zfs. */
function recordingZfs(): { zfs: Zfs; calls: string[][] } {
  const calls: string[][] = [];
  const runner: Runner = { run: async (cmd, args) => { calls.push([cmd, ...args]); return { stdout: '', stderr: 'recorder: zfs must not run', exitCode: 1 }; } };
  return { zfs: Zfs.withCapabilities(CAPS, { runner, zfs: '/nonexistent/zfs-recorder', zpool: '/nonexistent/zpool-recorder' }), calls };
}

/** Writes `text` as a bundle's manifest and runs import on it with the recording adapter. */
async function importRefuses(text: string): Promise<{ err: unknown; calls: string[][]; callCount: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-hostile-'));
  try {
    await mkdir(join(dir, 'streams'));
    await writeFile(join(dir, 'manifest.json'), text);
    const { zfs, calls } = recordingZfs();
    let err: unknown = null;
    try {
      await runImport(zfs, { path: dir, target: 'pool/target', dryRun: false, force: false });
    } catch (e) {
      err = e;
    }
    return { err, calls, callCount: zfs.callCount };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('the good manifest parses', () => {
  parseManifest(manifestText(good()), 'manifest.json');
});

test(`${CASES.length} hostile manifests are refused, naming the field, before any zfs command`, async () => {
  for (const [name, mutate, expect] of CASES) {
    const m = good() as Mutable;
    mutate(m);
    const text = JSON.stringify(m).replace(JSON.stringify(DEEP), DEEP_TEXT);
    assert.throws(() => parseManifest(text, 'manifest.json'), (err: unknown) => {
      assert.ok(err instanceof ZferryError, `${name}: expected a ZferryError, got ${String(err)}`);
      assert.match(err.message, /^manifest\.json: /, name);
      assert.match(err.message, expect, name);
      assert.ok(!err.message.includes('\n'), `${name}: one line`);
      return true;
    }, name);
    const r = await importRefuses(text);
    assert.ok(r.err instanceof ZferryError, `${name}: import must refuse with a ZferryError`);
    assert.deepEqual(r.calls, [], `${name}: zfs was run`);
    assert.equal(r.callCount, 0, name);
  }
});

test('a manifest larger than any zferry writes is refused before it is read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-huge-'));
  try {
    const fh = await open(join(dir, 'manifest.json'), 'w');
    await fh.truncate(MAX_MANIFEST_BYTES + 1); // sparse: costs no disk
    await fh.close();
    await assert.rejects(readManifest(dir), /manifest\.json: \d+ bytes is larger than any manifest zferry writes/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const SAFE_VOLUME = /^streams\/[0-9]{4}-(full|incr)\.zst(\.age)?\.[0-9]{3}$/;
const SAFE_PATH = /^(?:[A-Za-z0-9_.: -]+(?:\/[A-Za-z0-9_.: -]+)*)?$/;

/** Every JSON path of a value, objects and arrays included. */
function paths(v: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  const out = [at];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, i])));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}

const ALL_PATHS = paths(good()).filter((p) => p.length > 0);
const HOSTILE_STRINGS = ['..', '../..', '/', '/etc/passwd', '\u0000', '$(id)', ';', ' ', '`', '\n', 'streams/0001-full.zst.000', '-1', '18446744073709551616', 'age1x'];

const mutation = fc.oneof(
  fc.record({ op: fc.constant('replace' as const), at: fc.constantFrom(...ALL_PATHS), value: fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom<unknown>(...HOSTILE_STRINGS, 2 ** 53, -1, 1e308, 0.5, null)) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.constantFrom(...ALL_PATHS) }),
  fc.record({ op: fc.constant('append' as const), at: fc.constantFrom(...ALL_PATHS), value: fc.constantFrom(...HOSTILE_STRINGS) }),
);

function apply(m: Mutable, mut: { op: 'replace' | 'delete' | 'append'; at: Array<string | number>; value?: unknown }): void {
  let parent: any = m;
  for (const k of mut.at.slice(0, -1)) {
    if (parent === null || typeof parent !== 'object' || !(k in parent)) return;
    parent = parent[k];
  }
  const key = mut.at[mut.at.length - 1];
  if (parent === null || typeof parent !== 'object' || !(key in parent)) return;
  if (mut.op === 'delete') {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
  } else if (mut.op === 'append') {
    parent[key] = typeof parent[key] === 'string' ? parent[key] + String(mut.value) : mut.value;
  } else {
    parent[key] = mut.value;
  }
}

test('fuzz: mutated manifests are accepted only when safe, refused only with a ZferryError, and never reach zfs', async () => {
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.option(fc.array(fc.nat(), { minLength: 1, maxLength: 3 })), async (muts, textEdits) => {
      const m = good() as Mutable;
      for (const mut of muts) apply(m, mut);
      let text = JSON.stringify(m, null, 2);
      // Some runs also damage the text itself: a byte dropped or duplicated.
      for (const at of textEdits ?? []) {
        const i = at % (text.length + 1);
        text = at % 2 === 0 ? text.slice(0, i) + text.slice(i + 1) : text.slice(0, i) + text[i] + text.slice(i);
      }
      let parsed: Manifest | null = null;
      try {
        parsed = parseManifest(text, 'manifest.json');
      } catch (err) {
        assert.ok(err instanceof ZferryError, `non-ZferryError thrown: ${String(err)}`);
        refused++;
      }
      if (parsed) {
        for (const s of parsed.streams) {
          assert.match(s.dataset, SAFE_PATH);
          for (const v of s.volumes) assert.match(v.file, SAFE_VOLUME);
        }
        return;
      }
      const r = await importRefuses(text);
      assert.ok(r.err instanceof ZferryError, `import threw ${String(r.err)}`);
      assert.equal(r.callCount, 0, 'zfs was run for a refused manifest');
      assert.deepEqual(r.calls, []);
    }),
    { numRuns: 300, seed: 20261126 },
  );
  assert.ok(refused > 100, `most mutations should be refused (refused ${refused})`);
});

test('the precompiled validators (npm run build) are in use, and judge exactly as ajv compiling the schemas here does', async () => {
  const { createRequire } = await import('node:module');
  const { PRECOMPILED, schemaAjv, validatorSource } = await import('../../src/schemas.js');
  assert.equal(validatorSource(), 'precompiled', 'dist/src/schemas.precompiled.cjs missing or stale: run npm run build');
  const pre = createRequire(import.meta.url)(PRECOMPILED) as Record<string, (d: unknown) => boolean> & Record<string, { errors?: unknown }>;
  const { ajv, ids } = schemaAjv();
  const verdict = (fn: { (d: unknown): boolean; errors?: unknown }, d: unknown) => ({ ok: fn(d), errors: JSON.stringify(fn.errors ?? null) });
  for (const [name, id] of Object.entries(ids)) {
    for (const doc of [{}, null, 'x', { format: 'zferry-bundle' }]) {
      assert.deepEqual(verdict(pre[name] as never, doc), verdict(ajv.getSchema(id)!, doc), `${name} on ${JSON.stringify(doc)}`);
    }
  }
  await fc.assert(
    fc.property(fc.array(mutation, { minLength: 0, maxLength: 4 }), (muts) => {
      const m = good() as Mutable;
      for (const mut of muts) apply(m, mut);
      assert.deepEqual(verdict(pre.manifest as never, m), verdict(ajv.getSchema(ids.manifest)!, m));
    }),
    { numRuns: 300, seed: 20261127 },
  );
});
