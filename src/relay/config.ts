/**
 * The configuration file: `relay run --config`, and export, import and
 * status --config, one file for every command (each takes the keys it uses).
 * Parsed, validated against schemas/relay-config.schema.json, paths resolved.
 */
import { dirname, resolve } from 'node:path';
import { ZferryError, readUserFile } from '../errors.js';
import { validateWith } from '../schemas.js';
import { parseRate, parseSize } from '../units.js';
import { DEFAULT_IDLE_TIMEOUT_SECONDS, parseEndpoint, SLOW_LINK_TUNING, type Endpoint, type MbufferTuning } from '../mbuffer/index.js';
import { commandWords } from '../hooks.js';
import { checkSite } from '../state/site.js';

/** What every command may take from the file; null where the file is silent. */
export interface JobConfig {
  file: string;
  source: string | null;
  spool: string | null;
  site: string | null;
  pre: string[] | null;
  post: string[] | null;
  notify: string[] | null;
  level: number | 'auto' | null;
  /** The link the bundles cross, bytes per second (for level auto). */
  linkBytesPerSecond: number | null;
  /** zstd's memory bound for level auto. */
  maxMemory: number | null;
  volumeSize: number | null;
  sign: string | null;
  identity: string | null;
  trust: string | null;
  /** export and status: only receipts signed by this public key (--trust-receiver). */
  trustReceiver: string | null;
  warn: string | null;
  crit: string | null;
}

export interface RelayConfig {
  file: string;
  source: string;
  spool: string;
  /** The site this relay feeds; default: the default site. */
  site: string;
  pre: string[] | null;
  post: string[] | null;
  notify: string[] | null;
  to: Endpoint;
  replyListen: Endpoint;
  receiptTimeoutSeconds: number;
  /** The push, or a reply connection, on which no block moved for this long is dropped. */
  idleTimeoutSeconds: number;
  /** The receiver's public key file (its relay receive --sign): only receipts signed by it are accepted. */
  trustReceiver: string | null;
  initialState: string | null;
  level: number | 'auto';
  /** With level auto: the link's rate, bytes per second (the config's link, else mbuffer.rate). */
  linkBytesPerSecond: number | null;
  /** With level auto: zstd's memory bound. */
  maxMemory: number;
  volumeSize: number;
  /** Secret key file (zferry keygen): every exported bundle is signed, for a receiver with --trust. */
  sign: string | null;
  tuning: MbufferTuning;
}

interface RawConfig {
  source?: string;
  spool?: string;
  to?: string;
  replyListen?: string;
  site?: string;
  pre?: string | string[];
  post?: string | string[];
  notify?: string | string[];
  identity?: string;
  trust?: string;
  warn?: string;
  crit?: string;
  receiptTimeout?: number;
  idleTimeout?: number;
  trustReceiver?: string;
  initialState?: string;
  level?: number | 'auto';
  link?: number | string;
  maxMemory?: number | string;
  volumeSize?: number | string;
  sign?: string;
  mbuffer?: { blockSize?: number | string; memory?: number | string; rate?: number | string };
}

function size(v: number | string | undefined, fallback: number | undefined, file: string, field: string): number | undefined {
  if (v === undefined) return fallback;
  if (typeof v === 'number') return v;
  try {
    return parseSize(v, field);
  } catch (err) {
    throw new ZferryError(`${file}: /${field.replace(/\./g, '/')} ${(err as Error).message}`, { file, field: `/${field.replace(/\./g, '/')}` });
  }
}

function linkRate(v: number | string | undefined, file: string): number | undefined {
  if (v === undefined || typeof v === 'number') return v;
  try {
    return parseRate(v, 'link');
  } catch (err) {
    throw new ZferryError(`${file}: /link ${(err as Error).message}`, { file, field: '/link' });
  }
}

function parseRaw(text: string, file: string): RawConfig {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ZferryError(`${file}: not valid JSON (${(err as Error).message})`, { file });
  }
  const problem = validateWith('relay-config', data);
  if (problem) throw new ZferryError(`${file}: ${problem.path || '/'} ${problem.message}`, { file, field: problem.path });
  return data as RawConfig;
}

