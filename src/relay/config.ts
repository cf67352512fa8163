/** `relay run`'s configuration file: parsed, validated against schemas/relay-config.schema.json, paths resolved. */
import { dirname, resolve } from 'node:path';
import { ZferryError, readUserFile } from '../errors.js';
import { validateWith } from '../schemas.js';
import { parseRate, parseSize } from '../units.js';
import { DEFAULT_IDLE_TIMEOUT_SECONDS, parseEndpoint, SLOW_LINK_TUNING, type Endpoint, type MbufferTuning } from '../mbuffer/index.js';

export interface RelayConfig {
  file: string;
  source: string;
  spool: string;
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
  source: string;
  spool: string;
  to: string;
  replyListen: string;
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

export function parseRelayConfig(text: string, file: string): RelayConfig {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ZferryError(`${file}: not valid JSON (${(err as Error).message})`, { file });
  }
  const problem = validateWith('relay-config', data);
  if (problem) throw new ZferryError(`${file}: ${problem.path || '/'} ${problem.message}`, { file, field: problem.path });
  const raw = data as RawConfig;
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
    source: raw.source,
    spool: resolve(base, raw.spool),
    to: endpoint(raw.to, 'to', true),
    replyListen: endpoint(raw.replyListen, 'replyListen', false),
    receiptTimeoutSeconds: raw.receiptTimeout ?? 3600,
    idleTimeoutSeconds: raw.idleTimeout ?? DEFAULT_IDLE_TIMEOUT_SECONDS,
    trustReceiver: raw.trustReceiver === undefined ? null : resolve(base, raw.trustReceiver),
    initialState: raw.initialState === undefined ? null : resolve(base, raw.initialState),
    level: raw.level ?? 3,
    linkBytesPerSecond: linkRate(raw.link, file) ?? size(raw.mbuffer?.rate, undefined, file, 'mbuffer.rate') ?? null,
    maxMemory: size(raw.maxMemory, 512 * 1024 ** 2, file, 'maxMemory')!,
    volumeSize: size(raw.volumeSize, 1024 ** 3, file, 'volumeSize')!,
    sign: raw.sign === undefined ? null : resolve(base, raw.sign),
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
