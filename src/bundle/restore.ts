/**
 * RESTORE.txt: the stock shell commands that restore a bundle without zferry.
 * A pure function of the manifest, so the text always matches the streams.
 * It never reads the manifest's `restore` field (its own size and sha256,
 * format 2), which is computed from this text.
 */
import type { Manifest, StreamEntry } from './manifest.js';
import { sendOptionsOf } from '../plan/send-flags.js';

export const RESTORE_FILE = 'RESTORE.txt';

/** Single-quotes a word for POSIX shells: `it's` -> `'it'\''s'`. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `"$TARGET"` or `"$TARGET"'/a/b'`: the target root joined with a relative path. */
function targetWord(rel: string): string {
  return rel === '' ? '"$TARGET"' : `"$TARGET"${shellQuote('/' + rel)}`;
}

/** `"$TARGET"'/a/b@s1'`. */
function snapshotWord(rel: string, snap: string): string {
  return `"$TARGET"${shellQuote((rel === '' ? '' : '/' + rel) + '@' + snap)}`;
}

function describe(s: StreamEntry, count: number): string {
  const where = s.dataset === '' ? '(root)' : s.dataset;
  const head = `# ${s.index}/${count}`;
  if (s.kind === 'create') return `${head} create ${where} (it has no snapshot to send)`;
  if (s.kind === 'rename') {
    const what = s.renamedFrom !== s.dataset
      ? `rename ${s.renamedFrom === '' ? '(root)' : s.renamedFrom} -> ${where} (renamed on the source; "$TARGET" holds it at the old path, with @${s.match.name}, guid ${s.match.guid})`
      : `rename snapshots of ${where} (renamed on the source)`;
    return `${head} ${what}`;
  }
  const to = s.to ? `@${s.to.name}` : '';
  const part = !s.part ? ''
    : s.part.continues
      ? `; part ${s.part.number} of a stream split across disks: it continues on the next disk (the bundle exported after this one). zfs recv needs every part at once: this copies the part to $STAGE; the RESTORE.txt of the last part receives the whole stream from there`
      : `; the last part (${s.part.number}) of a stream split across disks: parts 1-${s.part.number - 1} must be in $STAGE, put there by their own RESTORE.txt`;
  return describeSend(s, head, where, to) + part;
}

function describeSend(s: StreamEntry, head: string, where: string, to: string): string {
  if (s.kind === 'full') return `${head} full ${where} ${to}`;
  if (s.from?.dataset !== undefined) {
    const origin = `${s.from.dataset === '' ? '(root)' : s.from.dataset}@${s.from.name}`;
    return `${head} clone ${where} ${to} of ${origin} (guid ${s.from.guid}): "$TARGET" must already hold its copy of ${origin}; ` +
      'where zfs recv has no -o origin= it takes the first snapshot with that guid in the pool, so keep no other copy of the source in that pool';
  }
  const from = s.from ? `${s.from.bookmark ? '#' : '@'}${s.from.name}` : '';
  const mode = s.intermediates ? ' (with intermediate snapshots)' : '';
  return `${head} incremental ${where} ${from} -> ${to}${mode}`;
}

const decrypt = (encrypted: boolean) => (encrypted ? ' | age -d -i "$AGE_IDENTITY"' : '');

/** `"$STAGE"'/split-GUID/part-001'`: where a split stream's part waits for the rest (GUID: the snapshot it sends). */
function stageWord(s: StreamEntry, number: number, sub = ''): string {
  return `"$STAGE"${shellQuote(`/split-${s.to?.guid}/part-${String(number).padStart(3, '0')}${sub}`)}`;
}

/**
 * A part that continues on the next disk: zfs recv needs the whole stream at
 * once, so its volumes and their checksum lines are copied to $STAGE, where
 * the last part's recipe checks and reads them.
 */
function stagePart(s: StreamEntry): string {
  const prefix = s.volumes[0].file.replace(/[0-9]{3}$/, '');
  return [
    `mkdir -p ${stageWord(s, s.part!.number, '/streams')}`,
    `cp ${prefix}* ${stageWord(s, s.part!.number, '/streams')}/`,
    `grep -F ${shellQuote('  ' + prefix)} SHA256SUMS > ${stageWord(s, s.part!.number, '/SHA256SUMS')}`,
  ].join('\n');
}

/** The last part: every earlier part checked in $STAGE, then all parts in order into one zfs recv. */
function partsSource(s: StreamEntry, glob: string, encrypted: boolean): { check: string[]; source: string } {
  const earlier = Array.from({ length: s.part!.number - 1 }, (_, i) => i + 1);
  const check = earlier.map((n) => `(cd ${stageWord(s, n)} && sha256sum -c SHA256SUMS)`);
  const globs = [...earlier.map((n) => `${stageWord(s, n, '/streams')}/*`), glob];
  // zstd reads concatenated streams as one; age files must be opened one by one.
  const source = encrypted ? `{ ${globs.map((g) => `cat ${g}${decrypt(true)};`).join(' ')} }` : `cat ${globs.join(' ')}`;
  return { check, source };
}

