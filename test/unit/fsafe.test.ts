/**
 * src/fs/safe on a plain file system: what a hostile bundle, spool or state
 * folder can put in zferry's way (links, FIFOs, folders, swapped files) is
 * refused with one line, and nothing outside is written or read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ZferryError } from '../../src/errors.js';
import { fileError } from '../../src/fs/errors.js';
import {
  assertRealFolders, assertReplaceable, createExclusive, ensureFolder, fileIdOf, makeFreshFolder, openRegular, readRegular,
  regularFileSize, reopenOwned, writeFileAtomic, writeNewFile,
} from '../../src/fs/safe.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'zferry-fsafe-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A file outside the folder under test, with content a leak would show. */
async function outsideFile(dir: string): Promise<{ file: string; size: number; sha256: string }> {
  const text = 'outside: not for zferry\n'.repeat(1111);
  const file = join(dir, 'outside.txt');
  await writeFile(file, text);
  return { file, size: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') };
}

const mkfifo = (path: string) => execa('mkfifo', [path]);

test('exclusive create refuses an existing file, a link to a file outside and a dangling link', async () => {
  await withDir(async (dir) => {
    const out = await outsideFile(dir);
    const inside = join(dir, 'inside');
    await mkdir(inside);
    await writeFile(join(inside, 'taken'), 'old');
    await symlink(out.file, join(inside, 'link'));
    await symlink(join(dir, 'nowhere'), join(inside, 'dangling'));
    for (const name of ['taken', 'link', 'dangling']) {
      await assert.rejects(createExclusive(join(inside, name)), (e: NodeJS.ErrnoException) => e.code === 'EEXIST', name);
    }
    assert.equal(await readFile(join(inside, 'taken'), 'utf8'), 'old');
    assert.equal((await readFile(out.file)).length, out.size);
    await assert.rejects(readdir(join(dir, 'nowhere')), /ENOENT/, 'the dangling link was not followed to create its target');
    await assert.rejects(writeNewFile(join(inside, 'link'), 'x'), /^ZferryError: .*inside\/link: already exists/);
    const fh = await createExclusive(join(inside, 'fresh'), 0o600);
    await fh.close();
    assert.equal((await lstat(join(inside, 'fresh'))).mode & 0o777, 0o600);
  });
});

test('reopen of a file zferry wrote accepts the same inode and refuses a replaced file or a link', async () => {
  await withDir(async (dir) => {
    const out = await outsideFile(dir);
    const file = join(dir, 'volume');
    const id = await writeNewFile(file, 'first part\n');
    const fh = await reopenOwned(file, id, { append: true });
    await fh.write('second part\n');
    await fh.close();
    assert.equal(await readFile(file, 'utf8'), 'first part\nsecond part\n');

    // Same name, another inode: swapped in by something else.
    await writeFile(join(dir, 'other'), 'swapped');
    await rename(join(dir, 'other'), file);
    await assert.rejects(reopenOwned(file, id), (e: unknown) => e instanceof ZferryError && /volume: is not the file zferry wrote/.test(e.message));
    assert.equal(await readFile(file, 'utf8'), 'swapped');

    await rm(file);
    await symlink(out.file, file);
    await assert.rejects(reopenOwned(file, id, { append: true }), /volume: is a symbolic link, not the file zferry wrote/);
    // Even with the outside file's own identity recorded, a link is never opened.
    const outFh = await openRegular(out.file);
    const outId = await fileIdOf(outFh.fh);
    await outFh.fh.close();
    await assert.rejects(reopenOwned(file, outId), /is a symbolic link/);
    assert.equal((await readFile(out.file)).length, out.size);
  });
});

test('atomic write replaces a regular file and leaves no temp file', async () => {
  await withDir(async (dir) => {
    await writeFileAtomic(dir, 'receipt.json', 'one\n');
    await writeFileAtomic(dir, 'receipt.json', Buffer.from('two\n'));
    assert.equal(await readFile(join(dir, 'receipt.json'), 'utf8'), 'two\n');
    assert.deepEqual(await readdir(dir), ['receipt.json']);
  });
});

test('atomic write refuses a link, a FIFO or a folder at the final name, writes nothing outside and leaves no temp behind', async () => {
  await withDir(async (dir) => {
    const out = await outsideFile(dir);
    const disk = join(dir, 'disk');
    await mkdir(disk);
    await symlink(out.file, join(disk, 'link.json'));
    await mkfifo(join(disk, 'fifo.json'));
    await mkdir(join(disk, 'folder.json'));
    for (const [name, kind] of [['link.json', 'a symbolic link'], ['fifo.json', 'a FIFO'], ['folder.json', 'a folder']]) {
      await assert.rejects(writeFileAtomic(disk, name, 'receipt\n'), (e: unknown) =>
        e instanceof ZferryError && e.message === `${join(disk, name)}: is ${kind}, not a regular file; zferry will not replace it (remove it if it is not yours)`);
    }
    assert.deepEqual((await readdir(disk)).sort(), ['fifo.json', 'folder.json', 'link.json'], 'no temp file left');
    assert.ok((await lstat(join(disk, 'link.json'))).isSymbolicLink());
    assert.equal(createHash('sha256').update(await readFile(out.file)).digest('hex'), out.sha256);
  });
});

test('atomic write into a missing folder fails with one line naming the file', async () => {
  await withDir(async (dir) => {
    await assert.rejects(writeFileAtomic(join(dir, 'gone'), 'state.json', 'x'), (e: unknown) =>
      e instanceof ZferryError && e.message === `no such file writing ${join(dir, 'gone', 'state.json')}`);
  });
});

test('atomic write on a full file system says so in one line naming the file, and leaves no temp behind', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to mount a tmpfs');
  await withDir(async (dir) => {
    const disk = join(dir, 'disk');
    await mkdir(disk);
    const mounted = await execa('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', disk], { reject: false });
    if (mounted.exitCode !== 0) return t.skip(`cannot mount a tmpfs here: ${mounted.stderr}`);
    try {
      await assert.rejects(writeFileAtomic(disk, 'manifest.json', Buffer.alloc(256 * 1024, 0x61)), (e: unknown) =>
        e instanceof ZferryError && e.message === `no space left on device writing ${join(disk, 'manifest.json')}`);
      assert.deepEqual(await readdir(disk), []);
    } finally {
      await execa('umount', [disk]);
    }
  });
});

