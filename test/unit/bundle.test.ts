import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, truncate, writeFile, open, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { ZferryError } from '../../src/errors.js';
import {
  FORMAT_VERSION, findBundles, finishBundle, isBundleDir, parseManifest, readManifest, restoreText, shellQuote, sha256sumsText,
  validateManifestSchema, verifyBundle, writeManifestAtomic, type Manifest, type StreamEntry,
} from '../../src/bundle/index.js';
import { writeStream } from '../../src/pipeline/index.js';
import type { Inventory } from '../../src/model.js';

const KiB = 1024;

function inventory(snapshots = 2): Inventory {
  const snaps = Array.from({ length: snapshots }, (_, i) => ({ name: `s${i + 1}`, guid: String(1000 + i), createtxg: String(10 + i), creation: 1700000000 + i }));
  return {
    root: 'tank/data',
    datasets: [
      { path: '', type: 'filesystem', guid: '18446744073709551615', snapshots: snaps, bookmarks: [] },
      { path: 'my data/b', type: 'filesystem', guid: '77', snapshots: [], bookmarks: [] },
    ],
  };
}

/**
 * Adds every stream's dataset and created snapshots to the inventory, as
 * export's inventory always holds them (readers refuse a manifest that does not).
 */
function accountFor(m: any): void {
  for (const s of m.streams ?? []) {
    // Names the schema refuses stay out, so the refusal still names the stream.
    if (typeof s?.dataset !== 'string' || !/^(?:[A-Za-z0-9_.: -]+(?:\/[A-Za-z0-9_.: -]+)*)?$/.test(s.dataset) || /(^|\/)\.\.?(\/|$)/.test(s.dataset)) continue;
    let d = m.inventory.datasets.find((x: any) => x.path === s.dataset);
    if (!d) {
      d = { path: s.dataset, type: s.type === 'volume' ? 'volume' : 'filesystem', guid: '88', snapshots: [], bookmarks: [] };
      m.inventory.datasets.push(d);
    }
    for (const c of Array.isArray(s.creates) ? s.creates : []) {
      if (typeof c?.guid === 'string' && !d.snapshots.some((x: any) => x.guid === c.guid)) {
        d.snapshots.push({ name: c.name, guid: c.guid, createtxg: String(100 + d.snapshots.length), creation: 1700000000 });
      }
    }
  }
}

function baseManifest(streams: StreamEntry[] = [], snapshots = 2): Manifest {
  const m: Manifest = {
    format: 'zferry-bundle', formatVersion: 1, bundleId: randomUUID(), createdAt: new Date().toISOString(), zferryVersion: '0.1.0',
    source: { host: 'src-host', pool: 'tank', root: 'tank/data', poolGuid: '1234567890123456789' },
    basis: { origin: 'empty', file: null, target: null, takenAt: null, inventory: null },
    inventory: inventory(snapshots),
    compression: { algorithm: 'zstd', level: 3 },
    streams,
  };
  accountFor(m);
  return m;
}

function chunked(buf: Buffer, chunk = 64 * KiB): Readable {
  let off = 0;
  return new Readable({ read() { if (off >= buf.length) return void this.push(null); this.push(buf.subarray(off, (off += chunk))); } });
}

/** A finished bundle in the format export writes: a full stream of the root, a create step, an incremental with -F. */
async function makeBundle(): Promise<{ dir: string; m: Manifest; raws: Buffer[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-bundle-'));
  const raws = [Buffer.concat([randomBytes(300 * KiB), Buffer.alloc(500 * KiB, 7)]), Buffer.concat([randomBytes(200 * KiB), Buffer.alloc(100 * KiB)])];
  const full = await writeStream(chunked(raws[0]), { dir, index: 1, kind: 'full', volumeSize: 64 * KiB, level: 3 });
  const incr = await writeStream(chunked(raws[1]), { dir, index: 3, kind: 'incremental', volumeSize: 64 * KiB, level: 3 });
  const m = baseManifest([
    { index: 1, dataset: '', type: 'filesystem', kind: 'full', from: null, to: { name: 's1', guid: '1000' }, intermediates: false,
      creates: [{ name: 's1', guid: '1000' }], force: false, sendFlags: [], ...full },
    { index: 2, dataset: 'my data/b', type: 'filesystem', kind: 'create', from: null, to: null, intermediates: false,
      creates: [], force: false, sendFlags: [], rawBytes: 0, storedBytes: 0, rawSha256: null, volumes: [] },
    { index: 3, dataset: '', type: 'filesystem', kind: 'incremental', from: { name: 's1', guid: '1000' }, to: { name: 's2', guid: '1001' },
      intermediates: true, creates: [{ name: 's2', guid: '1001' }], force: true, sendFlags: ['-I'], ...incr },
  ]);
  const written = await finishBundle(dir, { ...m, formatVersion: FORMAT_VERSION });
  return { dir, m: written, raws };
}

function expectZferry(re: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof ZferryError, `expected ZferryError, got ${String(err)}`);
    assert.match(err.message, re);
    assert.ok(!err.message.includes('\n'), 'message is one line');
    return true;
  };
}

