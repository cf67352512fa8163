/**
 * Manifest signatures in the minisign format, made with Node's ed25519, so a
 * stranger checks them with the stock tool:
 *   minisign -V -p zferry.pub -m manifest.json      (reads manifest.json.minisig)
 *
 * Formats (https://jedisct1.github.io/minisign/):
 *   public key  "untrusted comment: …\n" base64("Ed" ‖ keyId[8] ‖ pk[32])
 *   signature   "untrusted comment: …\n" base64("ED" ‖ keyId[8] ‖ ed25519(BLAKE2b-512(file)))
 *               "trusted comment: T\n"   base64(ed25519(signature[64] ‖ T))
 * The secret key stays in Node's PKCS#8 PEM (mode 0600), never leaves zferry,
 * and carries the key id in a comment line.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UntrustedBundle, ZferryError } from '../errors.js';
import { MANIFEST_FILE, parseManifest, readManifestBytes, type Manifest } from '../bundle/manifest.js';
import { createExclusive, readRegular } from '../fs/safe.js';
import { bundlePath, getSmall, isS3Url, parseS3Url } from '../store/s3.js';
import { manifestBytesInBucket } from '../bundle/bucket.js';

export const SIGNATURE_FILE = `${MANIFEST_FILE}.minisig`;
const KEY_ID_LINE = 'zferry-minisign-key-id: ';

export interface PublicKey {
  keyId: Buffer;
  key: KeyObject;
}

/** minisign prints key ids as the 8 bytes read little-endian, upper-case hex. */
export function keyIdHex(id: Buffer): string {
  return Buffer.from(id).reverse().toString('hex').toUpperCase();
}

function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.from(jwk.x as string, 'base64url');
}

export function publicKeyText(keyId: Buffer, pk: KeyObject): string {
  const blob = Buffer.concat([Buffer.from('Ed'), keyId, rawPublicKey(pk)]);
  return `untrusted comment: minisign public key ${keyIdHex(keyId)}\n${blob.toString('base64')}\n`;
}

/** Writes FILE (secret, 0600, refusing to overwrite) and FILE.pub; returns the key id. */
export async function generateKeyFiles(file: string): Promise<{ keyId: string; secretFile: string; publicFile: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyId = randomBytes(8);
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const secret = `# zferry signing key (ed25519); keep it secret. The public half is ${file}.pub.\n${KEY_ID_LINE}${keyId.toString('hex')}\n${pem}`;
  const publicFile = `${file}.pub`;
  await writeNew(file, secret, 0o600);
  try {
    await writeNew(publicFile, publicKeyText(keyId, publicKey), 0o644);
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  }
  return { keyId: keyIdHex(keyId), secretFile: file, publicFile };
}

