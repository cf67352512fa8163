/**
 * Relay tar streams built by hand, as a hostile sender would: any entry
 * names, types and declared sizes, in any order, cut anywhere. The entries of
 * a real bundle come from the same code the real sender uses (pack.ts).
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { RELAY_HEADER, describeBundles, relayHeader } from '../../src/relay/pack.js';
import { mbufferOut, SLOW_LINK_TUNING } from '../../src/mbuffer/index.js';

export interface TarEntry {
  name: string;
  body?: Buffer;
  /** Default 'file'. */
  type?: tar.Header['type'];
  linkname?: string;
  /** Declared size, when it is not the body's: the stream stops after the body, in the middle of the entry. */
  size?: number;
  pax?: Record<string, string>;
}

/** A relay stream's header entry announcing these bundle folders, or the header object given. */
export async function headerEntry(dirsOrHeader: string[] | object): Promise<TarEntry> {
  const header = Array.isArray(dirsOrHeader) ? relayHeader(await describeBundles(dirsOrHeader)) : dirsOrHeader;
  return { name: RELAY_HEADER, body: Buffer.from(JSON.stringify(header) + '\n') };
}

/** The entries `relay send` makes for one bundle folder: manifest first, small files, then the volumes in order. */
export async function bundleEntries(dir: string): Promise<TarEntry[]> {
  const [b] = await describeBundles([dir]);
  const name = basename(dir);
  const files = [...b.files, ...b.manifest.streams.flatMap((s) => s.volumes.map((v) => v.file))];
  return Promise.all(files.map(async (f) => ({ name: `${name}/${f}`, body: await readFile(join(dir, f)) })));
}

/** The tar bytes of `entries` in order; properly ended unless an entry declares more than its body. */
export async function tarBytes(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const parts: Buffer[] = [];
  pack.on('data', (c: unknown) => void parts.push(Buffer.from(c as Buffer)));
  pack.on('error', () => undefined);
  const mtime = new Date(0);
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = { name: e.name, type, mode: 0o644, mtime, ...(e.linkname !== undefined ? { linkname: e.linkname } : {}), ...(e.pax ? { pax: e.pax } : {}) };
    const body = e.body ?? Buffer.alloc(0);
    if (e.size !== undefined && e.size !== body.length) {
      const sink = pack.entry({ ...header, size: e.size });
      sink.on('error', () => undefined);
      sink.write(body);
      await new Promise((r) => setImmediate(r));
      pack.destroy();
      return Buffer.concat(parts);
    }
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === 'file') pack.entry(header, body, done);
      else pack.entry(header, done);
    });
  }
  const ended = new Promise<void>((r) => pack.once('end', () => r()));
  pack.finalize();
  await ended;
  return Buffer.concat(parts);
}

/** `prefix`, then `bytes` zero bytes in 1 MiB chunks made as they are read: a body larger than anyone should buffer. */
export function withZeros(prefix: Buffer, bytes: number): Readable {
  return Readable.from((async function* () {
    yield prefix;
    for (let left = bytes; left > 0; left -= 1024 * 1024) yield Buffer.alloc(Math.min(left, 1024 * 1024));
  })());
}

/** Whether something listens on TCP `port` (from /proc, without connecting: mbuffer -I takes exactly one connection). */
async function listening(port: number): Promise<boolean> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const rows = (await readFile(table, 'utf8').catch(() => '')).split('\n').slice(1);
    if (rows.some((r) => { const f = r.trim().split(/\s+/); return f[1]?.endsWith(hex) && f[3] === '0A'; })) return true;
  }
  return false;
}

/** Waits (≤ 30 s) until a receiver listens on `port`. */
export async function waitListening(port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await listening(port))) {
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Sends `bytes` as one relay connection through the real mbuffer, once a
 * receiver listens; whether mbuffer reports success is not asserted (a
 * receiver that refuses early resets the connection).
 */
export async function sendRaw(host: string, port: number, bytes: Buffer): Promise<void> {
  await waitListening(port);
  const out = mbufferOut({ host, port }, { ...SLOW_LINK_TUNING, memory: 1024 * 1024 });
  out.stdin.on('error', () => undefined);
  out.stdin.end(bytes);
  await out.done.catch(() => undefined);
}
