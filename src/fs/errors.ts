/** Turns a file-system errno into the one-line ZferryError a user can act on. */
import { ZferryError } from '../errors.js';

const WHY: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file',
  EEXIST: 'already exists (zferry writes only new files)',
  ELOOP: 'symbolic link in the way',
  EIO: 'input/output error (failing disk or medium?)',
  EFBIG: 'file too large for this file system (choose a smaller volume size)',
};

/** `verb` is what was being done: 'writing', 'reading', 'opening'. */
export function fileError(err: unknown, verb: string, file: string, offset?: number): ZferryError {
  if (err instanceof ZferryError) return err;
  const e = err as NodeJS.ErrnoException;
  const why = (e.code && WHY[e.code]) ?? e.message ?? String(err);
  const at = offset === undefined ? '' : ` at offset ${offset}`;
  return new ZferryError(`${why} ${verb} ${file}${at}`, { file, ...(offset === undefined ? {} : { offset }) });
}