async function writeNew(file: string, text: string, mode: number): Promise<void> {
  let fh;
  try {
    fh = await createExclusive(file, mode);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ZferryError(`${file}: ${e.code === 'EEXIST' ? 'already exists; refusing to overwrite a key' : e.message}`, { file });
  }
  try {
    await fh.chmod(mode);
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface SecretKey {
  keyId: Buffer;
  key: KeyObject;
}

export async function readSecretKey(file: string): Promise<SecretKey> {
  const text = await readText(file, 'secret key');
  const idLine = text.split('\n').find((l) => l.startsWith(KEY_ID_LINE));
  const id = idLine?.slice(KEY_ID_LINE.length).trim() ?? '';
  if (!/^[0-9a-f]{16}$/.test(id)) throw new ZferryError(`${file}: not a zferry signing key (no "${KEY_ID_LINE.trim()}" line; make one with zferry keygen)`, { file });
  let key: KeyObject;
  try {
    key = createPrivateKey(text.slice(text.indexOf('-----BEGIN')));
  } catch (err) {
    throw new ZferryError(`${file}: not a readable PEM private key: ${(err as Error).message}`, { file });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new ZferryError(`${file}: is a ${key.asymmetricKeyType} key, zferry signs with ed25519`, { file });
  return { keyId: Buffer.from(id, 'hex'), key };
}

/** Keys and signatures are a few hundred bytes. */
const MAX_KEY_FILE = 64 * 1024;

/** A key file the user names: the user's choice, read as named. */
async function readText(file: string, what: string): Promise<string> {
  try {
    const buf = await readFile(file);
    if (buf.length > MAX_KEY_FILE) throw new ZferryError(`${file}: too large for a ${what} file`, { file });
    return buf.toString('utf8');
  } catch (err) {
    if (err instanceof ZferryError) throw err;
    throw new ZferryError(`${file}: cannot read ${what}: ${(err as Error).message}`, { file });
  }
}

/** Decodes the one base64 line after the comment; length-checked before use. */
function blobLine(lines: string[], at: number, prefix: string, bytes: number, file: string, what: string): Buffer {
  const line = lines[at]?.trim() ?? '';
  const blob = /^[A-Za-z0-9+/]+={0,2}$/.test(line) ? Buffer.from(line, 'base64') : Buffer.alloc(0);
  if (blob.length !== bytes || blob.subarray(0, 2).toString('latin1') !== prefix) {
    throw new ZferryError(`${file}: not a minisign ${what} (line ${at + 1} is not a base64 "${prefix}" blob of ${bytes} bytes)`, { file });
  }
  return blob;
}

/** Reads a minisign public key file (as `zferry keygen` or `minisign -G` writes it). */
export async function readPublicKey(file: string): Promise<PublicKey> {
  const lines = (await readText(file, 'public key')).split('\n');
  // minisign also accepts the bare base64 line; the comment is optional.
  const at = lines[0]?.startsWith('untrusted comment:') ? 1 : 0;
  const blob = blobLine(lines, at, 'Ed', 42, file, 'public key');
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: blob.subarray(10).toString('base64url') }, format: 'jwk' });
  return { keyId: blob.subarray(2, 10), key };
}

/** The .minisig text for `data` (prehashed "ED" signature, as minisign 0.10+ makes by default). */
export function signatureText(data: Buffer, sk: SecretKey, trustedComment: string): string {
  if (/[\r\n]/.test(trustedComment)) throw new RangeError('a trusted comment is one line');
  const sig = sign(null, createHash('blake2b512').update(data).digest(), sk.key);
  const globalSig = sign(null, Buffer.concat([sig, Buffer.from(trustedComment, 'utf8')]), sk.key);
  return [
    'untrusted comment: signature from zferry secret key',
    Buffer.concat([Buffer.from('ED'), sk.keyId, sig]).toString('base64'),
    `trusted comment: ${trustedComment}`,
    globalSig.toString('base64'),
    '',
  ].join('\n');
}

/** Checks `sigText` over `data` (the file `signed`) against `pk`; throws a ZferryError naming `sigFile` otherwise. */
export function checkSignature(data: Buffer, sigText: string, pk: PublicKey, sigFile: string, pubFile: string, signed: string = MANIFEST_FILE): void {
  const lines = sigText.split('\n');
  if (!lines[0]?.startsWith('untrusted comment:')) throw new ZferryError(`${sigFile}: not a minisign signature (no "untrusted comment:" line)`, { file: sigFile });
  const line = lines[1]?.trim() ?? '';
  const blob = /^[A-Za-z0-9+/]+={0,2}$/.test(line) ? Buffer.from(line, 'base64') : Buffer.alloc(0);
  const alg = blob.subarray(0, 2).toString('latin1');
  if (blob.length !== 74 || (alg !== 'ED' && alg !== 'Ed')) {
    throw new ZferryError(`${sigFile}: not a minisign signature (line 2 is not a base64 "ED" blob of 74 bytes)`, { file: sigFile });
  }
  const keyId = blob.subarray(2, 10);
  if (!keyId.equals(pk.keyId)) {
    throw new ZferryError(`${sigFile}: signed by key ${keyIdHex(keyId)}, not by the trusted key ${keyIdHex(pk.keyId)} (${pubFile})`, { file: sigFile });
  }
  const sig = blob.subarray(10);
  // "Ed" (legacy) signs the file itself; "ED" signs its BLAKE2b-512 hash.
  const message = alg === 'ED' ? createHash('blake2b512').update(data).digest() : data;
  if (!verify(null, message, pk.key, sig)) {
    throw new ZferryError(`${sigFile}: signature does not match ${signed} (edited, or signed by another key with the same id)`, { file: sigFile });
  }
  const tc = lines[2] ?? '';
  if (!tc.startsWith('trusted comment: ')) throw new ZferryError(`${sigFile}: no "trusted comment:" line`, { file: sigFile });
  const globalLine = lines[3]?.trim() ?? '';
  const globalSig = /^[A-Za-z0-9+/]+={0,2}$/.test(globalLine) ? Buffer.from(globalLine, 'base64') : Buffer.alloc(0);
  if (globalSig.length !== 64 || !verify(null, Buffer.concat([sig, Buffer.from(tc.slice('trusted comment: '.length), 'utf8')]), pk.key, globalSig)) {
    throw new ZferryError(`${sigFile}: the trusted comment's signature does not match (the comment was edited)`, { file: sigFile });
  }
}

