export * from './sync.js';
export * from './conflicts.js';
export * from './project.js';
export * from './apply.js';
export { comparePaths, parentPath } from './paths.js';
export { formatRefs } from './snapshots.js';
export * from './send-flags.js';
export * from './scope.js';
export * from './delete.js';
