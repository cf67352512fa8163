/**
 * Bundles in an S3 bucket (`s3://BUCKET/PREFIX`): the one module that talks
 * to object storage. The layout under the prefix is a bundle folder's, key by
 * path (docs/bundle-format.md). Credentials come from the SDK's standard
 * chain only (environment, shared config and profiles); nothing here ever
 * formats them into a message.
 */
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { ZferryError } from '../errors.js';
import { readRegular, type ReadRegularOptions } from '../fs/safe.js';

export interface S3Place {
  bucket: string;
  /** Key prefix: '' or ending in '/'. */
  prefix: string;
}

export interface S3Settings {
  /** --s3-endpoint; else AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL; else AWS. */
  endpoint?: string;
  /** --s3-path-style: BUCKET in the path, not the host name (most non-AWS stores). */
  pathStyle?: boolean;
}

let settings: S3Settings = {};
let client: Promise<{ client: S3Client; sdk: typeof import('@aws-sdk/client-s3') }> | null = null;

/** The CLI's --s3-endpoint and --s3-path-style, set once before a command runs. */
export function configureS3(s: S3Settings): void {
  settings = { ...s };
  client = null;
}

export function isS3Url(location: string): boolean {
  return location.startsWith('s3://');
}

export function parseS3Url(url: string): S3Place {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new ZferryError(`${url}: not a bucket location (s3://BUCKET/PREFIX, BUCKET of 3-63 lower-case letters, digits, dots and dashes)`, { file: url });
  const rest = (m[2] ?? '').replace(/\/+$/, '');
  if (rest.split('/').some((p) => p === '' || p === '.' || p === '..') && rest !== '') {
    throw new ZferryError(`${url}: the prefix has an empty, . or .. part`, { file: url });
  }
  return { bucket: m[1]!, prefix: rest === '' ? '' : `${rest}/` };
}

/** An object's URL split into the place that holds it and its name. */
export function objectOf(url: string): { place: S3Place; name: string } {
  const cut = url.lastIndexOf('/');
  if (cut <= 's3://'.length) throw new ZferryError(`${url}: names a bucket, not an object`, { file: url });
  return { place: parseS3Url(url.slice(0, cut)), name: url.slice(cut + 1) };
}

/** The place one level down (a bundle under a prefix). */
export function childPlace(p: S3Place, name: string): S3Place {
  return { bucket: p.bucket, prefix: `${p.prefix}${name}/` };
}

export function urlOf(p: S3Place, name = ''): string {
  return `s3://${p.bucket}/${p.prefix}${name}`.replace(/\/$/, '');
}

/** A file of a bundle, by name: a path in a folder, or a URL in a bucket (path.join would fold s3:// to s3:/). */
export function bundlePath(dir: string, name: string): string {
  return isS3Url(dir) ? `${dir.replace(/\/+$/, '')}/${name}` : join(dir, name);
}

/**
 * A small file at a bundlePath (a folder's file, or a bucket's object), or
 * null when there is none; a folder's is read as readRegular reads it.
 */
export async function readSmallAt(path: string, opts: ReadRegularOptions & { maxBytes: number }): Promise<Buffer | null> {
  if (isS3Url(path)) {
    const { place, name } = objectOf(path);
    return getSmall(place, name, opts.maxBytes);
  }
  return readRegular(path, opts).catch((err: unknown) => ((err as NodeJS.ErrnoException).code === 'ENOENT' ? null : Promise.reject(err)));
}

/** Longest a request may go without a byte either way (ZFERRY_S3_IDLE_SECONDS, default 300). */
const REQUEST_IDLE_MS = Number(process.env.ZFERRY_S3_IDLE_SECONDS ?? 300) * 1000;

/** The client, made on first use: the SDK loads only when a bucket is named, not with every command. */
function s3(): Promise<{ client: S3Client; sdk: typeof import('@aws-sdk/client-s3') }> {
  client ??= makeClient();
  return client;
}

