export {
  FORMAT_VERSION,
  FORMAT_VERSIONS,
  MANIFEST_FILE,
  parseManifest,
  readManifest,
  writeManifestAtomic,
  volumeFileName,
  type Manifest,
  type FormatVersion,
  type RestoreEntry,
  type Basis,
  type BasisOrigin,
  type StreamEntry,
  type StreamData,
  type StreamFrom,
  type StreamKind,
  type VolumeEntry,
} from './manifest.js';
export { writeFileAtomic } from '../fs/safe.js';
export { SUMS_FILE, sha256sumsText } from './sums.js';
export { RESTORE_FILE, restoreText, shellQuote } from './restore.js';
export { verifyBundle, verifyArrived, checkBundleAtRest, type VerifyReport, type ArrivedVolume } from './verify.js';
export { verifyOrRepair, type RepairedReport } from './repair.js';
export { isBundleDir, findBundles } from './find.js';
export { finishBundle, withRestore } from './finish.js';
export { validateManifestSchema, SCHEMA_URL, type SchemaProblem } from './schema.js';
export { ZFERRY_VERSION } from '../version.js';
export { VolumeWriter, MAX_VOLUMES, type VolumeWriterOptions } from './volume-writer.js';
export { VolumeReader, type VolumeReaderOptions } from './volume-reader.js';