test('a written bundle passes the schema and reads back unchanged', async () => {
  const { dir, m } = await makeBundle();
  try {
    const text = await readFile(join(dir, 'manifest.json'), 'utf8');
    assert.equal(validateManifestSchema(JSON.parse(text)), null);
    assert.deepEqual(await readManifest(dir), m);
    assert.equal(FORMAT_VERSION, 2);
    assert.equal(m.restore?.file, 'RESTORE.txt');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sha256sum -c accepts the SHA256SUMS of a written bundle', async () => {
  const { dir, m } = await makeBundle();
  try {
    const { stdout } = await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir });
    const volumes = m.streams.flatMap((s) => s.volumes);
    assert.equal(stdout.split('\n').filter((l) => l.endsWith(': OK')).length, volumes.length + 1);
    assert.match(stdout, /^RESTORE\.txt: OK$/m);
    const lines = sha256sumsText(m).split('\n');
    assert.equal(lines[0], `${volumes[0].sha256}  streams/0001-full.zst.000`);
    assert.equal(lines[volumes.length], `${m.restore?.sha256}  RESTORE.txt`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('cat of a stream\'s volumes through zstd -d gives the raw stream', async () => {
  const { dir, m, raws } = await makeBundle();
  try {
    const { stdout } = await execa('sh', ['-c', 'cat streams/0003-incr.zst.* | zstd -dc'], { cwd: dir, encoding: 'buffer', stripFinalNewline: false });
    assert.ok(Buffer.from(stdout).equals(raws[1]));
    assert.equal(m.streams[2].rawBytes, raws[1].length);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('verifyBundle accepts a good bundle and counts its bytes', async () => {
  const { dir, m } = await makeBundle();
  try {
    let seen = 0;
    const report = await verifyBundle(dir, { onBytes: (n) => (seen += n) });
    assert.equal(report.streams, 3);
    assert.equal(report.volumes, m.streams[0].volumes.length + m.streams[2].volumes.length);
    assert.equal(report.storedBytes, m.streams[0].storedBytes + m.streams[2].storedBytes);
    assert.equal(seen, report.storedBytes);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('verifyBundle refuses a volume with a flipped byte, naming it', async () => {
  const { dir } = await makeBundle();
  try {
    const path = join(dir, 'streams/0001-full.zst.001');
    const buf = await readFile(path);
    buf[10] ^= 1;
    await writeFile(path, buf);
    await assert.rejects(verifyBundle(dir), expectZferry(/streams\/0001-full\.zst\.001: sha256 is [0-9a-f]{64}, manifest says [0-9a-f]{64}/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('verifyBundle refuses a truncated volume with expected and actual size', async () => {
  const { dir } = await makeBundle();
  try {
    await truncate(join(dir, 'streams/0003-incr.zst.000'), 5);
    await assert.rejects(verifyBundle(dir), expectZferry(/streams\/0003-incr\.zst\.000: size is 5 bytes, manifest says 65536 \(truncated\)/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('verifyBundle refuses an extra-long volume', async () => {
  const { dir } = await makeBundle();
  try {
    const fh = await open(join(dir, 'streams/0001-full.zst.000'), 'a');
    await fh.write(Buffer.from('x'));
    await fh.close();
    await assert.rejects(verifyBundle(dir), expectZferry(/0001-full\.zst\.000: size is 65537 bytes, manifest says 65536 \(too long\)/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('verifyBundle refuses a missing volume, naming it', async () => {
  const { dir } = await makeBundle();
  try {
    await rm(join(dir, 'streams/0003-incr.zst.001'));
    await assert.rejects(verifyBundle(dir), expectZferry(/missing volume .*streams\/0003-incr\.zst\.001/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('verifyBundle refuses a stray volume file that cat would pick up', async () => {
  const { dir, m } = await makeBundle();
  try {
    const next = String(m.streams[0].volumes.length).padStart(3, '0');
    await writeFile(join(dir, `streams/0001-full.zst.${next}`), 'stale');
    await assert.rejects(verifyBundle(dir), expectZferry(/0001-full\.zst\.\d{3}: not listed in manifest\.json/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('verifyBundle refuses a SHA256SUMS that disagrees with the manifest', async () => {
  const { dir } = await makeBundle();
  try {
    const sums = (await readFile(join(dir, 'SHA256SUMS'), 'utf8')).split('\n');
    sums.splice(1, 1);
    await writeFile(join(dir, 'SHA256SUMS'), sums.join('\n'));
    await assert.rejects(verifyBundle(dir), expectZferry(/SHA256SUMS: does not match manifest\.json: line 2/));
    await rm(join(dir, 'SHA256SUMS'));
    await assert.rejects(verifyBundle(dir), expectZferry(/SHA256SUMS: missing/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Parses a variant of a valid manifest changed by `edit`. */
function parseEdited(edit: (m: any) => void): Manifest {
  const m: any = baseManifest([
    { index: 1, dataset: 'a', type: 'filesystem', kind: 'full', from: null, to: { name: 's1', guid: '5' }, intermediates: false,
      creates: [{ name: 's1', guid: '5' }], force: false, sendFlags: ['-p'], rawBytes: 10, storedBytes: 30, rawSha256: 'a'.repeat(64),
      volumes: [{ file: 'streams/0001-full.zst.000', bytes: 20, sha256: 'b'.repeat(64) }, { file: 'streams/0001-full.zst.001', bytes: 10, sha256: 'c'.repeat(64) }] },
  ]);
  edit(m);
  accountFor(m);
  return parseManifest(JSON.stringify(m), '/b/manifest.json');
}

test('parseManifest accepts the reference manifest', () => {
  assert.equal(parseEdited(() => undefined).streams.length, 1);
});

test('parseManifest refuses an unknown format version by name before the schema', () => {
  assert.throws(() => parseEdited((m) => { m.formatVersion = 7; m.newField = 1; }),
    expectZferry(/^\/b\/manifest\.json: bundle format version 7 is not supported by zferry \S+ \(supports 1, 2\)$/));
});

test('parseManifest refuses invalid JSON and non-manifests, naming the file', () => {
  assert.throws(() => parseManifest('{', 'x/manifest.json'), expectZferry(/^x\/manifest\.json: not valid JSON/));
  assert.throws(() => parseManifest('{"format":"tar"}', 'x/manifest.json'), expectZferry(/^x\/manifest\.json: not a zferry manifest/));
});

test('a schema failure names the JSON path', () => {
  assert.throws(() => parseEdited((m) => { m.streams[0].kind = 'delta'; }), expectZferry(/manifest\.json: \/streams\/0\/kind must be equal to one of the allowed values/));
  assert.throws(() => parseEdited((m) => { m.source.extra = 1; }), expectZferry(/\/source must NOT have additional properties \("extra"\)/));
});

test('parseManifest refuses a guid above 2^64-1', () => {
  assert.throws(() => parseEdited((m) => { m.inventory.datasets[0].snapshots[1].guid = '18446744073709551616'; }),
    expectZferry(/\/inventory\/datasets\/0\/snapshots\/1\/guid must be at most 18446744073709551615/));
  assert.throws(() => parseEdited((m) => { m.streams[0].to.guid = '123456789012345678901'; }), expectZferry(/\/streams\/0\/to\/guid must match pattern/));
});

test('parseManifest refuses negative and beyond-2^53 sizes', () => {
  assert.throws(() => parseEdited((m) => { m.streams[0].rawBytes = -1; }), expectZferry(/\/streams\/0\/rawBytes must be >= 0/));
  assert.throws(() => parseEdited((m) => { m.streams[0].volumes[0].bytes = 2 ** 53; }), expectZferry(/\/streams\/0\/volumes\/0\/bytes must be <= 9007199254740991/));
});

test('parseManifest refuses volume files pointing outside the bundle', () => {
  for (const bad of ['../x', '/etc/passwd', 'streams/../../x', 'streams/0001-full.zst.000\u0000']) {
    assert.throws(() => parseEdited((m) => { m.streams[0].volumes[0].file = bad; }), expectZferry(/\/streams\/0\/volumes\/0\/file must match pattern/), bad);
  }
});

test('parseManifest refuses NUL, control characters and dot segments in names', () => {
  assert.throws(() => parseEdited((m) => { m.streams[0].dataset = 'a\u0000b'; }), expectZferry(/\/streams\/0\/dataset must match pattern/));
  assert.throws(() => parseEdited((m) => { m.streams[0].dataset = '../a'; }), expectZferry(/\/streams\/0\/dataset must match/));
  assert.throws(() => parseEdited((m) => { m.streams[0].dataset = '/a'; }), expectZferry(/\/streams\/0\/dataset must match/));
  assert.throws(() => parseEdited((m) => { m.streams[0].dataset = 'a//b'; }), expectZferry(/\/streams\/0\/dataset must match/));
  assert.throws(() => parseEdited((m) => { m.streams[0].to.name = 'a/b'; }), expectZferry(/\/streams\/0\/to\/name must match/));
  assert.throws(() => parseEdited((m) => { m.source.host = 'h\nx'; }), expectZferry(/\/source\/host must match/));
  assert.equal(parseEdited((m) => { m.streams[0].dataset = 'my data/x.y:z'; }).streams[0].dataset, 'my data/x.y:z');
});

test('parseManifest refuses misnumbered streams, misnamed volumes, wrong sums and creates without "to"', () => {
  assert.throws(() => parseEdited((m) => { m.streams[0].index = 2; }), expectZferry(/\/streams\/0\/index must be 1/));
  assert.throws(() => parseEdited((m) => { m.streams[0].volumes[1].file = 'streams/0001-full.zst.002'; }), expectZferry(/\/streams\/0\/volumes\/1\/file must be streams\/0001-full\.zst\.001/));
  assert.throws(() => parseEdited((m) => { m.streams[0].volumes[0].file = 'streams/0001-incr.zst.000'; }), expectZferry(/volumes\/0\/file must be streams\/0001-full\.zst\.000/));
  assert.throws(() => parseEdited((m) => { m.streams[0].storedBytes = 31; }), expectZferry(/\/streams\/0\/storedBytes must equal the sum of its volume sizes \(30\)/));
  assert.throws(() => parseEdited((m) => { m.streams[0].creates = []; }), expectZferry(/\/streams\/0\/creates must include the "to" snapshot s1/));
});

test('writeManifestAtomic replaces the manifest and leaves no temp file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-atomic-'));
  try {
    const a = baseManifest();
    const b = baseManifest();
    await writeManifestAtomic(dir, a);
    await writeManifestAtomic(dir, b);
    assert.deepEqual(await readdir(dir), ['manifest.json']);
    assert.equal((await readManifest(dir)).bundleId, b.bundleId);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a write killed halfway never leaves a partial manifest.json', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-atomic-'));
  const scratch = await mkdtemp(join(tmpdir(), 'zferry-atomic-in-'));
  const moduleUrl = new URL('../../src/bundle/manifest.js', import.meta.url).href;
  try {
    const first = baseManifest([], 50_000);
    await writeManifestAtomic(dir, first);
    // The child rewrites a ~10 MB manifest in a loop until it is killed.
    const child = `
      const { readFileSync } = await import('node:fs');
      const { writeManifestAtomic } = await import(${JSON.stringify(moduleUrl)});
      const m = JSON.parse(readFileSync(process.argv[1], 'utf8'));
      for (let i = 0;; i++) { m.zferryVersion = '0.1.' + i; await writeManifestAtomic(${JSON.stringify(dir)}, m); }
    `;
    const ids = new Set<string>([first.bundleId]);
    const input = join(scratch, 'next.json');
    for (let round = 0; round < 4; round++) {
      const next = baseManifest([], 50_000);
      ids.add(next.bundleId);
      await writeFile(input, JSON.stringify(next));
      const proc = execa('node', ['--input-type=module', '-e', child, input], { reject: false, stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 600 + round * 137));
      proc.kill('SIGKILL');
      const done = await proc;
      assert.equal(done.signal, 'SIGKILL', `child ended on its own: ${done.exitCode}`);
      const m = await readManifest(dir);
      assert.ok(ids.has(m.bundleId), 'manifest.json is always one whole manifest');
      for (const f of await readdir(dir)) if (f !== 'manifest.json') await rm(join(dir, f));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(scratch, { recursive: true, force: true });
  }
});

test('RESTORE.txt lists verify, then one command per stream in apply order, with safe quoting', async () => {
  const { m } = await makeBundle().then(async (b) => (await rm(b.dir, { recursive: true, force: true }), b));
  const text = restoreText(m);
  const commands = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  assert.deepEqual(commands, [
    'set -euo pipefail',
    ': "${TARGET:?set TARGET to the receiving dataset first}"',
    'cd "${BUNDLE:-$(dirname "$0")}"',
    'sha256sum -c SHA256SUMS',
    'cat streams/0001-full.zst.* | zstd -dc | zfs recv -u "$TARGET"',
    `zfs create -p "$TARGET"'/my data/b'`,
    'cat streams/0003-incr.zst.* | zstd -dc | zfs recv -u -F "$TARGET"',
  ]);
  // The quoting survives a real shell, even for a quote character.
  const word = `"$TARGET"${shellQuote("/it's a/b")}`;
  const { stdout } = await execa('bash', ['-c', `TARGET=pool/x; printf '%s' ${word}`]);
  assert.equal(stdout, "pool/x/it's a/b");
});

test('RESTORE.txt run with bash verifies the bundle before anything else', async () => {
  const { dir } = await makeBundle();
  try {
    await truncate(join(dir, 'streams/0001-full.zst.000'), 3);
    await writeFile(join(dir, 'RESTORE.txt'), restoreText(await readManifest(dir)));
    const r = await execa('bash', ['RESTORE.txt'], { cwd: dir, env: { TARGET: 'nopool/x' }, reject: false });
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stdout + r.stderr, /0001-full\.zst\.000: FAILED/);
    assert.doesNotMatch(r.stderr, /zfs/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('findBundles returns the folder itself or its bundle subfolders', async () => {
  const { dir } = await makeBundle();
  const parent = await mkdtemp(join(tmpdir(), 'zferry-find-'));
  try {
    assert.equal(await isBundleDir(dir), true);
    assert.deepEqual(await findBundles(dir), [dir]);
    await mkdir(join(parent, 'b2'));
    await mkdir(join(parent, 'not-a-bundle'));
    await mkdir(join(parent, 'a1'));
    await writeManifestAtomic(join(parent, 'b2'), baseManifest());
    await writeManifestAtomic(join(parent, 'a1'), baseManifest());
    assert.deepEqual(await findBundles(parent), [join(parent, 'a1'), join(parent, 'b2')]);
    assert.equal(await isBundleDir(parent), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(parent, { recursive: true, force: true });
  }
});

test('the schema file is where the package ships it', async () => {
  const file = fileURLToPath(new URL('../../../schemas/manifest.schema.json', import.meta.url));
  const schema = JSON.parse(await readFile(file, 'utf8'));
  assert.match(String(schema.$schema), /2020-12/, `${file} is a JSON Schema`);
  assert.ok(schema.properties?.formatVersion, `${file} describes the manifest's formatVersion`);
});

test("a clone's first stream: accepted with from.dataset, refused when it names its own dataset, a bookmark or -I; RESTORE.txt names the origin", () => {
  const asClone = (m: any) => {
    m.streams[0].kind = 'incremental';
    m.streams[0].from = { name: 'b1', guid: '9', dataset: 'base' };
    m.streams[0].volumes = [{ file: 'streams/0001-incr.zst.000', bytes: 30, sha256: 'b'.repeat(64) }];
  };
  const m = parseEdited(asClone);
  assert.deepEqual(m.streams[0].from, { name: 'b1', guid: '9', dataset: 'base' });
  assert.throws(() => parseEdited((x) => { asClone(x); x.streams[0].from.dataset = 'a'; }), expectZferry(/\/streams\/0\/from\/dataset names the stream's own dataset/));
  assert.throws(() => parseEdited((x) => { asClone(x); x.streams[0].from.bookmark = true; }), expectZferry(/\/streams\/0\/from a clone's origin is a snapshot/));
  assert.throws(() => parseEdited((x) => { asClone(x); x.streams[0].intermediates = true; }), expectZferry(/\/streams\/0\/intermediates/));
  assert.throws(() => parseEdited((x) => { asClone(x); x.streams[0].from.dataset = '../x'; }), expectZferry(/\/streams\/0\/from\/dataset/));
  const restore = restoreText(m).split('\n');
  assert.ok(restore.includes(`cat streams/0001-incr.zst.* | zstd -dc | zfs recv -u -x mountpoint -o canmount=noauto -o origin="$TARGET"'/base''@b1' "$TARGET"'/a'`), restore.join('\n'));
  assert.ok(restore.some((l) => /^# 1\/1 clone a @s1 of base@b1 \(guid 9\)/.test(l)));
});