async function makeClient(): Promise<{ client: S3Client; sdk: typeof import('@aws-sdk/client-s3') }> {
  // zferry supports Node 20 (package.json engines); the SDK's notice about its
  // own future support would be a second line on every error.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const sdk = await import('@aws-sdk/client-s3');
  const endpoint = settings.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  const made = new sdk.S3Client({
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: settings.pathStyle ?? (endpoint !== undefined),
    region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    // Checksums only where the API requires them: stores like Ceph's RGW
    // refuse the SDK's default trailing-checksum uploads, and every volume
    // carries its own sha256 in the manifest anyway.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    // A store that takes a request and never answers (a full Ceph OSD stops
    // answering writes rather than refusing them) would hold the job for
    // ever: a connection silent this long fails like any other network error.
    requestHandler: { connectionTimeout: 30_000, requestTimeout: REQUEST_IDLE_MS, throwOnRequestTimeout: true },
  });
  made.middlewareStack.add((next, context) => async (args) => {
    const input = args.input as { Bucket?: string; Key?: string };
    const watch = context.commandName === 'CreateMultipartUploadCommand' ? creates.get(`${input.Bucket}/${input.Key}`) : undefined;
    if (!watch) return next(args);
    const sent = next(args);
    watch.push(sent.then((r) => (r.output as { UploadId?: string }).UploadId, () => undefined));
    return sent;
  }, { step: 'initialize', name: 'zferryUploadIds' });
  return { client: made, sdk };
}

/**
 * The multipart uploads lib-storage creates, by `bucket/key`, for the keys
 * uploadObject is writing: a middleware on the client records each
 * CreateMultipartUpload as it is sent (its id once the store answers), so an
 * abort waits for a create still in flight and then aborts that upload by its
 * id. lib-storage's own abort() only stops its loop; its upload id is public
 * (`uploadId`) only once the create has answered.
 */
const creates = new Map<string, Array<Promise<string | undefined>>>();

let requests = 0;

/** Commands this process has sent through call() (retries not counted): the listing test's measure. */
export function s3RequestCount(): number {
  return requests;
}

/** Sends one command, built from the SDK once it is loaded. */
async function call<T>(make: (sdk: typeof import('@aws-sdk/client-s3')) => { input: unknown }): Promise<T> {
  const { client: c, sdk } = await s3();
  requests++;
  return (await c.send(make(sdk) as never)) as T;
}

/**
 * One line for a failed request: the operation, the object and the store's
 * own error code. Never the request or its headers (they carry the key id
 * and signature).
 */
export function s3Error(err: unknown, doing: string, url: string): ZferryError {
  if (err instanceof ZferryError) return err;
  const e = err as Error & { code?: string; errors?: Array<{ code?: string }>; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  // A store's answer has a code (its name); a network failure an errno (on the error, or on the first of an AggregateError).
  const errno = e.code ?? e.errors?.[0]?.code;
  let code = status !== undefined || !errno ? (e.name && e.name !== 'Error' ? e.name : errno ?? 'Error') : errno;
  // A HEAD's answer has no body, so no code: its status says it.
  if ((code === 'Unknown' || code === 'Error') && status === 403) code = 'Forbidden';
  const hint = code === 'NoSuchBucket' ? ': the bucket does not exist'
    : ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden', 'CredentialsProviderError'].includes(code) ? ': check the credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE)'
    : code === 'QuotaExceeded' ? ': the bucket or user quota is full'
    : ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'TimeoutError'].includes(code) ? ': the server does not answer'
    : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? ': no such host (--s3-endpoint?)'
    : '';
  // An unknown failure says what it is, on one line, with any secret the environment holds cut out.
  const plain = hint === '' && code === 'Error' ? `: ${String(e.message ?? '').split('\n')[0]!.slice(0, 200)}` : '';
  let detail = `${code}${status ? ` (HTTP ${status})` : ''}${hint}${plain}`;
  for (const secret of [process.env.AWS_SECRET_ACCESS_KEY, process.env.AWS_SESSION_TOKEN]) if (secret) detail = detail.split(secret).join('<secret>');
  return new ZferryError(`${url}: ${doing} failed: ${detail}`, { file: url });
}

function notFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404 && e.name !== 'NoSuchBucket';
}

/** A small object's bytes (a manifest, a receipt), or null when there is none. */
export async function getSmall(p: S3Place, name: string, maxBytes: number): Promise<Buffer | null> {
  const url = urlOf(p, name);
  try {
    const r = await call<any>((sdk) => new sdk.GetObjectCommand({ Bucket: p.bucket, Key: p.prefix + name }));
    const what = name.split('/').pop()!;
    if ((r.ContentLength ?? 0) > maxBytes) {
      (r.Body as Readable | undefined)?.destroy();
      throw new ZferryError(`${url}: ${r.ContentLength} bytes, more than the ${maxBytes} a ${what} may have`, { file: url });
    }
    return await readAtMost(r.Body as Readable, maxBytes, `${url}: more than the ${maxBytes} bytes a ${what} may have`, url);
  } catch (err) {
    if (notFound(err)) return null;
    throw s3Error(err, 'GET', url);
  }
}

/**
 * The whole of `body`, refused with `tooBig` once it passes `maxBytes`: the
 * length a server announces is checked first, but an answer without one
 * (chunked) must not be read whole on its word.
 */
export async function readAtMost(body: Readable, maxBytes: number, tooBig: string, file: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > maxBytes) {
      body.destroy();
      throw new ZferryError(tooBig, { file });
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks, n);
}

/** An object's bytes as a stream, with its size. */
export async function getStream(p: S3Place, name: string): Promise<{ size: number; body: Readable } | null> {
  try {
    const r = await call<any>((sdk) => new sdk.GetObjectCommand({ Bucket: p.bucket, Key: p.prefix + name }));
    return { size: r.ContentLength ?? 0, body: r.Body as Readable };
  } catch (err) {
    if (notFound(err)) return null;
    throw s3Error(err, 'GET', urlOf(p, name));
  }
}

/** A whole small object in one PUT: S3 makes it visible whole or not at all. */
export async function putSmall(p: S3Place, name: string, data: string | Buffer): Promise<void> {
  try {
    await call<any>((sdk) => new sdk.PutObjectCommand({ Bucket: p.bucket, Key: p.prefix + name, Body: typeof data === 'string' ? Buffer.from(data, 'utf8') : data }));
  } catch (err) {
    throw s3Error(err, 'PUT', urlOf(p, name));
  }
}

/** Part size of a volume's multipart upload: memory in flight is PART_SIZE × QUEUE. */
export const PART_SIZE = 8 * 1024 * 1024;
const QUEUE = 4;

export interface ObjectUpload {
  /** Write the object's bytes here; `write` returning false means wait for 'drain'. */
  body: Writable;
  /** Resolves when the object is complete in the bucket; on failure the multipart upload is aborted. */
  done: Promise<void>;
  /** Stops the upload and aborts its multipart upload. */
  abort(): Promise<void>;
}

/** Aborts of the uploads in flight, run when a signal stops the process. */
const inFlight = new Set<() => Promise<void>>();
let interrupted: NodeJS.Signals | null = null;
let guarded = false;
/** Longest a signal waits for the aborts before the process goes anyway. */
const SIGNAL_GRACE_MS = 15_000;

/**
 * Ctrl-C or SIGTERM while volumes are uploading: their multipart uploads are
 * aborted first (the store would keep their parts, and bill them, forever),
 * then the signal is raised again so the process ends as it would have. The
 * export's marker stays in the bucket, so the next run resumes.
 */
