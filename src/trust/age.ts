/**
 * Encryption at rest in the age format (https://age-encryption.org/v1), so
 * stock `age -d -i KEY` decrypts a bundle's streams. The compressed stream is
 * encrypted as one age file and then cut into volumes, exactly as the
 * unencrypted one is: `cat streams/0001-full.zst.age.* | age -d -i KEY | zstd -dc`.
 * age's payload is chunked (64 KiB STREAM chunks); the age-encryption
 * package's web-stream API keeps memory bounded.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Duplex, PassThrough, Readable } from 'node:stream';
import type { ReadableStream as WebReadable } from 'node:stream/web';
import { ZferryError } from '../errors.js';
import type { Manifest } from '../bundle/manifest.js';
import { openRegular } from '../fs/safe.js';
import { fileError } from '../fs/errors.js';

type AgeLib = typeof import('age-encryption');
let ageLib: Promise<AgeLib> | null = null;

/**
 * The age library, loaded on first use: with its curves and post-quantum
 * code it took 0.16 s to load, which every command paid, encrypted bundle
 * or not.
 */
function ageLibrary(): Promise<AgeLib> {
  ageLib ??= import('age-encryption');
  return ageLib;
}

/** X25519 (`age1…`) and hybrid post-quantum (`age1pq1…`) recipients, as age-keygen prints them. */
export const RECIPIENT_PATTERN = /^age1[02-9ac-hj-np-z]{20,4000}$/;

/**
 * The recipients named by --encrypt-to values: each an `age1…` recipient or a
 * recipients file (one per line, `#` comments), as `age -R` reads.
 */
export async function readRecipients(values: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const v of values) {
    if (v.startsWith('age1')) {
      if (!RECIPIENT_PATTERN.test(v) || !(await ageAccepts('recipient', v))) throw new ZferryError(`--encrypt-to ${v}: not an age recipient (age1… as age-keygen prints it)`);
      out.push(v);
      continue;
    }
    let text: string;
    try {
      text = await readFile(v, 'utf8');
    } catch (err) {
      throw new ZferryError(`--encrypt-to ${v}: neither an age1… recipient nor a readable recipients file (${(err as Error).message})`, { file: v });
    }
    const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    for (const [i, l] of lines.entries()) {
      if (!RECIPIENT_PATTERN.test(l) || !(await ageAccepts('recipient', l))) throw new ZferryError(`${v}: line ${i + 1} is not an age recipient (age1…)`, { file: v });
      out.push(l);
    }
    if (lines.length === 0) throw new ZferryError(`${v}: no age recipient in it`, { file: v });
  }
  return [...new Set(out)];
}

/** The secret keys of an age identity file (as age-keygen writes it). */
export async function readIdentities(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ZferryError(`${file}: cannot read age identity: ${(err as Error).message}`, { file });
  }
  const keys: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const l = raw.trim();
    if (!/^AGE-SECRET-KEY-(PQ-)?1[0-9A-Z]+$/.test(l)) continue;
    // Never print the line: it is a secret key, damaged or not.
    if (!(await ageAccepts('identity', l))) throw new ZferryError(`${file}: line ${i + 1} is not a valid age identity (damaged or cut short)`, { file });
    keys.push(l);
  }
  if (keys.length === 0) throw new ZferryError(`${file}: no AGE-SECRET-KEY-1… line (make one with age-keygen -o ${file})`, { file });
  return keys;
}

/**
 * Whether the age library takes a recipient or identity: its bech32 checksum
 * is checked here, once, rather than mid-stream, where the library's error
 * would repeat the key (a secret one, for an identity).
 */
async function ageAccepts(kind: 'recipient' | 'identity', key: string): Promise<boolean> {
  const { Decrypter, Encrypter } = await ageLibrary();
  try {
    if (kind === 'recipient') new Encrypter().addRecipient(key);
    else new Decrypter().addIdentity(key);
    return true;
  } catch {
    return false;
  }
}

/** A Duplex around an age web-stream transform whose output is ready only once the input's header is read. */
function webDuplex(run: (input: WebReadable<Uint8Array>) => Promise<WebReadable<Uint8Array>>, mapError: (err: Error) => Error): Duplex {
  const input = new PassThrough({ highWaterMark: 1 << 16 });
  const output = new PassThrough({ highWaterMark: 1 << 16 });
  const fail = (err: Error): void => {
    input.destroy();
    output.destroy(mapError(err));
  };
  run(Readable.toWeb(input) as WebReadable<Uint8Array>).then((web) => {
    // Not pipeline(): it would destroy `output` with the raw error before it is mapped.
    const plain = Readable.fromWeb(web as Parameters<typeof Readable.fromWeb>[0]);
    plain.once('error', fail);
    output.once('close', () => plain.destroy());
    plain.pipe(output);
  }, fail);
  return Duplex.from({ writable: input, readable: output });
}

export function encryptStream(recipients: string[]): Duplex {
  return webDuplex(
    async (input) => {
      const e = new (await ageLibrary()).Encrypter();
      for (const r of recipients) e.addRecipient(r);
      return e.encrypt(input as unknown as ReadableStream<Uint8Array>) as unknown as Promise<WebReadable<Uint8Array>>;
    },
    (err) => new ZferryError(`age encryption failed: ${err.message}`),
  );
}

/** Decrypts one age file; `label` names what is being decrypted in errors. */
export function decryptStream(identities: string[], label: string, identityFile: string): Duplex {
  return webDuplex(
    async (input) => {
      const d = new (await ageLibrary()).Decrypter();
      for (const k of identities) d.addIdentity(k);
      return d.decrypt(input as unknown as ReadableStream<Uint8Array>) as unknown as Promise<WebReadable<Uint8Array>>;
    },
    (err) =>
      err instanceof ZferryError
        ? err
        : new ZferryError(`${label}: cannot decrypt with ${identityFile}: ${err.message}`, { file: identityFile }),
  );
}

/**
 * Refuses, before anything is received, a bundle the identity cannot open:
 * the age header of its first volume is decrypted and the rest left unread.
 */
export async function checkIdentityOpens(bundleDir: string, m: Manifest, age: { identities: string[]; file: string }): Promise<void> {
  const first = m.streams.find((s) => s.volumes.length > 0);
  if (!first) return;
  const file = join(bundleDir, first.volumes[0].file);
  const d = new (await ageLibrary()).Decrypter();
  for (const k of age.identities) d.addIdentity(k);
  let opened;
  try {
    opened = await openRegular(file, bundleDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ZferryError(`missing volume ${file}`, { file });
    throw fileError(err, 'opening', file);
  }
  const input = opened.fh.createReadStream({ start: 0, end: 64 * 1024 - 1 });
  try {
    const out = await d.decrypt(Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>);
    await out.cancel();
  } catch (err) {
    throw new ZferryError(`${file}: ${age.file} cannot decrypt it (${(err as Error).message}); the bundle is encrypted to ${m.encryption?.recipients.join(', ')}`, { file });
  } finally {
    input.destroy();
  }
}
