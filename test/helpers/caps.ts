/** Capabilities measured on the two lanes' zfs, for tests that need an adapter without probing. */
import type { ZfsCapabilities } from '../../src/zfs/index.js';

/** zfs-fuse 0.7.0 as the probe reports it (measured; pinned by the adapter test). */
export const ZFS_FUSE_CAPS: ZfsCapabilities = {
  flavour: 'zfs-fuse',
  version: null,
  listParsable: false,
  getTypeFilter: false,
  bookmarks: false,
  sendDryRun: false,
  resumable: false,
  volumes: false,
  send: { compressed: false, raw: false, largeBlocks: false, embedded: false, props: true },
  recvNoMount: true,
  recvPropertyOverride: false,
  destroySnapshotList: false,
};

/** OpenZFS 2.x as the probe reports it in the lab guest (2.1 and 2.3 alike). */
export const OPENZFS_CAPS: ZfsCapabilities = {
  ...ZFS_FUSE_CAPS,
  flavour: 'openzfs',
  version: '2.3.2',
  listParsable: true,
  getTypeFilter: true,
  bookmarks: true,
  sendDryRun: true,
  resumable: true,
  volumes: true,
  send: { compressed: true, raw: true, largeBlocks: true, embedded: true, props: true },
  recvPropertyOverride: true,
  destroySnapshotList: true,
};