function guardSignals(): void {
  if (guarded) return;
  guarded = true;
  const stop = (sig: NodeJS.Signals) => {
    interrupted = sig;
    const give = setTimeout(() => process.kill(process.pid, sig), SIGNAL_GRACE_MS);
    void Promise.allSettled([...inFlight].map((abort) => abort())).then(() => {
      clearTimeout(give);
      process.kill(process.pid, sig);
    });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      // The other signal now ends the process at once, as a second Ctrl-C would.
      process.removeAllListeners(sig === 'SIGINT' ? 'SIGTERM' : 'SIGINT');
      stop(sig);
    });
  }
}

/** Aborts the multipart uploads of one key (the one just stopped, and any a killed run left of it). */
async function abortUploadsOf(p: S3Place, name: string): Promise<void> {
  const key = p.prefix + name;
  for (const u of await listUploads({ bucket: p.bucket, prefix: key }).catch(() => [])) {
    if (u.key !== key) continue;
    await call<any>((sdk) => new sdk.AbortMultipartUploadCommand({ Bucket: p.bucket, Key: u.key, UploadId: u.uploadId })).catch(() => undefined);
  }
}

/**
 * Streams one object by multipart upload as its bytes are produced: no local
 * copy, and at most PART_SIZE × QUEUE bytes in memory (the body's writes
 * wait otherwise). lib-storage aborts the multipart upload when a part fails
 * (leavePartsOnError false); abort() and a signal abort it here, by the id
 * the client's middleware saw (waiting for a create still in flight), then
 * by listing the key (what a killed run left of it); a SIGKILLed process
 * leaves it to the next export (abortUploads).
 */
export function uploadObject(p: S3Place, name: string): ObjectUpload {
  const body = new PassThrough({ highWaterMark: 1 << 20 });
  const key = `${p.bucket}/${p.prefix}${name}`;
  const created: Array<Promise<string | undefined>> = [];
  creates.set(key, created);
  let upload: { abort(): Promise<void> } | null = null;
  let aborted = false;
  let aborting: Promise<void> | null = null;
  const abort = (): Promise<void> => {
    aborting ??= (async () => {
      aborted = true;
      await upload?.abort().catch(() => undefined);
      body.destroy();
      for (const id of new Set(await Promise.all(created))) {
        if (id) await call<any>((sdk) => new sdk.AbortMultipartUploadCommand({ Bucket: p.bucket, Key: p.prefix + name, UploadId: id })).catch(() => undefined);
      }
      await abortUploadsOf(p, name);
    })();
    return aborting;
  };
  guardSignals();
  inFlight.add(abort);
  const done = (async () => {
    const [{ client: c }, { Upload }] = await Promise.all([s3(), import('@aws-sdk/lib-storage')]);
    if (aborted) throw new Error('aborted');
    const u = new Upload({
      client: c, queueSize: QUEUE, partSize: PART_SIZE, leavePartsOnError: false,
      params: { Bucket: p.bucket, Key: p.prefix + name, Body: body },
    });
    upload = u;
    await u.done();
  })().catch((err: unknown) => {
    body.destroy();
    if (interrupted) throw new ZferryError(`${urlOf(p, name)}: upload stopped by ${interrupted}; its multipart upload is aborted, the streams finished before it are kept for the next export`, { file: urlOf(p, name) });
    throw s3Error(err, 'upload', urlOf(p, name));
  }).finally(() => {
    inFlight.delete(abort);
    if (creates.get(key) === created) creates.delete(key);
  });
  done.catch(() => undefined);
  return {
    body, done,
    abort: async () => {
      await abort();
      await done.catch(() => undefined);
    },
  };
}

export interface Listing {
  /** Names of the sub-prefixes ("folders"), without the trailing slash, in key order. */
  folders: string[];
  /** Names of the objects directly under the prefix. */
  objects: Array<{ name: string; size: number }>;
}

/**
 * Every page of a listing under the prefix (1,000 keys a request). With a
 * delimiter, keys that hold it after the prefix are rolled up into one
 * common prefix ending in it; without one, every key at any depth.
 */
