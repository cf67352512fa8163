/**
 * The JSON Schemas shipped in schemas/: every schema registered with one ajv
 * instance so one may $ref another by file name, each compiled once, and
 * ajv's errors turned into the one most useful line.
 *
 * `npm run build` also writes ajv's standalone code for every schema
 * (scripts/build-schemas.mjs → dist/src/schemas.precompiled.cjs), stamped
 * with a hash of the schema files. When that stamp matches the schemas/ in
 * use, validators come from it and ajv's compiler is never loaded: about a
 * tenth of a second off every command that reads a manifest, receipt or
 * relay config (seconds under the QEMU lane's emulation). Otherwise (schemas
 * edited since the build, or a build without the script) they are compiled
 * here as before, with the same options, so both paths judge alike.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ajv2020, ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));

/** dist/src/schemas.js → the package root's schemas/. */
export const SCHEMA_DIR = join(HERE, '..', '..', 'schemas');
/** Written by scripts/build-schemas.mjs next to this module. */
export const PRECOMPILED = join(HERE, 'schemas.precompiled.cjs');
const ID_BASE = 'https://zferry.invalid/schemas/';

interface SchemaFile {
  name: string;
  file: string;
  text: string;
}

function schemaFiles(): SchemaFile[] {
  return readdirSync(SCHEMA_DIR)
    .filter((f) => f.endsWith('.schema.json'))
    .sort()
    .map((file) => ({ name: file.slice(0, -'.schema.json'.length), file, text: readFileSync(join(SCHEMA_DIR, file), 'utf8') }));
}

/** What the precompiled module is stamped with: every schema file's name and bytes. */
export function schemasHash(files: SchemaFile[] = schemaFiles()): string {
  const h = createHash('sha256');
  for (const f of files) h.update(`${f.file}\0${f.text}\0`);
  return h.digest('hex');
}

/**
 * One ajv instance holding every schema, with the options both paths use.
 * `source` keeps the generated code (for ajv's standalone module).
 */
export function schemaAjv(source = false): { ajv: Ajv2020; ids: Record<string, string> } {
  const { Ajv2020: Ajv } = require('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
  const ajv = new Ajv({ allErrors: false, strict: true, ...(source ? { code: { source: true } } : {}) });
  const ids: Record<string, string> = {};
  for (const f of schemaFiles()) {
    const schema = JSON.parse(f.text) as { $id?: string };
    ajv.addSchema(schema, schema.$id ? undefined : f.file);
    ids[f.name] = schema.$id ?? f.file;
  }
  return { ajv, ids };
}

type Validators = Record<string, ValidateFunction>;
let validators: { source: 'precompiled' | 'compiled'; get(name: string): ValidateFunction | undefined } | null = null;

function load(): NonNullable<typeof validators> {
  if (validators) return validators;
  let pre: (Validators & { sourceHash?: string }) | null = null;
  try {
    pre = require(PRECOMPILED) as Validators & { sourceHash?: string };
  } catch (err) {
    if ((err as { code?: string }).code !== 'MODULE_NOT_FOUND') throw err;
  }
  if (pre && pre.sourceHash === schemasHash()) {
    const fns = pre;
    validators = { source: 'precompiled', get: (name) => (typeof fns[name] === 'function' ? fns[name] : undefined) };
  } else {
    const { ajv } = schemaAjv();
    validators = { source: 'compiled', get: (name) => ajv.getSchema(`${ID_BASE}${name}.schema.json`) ?? ajv.getSchema(`${name}.schema.json`) };
  }
  return validators;
}

/** Which path validates in this process: ajv's standalone code from the build, or compiled here. */
export function validatorSource(): 'precompiled' | 'compiled' {
  return load().source;
}

function compiledSchema(name: string): ValidateFunction {
  const fn = load().get(name);
  if (!fn) throw new Error(`schema ${name} is not in ${SCHEMA_DIR}`);
  return fn;
}

export interface SchemaProblem {
  /** JSON path (instancePath), e.g. `/streams/0/volumes/1/file`. */
  path: string;
  message: string;
}

/**
 * Validates `data` against schemas/NAME.schema.json, then checks the bound the
 * schemas cannot express (uint64 strings at most 2^64-1); null when it
 * conforms. Every document zferry reads (manifest, state, receipt, journal)
 * comes through here, so no reader can skip the bound.
 */
export function validateWith(name: string, data: unknown): SchemaProblem | null {
  const v = compiledSchema(name);
  if (!v(data)) return describe(v.errors ?? []);
  return checkUint64Bounds(data, '');
}

const UINT64_MAX = 18446744073709551615n;
/** Field names that hold unsigned 64-bit decimal strings in every schema (`$defs/uint64`). */
const UINT64_KEYS = new Set(['guid', 'poolGuid', 'createtxg']);

/** JSON Schema cannot compare decimal strings numerically, so the 2^64-1 bound is checked here. */
function checkUint64Bounds(value: unknown, path: string): SchemaProblem | null {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = checkUint64Bounds(value[i], `${path}/${i}`);
      if (p) return p;
    }
  } else if (value !== null && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (UINT64_KEYS.has(key) && typeof v === 'string') {
        if (/^[0-9]+$/.test(v) && BigInt(v) > UINT64_MAX) return { path: `${path}/${key}`, message: `must be at most 18446744073709551615 (unsigned 64-bit), got ${v}` };
      } else if (typeof v === 'object') {
        const p = checkUint64Bounds(v, `${path}/${key}`);
        if (p) return p;
      }
    }
  }
  return null;
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
