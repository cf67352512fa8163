import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** From package.json, so a bundle names the exact zferry that wrote it. */
export const ZFERRY_VERSION: string = (require('../../package.json') as { version: string }).version;
