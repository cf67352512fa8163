/**
 * Receipts on a disk or in a bucket, signed by the receiving side (import
 * --sign) and required by export, estimate and status --trust-receiver
 * (src/state/receipt.ts), on files in a temporary folder: no ZFS.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findNewestReceipt, receiptFileName, writeReceipt, type TargetState } from '../../src/state/receipt.js';
import { generateKeyFiles, keyIdHex, readPublicKey, readSecretKey } from '../../src/trust/minisign.js';
import { makeEvent, recordOutcome } from '../../src/state/outcome.js';
import { runStatus } from '../../src/commands/status.js';
import { ds, inv } from '../helpers/literals.js';

const SOURCE = { host: 'h', pool: 'tank', root: 'tank', poolGuid: '1234567890123456789' };

function state(takenAt: string, newest: string): TargetState {
  return {
    format: 'zferry-state', formatVersion: 1, takenAt, host: 'remote', zferryVersion: '0.1.0', target: 'backup', source: SOURCE, bundles: [],
    inventory: inv('backup', [ds('', [['one', '100', 10], ...(newest === 'two' ? [['two', '200', 20] as [string, string, number]] : [])], { guid: '77' })]),
  };
}

test('with --trust-receiver only a receipt signed by that key counts: a newer unsigned one, a copied signature and another key\'s are passed over, each named', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'zferry-receipts-'));
  try {
    const receiver = await generateKeyFiles(path.join(dir, 'receiver.key'));
    const stranger = await generateKeyFiles(path.join(dir, 'stranger.key'));
    const disk = path.join(dir, 'disk');
    const bundle = path.join(disk, 'zferry-tank-20261202T100000Z-0badf00d');
    await mkdir(bundle, { recursive: true });
    const genuine = path.join(bundle, receiptFileName('backup'));
    await writeReceipt(genuine, state('2026-12-02T10:00:00.000Z', 'one'), await readSecretKey(receiver.secretFile));
    assert.deepEqual((await readdir(bundle)).sort(), ['receipt-backup.json', 'receipt-backup.json.minisig']);

    // Planted: newer, claiming @two is already there (export would send nothing and release the bases before it).
    const unsigned = path.join(disk, 'receipt-forged.json');
    await writeFile(unsigned, JSON.stringify(state('2026-12-02T11:00:00.000Z', 'two')));
    const copied = path.join(disk, 'receipt-copied.json');
    await writeFile(copied, JSON.stringify(state('2026-12-02T12:00:00.000Z', 'two')));
    await writeFile(`${copied}.minisig`, await readFile(`${genuine}.minisig`));
    const other = path.join(disk, 'receipt-other.json');
    await writeReceipt(other, state('2026-12-02T13:00:00.000Z', 'two'), await readSecretKey(stranger.secretFile));

    assert.equal((await findNewestReceipt(disk, SOURCE))?.file, other, 'without a key the newest, whoever wrote it');
    const said: string[] = [];
    const trust = { key: await readPublicKey(receiver.publicFile), file: receiver.publicFile };
    const found = await findNewestReceipt(disk, SOURCE, 'default', trust, (line) => said.push(line));
    assert.equal(found?.file, genuine);
    assert.equal(said.length, 3, said.join('\n'));
    for (const f of [unsigned, copied, other]) assert.ok(said.some((l) => l.includes(f) && l.endsWith('passed over')), `${f} named: ${said.join(' | ')}`);
    assert.match(said.find((l) => l.includes(unsigned))!, /not signed/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unsigned receipt written over a signed one takes the old signature with it', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'zferry-receipts-'));
  try {
    const key = await generateKeyFiles(path.join(dir, 'k'));
    const file = path.join(dir, receiptFileName('backup'));
    await writeReceipt(file, state('2026-12-02T10:00:00.000Z', 'one'), await readSecretKey(key.secretFile));
    await writeReceipt(file, state('2026-12-02T11:00:00.000Z', 'two'), null);
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('receipt-')), ['receipt-backup.json']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('status --trust-receiver counts a receipt an earlier export remembered only when that export checked the same key on it', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'zferry-status-trust-'));
  try {
    const receiver = await generateKeyFiles(path.join(dir, 'receiver.key'));
    const stranger = await generateKeyFiles(path.join(dir, 'stranger.key'));
    const stateDir = path.join(dir, 'state');
    const seen = (signedBy: string | undefined) => ({
      file: '/mnt/disk/receipt-backup.json', takenAt: '2026-12-02T10:00:00.000Z', newest: { name: 'two', guid: '200', creation: 20 }, bundles: [],
      ...(signedBy ? { signedBy } : {}),
    });
    const remember = (signedBy: string | undefined) => recordOutcome(stateDir, makeEvent({
      kind: 'export', outcome: 'ok', source: 'tank', site: 'default', target: '/mnt/disk', error: null,
      startedAt: '2026-12-02T10:00:00.000Z', finishedAt: '2026-12-02T10:01:00.000Z', figures: { receiptSeen: seen(signedBy) },
    }));
    const receiptOf = async (trustReceiver?: string) => (await runStatus({ stateDir, zfs: null, source: 'tank', trustReceiver, now: Date.parse('2026-12-02T12:00:00Z') / 1000 })).sites[0]?.receipt ?? null;
    const idOf = async (pub: string) => keyIdHex((await readPublicKey(pub)).keyId);

    await remember(undefined);
    assert.equal((await receiptOf())?.newest?.name, 'two', 'without a key, as recorded');
    assert.equal(await receiptOf(receiver.publicFile), null, 'an export that checked no signature vouches for nothing');
    await remember(await idOf(stranger.publicFile));
    assert.equal(await receiptOf(receiver.publicFile), null, 'checked against another key');
    await remember(await idOf(receiver.publicFile));
    assert.equal((await receiptOf(receiver.publicFile))?.file, '/mnt/disk/receipt-backup.json');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
