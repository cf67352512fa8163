/**
 * Signed manifests and age encryption without ZFS: zferry's signatures are
 * checked by the stock `minisign`, zferry's age streams are opened by the
 * stock `age`, and every tampering is refused naming the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { execa } from 'execa';
import { ZferryError } from '../../src/errors.js';
import { checkTrust, generateKeyFiles, readPublicKey, readSecretKey, signManifest, SIGNATURE_FILE } from '../../src/trust/minisign.js';
import { decryptStream, encryptStream, readIdentities, readRecipients } from '../../src/trust/age.js';
import { manifestText, type Manifest } from '../../src/bundle/manifest.js';

function manifest(): Manifest {
  return {
    format: 'zferry-bundle', formatVersion: 1, bundleId: '0b7c2f0e-1d2a-4b3c-8d4e-5f6a7b8c9d0e', createdAt: '2026-11-26T07:00:00.000Z', zferryVersion: '0.1.0',
    source: { host: 'src', pool: 'tank', root: 'tank', poolGuid: '42' },
    basis: { origin: 'empty', file: null, target: null, takenAt: null, inventory: null },
    inventory: { root: 'tank', datasets: [{ path: '', type: 'filesystem', guid: '7', snapshots: [], bookmarks: [] }] },
    compression: { algorithm: 'zstd', level: 3 },
    streams: [],
  };
}

async function signedBundle(): Promise<{ dir: string; key: string; m: Manifest }> {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-trust-'));
  const key = join(dir, 'key');
  await generateKeyFiles(key);
  const m = manifest();
  const bytes = Buffer.from(manifestText(m));
  await writeFile(join(dir, 'manifest.json'), bytes);
  await writeFile(join(dir, SIGNATURE_FILE), signManifest(bytes, await readSecretKey(key), m));
  return { dir, key, m };
}

async function refuses(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ZferryError, `expected a ZferryError, got ${String(err)}`);
    assert.match(err.message, re);
    return true;
  });
}

test('keygen writes the secret key 0600 and a minisign public key, and never overwrites', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-keygen-'));
  try {
    const r = await generateKeyFiles(join(dir, 'k'));
    assert.equal((await stat(r.secretFile)).mode & 0o777, 0o600);
    assert.match(await readFile(r.publicFile, 'utf8'), new RegExp(`^untrusted comment: minisign public key ${r.keyId}\n[A-Za-z0-9+/=]{56}\n$`));
    await refuses(generateKeyFiles(join(dir, 'k')), /already exists/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the stock minisign verifies a zferry signature, and refuses it once the manifest is edited', async () => {
  const { dir, key } = await signedBundle();
  try {
    const ok = await execa('minisign', ['-V', '-p', `${key}.pub`, '-m', join(dir, 'manifest.json')], { reject: false });
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ok.stdout, /Signature and comment signature verified/);
    await writeFile(join(dir, 'manifest.json'), (await readFile(join(dir, 'manifest.json'), 'utf8')).replace('"src"', '"evil"'));
    const bad = await execa('minisign', ['-V', '-p', `${key}.pub`, '-m', join(dir, 'manifest.json')], { reject: false });
    assert.notEqual(bad.exitCode, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('checkTrust accepts a signed manifest and returns it parsed', async () => {
  const { dir, key, m } = await signedBundle();
  try {
    assert.deepEqual(await checkTrust(dir, `${key}.pub`), m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('checkTrust accepts a key and signature made by the stock minisign', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-minisign-'));
  try {
    await execa('minisign', ['-G', '-W', '-p', join(dir, 'mk.pub'), '-s', join(dir, 'mk.key')]);
    await writeFile(join(dir, 'manifest.json'), manifestText(manifest()));
    await execa('minisign', ['-S', '-s', join(dir, 'mk.key'), '-m', join(dir, 'manifest.json')]);
    await checkTrust(dir, join(dir, 'mk.pub'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('checkTrust refuses an unsigned, edited, wrongly signed or comment-edited bundle, naming the file', async () => {
  const { dir, key } = await signedBundle();
  const other = join(dir, 'other');
  await generateKeyFiles(other);
  const sig = join(dir, SIGNATURE_FILE);
  const mf = join(dir, 'manifest.json');
  try {
    await refuses(checkTrust(dir, `${other}.pub`), /manifest\.json\.minisig: signed by key [0-9A-F]{16}, not by the trusted key/);
    const goodSig = await readFile(sig, 'utf8');
    await writeFile(sig, goodSig.replace(/^trusted comment: .*$/m, 'trusted comment: something else'));
    await refuses(checkTrust(dir, `${key}.pub`), /trusted comment's signature does not match/);
    await writeFile(sig, goodSig.split('\n').map((l, i) => (i === 1 ? l.slice(0, 20) : l)).join('\n'));
    await refuses(checkTrust(dir, `${key}.pub`), /minisig: not a minisign signature/);
    await writeFile(sig, goodSig);
    const text = await readFile(mf, 'utf8');
    await writeFile(mf, text.replace('"level": 3', '"level": 4'));
    await refuses(checkTrust(dir, `${key}.pub`), /minisig: signature does not match manifest\.json/);
    await writeFile(mf, text);
    await rm(sig);
    await refuses(checkTrust(dir, `${key}.pub`), /minisig: missing: the bundle is not signed/);
    await writeFile(join(dir, 'bad.pub'), 'untrusted comment: x\nAAAA\n');
    await refuses(readPublicKey(join(dir, 'bad.pub')), /bad\.pub: not a minisign public key/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Feeds `data` through a duplex in 8 KiB chunks and collects the output. */
async function through(data: Buffer, duplex: NodeJS.ReadWriteStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  const src = Readable.from((function* () { for (let i = 0; i < data.length; i += 8192) yield data.subarray(i, i + 8192); })());
  await pipeline(src, duplex, new Writable({ write(c, _e, done) { parts.push(c); done(); } }));
  return Buffer.concat(parts);
}

test('zferry age encryption is opened by the stock age, and the stock age output by zferry', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-age-'));
  try {
    const idFile = join(dir, 'id.txt');
    await execa('age-keygen', ['-o', idFile]);
    const recipient = (await execa('age-keygen', ['-y', idFile])).stdout.trim();
    assert.deepEqual(await readRecipients([recipient]), [recipient]);
    const plain = randomBytes(300 * 1024 + 17);
    const enc = await through(plain, encryptStream([recipient]));
    await writeFile(join(dir, 'x.age'), enc);
    const stock = await execa('age', ['-d', '-i', idFile, join(dir, 'x.age')], { encoding: 'buffer', stripFinalNewline: false });
    assert.ok(Buffer.from(stock.stdout).equals(plain), 'stock age -d gives back the plaintext');
    const byStock = (await execa('age', ['-r', recipient], { input: plain, encoding: 'buffer', stripFinalNewline: false })).stdout;
    const ids = await readIdentities(idFile);
    assert.ok((await through(Buffer.from(byStock), decryptStream(ids, 'test', idFile))).equals(plain));
    // A flipped ciphertext byte is an error, not wrong plaintext.
    const bad = Buffer.from(enc);
    bad[bad.length - 100] ^= 1;
    await assert.rejects(through(bad, decryptStream(ids, 'stream 1', idFile)), /stream 1: cannot decrypt/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('recipients and identities are checked before use', async () => {
  await refuses(readRecipients(['age1nope']), /not an age recipient/);
  await refuses(readRecipients(['/nonexistent/recipients.txt']), /neither an age1… recipient nor a readable recipients file/);
  await refuses(readIdentities('/dev/null'), /no AGE-SECRET-KEY-1/);
});
