/**
 * Every file zferry creates or reads inside a bundle, spool or state folder
 * goes through here. Those folders may come from a stranger (a disk in
 * transit, a relay peer), and what they hold must never make zferry write
 * outside them, read outside them, or hang:
 *
 * - a create is O_CREAT|O_EXCL|O_NOFOLLOW and a temp name is random, so a
 *   link planted at any name is never written through;
 * - a replace writes a temp file, fsyncs it, renames it within the same
 *   folder and fsyncs the folder, and refuses a final name that is anything
 *   but a regular file (something other than zferry put it there);
 * - a read lstats first, refuses at once what is not a regular file, opens
 *   with O_NOFOLLOW|O_NONBLOCK (a FIFO swapped in after the lstat cannot
 *   block the open) and checks the opened file is the one it lstat'd;
 * - no folder between the one the user named and the file may be a link.
 *
 * The folder the user names (the disk, --journal DIR, the spool) and files the
 * user names directly (keys, --since, configs: readUserFile) are the user's
 * choice and may be links.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, type BigIntStats, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';
import { ZferryError } from '../errors.js';
import { fileError } from './errors.js';

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY, O_RDONLY, O_RDWR, O_APPEND, O_NONBLOCK, O_DIRECTORY } = constants;

/** The only flags zferry creates a file with. */
export const CREATE_FLAGS = O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY;
const READ_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