async function listPages(p: S3Place, delimiter: string | undefined): Promise<{ prefixes: string[]; objects: Array<{ name: string; size: number }> }> {
  const out = { prefixes: [] as string[], objects: [] as Array<{ name: string; size: number }> };
  let token: string | undefined;
  try {
    do {
      const r = await call<any>((sdk) => new sdk.ListObjectsV2Command({ Bucket: p.bucket, Prefix: p.prefix, Delimiter: delimiter, ContinuationToken: token, MaxKeys: 1000 }));
      for (const c of r.CommonPrefixes ?? []) if (c.Prefix) out.prefixes.push(c.Prefix.slice(p.prefix.length));
      for (const o of r.Contents ?? []) if (o.Key) out.objects.push({ name: o.Key.slice(p.prefix.length), size: o.Size ?? 0 });
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
      checkListed(out.prefixes.length + out.objects.length, urlOf(p));
    } while (token);
  } catch (err) {
    throw s3Error(err, 'LIST', urlOf(p));
  }
  return out;
}

/**
 * How many keys (and rolled-up folders) one listing may hold. Whoever can
 * write under a prefix could otherwise fill our memory with keys, a page of
 * 1,000 at a time. A bundle's own volumes are bounded by its manifest's
 * 128 MiB (well under a million entries); 10,000 bundles beside volumes are
 * about 50,000. ZFERRY_S3_MAX_LIST_KEYS lowers it, for the test that
 * reaches it without a million objects.
 */
export const MAX_LIST_KEYS = Math.max(1, Math.min(1_000_000, Number(process.env.ZFERRY_S3_MAX_LIST_KEYS) || 1_000_000));

/** Throws one line naming the prefix once a listing has passed MAX_LIST_KEYS entries. */
export function checkListed(count: number, url: string, max = MAX_LIST_KEYS): void {
  if (count > max) {
    throw new ZferryError(`${url}: more than ${max.toLocaleString('en-US')} keys under this prefix; zferry stops listing rather than hold them all. Give each source its own prefix, and remove what is not a bundle of it`, { file: url });
  }
}

/**
 * One level under the prefix, every page: with Delimiter='/' a bundle is one
 * entry however many volumes it has, so 10,000 bundles are 10 requests.
 */
export async function listLevel(p: S3Place): Promise<Listing> {
  const { prefixes, objects } = await listPages(p, '/');
  return { folders: prefixes.map((f) => f.slice(0, -1)), objects };
}

/** Every object key under the prefix (any depth), relative to it. */
export async function listAll(p: S3Place): Promise<Array<{ name: string; size: number }>> {
  return (await listPages(p, undefined)).objects;
}

/**
 * Every object under the prefix except volumes: each `…/streams/` folder is
 * one rolled-up entry (Delimiter '/streams/', any string may delimit), so a
 * bundle costs one entry per closing file and one for all its volumes
 * (`streamFolders`: `NAME/streams/`), and 10,000 bundles under a prefix are
 * about 40 requests, not one per bundle.
 */
export async function listBesideVolumes(p: S3Place): Promise<{ objects: Array<{ name: string; size: number }>; streamFolders: string[] }> {
  const { prefixes, objects } = await listPages(p, '/streams/');
  return { objects, streamFolders: prefixes };
}

