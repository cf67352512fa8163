/** Turns a file-system errno into the one-line ZferryError a user can act on. */
import { constants } from 'node:os';
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

/**
 * The error's name. libuv has no name for some errnos Linux returns (EDQUOT
 * arrives as code "Unknown system error -122"): the number is looked up in
 * the platform's own table instead.
 */
export function errnoName(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException | null;
  if (!e || typeof e !== 'object') return undefined;
  if (e.code && /^E[A-Z0-9]+$/.test(e.code)) return e.code;
  if (typeof e.errno === 'number') {
    const n = Math.abs(e.errno);
    for (const [name, value] of Object.entries(constants.errno)) if (value === n) return name;
  }
  return e.code;
}

/** ENOSPC and EDQUOT: the medium or the quota is full, which more space (not a retry) fixes. */
export function isOutOfSpace(code: string | undefined): boolean {
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** `verb` is what was being done: 'writing', 'reading', 'opening'. */
export function fileError(err: unknown, verb: string, file: string, offset?: number): ZferryError {
  if (err instanceof ZferryError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = errnoName(err);
  const why = (code && WHY[code]) ?? e.message ?? String(err);
  const at = offset === undefined ? '' : ` at offset ${offset}`;
  return new ZferryError(`${why} ${verb} ${file}${at}`, { file, ...(offset === undefined ? {} : { offset }), ...(code ? { errno: code } : {}) });
}