function commandFor(s: StreamEntry, encrypted: boolean): string {
  if (s.kind === 'create') return `zfs create -p ${targetWord(s.dataset)}`;
  if (s.kind === 'rename') {
    const lines = s.renamedFrom !== s.dataset ? [`zfs rename -p ${targetWord(s.renamedFrom)} ${targetWord(s.dataset)}`] : [];
    for (const r of s.snapshots) lines.push(`zfs rename ${snapshotWord(s.dataset, r.from)} ${snapshotWord(s.dataset, r.to)}`);
    return lines.join('\n');
  }
  const glob = s.volumes[0].file.replace(/\.[0-9]{3}$/, '.*');
  // Streams with properties (-p) come from a zfs that has recv -x/-o: keep the
  // source's mountpoint off this host and the copy from mounting itself, as import does.
  const withProps = sendOptionsOf(s.sendFlags).includes('props');
  const keepOff = withProps
    ? ['-x', 'mountpoint', ...(s.type === 'filesystem' ? ['-o', 'canmount=noauto'] : [])]
    : [];
  const recv = ['zfs', 'recv', '-u', ...(s.force ? ['-F'] : []), ...keepOff].join(' ');
  if (s.part?.continues) return stagePart(s);
  const parts = s.part ? partsSource(s, glob, encrypted) : null;
  const source = parts ? `${parts.check.map((c) => c + '\n').join('')}${parts.source}` : `cat ${glob}${decrypt(encrypted)}`;
  if (s.from?.dataset !== undefined) {
    // Name the clone's origin where zfs recv takes -o (same test as above); elsewhere zfs finds it by guid.
    const origin = withProps ? ` -o origin=${targetWord(s.from.dataset)}${shellQuote('@' + s.from.name)}` : '';
    return `${source} | zstd -dc | ${recv}${origin} ${targetWord(s.dataset)}`;
  }
  return `${source} | zstd -dc | ${recv} ${targetWord(s.dataset)}`;
}

export function restoreText(m: Omit<Manifest, 'restore'>): string {
  const encrypted = m.encryption !== undefined;
  const out: string[] = [
    `# Restoring zferry bundle ${m.bundleId} with stock tools (bash, sha256sum, cat, ${encrypted ? 'age, ' : ''}zstd, zfs).`,
    `# Created ${m.createdAt} by zferry ${m.zferryVersion} from ${m.source.host}, dataset ${m.source.root}.`,
    '#',
    `# Set TARGET to the dataset that is to become ${m.source.root}, then run this file with bash,`,
    '# or paste the commands one by one. Apply order matters; stop at the first error.',
    `#   TARGET=backup/${m.source.root.split('/').pop() ?? 'data'} bash RESTORE.txt`,
    '# BUNDLE defaults to the folder holding this file.',
    ...(m.formatVersion === 1
      ? []
      : [
          '# Check this file before you run it: `sha256sum -c SHA256SUMS` covers it too (against damage);',
          '# against tampering, check the signature (minisign -Vm manifest.json -p KEY.pub) and that',
          '# `sha256sum RESTORE.txt` prints the "restore" sha256 in manifest.json (docs/bundle-format.md §6).',
        ]),
    ...(encrypted
      ? [
          `# The streams are encrypted with age to ${m.encryption?.recipients.join(', ')}:`,
          '# set AGE_IDENTITY to the absolute path of the file holding the matching AGE-SECRET-KEY-1… line.',
        ]
      : []),
    '',
    'set -euo pipefail',
    ': "${TARGET:?set TARGET to the receiving dataset first}"',
    ...(encrypted ? [': "${AGE_IDENTITY:?set AGE_IDENTITY to your age identity file first}"'] : []),
    ...(m.streams.some((s) => s.part)
      ? [': "${STAGE:?set STAGE to a folder (outside the bundle, on a disk that stays) that collects the parts of a stream split across disks}"']
      : []),
    'cd "${BUNDLE:-$(dirname "$0")}"',
    '',
    ...(m.parity
      ? [
          '# Every volume must match its checksum before anything is received. A damaged or missing',
          `# volume is rebuilt from parity/ (PAR 2.0 recovery data, ${m.parity.percent}% of the volumes' bytes) with`,
          '# stock par2 (Debian: apt-get install par2), which keeps each damaged volume as VOLUME.1;',
          '# those copies are removed so the cat below does not pick them up. Then the check runs again.',
          'if ! sha256sum --quiet -c SHA256SUMS; then',
          '  par2 repair -B . parity/recovery.par2',
          '  rm -f streams/*.zst.[0-9][0-9][0-9].[0-9]* streams/*.zst.age.[0-9][0-9][0-9].[0-9]*',
          '  sha256sum -c SHA256SUMS',
          'fi',
        ]
      : [
          '# Every volume must match its checksum before anything is received.',
          'sha256sum -c SHA256SUMS',
        ]),
    '',
  ];
  for (const s of m.streams) {
    out.push(describe(s, m.streams.length));
    out.push(commandFor(s, encrypted));
  }
  if (m.streams.length === 0) out.push('# (this bundle carries no streams: the target was already up to date)');
  return out.join('\n') + '\n';
}