test('EDQUOT and ENOSPC become one plain line naming the file', () => {
  const err = (code: string) => Object.assign(new Error(`${code}: raw`), { code });
  assert.equal(fileError(err('EDQUOT'), 'writing', '/d/x').message, 'disk quota exceeded writing /d/x');
  assert.equal(fileError(err('ENOSPC'), 'creating', '/d/y').message, 'no space left on device creating /d/y');
});

test('a read refuses a FIFO at once, without blocking, naming it', async () => {
  await withDir(async (dir) => {
    await mkfifo(join(dir, 'SHA256SUMS'));
    const started = Date.now();
    await assert.rejects(readRegular(join(dir, 'SHA256SUMS')), (e: unknown) =>
      e instanceof ZferryError && e.message === `${join(dir, 'SHA256SUMS')}: is a FIFO, not a regular file`);
    await assert.rejects(regularFileSize(join(dir, 'SHA256SUMS')), /is a FIFO/);
    assert.ok(Date.now() - started < 2000, 'refused at once');
  });
});

test('a read refuses a link to a file outside without reading it, and never prints its size or hash', async () => {
  await withDir(async (dir) => {
    const out = await outsideFile(dir);
    const bundle = join(dir, 'bundle');
    await mkdir(join(bundle, 'streams'), { recursive: true });
    await symlink(out.file, join(bundle, 'streams', '0001-full.zst.000'));
    await symlink('/dev/zero', join(bundle, 'device'));
    let message = '';
    await assert.rejects(openRegular(join(bundle, 'streams', '0001-full.zst.000'), bundle), (e: unknown) => {
      message = (e as Error).message;
      return e instanceof ZferryError && /0001-full\.zst\.000: is a symbolic link, not a regular file$/.test(message);
    });
    assert.ok(!message.includes(String(out.size)) && !message.includes(out.sha256), message);
    await assert.rejects(readRegular(join(bundle, 'device')), /device: is a symbolic link, not a regular file/);
    await assert.rejects(readRegular(join(bundle, 'streams')), /streams: is a folder, not a regular file/);
  });
});

test('a read refuses a file reached through a folder that is a link, naming the link', async () => {
  await withDir(async (dir) => {
    const bundle = join(dir, 'bundle');
    const elsewhere = join(dir, 'elsewhere');
    await mkdir(bundle);
    await mkdir(elsewhere);
    await writeFile(join(elsewhere, '0001-full.zst.000'), 'data');
    await symlink(elsewhere, join(bundle, 'streams'));
    await assert.rejects(readRegular(join(bundle, 'streams', '0001-full.zst.000'), { within: bundle }), (e: unknown) =>
      e instanceof ZferryError && e.message === `${join(bundle, 'streams')}: is a symbolic link inside ${bundle}; zferry follows no links there`);
    await assert.rejects(assertRealFolders(bundle, join(bundle, 'streams')), /is a symbolic link inside/);
    await assert.rejects(assertRealFolders(bundle, join(dir, 'elsewhere')), /lies outside/);
    // The folder the user names may itself be a link: only what lies inside it is checked.
    await symlink(bundle, join(dir, 'named'));
    await writeFile(join(bundle, 'manifest.json'), '{}');
    assert.equal((await readRegular(join(dir, 'named', 'manifest.json'), { within: join(dir, 'named') })).toString(), '{}');
  });
});

