/**
 * What zfs may be given as a dataset name. zfs parses its arguments with
 * getopt and has no `--`: a name the user typed that starts with `-`
 * (`zferry import DISK -- -r`) would be read as an option (`zfs list -r`
 * lists every dataset on the host). A full name starts with its pool's name,
 * and a pool name starts with a letter; the characters are those the
 * manifest schema allows.
 */
import { ZferryError } from '../errors.js';

const COMPONENT = '(?!\\.\\.?(?:/|$))[A-Za-z0-9_.: -]+';
const FULL_NAME = new RegExp(`^(?=[A-Za-z])${COMPONENT}(?:/${COMPONENT})*$`);

/** Refuses, with one line, a user-named dataset that is not a full dataset name. */
export function checkDatasetName(name: string, what: string): void {
  if (name.length <= 255 && FULL_NAME.test(name)) return;
  throw new ZferryError(
    `${what} ${JSON.stringify(name)} is not a dataset name (POOL or POOL/PATH, the pool's name starting with a letter); zfs was not run`,
    { dataset: name },
    2,
  );
}