/** Signs the exact manifest bytes; the text goes to `manifest.json.minisig`. */
export function signManifest(manifestBytes: Buffer, sk: SecretKey, m: Manifest): string {
  return signatureText(manifestBytes, sk, `zferry bundle ${m.bundleId} source ${m.source.host}:${m.source.root} created ${m.createdAt}`);
}

/**
 * The trust check for a bundle: its manifest.json must carry a valid minisign
 * signature by the key in `pubkeyFile`. Returns the manifest parsed from the
 * very bytes that were checked (read once: no swap between check and use).
 * Used by import --trust, verify --trust and relay receive --trust.
 */
export async function checkTrust(bundleDir: string, pubkeyFile: string, pk?: PublicKey): Promise<Manifest> {
  const key = pk ?? (await readPublicKey(pubkeyFile));
  const manifestFile = bundlePath(bundleDir, MANIFEST_FILE);
  const sigFile = bundlePath(bundleDir, SIGNATURE_FILE);
  if (isS3Url(bundleDir)) {
    const bytes = await manifestBytesInBucket(bundleDir);
    const sig = await getSmall(parseS3Url(bundleDir), SIGNATURE_FILE, MAX_KEY_FILE);
    if (!sig) throw new UntrustedBundle(`${sigFile}: missing: the bundle is not signed, and --trust ${pubkeyFile} accepts only signed bundles`, { file: sigFile });
    return untrustedIfBad(() => {
      checkSignature(bytes, sig.toString('utf8'), key, sigFile, pubkeyFile);
      return parseManifest(bytes.toString('utf8'), manifestFile);
    });
  }
  const bytes = await readManifestBytes(manifestFile);
  let sigText: string;
  try {
    // Inside the bundle: a regular file only (a FIFO here once made --trust hang).
    sigText = (await readRegular(sigFile, { maxBytes: MAX_KEY_FILE, what: 'signature' })).toString('utf8');
  } catch (err) {
    if (err instanceof ZferryError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UntrustedBundle(`${sigFile}: missing: the bundle is not signed, and --trust ${pubkeyFile} accepts only signed bundles`, { file: sigFile });
    }
    throw new ZferryError(`${sigFile}: cannot read signature: ${(err as Error).message}`, { file: sigFile });
  }
  return untrustedIfBad(() => {
    checkSignature(bytes, sigText, key, sigFile, pubkeyFile);
    return parseManifest(bytes.toString('utf8'), manifestFile);
  });
}

/** The signature check and the manifest's parse, whose refusals say the bundle is not one --trust accepts. */
function untrustedIfBad(check: () => Manifest): Manifest {
  try {
    return check();
  } catch (err) {
    if (err instanceof ZferryError && !(err instanceof UntrustedBundle)) throw new UntrustedBundle(err.message, err.context);
    throw err;
  }
}