/** Multipart uploads begun under the prefix and never completed: key and upload id. */
export async function listUploads(p: S3Place): Promise<Array<{ key: string; uploadId: string }>> {
  const out: Array<{ key: string; uploadId: string }> = [];
  let keyMarker: string | undefined;
  let idMarker: string | undefined;
  try {
    for (;;) {
      const r = await call<any>((sdk) => new sdk.ListMultipartUploadsCommand({ Bucket: p.bucket, Prefix: p.prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker }));
      for (const u of r.Uploads ?? []) if (u.Key && u.UploadId) out.push({ key: u.Key, uploadId: u.UploadId });
      checkListed(out.length, urlOf(p));
      if (!r.IsTruncated) break;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
  } catch (err) {
    throw s3Error(err, 'listing multipart uploads', urlOf(p));
  }
  return out;
}

/** Aborts every unfinished multipart upload under the prefix (a killed export's); returns how many. */
export async function abortUploads(p: S3Place): Promise<number> {
  const uploads = await listUploads(p);
  for (const u of uploads) {
    try {
      await call<any>((sdk) => new sdk.AbortMultipartUploadCommand({ Bucket: p.bucket, Key: u.key, UploadId: u.uploadId }));
    } catch (err) {
      if (!notFound(err)) throw s3Error(err, 'aborting a multipart upload', `s3://${p.bucket}/${u.key}`);
    }
  }
  return uploads.length;
}

/** Deletes every object under the prefix (a half-written bundle). */
export async function deleteAll(p: S3Place): Promise<void> {
  await deleteObjects(p, (await listAll(p)).map((o) => o.name));
}

/** Deletes the named objects under the prefix, 1,000 a request; a name already gone is no error. */
export async function deleteObjects(p: S3Place, names: string[]): Promise<void> {
  for (let i = 0; i < names.length; i += 1000) {
    try {
      await call<any>((sdk) => new sdk.DeleteObjectsCommand({ Bucket: p.bucket, Delete: { Objects: names.slice(i, i + 1000).map((n) => ({ Key: p.prefix + n })), Quiet: true } }));
    } catch (err) {
      throw s3Error(err, 'DELETE', urlOf(p));
    }
  }
}

/**
 * CopyObject's limit: a larger object is copied in ranges by UploadPartCopy.
 * ZFERRY_S3_MAX_COPY_BYTES lowers it, for the test that sends a small volume
 * through the range copy on a real gateway (no test can afford 5 GiB); read
 * once, at load. S3 takes parts of 5 MiB and more (the last excepted), so a
 * value below that is raised to it.
 */
const MAX_COPY = Math.max(5 * 1024 ** 2, Math.min(5 * 1024 ** 3, Number(process.env.ZFERRY_S3_MAX_COPY_BYTES) || 5 * 1024 ** 3));
/** Range of one UploadPartCopy: 1 GiB, or the lowered limit itself (so a test's volume takes a few parts). */
const COPY_PART = Math.min(1024 ** 3, MAX_COPY);

/**
 * Copies object `from` to `to` under the same prefix on the server (no bytes
 * through this machine): a rename is this and a delete, S3 having no rename.
 */
export async function copyObject(p: S3Place, from: string, to: string, size: number): Promise<void> {
  const source = encodeURI(`${p.bucket}/${p.prefix}${from}`);
  try {
    if (size <= MAX_COPY) {
      await call<any>((sdk) => new sdk.CopyObjectCommand({ Bucket: p.bucket, Key: p.prefix + to, CopySource: source }));
      return;
    }
    const { UploadId } = await call<any>((sdk) => new sdk.CreateMultipartUploadCommand({ Bucket: p.bucket, Key: p.prefix + to }));
    try {
      const parts: Array<{ ETag: string; PartNumber: number }> = [];
      for (let at = 0, n = 1; at < size; at += COPY_PART, n++) {
        const r = await call<any>((sdk) => new sdk.UploadPartCopyCommand({
          Bucket: p.bucket, Key: p.prefix + to, UploadId, PartNumber: n, CopySource: source, CopySourceRange: `bytes=${at}-${Math.min(size, at + COPY_PART) - 1}`,
        }));
        parts.push({ ETag: r.CopyPartResult.ETag, PartNumber: n });
      }
      await call<any>((sdk) => new sdk.CompleteMultipartUploadCommand({ Bucket: p.bucket, Key: p.prefix + to, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await call<any>((sdk) => new sdk.AbortMultipartUploadCommand({ Bucket: p.bucket, Key: p.prefix + to, UploadId })).catch(() => undefined);
      throw err;
    }
  } catch (err) {
    throw s3Error(err, `copying ${from} to`, urlOf(p, to));
  }
}
