export { hashTap, HashTap } from './hash-tap.js';
export { compress, type CompressOptions } from './compress.js';
export { decompress, ZstdDecompress } from './decompress.js';
export { tailGate, TailGate, type TailGateOptions } from './tail-gate.js';
export { writeStream, syncStreamsFolder, type WriteStreamOptions, type WrittenStream } from './export.js';
export { readStream, readParts, type ReadStreamOptions } from './import.js';
export { measureStream, type MeasureOptions, type StreamMeasure } from './sample.js';
