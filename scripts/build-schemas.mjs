#!/usr/bin/env node
// Part of `npm run build` (after tsc): ajv's standalone validation code for
// every schema in schemas/, stamped with their hash, so the CLI validates
// without loading ajv's compiler. src/schemas.ts uses it only while the stamp
// matches the schemas in use, and compiles them itself otherwise.
import { writeFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { PRECOMPILED, schemaAjv, schemasHash } from '../dist/src/schemas.js';

const require = createRequire(import.meta.url);
const standaloneCode = require('ajv/dist/standalone').default;
const { ajv, ids } = schemaAjv(true);
const code = `${standaloneCode(ajv, ids)}\nexports.sourceHash = ${JSON.stringify(schemasHash())};\n`;
writeFileSync(`${PRECOMPILED}.tmp`, code);
renameSync(`${PRECOMPILED}.tmp`, PRECOMPILED);
console.log(`schemas: ${Object.keys(ids).join(', ')} precompiled to ${PRECOMPILED}`);
