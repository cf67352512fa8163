/**
 * The package as a user gets it (issue 17, point 7): `npm pack` builds
 * through prepack from a copy of the sources with no dist/, and the tarball
 * installs with `npm install -g` into a fresh prefix as a working zferry,
 * its man page and its native zstd binding included. Needs the npm registry
 * (the dependencies) and the compiler setup.sh installs (zstd-napi builds
 * from source where no prebuilt binary fits).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
let work: string | null = null;

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('npm pack builds the package, and it installs with npm install -g into a working zferry', { timeout: 15 * 60_000 }, async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'zferry-pack-'));
  const copy = path.join(work, 'src');
  const prefix = path.join(work, 'prefix');
  // The sources git knows (tracked, or new and not ignored): no dist/, as in a fresh clone.
  const files = (await execa('git', ['-C', root, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'])).stdout.split('\0').filter(Boolean);
  await execa('tar', ['-C', root, '--null', '-T', '-', '-cf', path.join(work, 'src.tar')], { input: files.join('\0') });
  await mkdir(copy);
  await execa('tar', ['-C', copy, '-xf', path.join(work, 'src.tar')]);
  // The build's own tools (tsc); the tarball's dependencies come from the registry.
  await symlink(path.join(root, 'node_modules'), path.join(copy, 'node_modules'));
  await assert.rejects(stat(path.join(copy, 'dist')), 'the copy starts without a build');

  const pack = await execa('npm', ['pack', '--pack-destination', work], { cwd: copy });
  const tarball = path.join(work, pack.stdout.trim().split('\n').pop()!);
  await execa('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { cwd: work });

  const { version } = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
  const zferry = path.join(prefix, 'bin', 'zferry');
  assert.equal((await execa(zferry, ['--version'])).stdout, version);
  assert.match((await execa(zferry, ['completion', 'bash'])).stdout, /^complete -F _zferry zferry$/m);
  assert.match(await readFile(path.join(prefix, 'share', 'man', 'man1', 'zferry.1'), 'utf8'), /^\.SS zferry export$/m);
  // The native binding export and import stream through was built or fetched for this machine.
  const installed = path.join(prefix, 'lib', 'node_modules', 'zferry');
  const zstd = await execa(process.execPath, ['--input-type=module', '-e',
    "const m = await import('zstd-napi'); const z = m.default ?? m; process.stdout.write(z.decompress(z.compress(Buffer.from('zferry'))).toString())"], { cwd: installed });
  assert.equal(zstd.stdout, 'zferry');
  // The bundled CLI's worker and the schemas' standalone validators sit beside it, where it looks for them.
  for (const f of ['main.js', 'sha256-worker.js', 'schemas.precompiled.cjs']) await stat(path.join(installed, 'dist', 'cli', f));
  // The installed CLI judges a manifest by its schema: one line naming the file and the field.
  const fake = path.join(work, 'zferry-fake');
  await mkdir(fake);
  await writeFile(path.join(fake, 'manifest.json'), '{"format":"zferry-bundle","formatVersion":1}');
  const judged = await execa(zferry, ['verify', fake], { reject: false });
  assert.equal(judged.exitCode, 1);
  assert.match(judged.stderr, /manifest\.json: \/ must have required property 'bundleId'/);
});