test('a read of a missing file gives the raw ENOENT for the caller to name; a size limit is checked before reading', async () => {
  await withDir(async (dir) => {
    await assert.rejects(readRegular(join(dir, 'none')), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    assert.equal(await regularFileSize(join(dir, 'none')), null);
    await writeFile(join(dir, 'big'), Buffer.alloc(100));
    await assert.rejects(readRegular(join(dir, 'big'), { maxBytes: 99, what: 'signature' }), /big: 100 bytes is larger than any signature zferry writes \(limit 99\)/);
    assert.equal((await readRegular(join(dir, 'big'), { maxBytes: 100 })).length, 100);
  });
});

test('folders: a fresh folder refuses anything already there; ensureFolder accepts a real folder and refuses a link', async () => {
  await withDir(async (dir) => {
    await mkdir(join(dir, 'elsewhere'));
    await symlink(join(dir, 'elsewhere'), join(dir, 'streams'));
    await assert.rejects(makeFreshFolder(join(dir, 'streams')), /streams: already exists; zferry makes a new folder here/);
    await assert.rejects(ensureFolder(join(dir, 'streams')), /streams: is a symbolic link, not a folder/);
    await ensureFolder(join(dir, 'incoming'));
    await ensureFolder(join(dir, 'incoming'));
    await makeFreshFolder(join(dir, 'bundle'));
    assert.ok((await lstat(join(dir, 'bundle'))).isDirectory());
    assert.deepEqual(await readdir(join(dir, 'elsewhere')), []);
  });
});

test('assertReplaceable accepts nothing or a regular file and refuses a link', async () => {
  await withDir(async (dir) => {
    await assertReplaceable(join(dir, 'none'));
    await writeFile(join(dir, 'file'), 'x');
    await assertReplaceable(join(dir, 'file'));
    await symlink(join(dir, 'file'), join(dir, 'link'));
    await assert.rejects(assertReplaceable(join(dir, 'link')), /link: is a symbolic link, not a regular file; zferry will not replace it/);
  });
});

test('a sync batch syncs and closes every file it took, by itself at its limit and on flush', async () => {
  const { SyncBatch } = await import('../../src/fs/sync-batch.js');
  const { open } = await import('node:fs/promises');
  const dir = await mkdtemp(join(tmpdir(), 'zferry-syncbatch-'));
  try {
    const batch = new SyncBatch(2);
    const handles = [];
    for (let i = 0; i < 3; i++) {
      const fh = await open(join(dir, `v${i}`), 'wx');
      await fh.write(Buffer.from(`volume ${i}`));
      handles.push(fh);
      await batch.add(fh, join(dir, `v${i}`));
    }
    // The second add reached the limit: those two are synced and closed, the third is held.
    assert.equal(batch.pending, 1);
    await assert.rejects(handles[0]!.stat(), { code: 'EBADF' });
    await assert.doesNotReject(handles[2]!.stat());
    await batch.flush();
    assert.equal(batch.pending, 0);
    await assert.rejects(handles[2]!.stat(), { code: 'EBADF' });
    assert.equal(await readFile(join(dir, 'v2'), 'utf8'), 'volume 2');
    // After a failure the held files are closed, not left open.
    const fh = await open(join(dir, 'v3'), 'wx');
    await batch.add(fh, join(dir, 'v3'));
    await batch.discard();
    assert.equal(batch.pending, 0);
    await assert.rejects(fh.stat(), { code: 'EBADF' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a marker written without fsyncs is still replaced whole', async () => {
  const { writeFileAtomic } = await import('../../src/fs/safe.js');
  const dir = await mkdtemp(join(tmpdir(), 'zferry-nodurable-'));
  try {
    await writeFileAtomic(dir, 'm.json', 'one', 0o644, { durable: false });
    await writeFileAtomic(dir, 'm.json', 'two', 0o644, { durable: false });
    assert.equal(await readFile(join(dir, 'm.json'), 'utf8'), 'two');
    assert.deepEqual(await readdir(dir), ['m.json']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
