/**
 * VolumeWriter's twin for a bundle in a bucket: the same volumes (names,
 * sizes, sha256), each streamed into its object by multipart upload as the
 * bytes come, with no local copy. Backpressure: a chunk is taken only once
 * the upload has room for it.
 */
import { once } from 'node:events';
import { PART_SIZE, uploadObject, urlOf, type ObjectUpload, type S3Place } from '../store/s3.js';
import { testPause } from '../test-hook.js';
import { VolumeSplitter, type SplitOptions } from './volume-splitter.js';

export interface VolumeUploaderOptions extends SplitOptions {
  /** The bundle's place; objects go to `streams/` under it. */
  place: S3Place;
}

const UPLOAD_PAUSE_BYTES = 2 * PART_SIZE + (1 << 20);

export class VolumeUploader extends VolumeSplitter<ObjectUpload> {
  constructor(private readonly opts: VolumeUploaderOptions) {
    super(opts);
  }

  protected async openVolume(file: string): Promise<ObjectUpload> {
    return uploadObject(this.opts.place, file);
  }

  protected async writeVolume(upload: ObjectUpload, part: Buffer): Promise<void> {
    if (!upload.body.write(part)) await Promise.race([once(upload.body, 'drain'), upload.done]);
  }

  protected override async wrote(before: number, after: number): Promise<void> {
    // The crash test's point: a multipart upload is under way (two parts' worth handed over).
    if (before < UPLOAD_PAUSE_BYTES && after >= UPLOAD_PAUSE_BYTES) await testPause('export:upload');
  }

  protected async finishVolume(upload: ObjectUpload): Promise<void> {
    upload.body.end();
    await upload.done;
  }

  protected async discardVolume(upload: ObjectUpload): Promise<void> {
    // A stream that failed half way: its multipart upload goes, no part kept.
    await upload.abort().catch(() => undefined);
  }
}

export { urlOf };
