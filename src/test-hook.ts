/**
 * The one test hook: with ZFERRY_TEST_PAUSE_AT=<point> and
 * ZFERRY_TEST_PAUSE_FILE=<file> in the environment, the process creates FILE
 * when it reaches POINT and then waits until FILE is removed, so a crash test
 * can SIGKILL it at exactly that point, and a lock test can hold it there
 * while a second run starts, then let it go on. Points: export:stream:N
 * (stream N has written its first volume and more is coming),
 * export:upload (an export to a bucket: a volume is part way through its
 * multipart upload), export:between:N (stream N is complete, the next not begun),
 * export:manifest (sums, restore recipe and signature written, manifest not),
 * export:name (DEST listed, the new bundle's folder not yet named),
 * import:stream:N (zfs recv of stream N has been fed exactly
 * ZFERRY_TEST_PAUSE_BYTES bytes, default 1), import:between:N (stream N
 * received). Without both variables this costs one string compare.
 */
import { existsSync, writeFileSync } from 'node:fs';

export async function testPause(point: string): Promise<void> {
  const at = process.env.ZFERRY_TEST_PAUSE_AT;
  const file = process.env.ZFERRY_TEST_PAUSE_FILE;
  if (!at || !file || at !== point) return;
  writeFileSync(file, `${process.pid}\n`);
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (existsSync(file)) return;
      clearInterval(poll);
      resolve();
    }, 50);
  });
}
