/**
 * Hostile input that zferry already withstood when issue 11 was filed, kept
 * as tests so it keeps holding (the ZFS and network side is in
 * test/scenario/hostile-held.test.ts):
 * - relay tar streams that climb out with `../` or absolute names, carry
 *   links, devices or folders, repeat entries, or declare huge sizes: refused
 *   at that entry, nothing written outside the spool, nothing promoted; what
 *   arrived before it may stay under .incoming for a resumed push (only the
 *   bundle's own files, never longer than listed) until no offer lists it;
 * - key files of the wrong kind, cut short or damaged: one line naming the
 *   file, never the key's text;
 * - state files for `export --since` that are not JSON, not a state, of
 *   the wrong types, nested 200000 deep, or 4 GiB: one line naming the file;
 * - dataset names that zfs would read as options.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { ZferryError, oneLine } from '../../src/errors.js';
import { RELAY_HEADER, type RelayHeader } from '../../src/relay/pack.js';
import { readHoldings } from '../../src/relay/holdings.js';
import { unpackInto } from '../../src/relay/unpack.js';
import { verifyBundle } from '../../src/bundle/index.js';
import { generateKeyFiles, readPublicKey, readSecretKey } from '../../src/trust/minisign.js';
import { readIdentities, readRecipients } from '../../src/trust/age.js';
import { checkDatasetName } from '../../src/zfs/index.js';
import { readState } from '../../src/state/receipt.js';
import { makeBundle } from '../helpers/bundles.js';
import { bundleEntries, headerEntry, tarBytes, withZeros, type TarEntry } from '../helpers/relay-tar.js';

/** The refusal is a ZferryError of one line matching `re`. */
function oneLineError(re: RegExp, what: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof ZferryError, `${what}: expected a ZferryError, got ${String(err)}`);
    assert.match(err.message, re, what);
    assert.ok(!err.message.includes('\n'), `${what}: one line`);
    return true;
  };
}

