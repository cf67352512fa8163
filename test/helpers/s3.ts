/**
 * The S3 lane's server: the one-node Ceph cluster scripts/ceph-s3.sh starts
 * (npm run test:s3 starts it). Its env file gives the endpoint and the test
 * user's keys; they go into this process's environment, so every zferry the
 * tests run finds them through the AWS standard chain, as a user's would.
 */
import { readFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';

const dir = process.env.ZFERRY_CEPH_DIR ?? '/var/tmp/zferry-ceph';
const envFile = `${dir}/env`;
if (!existsSync(envFile)) throw new Error(`${envFile}: no Ceph test server; run scripts/ceph-s3.sh start (npm run test:s3 does)`);
for (const line of readFileSync(envFile, 'utf8').split('\n')) {
  const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
  if (m) process.env[m[1]!] = m[2]!;
}

export const SECRET = process.env.AWS_SECRET_ACCESS_KEY!;
export const ENDPOINT = process.env.AWS_ENDPOINT_URL!;

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
export const s3 = new S3Client({
  endpoint: ENDPOINT, forcePathStyle: true, region: 'us-east-1',
  requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
});

/** A new bucket with a name no other test process uses. */
export async function makeBucket(prefix: string): Promise<string> {
  const name = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  await s3.send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

export async function keysUnder(bucket: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) out.push(o.Key!);
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out;
}

export async function multipartUploads(bucket: string): Promise<string[]> {
  const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (r.Uploads ?? []).map((u) => u.Key!);
}

export async function getObject(bucket: string, key: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

export async function putObject(bucket: string, key: string, body: Buffer | string): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

/** Stops the gateway (the server gone mid-upload); the cluster behind it stays. */
export async function stopGateway(): Promise<void> {
  const pid = Number(readFileSync(`${dir}/run/client.rgw.a.pid`, 'utf8'));
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the gateway again and waits until it answers (≤ 60 s). */
export async function startGateway(): Promise<void> {
  const { execa } = await import('execa');
  await execa('radosgw', ['-c', process.env.ZFERRY_CEPH_CONF!, '-n', 'client.rgw.a']);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      await fetch(ENDPOINT);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`radosgw did not answer at ${ENDPOINT} within 60 s`);
}
