/** The manifest's JSON Schema check (schemas/manifest.schema.json). */
import { SCHEMA_DIR, validateWith, type SchemaProblem } from '../schemas.js';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

export type { SchemaProblem };
export const SCHEMA_URL = pathToFileURL(join(SCHEMA_DIR, 'manifest.schema.json'));

export function validateManifestSchema(data: unknown): SchemaProblem | null {
  return validateWith('manifest', data);
}