/** Every path under dir, relative, folders with a trailing slash. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(dir, p) + (e.isDirectory() ? '/' : ''));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

const GiB1024 = 2 ** 40;

test('hostile relay streams are refused at the hostile entry; nothing lands outside the spool or is promoted, and what .incoming keeps goes when no longer offered', { timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'zferry-held-tar-'));
  try {
    const bundles = join(root, 'bundles');
    const dirA = await makeBundle(bundles);
    const dirB = await makeBundle(bundles);
    const A = basename(dirA);
    const B = basename(dirB);
    const header = await headerEntry([dirA]);
    const both = await headerEntry([dirA, dirB]);
    const entriesA = await bundleEntries(dirA);
    const [manifest, sums, restore, vol0] = entriesA;
    assert.equal(manifest.name, `${A}/manifest.json`);
    assert.match(vol0.name, /\/streams\/0001-full\.zst\.000$/);
    const entriesB = await bundleEntries(dirB);
    const before = await tree(bundles);
    const body = Buffer.from('written by a hostile sender\n');
    const announce = (names: string[]) => headerEntry({ format: 'zferry-relay', formatVersion: 1, bundles: names.map((name) => ({ name, bundleId: 'x', bytes: 1 })), totalBytes: 1 });

    // Every escape aims at `root` from where a naive extractor would write (SPOOL/.incoming/BUNDLE, or SPOOL),
    // or further up: a file named escape-* in root, /tmp or / is a write outside the spool.
    const up = '../'.repeat(3);
    const cases: Array<[string, TarEntry[] | (() => Promise<Readable>), RegExp]> = [
      ['`../` after the manifest', [header, manifest, { name: `${A}/${up}escape-dotdot`, body }], /escape-dotdot is not listed in the bundle's manifest\.json/],
      ['`../` as the bundle\'s first entry', [header, { name: `${A}/${up}escape-first`, body }], /starts with .*escape-first, not manifest\.json/],
      ['`../` outside any bundle', [header, { name: `${up}escape-top`, body }], /escape-top belongs to no bundle announced/],
      ['`../` inside streams/', [header, manifest, sums, restore, { name: `${A}/streams/${up}escape-vol`, body }], /escape-vol is not listed/],
      ['an absolute name', [header, { name: `${root}/escape-abs`, body }], /escape-abs belongs to no bundle announced/],
      ['an absolute name after the bundle\'s folder', [header, manifest, { name: `${A}/${root}/escape-abs2`, body }], /escape-abs2 is not listed/],
      ['a pax header renaming a volume to `../`', [header, manifest, sums, restore, { ...vol0, pax: { path: `${up}escape-pax` } }], /escape-pax belongs to no bundle announced/],
      ['a symlink at a volume\'s name, then the volume', [header, manifest, sums, restore, { name: vol0.name, type: 'symlink', linkname: `${root}/escape-via-link` }, vol0], /streams\/0001-full\.zst\.000 is a symlink, only files are accepted/],
      ['a symlink as the bundle folder', [header, { name: A, type: 'symlink', linkname: root }, manifest], new RegExp(`${A} is a symlink`)],
      ['a symlink as the relay header', [{ name: RELAY_HEADER, type: 'symlink', linkname: '/etc/passwd' }], /\.zferry-relay\.json is not JSON/],
      ['a hard link to /etc/passwd', [header, manifest, { name: sums.name, type: 'link', linkname: '/etc/passwd' }], /SHA256SUMS is a link, only files/],
      ['a character device', [header, manifest, { name: vol0.name, type: 'character-device' }], /is a character-device/],
      ['a block device', [header, manifest, { name: vol0.name, type: 'block-device' }], /is a block-device/],
      ['a FIFO', [header, manifest, { name: vol0.name, type: 'fifo' }], /is a fifo/],
      ['a folder where a file goes', [header, manifest, { name: `${A}/streams/`, type: 'directory' }], /is a directory/],
      ['a header announcing `..`', [await announce(['..']), { name: `../escape-hdr`, body }], /"\.\." is not a (plain folder name|zferry bundle folder name)/],
      ['a header announcing a path', [await announce([`${A}/../../escape-hdr2`])], /is not a (plain folder name|zferry bundle folder name)/],
      ['a header announcing an absolute folder', [await announce([`${root}/escape-hdr3`])], /is not a (plain folder name|zferry bundle folder name)/],
      ['a header announcing the spool\'s .incoming', [await announce(['.incoming'])], /is not a (plain folder name|zferry bundle folder name)/],
      ['the manifest twice', [header, manifest, manifest], /manifest\.json sent twice/],
      ['SHA256SUMS twice, the second one different', [header, manifest, sums, { name: sums.name, body: Buffer.from('0'.repeat(64) + '  streams/x\n') }], /SHA256SUMS sent twice/],
      ['a volume twice', [header, manifest, sums, restore, vol0, vol0], /0001-full\.zst\.000 sent twice/],
      ['a bundle again after another', [both, ...entriesA, ...entriesB, manifest], new RegExp(`bundle ${A} appears twice`)],
      ['a volume declaring 2^40 bytes', [header, manifest, sums, restore, { ...vol0, size: GiB1024 }], new RegExp(`0001-full\\.zst\\.000 is ${GiB1024} bytes, manifest\\.json says ${vol0.body!.length}`)],
      ['a volume declaring 2^60 bytes', [header, manifest, sums, restore, { ...vol0, size: 2 ** 60 }], /0001-full\.zst\.000 is \d+ bytes, manifest\.json says/],
      ['a relay header declaring 2^40 bytes, 80 MiB of them sent',
        async () => withZeros(await tarBytes([{ name: RELAY_HEADER, size: GiB1024, body: Buffer.alloc(0) }]), 80 * 1024 * 1024),
        /\.zferry-relay\.json is larger than 67108864 bytes/],
      ['a manifest declaring 2^40 bytes, 80 MiB of them sent',
        async () => withZeros(await tarBytes([header, { name: manifest.name, size: GiB1024, body: Buffer.alloc(0) }]), 80 * 1024 * 1024),
        /manifest\.json is larger than 67108864 bytes/],
      ['SHA256SUMS declaring 2^40 bytes, 80 MiB of them sent',
        async () => withZeros(await tarBytes([header, manifest, { name: sums.name, size: GiB1024, body: Buffer.alloc(0) }]), 80 * 1024 * 1024),
        /SHA256SUMS is larger than 67108864 bytes/],
    ];

    let n = 0;
    const kept_: string[] = [];
    for (const [what, entries, expect] of cases) {
      const spool = join(root, `spool-${++n}`);
      const source = typeof entries === 'function' ? await entries() : Readable.from([await tarBytes(entries)]);
      await assert.rejects(unpackInto(spool, source, { source: '1234567890123456789:tank' }), oneLineError(expect, what), what);
      // Bundles announced and complete before the hostile entry stay (verified before their rename); nothing else does.
      const left = (await readdir(spool)).filter((x) => x !== '.incoming');
      assert.ok(left.every((x) => x === A || x === B), `${what}: ${left}`);
      for (const x of left) await verifyBundle(join(spool, x));
      // What arrived in order before the refusal may stay under .incoming for a resumed push (issue 14):
      // only files the announced bundle's manifest lists, no longer than it says, never promoted.
      for (const kept of await readdir(join(spool, '.incoming'))) {
        assert.ok(kept === A || kept === B, `${what}: .incoming holds only announced bundles: ${kept}`);
        const listed = new Map((kept === A ? entriesA : entriesB).map((e) => [relative(kept, e.name), e.body!.length]));
        for (const f of await tree(join(spool, '.incoming', kept))) {
          if (f.endsWith('/')) continue;
          assert.ok(listed.has(f), `${what}: kept ${kept}/${f} is a file of the bundle`);
          assert.ok((await readFile(join(spool, '.incoming', kept, f))).length <= listed.get(f)!, `${what}: kept ${kept}/${f} is no longer than the bundle's`);
        }
        kept_.push(spool);
      }
    }
    // A kept prefix goes once no offer lists its bundle (pruned or applied by the sender's receipt).
    for (const spool of kept_) {
      await readHoldings(spool, { format: 'zferry-relay', formatVersion: 2, phase: 'offer', bundles: [], totalBytes: 0 } satisfies RelayHeader);
      assert.deepEqual(await readdir(join(spool, '.incoming')), [], `${spool}: .incoming is emptied when its bundles are no longer offered`);
    }
    const escaped = [...(await tree(root)), ...(await readdir('/tmp')), ...(await readdir('/'))].filter((p) => p.includes('escape-'));
    assert.deepEqual(escaped, [], 'nothing written outside the spool');
    assert.deepEqual(await tree(bundles), before, 'the sent bundles are untouched');

    // Positive control: the same entries, in order, make bundles that arrive and verify.
    const spool = join(root, 'spool-good');
    const r = await unpackInto(spool, Readable.from([await tarBytes([both, ...entriesA, ...entriesB])]), { source: '1234567890123456789:tank' });
    assert.deepEqual(r.bundles.map((d) => basename(d)), [A, B]);
    for (const d of r.bundles) await verifyBundle(d);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('key files of the wrong kind, cut short or damaged are refused with one line naming the file, never quoting the key', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-held-keys-'));
  try {
    const key = join(dir, 'key');
    await generateKeyFiles(key);
    const secretText = await readFile(key, 'utf8');
    const pubText = await readFile(`${key}.pub`, 'utf8');
    const file = async (name: string, data: string | Buffer) => {
      const p = join(dir, name);
      await writeFile(p, data);
      return p;
    };
    const refuses = async (p: Promise<unknown>, f: string, re: RegExp, secret?: string) => {
      await assert.rejects(p, (err: unknown) => {
        oneLineError(re, f)(err);
        assert.ok((err as Error).message.startsWith(`${f}: `), `${f}: the message starts with the file: ${(err as Error).message}`);
        if (secret) assert.ok(!(err as Error).message.includes(secret.slice(0, 20)), `${f}: the message quotes the key`);
        return true;
      });
    };

    // minisign: a public key where the secret key goes, and the other way round.
    await refuses(readSecretKey(`${key}.pub`), `${key}.pub`, /not a zferry signing key/);
    await refuses(readPublicKey(key), key, /not a minisign public key/);
    // Cut short: before the key id line, inside the PEM body, after the comment of a public key.
    await refuses(readSecretKey(await file('cut-head', secretText.slice(0, 40))), join(dir, 'cut-head'), /not a zferry signing key/);
    const pemAt = secretText.indexOf('-----BEGIN');
    await refuses(readSecretKey(await file('cut-pem', secretText.slice(0, pemAt + 50))), join(dir, 'cut-pem'), /not a readable PEM private key/);
    await refuses(readPublicKey(await file('cut.pub', pubText.split('\n')[0] + '\n')), join(dir, 'cut.pub'), /not a minisign public key/);
    await refuses(readSecretKey(await file('empty', '')), join(dir, 'empty'), /not a zferry signing key/);
    await refuses(readSecretKey(await file('huge', Buffer.alloc(1024 * 1024, 0x41))), join(dir, 'huge'), /too large for a secret key file/);
    await mkdir(join(dir, 'folder'));
    await refuses(readSecretKey(join(dir, 'folder')), join(dir, 'folder'), /cannot read secret key/);
    await refuses(readPublicKey(join(dir, 'folder')), join(dir, 'folder'), /cannot read public key/);

    // age: an identity cut short or with one character changed; a minisign key given as an identity.
    const idFile = join(dir, 'age.txt');
    await execa('age-keygen', ['-o', idFile]);
    const idText = await readFile(idFile, 'utf8');
    const secretLine = idText.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;
    await refuses(readIdentities(await file('age-cut.txt', secretLine.slice(0, 40) + '\n')), join(dir, 'age-cut.txt'), /line 1 is not a valid age identity/, secretLine);
    const flipped = secretLine.slice(0, -1) + (secretLine.endsWith('Q') ? 'P' : 'Q');
    await refuses(readIdentities(await file('age-flip.txt', idText.replace(secretLine, flipped))), join(dir, 'age-flip.txt'), /line \d+ is not a valid age identity/, secretLine);
    await refuses(readIdentities(key), key, /no AGE-SECRET-KEY-1… line/);
    assert.deepEqual(await readIdentities(idFile), [secretLine]);
    // A recipient cut short is refused when read, not when the first stream is encrypted.
    const recipient = (await execa('age-keygen', ['-y', idFile])).stdout.trim();
    await assert.rejects(readRecipients([recipient.slice(0, 40)]), oneLineError(/--encrypt-to age1\S+: not an age recipient/, 'cut recipient'));
    // One character changed: never to the one it already is (a recipient ends in x one time in 32).
    const changed = recipient.slice(0, -1) + (recipient.endsWith('x') ? 'y' : 'x');
    await refuses(readRecipients([await file('recipients.txt', `# mine\n${changed}\n`)]), join(dir, 'recipients.txt'), /line 1 is not an age recipient/);
    assert.deepEqual(await readRecipients([recipient]), [recipient]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('hostile state files (export --since) are refused by readState with one line naming the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-held-state-'));
  try {
    const good = {
      format: 'zferry-state', formatVersion: 1, takenAt: '2026-11-26T07:00:00.000Z', host: 'remote', zferryVersion: '0.1.0', target: 'backup/tank',
      source: { host: 'src', pool: 'tank', root: 'tank', poolGuid: '42' }, bundles: [],
      inventory: { root: 'backup/tank', datasets: [{ path: '', type: 'filesystem', guid: '7', snapshots: [{ name: 's1', guid: '1000', createtxg: '10', creation: 1700000000 }], bookmarks: [] }] },
    };
    const deep = (open: string, close: string) => open.repeat(200_000) + '1' + close.repeat(200_000);
    /** The good state with `field` replaced by raw JSON text. */
    const withRaw = (field: string, raw: string) => JSON.stringify({ ...good, [field]: '@@' }).replace('"@@"', () => raw);
    const ds0 = (patch: object) => JSON.stringify({ ...good, inventory: { ...good.inventory, datasets: [{ ...good.inventory.datasets[0], ...patch }] } });
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ['not JSON', 'garbage{', /not valid JSON/],
      ['empty', '', /not valid JSON/],
      ['binary', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)), /not valid JSON/],
      ['a JSON array', '[]', /\/ must be object/],
      ['JSON null', 'null', /\/ must be object/],
      ['a JSON string', '"zferry-state"', /\/ must be object/],
      ['a manifest', JSON.stringify({ format: 'zferry-bundle', formatVersion: 1 }), /must have required property/],
      ['another format version', withRaw('formatVersion', '9'), /state format version 9 is not supported/],
      ['the version as a string', withRaw('formatVersion', '"1"'), /state format version "1" is not supported/],
      ['200000 nested arrays', deep('[', ']'), /\/ must be object/],
      ['200000 nested arrays as the inventory', withRaw('inventory', deep('[', ']')), /\/inventory must be object/],
      ['200000 nested objects as the inventory', withRaw('inventory', deep('{"a":', '}')), /\/inventory must have required property/],
      ['200000 nested objects in an unknown field', withRaw('extra', deep('{"a":', '}')), /must NOT have additional properties/],
      ['bundles as an object', withRaw('bundles', '{}'), /\/bundles must be array/],
      ['takenAt as a number', withRaw('takenAt', '5'), /\/takenAt must be string/],
      ['datasets as a string', JSON.stringify({ ...good, inventory: { ...good.inventory, datasets: 'all' } }), /\/inventory\/datasets must be array/],
      ['a guid as a JSON number', ds0({ guid: 7 }), /\/inventory\/datasets\/0\/guid must be string/],
      ['a snapshot list of strings', ds0({ snapshots: ['s1'] }), /\/inventory\/datasets\/0\/snapshots\/0 must be object/],
      ['a dataset path climbing out', ds0({ path: '../x' }), /\/inventory\/datasets\/0\/path/],
    ];
    // Positive control: the good state reads.
    await writeFile(join(dir, 'good.json'), JSON.stringify(good));
    assert.equal((await readState(join(dir, 'good.json'))).target, 'backup/tank');
    let n = 0;
    for (const [what, text, expect] of cases) {
      const file = join(dir, `state-${++n}.json`);
      await writeFile(file, text);
      await assert.rejects(readState(file), (err: unknown) => {
        oneLineError(new RegExp(`^${file}: .*(?:${expect.source})`), what)(err);
        return true;
      }, what);
    }
    // Larger than Node reads into one buffer (sparse: costs no disk), and a folder: refused without reading them.
    const huge = join(dir, 'huge.json');
    await writeFile(huge, '');
    await truncate(huge, 4 * 1024 ** 3);
    await assert.rejects(readState(huge), oneLineError(new RegExp(`^${huge}: `), 'a 4 GiB file'));
    await assert.rejects(readState(dir), oneLineError(new RegExp(`^${dir}: `), 'a folder'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a dataset name zfs would read as an option is refused before zfs runs; full names with the characters zfs allows pass', () => {
  for (const ok of ['tank', 'tank/-F', 'tank/a b/-o x', 'my pool:1/x_y.z', 'b/-r/-n']) checkDatasetName(ok, 'import target');
  for (const bad of ['-F', '-o', '-r', '-o x', '--help', '', '/tank', 'tank/', 'tank//x', 'tank/../x', 'tank/./x', 'tank@snap', 'tank#bm', '1tank', ' tank', 'tank\nx', `t${'a'.repeat(255)}`]) {
    assert.throws(() => checkDatasetName(bad, 'import target'), (err: unknown) => {
      oneLineError(/^import target ".*" is not a dataset name .*zfs was not run$/s, JSON.stringify(bad))(err);
      assert.equal((err as ZferryError).exitCode, 2);
      return true;
    }, JSON.stringify(bad));
  }
});

test('an error quoting a hostile file\'s bytes cannot put terminal escapes on stderr', () => {
  const line = oneLine(new Error('x/manifest.json: not valid JSON: Unexpected token \u001b]0;pwned\u0007 in "\u009b31m"'));
  assert.equal(line, 'x/manifest.json: not valid JSON: Unexpected token \\x1b]0;pwned\\x07 in "\\x9b31m"');
  assert.equal(oneLine(new Error('two\nlines\tand a tab')), 'two | lines\tand a tab');
});