/** What identifies a file zferry created, to recognise it when it reopens it. */
export interface FileId {
  dev: bigint;
  ino: bigint;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

function kindOf(st: Stats | BigIntStats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a folder';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'a regular file';
}

/** Names what is there and nothing about it: never its size or contents. */
function notRegular(file: string, st: Stats | BigIntStats): ZferryError {
  return new ZferryError(`${file}: is ${kindOf(st)}, not a regular file`, { file });
}

/**
 * Creates `file`, which must not exist (not even as a dangling link). Errors
 * are the raw errno errors (EEXIST for a name already taken), for callers
 * that act on them; wrap with fileError for the user.
 */
export async function createExclusive(file: string, mode = 0o644): Promise<FileHandle> {
  return open(file, CREATE_FLAGS, mode);
}

/** The device and inode of an open file, to be given to reopenOwned later. */
export async function fileIdOf(fh: FileHandle): Promise<FileId> {
  const st = await fh.stat({ bigint: true });
  return { dev: st.dev, ino: st.ino };
}

/**
 * Reopens a file zferry created earlier (to append a resumed volume, or to
 * repair one): never through a link, and only if it is still the very file
 * recorded by device and inode.
 */
export async function reopenOwned(file: string, id: FileId, opts: { append?: boolean } = {}): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(file, (opts.append ? O_WRONLY | O_APPEND : O_RDWR) | O_NOFOLLOW);
  } catch (err) {
    if (errno(err) === 'ELOOP') throw new ZferryError(`${file}: is a symbolic link, not the file zferry wrote`, { file });
    throw fileError(err, 'reopening', file);
  }
  try {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile() || st.dev !== id.dev || st.ino !== id.ino) {
      throw new ZferryError(`${file}: is not the file zferry wrote (replaced since; device/inode differ), refusing to write to it`, { file });
    }
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** Creates `file` with `data`, flushed to disk; the name must be free. Returns its identity. */
export async function writeNewFile(file: string, data: string | Buffer, mode = 0o644): Promise<FileId> {
  let fh: FileHandle;
  try {
    fh = await createExclusive(file, mode);
  } catch (err) {
    if (errno(err) === 'EEXIST') throw new ZferryError(`${file}: already exists (zferry writes only new files here)`, { file });
    throw fileError(err, 'creating', file);
  }
  try {
    await fh.writeFile(data);
    await fh.sync();
    return await fileIdOf(fh);
  } catch (err) {
    throw fileError(err, 'writing', file);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Creates `dir/name` holding `data` only if the name is free, and so that no
 * reader ever sees it empty or half-written: the data goes to a random temp
 * file first, which is then hard-linked to the name (link never replaces and
 * never follows a link there). Returns false when the name is taken. For lock
 * files, whose content decides whether they are stale.
 */
export async function createComplete(dir: string, name: string, data: string | Buffer, mode = 0o644): Promise<boolean> {
  if (name !== basename(name) || name === '' || name === '.' || name === '..') throw new RangeError(`createComplete: ${JSON.stringify(name)} is not a plain file name`);
  const final = join(dir, name);
  const temp = join(dir, `.${name}.${randomBytes(12).toString('hex')}.tmp`);
  try {
    const fh = await createExclusive(temp, mode);
    try {
      await fh.writeFile(data);
    } finally {
      await fh.close();
    }
    await link(temp, final);
    return true;
  } catch (err) {
    if (errno(err) === 'EEXIST') return false;
    throw fileError(err, 'creating', final);
  } finally {
    await rm(temp, { force: true }).catch(() => undefined);
  }
}

/**
 * Refuses when `file` exists as anything but a regular file: a link, FIFO or
 * folder at a name zferry is about to replace was put there by something
 * else, and replacing it silently would hide that.
 */
export async function assertReplaceable(file: string): Promise<void> {
  let st;
  try {
    st = await lstat(file);
  } catch (err) {
    if (errno(err) === 'ENOENT') return;
    throw fileError(err, 'checking', file);
  }
  if (!st.isFile()) {
    throw new ZferryError(`${file}: is ${kindOf(st)}, not a regular file; zferry will not replace it (remove it if it is not yours)`, { file });
  }
}

/**
 * Replaces `dir/name` so a reader sees the old file or the whole new one:
 * random temp name in the same folder, fsync, rename within the folder,
 * fsync the folder. Used for manifest.json, SHA256SUMS, RESTORE.txt, the
 * signature, receipts, state files and the journal. With `durable: false`
 * the two fsyncs are left out: still whole-or-old for every reader and
 * after a kill, but after a power cut possibly the old one (export's marker
 * between streams, which the next run checks against the volumes anyway).
 */
export async function writeFileAtomic(dir: string, name: string, data: string | Buffer, mode = 0o644, opts: { durable?: boolean } = {}): Promise<void> {
  const durable = opts.durable !== false;
  if (name !== basename(name) || name === '' || name === '.' || name === '..') throw new RangeError(`writeFileAtomic: ${JSON.stringify(name)} is not a plain file name`);
  const final = join(dir, name);
  const temp = join(dir, `.${name}.${randomBytes(12).toString('hex')}.tmp`);
  let created = false;
  try {
    const fh = await createExclusive(temp, mode);
    created = true;
    try {
      await fh.writeFile(data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await assertReplaceable(final);
    // rename replaces whatever sits at `final` (a link itself, never its target).
    await rename(temp, final);
    created = false;
    if (durable) await fsyncDir(dir);
  } catch (err) {
    if (created) await rm(temp, { force: true }).catch(() => undefined);
    throw fileError(err, 'writing', final);
  }
}

/** Makes a rename or a new file in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, O_RDONLY | O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Makes a new folder; refuses anything already at that name (a link included). */
export async function makeFreshFolder(dir: string, mode = 0o755): Promise<void> {
  try {
    await mkdir(dir, { mode });
  } catch (err) {
    if (errno(err) === 'EEXIST') throw new ZferryError(`${dir}: already exists; zferry makes a new folder here`, { file: dir });
    throw fileError(err, 'creating', dir);
  }
}

/** Makes `dir` unless it is already a real folder; a link or file at that name is refused. */
export async function ensureFolder(dir: string, mode = 0o755): Promise<void> {
  try {
    await mkdir(dir, { mode });
    return;
  } catch (err) {
    if (errno(err) !== 'EEXIST') throw fileError(err, 'creating', dir);
  }
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new ZferryError(`${dir}: is ${kindOf(st)}, not a folder`, { file: dir });
}

/**
 * Every folder from `root` (exclusive, the user's choice) down to `dir`
 * (inclusive) must be a real folder: `streams/` as a link to /etc is refused.
 * Errors for a missing folder are the raw ENOENT.
 */
export async function assertRealFolders(root: string, dir: string): Promise<void> {
  const rel = relative(root, dir);
  if (rel === '') return;
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new ZferryError(`${dir}: lies outside ${root}`, { file: dir });
  }
  let at = root;
  for (const part of rel.split(sep)) {
    at = join(at, part);
    const st = await lstat(at);
    if (st.isSymbolicLink()) throw new ZferryError(`${at}: is a symbolic link inside ${root}; zferry follows no links there`, { file: at });
    if (!st.isDirectory()) throw new ZferryError(`${at}: is ${kindOf(st)}, not a folder`, { file: at });
  }
}

export interface RegularFile {
  fh: FileHandle;
  size: number;
}

/**
 * Opens a regular file for reading, and nothing else: a link, FIFO, device,
 * socket or folder is refused with one line, before and after the open. With
 * `within` (the bundle, spool or state folder), no folder between it and the
 * file may be a link. Missing files and other I/O failures are the raw errno
 * errors, for the caller to name ("missing volume ...").
 */
export async function openRegular(file: string, within?: string): Promise<RegularFile> {
  if (within !== undefined) await assertRealFolders(within, dirname(file));
  const st = await lstat(file, { bigint: true });
  if (!st.isFile()) throw notRegular(file, st);
  let fh: FileHandle;
  try {
    fh = await open(file, READ_FLAGS);
  } catch (err) {
    if (errno(err) === 'ELOOP') throw new ZferryError(`${file}: is a symbolic link, not a regular file`, { file });
    throw err;
  }
  try {
    const got = await fh.stat({ bigint: true });
    if (!got.isFile()) throw notRegular(file, got);
    if (got.dev !== st.dev || got.ino !== st.ino) throw new ZferryError(`${file}: was replaced while being opened; refusing to read it`, { file });
    return { fh, size: Number(got.size) };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** The size of a regular file (null when there is none at that name); refuses what openRegular refuses. */
export async function regularFileSize(file: string, within?: string): Promise<number | null> {
  let f: RegularFile;
  try {
    f = await openRegular(file, within);
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    throw err;
  }
  await f.fh.close();
  return f.size;
}

export interface ReadRegularOptions {
  within?: string;
  /** Refuse a file larger than this, before allocating for it. */
  maxBytes?: number;
  /** What the file is, for the size refusal ("manifest", "signature"). */
  what?: string;
}

/** The whole of a regular file (see openRegular for what is refused and how errors come). */
export async function readRegular(file: string, opts: ReadRegularOptions = {}): Promise<Buffer> {
  const { fh, size } = await openRegular(file, opts.within);
  try {
    if (opts.maxBytes !== undefined && size > opts.maxBytes) {
      throw new ZferryError(`${file}: ${size} bytes is larger than any ${opts.what ?? 'such file'} zferry writes (limit ${opts.maxBytes})`, { file });
    }
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < buf.length) {
      const { bytesRead } = await fh.read(buf, off, buf.length - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return buf.subarray(0, off);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Size and hex sha256 of a regular file, read from disk (see openRegular for what is refused). */
export async function hashRegular(file: string, within?: string): Promise<{ bytes: number; sha256: string }> {
  const { fh } = await openRegular(file, within);
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, bytes);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    return { bytes, sha256: hash.digest('hex') };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Renames a regular file zferry wrote to a free name in the same folder (to
 * renumber a kept volume): anything but a regular file at `from`, or anything
 * at `to`, is refused. The caller fsyncs the folder once after its renames.
 */
export async function renameOwnFile(from: string, to: string): Promise<void> {
  if (dirname(from) !== dirname(to)) throw new RangeError(`renameOwnFile: ${from} and ${to} are in different folders`);
  const st = await lstat(from);
  if (!st.isFile()) throw notRegular(from, st);
  const there = await lstat(to).catch((err: unknown) => (errno(err) === 'ENOENT' ? null : Promise.reject(err)));
  if (there) throw new ZferryError(`${to}: already exists; zferry will not rename ${basename(from)} over it`, { file: to });
  await rename(from, to);
}

/** Removes one entry of a folder zferry owns: a file or link is unlinked (a link's target never touched), a folder removed whole. */
export async function removeEntry(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/**
 * Opens a regular file zferry kept (a relay volume cut part way) to write on
 * after its first `keep` bytes: never through a link, only the file lstat'd,
 * and whatever lies past `keep` is cut off first.
 */
export async function openToContinue(file: string, keep: number, within?: string): Promise<FileHandle> {
  if (within !== undefined) await assertRealFolders(within, dirname(file));
  const st = await lstat(file, { bigint: true });
  if (!st.isFile()) throw notRegular(file, st);
  let fh: FileHandle;
  try {
    fh = await open(file, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    if (errno(err) === 'ELOOP') throw new ZferryError(`${file}: is a symbolic link, not the file zferry kept`, { file });
    throw fileError(err, 'reopening', file);
  }
  try {
    const got = await fh.stat({ bigint: true });
    if (!got.isFile() || got.dev !== st.dev || got.ino !== st.ino) throw new ZferryError(`${file}: was replaced while being opened; refusing to write to it`, { file });
    if (got.size < BigInt(keep)) throw new ZferryError(`${file}: holds ${got.size} bytes, fewer than the ${keep} kept`, { file });
    await fh.truncate(keep);
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}
