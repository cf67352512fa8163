/**
 * Pure parsers and command builders of src/zfs, fed with captured output:
 * zfs-fuse 0.7.0 captured on this machine, OpenZFS 2.3.2 from
 * /work/shared/lab/NOTES.md section 3, OpenZFS 2.1.11 (Debian 12's own)
 * captured in the lab's 2.1 guest (docs/openzfs-versions.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildReceiveArgs,
  buildSendArgs,
  classifyFlagProbe,
  parseInventoryGet,
  parseInventoryList,
  parseSendDryRun,
  parseZfsVersion,
  type ZfsCapabilities,
} from '../../src/zfs/index.js';
import { comparePaths } from '../../src/zfs/inventory.js';
import { ZferryError } from '../../src/errors.js';
import { OPENZFS_CAPS, ZFS_FUSE_CAPS } from '../helpers/caps.js';

// zfs-fuse 0.7.0: zfs get -Hp -r -o name,property,value type,guid,createtxg,creation,origin zxa/fs
const FUSE_GET = [
  'zxa/fs\ttype\tfilesystem',
  'zxa/fs\tguid\t10815248347649017086',
  'zxa/fs\tcreatetxg\t7',
  'zxa/fs\tcreation\t1795678555',
  'zxa/fs\torigin\t-',
  'zxa/fs@s1\ttype\tsnapshot',
  'zxa/fs@s1\tguid\t3108104573596948686',
  'zxa/fs@s1\tcreatetxg\t24',
  'zxa/fs@s1\tcreation\t1795678555',
  'zxa/fs@s1\torigin\t-',
  'zxa/fs@s2\ttype\tsnapshot',
  'zxa/fs@s2\tguid\t13903565586977369108',
  'zxa/fs@s2\tcreatetxg\t89',
  'zxa/fs@s2\tcreation\t1795678739',
  'zxa/fs@s2\torigin\t-',
  'zxa/fs/b\ttype\tfilesystem',
  'zxa/fs/b\tguid\t13109785470188639369',
  'zxa/fs/b\tcreatetxg\t9',
  'zxa/fs/b\tcreation\t1795678555',
  'zxa/fs/b\torigin\t-',
  'zxa/fs/b@s1\ttype\tsnapshot',
  'zxa/fs/b@s1\tguid\t13941039407863181114',
  'zxa/fs/b@s1\tcreatetxg\t24',
  'zxa/fs/b@s1\tcreation\t1795678555',
  'zxa/fs/b@s1\torigin\t-',
  'zxa/fs/b@s2\ttype\tsnapshot',
  'zxa/fs/b@s2\tguid\t15489324995478530570',
  'zxa/fs/b@s2\tcreatetxg\t89',
  'zxa/fs/b@s2\tcreation\t1795678739',
  'zxa/fs/b@s2\torigin\t-',
  'zxa/fs/b/c\ttype\tfilesystem',
  'zxa/fs/b/c\tguid\t11147287158246642781',
  'zxa/fs/b/c\tcreatetxg\t10',
  'zxa/fs/b/c\tcreation\t1795678555',
  'zxa/fs/b/c\torigin\t-',
  'zxa/fs/b/c@s1\ttype\tsnapshot',
  'zxa/fs/b/c@s1\tguid\t1916880463387415722',
  'zxa/fs/b/c@s1\tcreatetxg\t24',
  'zxa/fs/b/c@s1\tcreation\t1795678555',
  'zxa/fs/b/c@s1\torigin\t-',
  'zxa/fs/b/c@s2\ttype\tsnapshot',
  'zxa/fs/b/c@s2\tguid\t3737885527667041608',
  'zxa/fs/b/c@s2\tcreatetxg\t89',
  'zxa/fs/b/c@s2\tcreation\t1795678739',
  'zxa/fs/b/c@s2\torigin\t-',
  '',
].join('\n');

// zfs-fuse 0.7.0, a clone: origin is the absolute snapshot name.
const FUSE_GET_CLONE = [
  'zxa/cl\ttype\tfilesystem',
  'zxa/cl\tguid\t16927267802334124461',
  'zxa/cl\tcreatetxg\t26',
  'zxa/cl\tcreation\t1795678555',
  'zxa/cl\torigin\tzxa/fs@s1',
  '',
].join('\n');

// OpenZFS 2.3.2 `zfs list -Hp -t filesystem,volume,snapshot,bookmark -o name,type,guid,createtxg,creation,origin -r src`,
// assembled from the guid/createtxg rows captured in NOTES.md §3 (bookmark shares guid and txg with its snapshot).
const OPENZFS_LIST = [
  'src\tfilesystem\t9001\t1\t1760000000\t-',
  'src/data\tfilesystem\t9002\t8\t1760000010\t-',
  'src/data@s1\tsnapshot\t11951769107788696920\t19\t1760000100\t-',
  'src/data/a\tfilesystem\t9003\t10\t1760000020\t-',
  'src/data/a@s2\tsnapshot\t9005\t25\t1760000200\t-',
  'src/data/a@s1\tsnapshot\t7881021925181338671\t19\t1760000100\t-',
  'src/data/a#bm1\tbookmark\t7881021925181338671\t19\t1760000100\t-',
  'src/data/vol1\tvolume\t16057307410201625954\t12\t1760000030\t-',
  'src/data/clone\tfilesystem\t9004\t30\t1760000300\tsrc/data/a@s1',
  '',
].join('\n');

test('reads a zfs-fuse zfs get inventory with exact 64-bit guids and relative paths', () => {
  const inv = parseInventoryGet(FUSE_GET, 'zxa/fs');
  assert.equal(inv.root, 'zxa/fs');
  assert.deepEqual(
    inv.datasets.map((d) => d.path),
    ['', 'b', 'b/c'],
  );
  const c = inv.datasets[2]!;
  assert.equal(c.guid, '11147287158246642781');
  assert.deepEqual(c.snapshots, [
    { name: 's1', guid: '1916880463387415722', createtxg: '24', creation: 1795678555 },
    { name: 's2', guid: '3737885527667041608', createtxg: '89', creation: 1795678739 },
  ]);
  assert.equal(inv.datasets[0]!.snapshots[1]!.guid, '13903565586977369108');
  assert.ok(inv.datasets.every((d) => d.origin === undefined && d.bookmarks.length === 0 && d.type === 'filesystem'));
});

test('keeps the origin of a zfs-fuse clone and drops the "-" of non-clones', () => {
  const inv = parseInventoryGet(FUSE_GET_CLONE, 'zxa/cl');
  assert.equal(inv.datasets[0]!.origin, 'zxa/fs@s1');
});

test('reads an OpenZFS zfs list inventory with volumes, bookmarks and clones', () => {
  const inv = parseInventoryList(OPENZFS_LIST, 'src/data');
  assert.deepEqual(
    inv.datasets.map((d) => [d.path, d.type]),
    [
      ['', 'filesystem'],
      ['a', 'filesystem'],
      ['clone', 'filesystem'],
      ['vol1', 'volume'],
    ],
  );
  const a = inv.datasets[1]!;
  assert.deepEqual(
    a.snapshots.map((s) => s.name),
    ['s1', 's2'],
  );
  assert.deepEqual(a.bookmarks, [{ name: 'bm1', guid: '7881021925181338671', createtxg: '19', creation: 1760000100 }]);
  assert.equal(inv.datasets[2]!.origin, 'src/data/a@s1');
  assert.equal(inv.datasets[3]!.guid, '16057307410201625954');
  // The parent `src` is outside the requested root.
  assert.ok(!inv.datasets.some((d) => d.guid === '9001'));
});

test('orders snapshots by createtxg as integers, not as text or doubles', () => {
  const big = 2n ** 60n;
  const text = [
    'p\tfilesystem\t1\t1\t0\t-',
    `p@late\tsnapshot\t2\t${big + 1n}\t0\t-`,
    `p@early\tsnapshot\t3\t${big}\t0\t-`,
    'p@ten\tsnapshot\t4\t10\t0\t-',
    'p@nine\tsnapshot\t5\t9\t0\t-',
  ].join('\n');
  const inv = parseInventoryList(text, 'p');
  assert.deepEqual(
    inv.datasets[0]!.snapshots.map((s) => s.name),
    ['nine', 'ten', 'early', 'late'],
  );
});

test('sorts datasets parents first whatever order zfs printed them in', () => {
  const text = ['p/a-b\tfilesystem\t3\t3\t0\t-', 'p/a/b\tfilesystem\t2\t2\t0\t-', 'p/a\tfilesystem\t1\t1\t0\t-', 'p\tfilesystem\t0\t0\t0\t-'].join('\n');
  assert.deepEqual(
    parseInventoryList(text, 'p').datasets.map((d) => d.path),
    ['', 'a', 'a/b', 'a-b'],
  );
  assert.ok(comparePaths('a', 'a/b') < 0 && comparePaths('', 'a') < 0);
});

test('refuses a rounded guid such as zfs-fuse list prints ("13.5E"), naming the dataset', () => {
  assert.throws(
    () => parseInventoryList('zxa/fs\tfilesystem\t13.5E\t7\t0\t-\n', 'zxa/fs'),
    (err: unknown) => err instanceof ZferryError && /zxa\/fs/.test(err.message) && err.context.dataset === 'zxa/fs',
  );
});

test('reports a root that is not in the output as a missing dataset', () => {
  assert.throws(
    () => parseInventoryList('', 'tank/gone'),
    (err: unknown) => err instanceof ZferryError && err.message.includes('tank/gone'),
  );
});

test('parses a full send estimate', () => {
  assert.deepEqual(parseSendDryRun('full\tsrc/data/a@s1\t8452208\nsize\t8452208\n'), {
    streams: [{ kind: 'full', from: null, to: 'src/data/a@s1', size: 8452208n }],
    total: 8452208n,
  });
});

test('parses incremental estimates from a snapshot and from a bookmark', () => {
  assert.deepEqual(parseSendDryRun('incremental\tsrc/data/a@s1\tsrc/data/a@s2\t2137584\nsize\t2137584\n').streams, [
    { kind: 'incremental', from: 'src/data/a@s1', to: 'src/data/a@s2', size: 2137584n },
  ]);
  assert.equal(parseSendDryRun('incremental\tsrc/data/a#bm1\tsrc/data/a@s2\t2137584\n').streams[0]!.from, 'src/data/a#bm1');
});

test('keeps the short base names of a -R -I estimate as printed', () => {
  const r = parseSendDryRun('incremental\ts1\tsrc/data@s2\t624\nincremental\ts1\tsrc/data/vol1@s2\t1094112\nsize\t3232944\n');
  assert.deepEqual(
    r.streams.map((s) => [s.from, s.to, s.size]),
    [
      ['s1', 'src/data@s2', 624n],
      ['s1', 'src/data/vol1@s2', 1094112n],
    ],
  );
  assert.equal(r.total, 3232944n);
});

test('reads OpenZFS 2.1.11 estimates, which print the same lines as 2.3', () => {
  // Captured in the 2.1 guest: `zfs send -nvP -R -I @s1 src/data@s2`, then a bookmark base.
  const r = parseSendDryRun('incremental\ts1\tsrc/data@s2\t624\nincremental\ts1\tsrc/data/vol1@s2\t624\nincremental\ts1\tsrc/data/a@s2\t2109424\nsize\t2110672\n');
  assert.deepEqual(
    r.streams.map((s) => [s.kind, s.from, s.to, s.size]),
    [
      ['incremental', 's1', 'src/data@s2', 624n],
      ['incremental', 's1', 'src/data/vol1@s2', 624n],
      ['incremental', 's1', 'src/data/a@s2', 2109424n],
    ],
  );
  assert.equal(r.total, 2110672n);
  assert.deepEqual(parseSendDryRun('incremental\tsrc/data/a#bm1\tsrc/data/a@s2\t2109424\nsize\t2109424\n').streams[0], {
    kind: 'incremental',
    from: 'src/data/a#bm1',
    to: 'src/data/a@s2',
    size: 2109424n,
  });
});

test('skips the resume token dump before the estimate', () => {
  const text = [
    'resume token contents:',
    'nvlist version: 0',
    '\tobject = 0x2',
    '\toffset = 0x1c0000',
    '\tbytes = 0x1c3a40',
    '\ttoguid = 0xa5de3e1b2a6d5c58',
    '\ttoname = src/data/a@s2',
    'full\tsrc/data/a@s2\t6314840',
    'size\t6314840',
  ].join('\n');
  assert.deepEqual(parseSendDryRun(text), {
    streams: [{ kind: 'full', from: null, to: 'src/data/a@s2', size: 6314840n }],
    total: 6314840n,
  });
});

test('does not trust an estimate of 2^63 or more', () => {
  const r = parseSendDryRun('full\tp/a@s\t18446744073614344448\nsize\t18446744073614344448\n');
  assert.equal(r.streams[0]!.size, null);
  assert.equal(r.total, null);
  assert.equal(parseSendDryRun('size\t9223372036854775807\n').total, 9223372036854775807n);
});

const FUSE_CAPS: ZfsCapabilities = ZFS_FUSE_CAPS;
// The probe of an OpenZFS without recv -o/-x and destroy lists: the send/receive builders' older branches.
const FULL_CAPS: ZfsCapabilities = { ...OPENZFS_CAPS, recvPropertyOverride: false, destroySnapshotList: false };

test('builds send command lines with full base names', () => {
  assert.deepEqual(buildSendArgs({ dataset: 'tank/a', to: 's2' }, FUSE_CAPS), ['send', 'tank/a@s2']);
  assert.deepEqual(buildSendArgs({ dataset: 'tank/a', to: 's3', from: { name: 's1' }, intermediates: true }, FUSE_CAPS), [
    'send',
    '-I',
    'tank/a@s1',
    'tank/a@s3',
  ]);
  assert.deepEqual(
    buildSendArgs({ dataset: 'tank/a', to: 's3', from: { name: 'bm', bookmark: true }, flags: ['raw', 'largeBlocks', 'embedded', 'compressed', 'props'] }, FULL_CAPS),
    ['send', '-w', '-L', '-e', '-c', '-p', '-i', 'tank/a#bm', 'tank/a@s3'],
  );
});

test('refuses send flags and bookmarks the probed zfs lacks', () => {
  assert.throws(() => buildSendArgs({ dataset: 'tank/a', to: 's', flags: ['compressed'] }, FUSE_CAPS), /tank\/a.*compressed/);
  assert.throws(() => buildSendArgs({ dataset: 'tank/a', to: 's', from: { name: 'b', bookmark: true } }, FUSE_CAPS), ZferryError);
  assert.throws(() => buildSendArgs({ dataset: 'tank/a', to: 's', from: { name: 'b', bookmark: true }, intermediates: true }, FULL_CAPS), ZferryError);
});

test('builds receive command lines: -u where supported, -F only on request', () => {
  assert.deepEqual(buildReceiveArgs({ dataset: 'b/t' }, FUSE_CAPS), ['receive', '-u', 'b/t']);
  assert.deepEqual(buildReceiveArgs({ dataset: 'b/t', force: true }, { ...FUSE_CAPS, recvNoMount: false }), ['receive', '-F', 'b/t']);
  assert.deepEqual(buildReceiveArgs({ dataset: 'b/t', force: true, resumable: true }, FULL_CAPS), ['receive', '-u', '-F', '-s', 'b/t']);
  assert.throws(() => buildReceiveArgs({ dataset: 'b/t', resumable: true }, FUSE_CAPS), /b\/t/);
});

test('classifies probe answers: rejected option, missing operand, unknown command, no answer', () => {
  // zfs-fuse 0.7.0, captured
  assert.equal(classifyFlagProbe("invalid option 'c'\nusage:\n\tsend [-RDp] [-[iI] snapshot] <snapshot>\n", 'c'), false);
  assert.equal(classifyFlagProbe("invalid option 'n'\nusage:\n", 'nP'), false);
  assert.equal(classifyFlagProbe('missing snapshot argument\nusage:\n\treceive [-vnF] <filesystem|volume|snapshot>\n', 'u'), true);
  assert.equal(classifyFlagProbe("unrecognized command 'bookmark'\nusage: zfs command args ...\n", ''), false);
  assert.equal(classifyFlagProbe('missing size argument\nusage:\n', 'V'), true);
  // OpenZFS getopt with a leading ':' in the option string
  assert.equal(classifyFlagProbe("missing argument for 'o' option\nusage:\n", 'p'), true);
  // OpenZFS 2.1.11 `zfs list -p -H -o`: its list has no ':' in the option string, so the
  // missing argument of -o is reported as an invalid 'o'; -p itself was accepted.
  assert.equal(classifyFlagProbe("invalid option 'o'\nusage:\n\tlist [-Hp] [-r|-d max] [-o property[,...]]\n", 'p'), true);
  // zfs that cannot reach its kernel module / daemon
  assert.equal(classifyFlagProbe('The ZFS modules are not loaded.\nTry running \'/sbin/modprobe zfs\' as root to load them.\n', 'c'), null);
});

test('reads the userland version from zfs version', () => {
  assert.equal(parseZfsVersion('zfs-2.3.2-2~bpo12+2\nzfs-kmod-2.3.2-2~bpo12+2\n'), '2.3.2-2~bpo12+2');
  assert.equal(parseZfsVersion('zfs-2.1.11-1+deb12u1\nzfs-kmod-2.1.11-1+deb12u1\n'), '2.1.11-1+deb12u1');
  assert.equal(parseZfsVersion('zfs-0.8.3-1ubuntu12\nzfs-kmod-0.8.3-1ubuntu12\n'), '0.8.3-1ubuntu12');
  assert.equal(parseZfsVersion("unrecognized command 'version'\n"), null);
});

test('resume tokens: only datasets whose receive_resume_token is set are reported', async () => {
  const { parseResumeTokens } = await import('../../src/zfs/index.js');
  const out = 'b/copy\t-\nb/copy/a\t1-e604ea4bf-e0-789c63a2\nb/copy/a@s1\t-\n';
  assert.deepEqual([...parseResumeTokens(out)], ['b/copy/a']);
});