/** The keys export, import and status take; checked as relay run checks them. */
export function parseJobConfig(text: string, file: string): JobConfig {
  return jobConfig(parseRaw(text, file), file);
}

function jobConfig(raw: RawConfig, file: string): JobConfig {
  const base = dirname(resolve(file));
  const path = (v: string | undefined) => (v === undefined ? null : resolve(base, v));
  const command = (v: string | string[] | undefined, key: string) => {
    if (v === undefined) return null;
    try {
      return commandWords(v, key);
    } catch (err) {
      throw new ZferryError(`${file}: /${key} ${(err as Error).message.replace(/^[^:]*: /, '')}`, { file, field: `/${key}` });
    }
  };
  return {
    file,
    source: raw.source ?? null,
    spool: path(raw.spool),
    site: raw.site === undefined ? null : checkSite(raw.site, `${file}: /site`),
    pre: command(raw.pre, 'pre'),
    post: command(raw.post, 'post'),
    notify: command(raw.notify, 'notify'),
    level: raw.level ?? null,
    linkBytesPerSecond: linkRate(raw.link, file) ?? null,
    maxMemory: size(raw.maxMemory, undefined, file, 'maxMemory') ?? null,
    volumeSize: size(raw.volumeSize, undefined, file, 'volumeSize') ?? null,
    sign: path(raw.sign),
    identity: path(raw.identity),
    trust: path(raw.trust),
    trustReceiver: path(raw.trustReceiver),
    warn: raw.warn ?? null,
    crit: raw.crit ?? null,
  };
}

export function parseRelayConfig(text: string, file: string): RelayConfig {
  const raw = parseRaw(text, file);
  const job = jobConfig(raw, file);
  // The schema leaves them optional, since export and import read the same file.
  for (const key of ['source', 'spool', 'to', 'replyListen'] as const) {
    if (raw[key] === undefined) throw new ZferryError(`${file}: / must have required property '${key}' (relay run needs it)`, { file, field: `/${key}` });
  }
  const base = dirname(resolve(file));
  const endpoint = (text: string, field: string, hostRequired: boolean) => {
    try {
      return parseEndpoint(text, field, hostRequired);
    } catch (err) {
      throw new ZferryError(`${file}: /${field} ${(err as Error).message}`, { file, field: `/${field}` });
    }
  };
  return {
    file,
    source: raw.source!,
    spool: resolve(base, raw.spool!),
    site: job.site ?? checkSite(undefined),
    pre: job.pre,
    post: job.post,
    notify: job.notify,
    to: endpoint(raw.to!, 'to', true),
    replyListen: endpoint(raw.replyListen!, 'replyListen', false),
    receiptTimeoutSeconds: raw.receiptTimeout ?? 3600,
    idleTimeoutSeconds: raw.idleTimeout ?? DEFAULT_IDLE_TIMEOUT_SECONDS,
    trustReceiver: raw.trustReceiver === undefined ? null : resolve(base, raw.trustReceiver),
    initialState: raw.initialState === undefined ? null : resolve(base, raw.initialState),
    level: raw.level ?? 3,
    linkBytesPerSecond: job.linkBytesPerSecond ?? size(raw.mbuffer?.rate, undefined, file, 'mbuffer.rate') ?? null,
    maxMemory: job.maxMemory ?? 512 * 1024 ** 2,
    volumeSize: job.volumeSize ?? 1024 ** 3,
    sign: job.sign,
    tuning: {
      blockSize: size(raw.mbuffer?.blockSize, SLOW_LINK_TUNING.blockSize, file, 'mbuffer.blockSize')!,
      memory: size(raw.mbuffer?.memory, SLOW_LINK_TUNING.memory, file, 'mbuffer.memory')!,
      rate: size(raw.mbuffer?.rate, undefined, file, 'mbuffer.rate'),
    },
  };
}

export async function readRelayConfig(file: string): Promise<RelayConfig> {
  return parseRelayConfig(await readUserFile(file, 'relay config'), file);
}

export async function readJobConfig(file: string): Promise<JobConfig> {
  return parseJobConfig(await readUserFile(file, 'config', 1024 * 1024), file);
}
