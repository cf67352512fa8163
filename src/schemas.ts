/**
 * The JSON Schemas shipped in schemas/: one ajv instance, every schema
 * registered so one may $ref another by file name, each compiled once, and
 * ajv's errors turned into the one most useful line.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';

/** dist/src/schemas.js → the package root's schemas/. */
export const SCHEMA_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'schemas');
const ajv = new Ajv2020({ allErrors: false, strict: true });
const compiled = new Map<string, ValidateFunction>();
let loaded = false;

function loadAll(): void {
  if (loaded) return;
  for (const file of readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.schema.json')).sort()) {
    const schema = JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')) as { $id?: string };
    ajv.addSchema(schema, schema.$id ? undefined : file);
  }
  loaded = true;
}

function compiledSchema(name: string): ValidateFunction {
  let fn = compiled.get(name);
  if (!fn) {
    loadAll();
    fn = ajv.getSchema(`https://zferry.invalid/schemas/${name}.schema.json`) ?? ajv.getSchema(`${name}.schema.json`);
    if (!fn) throw new Error(`schema ${name} is not in ${SCHEMA_DIR}`);
    compiled.set(name, fn);
  }
  return fn;
}

export interface SchemaProblem {
  /** JSON path (instancePath), e.g. `/streams/0/volumes/1/file`. */
  path: string;
  message: string;
}

/** Validates `data` against schemas/NAME.schema.json; null when it conforms. */
export function validateWith(name: string, data: unknown): SchemaProblem | null {
  const v = compiledSchema(name);
  if (v(data)) return null;
  return describe(v.errors ?? []);
}

/** anyOf failures list every branch; the deepest error that is not "must be null" is the useful one. */
function describe(errors: ErrorObject[]): SchemaProblem {
  const useful = errors.filter((e) => e.keyword !== 'anyOf' && !(e.keyword === 'type' && e.params.type === 'null'));
  const pool = useful.length > 0 ? useful : errors;
  let best = pool[0];
  for (const e of pool) if (e.instancePath.length > best.instancePath.length) best = e;
  if (!best) return { path: '', message: 'does not match its schema' };
  let message = best.message ?? 'is invalid';
  if (best.keyword === 'additionalProperties') message += ` (${JSON.stringify(best.params.additionalProperty)})`;
  if (best.keyword === 'enum') message += ` (${(best.params.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')})`;
  return { path: best.instancePath, message };
}
