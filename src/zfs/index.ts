/**
 * The only module in zferry that runs `zfs` and `zpool`. Command lines and the
 * parsing of their output live side by side in inventory.ts, probe.ts and
 * sendrecv.ts; this class ties them to one probed zfs.
 */
import { ZferryError } from '../errors.js';
import type { Guid, Inventory } from '../model.js';
import { inventoryGetArgs, inventoryListArgs, parseInventoryGet, parseInventoryList } from './inventory.js';
import { isUnknownProperty, parseSnapshotWritten, snapshotWrittenArgs, type WrittenRow } from './churn.js';
import { parseHeld, parseResumeTokens, parseSnapshotSpace, parseSpace, parseWritten, snapshotSpaceArgs, spaceArgs, userrefsArgs, writtenArgs } from './props.js';
import { propLines, targetQuery, treeQuery, type TargetReading } from './target.js';
import { capabilitiesFrom, probeAnswers, type ZfsCapabilities } from './probe.js';
import { cachedProbe } from './probe-cache.js';
import { commandError, ExecaRunner, isNotFound, resolveProgram, type RunResult, type Runner } from './runner.js';
import {
  buildReceiveArgs,
  buildSendArgs,
  parseSendDryRun,
  spawnReceive,
  spawnSend,
  type ReceiveSpec,
  type SendDryRun,
  type SendSpec,
  type ZfsProcessIn,
  type ZfsProcessOut,
} from './sendrecv.js';

export type { ZfsCapabilities } from './probe.js';
export type { ReceiveSpec, SendSpec, SendFlag, ZfsProcessIn, ZfsProcessOut, SendDryRun, SendDryRunStream } from './sendrecv.js';
export type { Runner, RunResult } from './runner.js';
export { ExecaRunner, resolveProgram } from './runner.js';
export { parseInventoryList, parseInventoryGet, inventoryListArgs, inventoryGetArgs, buildInventory } from './inventory.js';
export { parseSendDryRun, parseTrustedSize, buildSendArgs, buildReceiveArgs } from './sendrecv.js';
export { parseSnapshotWritten, snapshotWrittenArgs, type WrittenRow } from './churn.js';
export { parseHeld, parseResumeTokens, parseSnapshotSpace, parseSpace, parseWritten, snapshotSpaceArgs, spaceArgs, userrefsArgs, writtenArgs } from './props.js';
export { targetQuery, type TargetReading } from './target.js';
export { SKIP_PROPERTY } from './inventory.js';
export { classifyFlagProbe, parseZfsVersion, FLAG_PROBES } from './probe.js';
export { checkDatasetName } from './names.js';

/** Snapshot (full name) → its `used` and `referenced` bytes. */
export type SnapshotSpace = Map<string, { used: number; referenced: number }>;

export interface ZfsOptions {
  zfs?: string;
  zpool?: string;
  /** Replaces execa for the non-streaming commands (tests). */
  runner?: Runner;
  /** Keep the probe's answers in this folder for the next run (probe-cache.ts); without it every run probes. */
  cacheDir?: string;
}

/** Bytes of snapshot names per zfs call: far below any ARG_MAX, and few calls even for thousands. */
const BATCH_ARG_BYTES = 64 * 1024;

/**
 * Snapshots given by full name, in the runs `zfs destroy` takes as one
 * operand: each dataset's in `DATASET@a,b,c` lists (in the order first seen,
 * under `limit` bytes each); a name with `,` or `%` (which zfs would read as
 * a list or a range, and never makes) goes alone.
 */
export function snapshotLists(fulls: readonly string[], limit = BATCH_ARG_BYTES): Array<{ dataset: string; snapshots: string[] }> {
  const byDataset = new Map<string, string[]>();
  const alone: Array<{ dataset: string; snapshots: string[] }> = [];
  for (const full of fulls) {
    const at = full.indexOf('@');
    const snap = full.slice(at + 1);
    if (at <= 0 || /[,%@]/.test(snap)) {
      alone.push({ dataset: full.slice(0, Math.max(0, at)), snapshots: [full] });
      continue;
    }
    const ds = full.slice(0, at);
    byDataset.set(ds, [...(byDataset.get(ds) ?? []), snap]);
  }
  // argumentBatches counts a separator per name: `DATASET@` plus the run joined by commas stays within limit.
  const lists = [...byDataset].flatMap(([dataset, snaps]) =>
    argumentBatches(snaps, limit - dataset.length).map((run) => ({ dataset, snapshots: run.map((x) => `${dataset}@${x}`) })));
  return [...alone, ...lists];
}

/** A run of snapshotLists as one `zfs destroy` operand: the name itself, or `DATASET@a,b,c`. */
function listOperand({ dataset, snapshots }: { dataset: string; snapshots: string[] }): string {
  return snapshots.length === 1 ? snapshots[0]! : `${dataset}@${snapshots.map((x) => x.slice(dataset.length + 1)).join(',')}`;
}

/** snapshotLists as `zfs destroy` operands. */
export function snapshotListOperands(fulls: readonly string[], limit = BATCH_ARG_BYTES): string[] {
  return snapshotLists(fulls, limit).map(listOperand);
}

/** Splits names into runs whose total length stays under BATCH_ARG_BYTES. */
export function argumentBatches(names: readonly string[], limit = BATCH_ARG_BYTES): string[][] {
  const batches: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const name of names) {
    if (current.length > 0 && bytes + name.length + 1 > limit) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(name);
    bytes += name.length + 1;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * Where zfs recv cannot take -x/-o (zfs-fuse), the property overrides of an
 * import's receives, gathered to be applied together (Zfs.applyOverrides):
 * one `zfs inherit` and one `zfs set` for the lot instead of two more zfs
 * processes per stream. Only receives that succeeded are entered.
 */
export class PendingOverrides {
  /** Property → datasets that inherit it. */
  readonly inherit = new Map<string, Set<string>>();
  /** `prop=value` → datasets it is set on. */
  readonly set = new Map<string, Set<string>>();

  add(dataset: string, exclude: readonly string[], set: Readonly<Record<string, string>>): void {
    for (const prop of exclude) this.inherit.set(prop, (this.inherit.get(prop) ?? new Set()).add(dataset));
    for (const [prop, value] of Object.entries(set)) {
      const pv = `${prop}=${value}`;
      this.set.set(pv, (this.set.get(pv) ?? new Set()).add(dataset));
    }
  }

  get empty(): boolean {
    return this.inherit.size === 0 && this.set.size === 0;
  }
}

/** A property of a dataset as it is now: its value and where that comes from (`zfs get`'s source column). */
export interface PropertyNow {
  value: string;
  source: string;
}

/** Dataset → property → its value and source now (Zfs.propertiesNow). */
export type PropertiesNow = ReadonlyMap<string, ReadonlyMap<string, PropertyNow>>;

/**
 * The zfs commands that apply `pending`: inherits first, as a receive's -x
 * comes before its -o; datasets in batches under the argument limit.
 *
 * Given `now`, what would change nothing is left out: an inherit where the
 * property is already inherited or default, a set where it already holds
 * the value. Each inherit or set of a dataset is a sync task of its own (on
 * zfs-fuse 27 ms a dataset here): a seed of 201 filesystems, none of which
 * had received a mountpoint, spent 5.7 s inheriting it, and every
 * incremental round set canmount=noauto again on filesystems that had it.
 * A dataset `now` does not list keeps its command.
 */
export function overrideCommands(pending: PendingOverrides, now?: PropertiesNow, lanes = 1): string[][] {
  const out: string[][] = [];
  const inheritChanges = (ds: string, prop: string): boolean => {
    const p = now?.get(ds)?.get(prop);
    return p === undefined || !(p.source === 'default' || p.source.startsWith('inherited'));
  };
  const setChanges = (ds: string, pv: string): boolean => {
    const eq = pv.indexOf('=');
    return now?.get(ds)?.get(pv.slice(0, eq))?.value !== pv.slice(eq + 1);
  };
  for (const [prop, datasets] of pending.inherit) {
    for (const b of laneBatches([...datasets].filter((ds) => inheritChanges(ds, prop)), lanes)) out.push(['inherit', prop, ...b]);
  }
  for (const [pv, datasets] of pending.set) {
    for (const b of laneBatches([...datasets].filter((ds) => setChanges(ds, pv)), lanes)) out.push(['set', pv, ...b]);
  }
  return out;
}

/** zfs processes applying overrides at once (applyOverrides). */
const OVERRIDE_LANES = 4;

/** Fewest datasets a lane of its own is worth: below it, a process costs more than the sync tasks it overlaps. */
const LANE_MIN_DATASETS = 8;

/** `names` in up to `lanes` near-equal runs (none under LANE_MIN_DATASETS), each in batches under the argument limit. */
function laneBatches(names: readonly string[], lanes: number): string[][] {
  const per = Math.max(LANE_MIN_DATASETS, Math.ceil(names.length / Math.max(1, lanes)));
  const out: string[][] = [];
  for (let i = 0; i < names.length; i += per) out.push(...argumentBatches(names.slice(i, i + per)));
  return out;
}

export class Zfs {
  readonly caps: ZfsCapabilities;
  private readonly zfsBin: string;
  private readonly zpoolBin: string;
  private readonly runner: Runner;
  private calls = 0;

  private constructor(caps: ZfsCapabilities, zfs: string, zpool: string, runner: Runner) {
    this.caps = caps;
    this.zfsBin = zfs;
    this.zpoolBin = zpool;
    this.runner = runner;
  }

  /** Probes the zfs in use once (see probe.ts for what each probe runs), or takes the answers kept from an earlier run of the same program. */
  static async probe(opts: ZfsOptions = {}): Promise<Zfs> {
    const zfs = resolveProgram(opts.zfs ?? 'zfs');
    const zpool = resolveProgram(opts.zpool ?? 'zpool');
    const runner = opts.runner ?? new ExecaRunner();
    const fresh = () => probeAnswers(runner, zfs);
    const caps = await capabilitiesFrom(await (opts.cacheDir !== undefined && !opts.runner ? cachedProbe(opts.cacheDir, zfs, fresh) : fresh()));
    return new Zfs(caps, zfs, zpool, runner);
  }

  /** Builds an adapter from known capabilities without probing (tests, or a cached probe). */
  static withCapabilities(caps: ZfsCapabilities, opts: ZfsOptions = {}): Zfs {
    return new Zfs(caps, resolveProgram(opts.zfs ?? 'zfs'), resolveProgram(opts.zpool ?? 'zpool'), opts.runner ?? new ExecaRunner());
  }

  /** zfs/zpool processes started by this instance since probing (send/receive included). */
  get callCount(): number {
    return this.calls;
  }

  private run(bin: string, args: string[]): Promise<RunResult> {
    this.calls++;
    return this.runner.run(bin, args);
  }

  /** Runs zfs and returns stdout, or throws a ZferryError naming `name`. */
  private async zfs(what: string, name: string, args: string[]): Promise<string> {
    const r = await this.run(this.zfsBin, args);
    if (r.exitCode !== 0) {
      if (isNotFound(r.stderr)) {
        throw new ZferryError(`${what}: dataset ${name} does not exist`, {
          dataset: name,
          command: [this.zfsBin, ...args],
          exitCode: r.exitCode,
          stderr: r.stderr,
        });
      }
      throw commandError(what, name, [this.zfsBin, ...args], r.exitCode, r.stderr);
    }
    return r.stdout;
  }

  /** Whether a filesystem, volume or snapshot of this name exists. */
  async exists(name: string): Promise<boolean> {
    const args = ['list', '-H', '-o', 'name', name];
    const r = await this.run(this.zfsBin, args);
    if (r.exitCode === 0) return true;
    if (isNotFound(r.stderr)) return false;
    throw commandError('zfs list', name, [this.zfsBin, ...args], r.exitCode, r.stderr);
  }

  /** Every dataset, snapshot and bookmark under `root`, in one zfs call. */
  async inventory(root: string): Promise<Inventory> {
    if (this.caps.listParsable) {
      const out = await this.zfs('zfs list', root, inventoryListArgs(root, this.caps.bookmarks, this.caps.volumes, this.caps.send.raw));
      return parseInventoryList(out, root);
    }
    const out = await this.zfs('zfs get', root, inventoryGetArgs(root));
    return parseInventoryGet(out, root);
  }

  /**
   * The inventory and, in the same walk, every snapshot's `used` and
   * `referenced`: the free-space check's figures where zfs has no `send -nvP`.
   * A walk costs the same whatever it asks (zfs-fuse: ~0.9 s for 800
   * objects), so the check no longer walks the tree a second time.
   */
  async inventoryWithSpace(root: string): Promise<{ inventory: Inventory; snapshotSpace: SnapshotSpace }> {
    const q = treeQuery(root, this.caps, ['used', 'referenced']);
    const { inventory, props } = q.parse(await this.zfs(this.caps.listParsable ? 'zfs list' : 'zfs get', root, q.args));
    return { inventory, snapshotSpace: parseSnapshotSpace([propLines(props.get('used'), 'used'), propLines(props.get('referenced'), 'referenced')].join('\n')) };
  }

  /**
   * What import reads of `root` before it plans, in one recursive call
   * (target.ts); null when root does not exist. Where this zfs refuses a
   * property of that call, the same facts are read one call each.
   */
  async readTarget(root: string, marks: readonly string[]): Promise<TargetReading | null> {
    const q = targetQuery(root, this.caps, marks);
    const r = await this.run(this.zfsBin, q.args);
    if (r.exitCode === 0) {
      const t = q.parse(r.stdout);
      t.receivedMountpoints ??= await this.receivedValues(root, 'mountpoint');
      return t;
    }
    if (isNotFound(r.stderr)) return null;
    if (!isUnknownProperty(r.stderr)) throw commandError(this.caps.listParsable ? 'zfs list' : 'zfs get', root, [this.zfsBin, ...q.args], r.exitCode, r.stderr);
    const resumeTokens = await this.resumeTokens(root, true);
    const inventory = await this.inventory(root);
    const values = await this.getProperties(root, marks);
    const written = await this.writtenSinceSnapshot(root);
    const space = written === null ? await this.spaceFigures(root) : null;
    const receivedMountpoints = this.caps.recvPropertyOverride ? [] : await this.receivedValues(root, 'mountpoint');
    return { inventory, resumeTokens, marks: values, written, space, receivedMountpoints };
  }

  /**
   * `zpool list -H -o guid POOL`: every zpool prints the guid as an exact
   * integer (libzfs formats it with %llu, literal or not), and zfs-fuse's
   * `zpool get` has no -H/-p.
   */
  async poolGuid(pool: string): Promise<Guid> {
    const args = ['list', '-H', '-o', 'guid', pool];
    const r = await this.run(this.zpoolBin, args);
    if (r.exitCode !== 0) {
      throw new ZferryError(`zpool list ${pool} failed: ${r.stderr.trim().split('\n')[0] ?? ''}`, {
        dataset: pool,
        command: [this.zpoolBin, ...args],
        exitCode: r.exitCode,
        stderr: r.stderr,
      });
    }
    const guid = r.stdout.trim();
    if (!/^\d+$/.test(guid)) {
      throw new ZferryError(`pool ${pool} guid is not an exact integer: ${JSON.stringify(guid)}`, { dataset: pool, field: 'guid' });
    }
    return guid;
  }

  /** A property's raw (-p) value; null when zfs prints '-' (unset user property, not applicable). */
  async getProperty(dataset: string, prop: string): Promise<string | null> {
    const out = await this.zfs('zfs get', dataset, ['get', '-H', '-p', '-o', 'value', prop, dataset]);
    const value = out.replace(/\n$/, '');
    return value === '-' ? null : value;
  }

  /** A property's values set locally on the datasets under `root` (not snapshots, not inherited), in one call. */
  async localProperties(root: string, prop: string): Promise<Map<string, string>> {
    const out = await this.zfs('zfs get', root, ['get', '-H', '-p', '-r', '-s', 'local', '-o', 'name,value', prop, root]);
    const values = new Map<string, string>();
    for (const line of out.split('\n')) {
      const [name, value] = line.split('\t');
      if (name && value !== undefined && value !== '-' && !name.includes('@')) values.set(name, value);
    }
    return values;
  }

  /** Datasets under `root` (not snapshots) whose `prop` holds a value received in a stream, not overridden here, in one call. */
  async receivedValues(root: string, prop: string): Promise<string[]> {
    const out = await this.zfs('zfs get', root, ['get', '-H', '-r', '-o', 'name,source', prop, root]);
    const names: string[] = [];
    for (const line of out.split('\n')) {
      const [name, source] = line.split('\t');
      if (name && source === 'received' && !name.includes('@')) names.push(name);
    }
    return names;
  }

  /** `props` of each of `datasets`, value and source, in a call per argument batch (not recursive). */
  async propertiesNow(datasets: readonly string[], props: readonly string[]): Promise<PropertiesNow> {
    const now = new Map<string, Map<string, PropertyNow>>();
    for (const batch of argumentBatches(datasets)) {
      const out = await this.zfs('zfs get', batch[0]!, ['get', '-H', '-o', 'name,property,value,source', props.join(','), ...batch]);
      for (const line of out.split('\n')) {
        const [name, prop, value, source] = line.split('\t');
        if (name === undefined || prop === undefined || value === undefined || source === undefined) continue;
        let m = now.get(name);
        if (!m) now.set(name, (m = new Map()));
        m.set(prop, { value, source });
      }
    }
    return now;
  }

  /** Several properties of one dataset in one call; null where unset ('-'). */
  async getProperties<P extends string>(dataset: string, props: readonly P[]): Promise<Record<P, string | null>> {
    const out = await this.zfs('zfs get', dataset, ['get', '-H', '-p', '-o', 'property,value', props.join(','), dataset]);
    const values = Object.fromEntries(props.map((p) => [p, null])) as Record<P, string | null>;
    for (const line of out.split('\n')) {
      const [prop, value] = line.split('\t');
      if (prop !== undefined && value !== undefined && (props as readonly string[]).includes(prop)) values[prop as P] = value === '-' ? null : value;
    }
    return values;
  }

  async setProperty(dataset: string, prop: string, value: string): Promise<void> {
    await this.zfs('zfs set', dataset, ['set', `${prop}=${value}`, dataset]);
  }

  /** `zfs send -nvP` of a spec: zfs's size estimate (OpenZFS); only where caps.sendDryRun. */
  async sendDryRun(spec: SendSpec): Promise<SendDryRun> {
    if (!this.caps.sendDryRun) {
      throw new ZferryError(`zfs on this machine has no send -nvP: cannot estimate ${spec.dataset}`, { dataset: spec.dataset });
    }
    const args = ['send', '-n', '-v', '-P', ...buildSendArgs(spec, this.caps).slice(1)];
    const r = await this.run(this.zfsBin, args);
    if (r.exitCode !== 0) throw commandError('zfs send -nvP', `${spec.dataset}@${spec.to}`, [this.zfsBin, ...args], r.exitCode, r.stderr);
    // OpenZFS prints the dry run on stdout; releases before 0.7 printed it on stderr.
    return parseSendDryRun(`${r.stdout}\n${r.stderr}`);
  }

  /**
   * Every snapshot under root with its `written` bytes and creation, in one
   * call; null where this zfs has no `written` property (zfs-fuse, old zfs).
   */
  async snapshotWritten(root: string): Promise<WrittenRow[] | null> {
    if (!this.caps.listParsable) return null;
    const args = snapshotWrittenArgs(root);
    const r = await this.run(this.zfsBin, args);
    if (r.exitCode !== 0) {
      if (isUnknownProperty(r.stderr)) return null;
      throw commandError('zfs list', root, [this.zfsBin, ...args], r.exitCode, r.stderr);
    }
    return parseSnapshotWritten(r.stdout, root);
  }

  /**
   * Bytes written to each filesystem/volume under `root` since its newest
   * snapshot (`written`), or null where zfs has no such property (zfs-fuse:
   * "bad property list: invalid property 'written'"). One call for the tree.
   */
  async writtenSinceSnapshot(root: string): Promise<Map<string, bigint> | null> {
    const args = writtenArgs(root);
    const r = await this.run(this.zfsBin, args);
    if (r.exitCode !== 0) {
      if (/invalid property/.test(r.stderr)) return null;
      throw commandError('zfs get written', root, [this.zfsBin, ...args], r.exitCode, r.stderr);
    }
    return parseWritten(r.stdout);
  }

  /**
   * `referenced` and `used` of every dataset and snapshot under `root`, in one
   * call: where zfs has no `written`, the evidence that a dataset changed
   * since its newest snapshot (see changedBySpace).
   */
  async spaceFigures(root: string): Promise<Map<string, { referenced: bigint; used: bigint }>> {
    const args = spaceArgs(root);
    const r = await this.run(this.zfsBin, args);
    if (r.exitCode !== 0) throw commandError('zfs get referenced,used', root, [this.zfsBin, ...args], r.exitCode, r.stderr);
    return parseSpace(r.stdout);
  }

  /**
   * `zfs hold TAG SNAPSHOT...`: the snapshots cannot be destroyed until
   * released. One zfs call for the list (a call per snapshot cost a process
   * each: 200 of them for 200 datasets). Where one of them already has the
   * tag zfs fails the call, and depending on the version holds the others or
   * not; the snapshots are then held one by one, an existing hold being fine.
   */
  async hold(snapshots: readonly string[], tag: string): Promise<void> {
    await this.eachBatch(snapshots, tag, 'hold', /tag already exists/);
  }

  /** `zfs release TAG SNAPSHOT...`, batched as hold is; a snapshot without that hold is left as it is. */
  async release(snapshots: readonly string[], tag: string): Promise<void> {
    await this.eachBatch(snapshots, tag, 'release', /no such tag/);
  }

  private async eachBatch(snapshots: readonly string[], tag: string, verb: 'hold' | 'release', harmless: RegExp): Promise<void> {
    for (const batch of argumentBatches(snapshots)) {
      const r = await this.run(this.zfsBin, [verb, tag, ...batch]);
      if (r.exitCode === 0) continue;
      for (const snapshot of batch) {
        const args = [verb, tag, snapshot];
        const one = batch.length === 1 ? r : await this.run(this.zfsBin, args);
        if (one.exitCode === 0 || harmless.test(one.stderr)) continue;
        throw commandError(`zfs ${verb}`, snapshot, [this.zfsBin, ...args], one.exitCode, one.stderr);
      }
    }
  }

  /**
   * Snapshots under `root` with at least one hold (`userrefs` > 0). zfs-fuse's
   * `zfs holds` needs a Python helper it does not ship, so holds are found by
   * count and released by tag.
   */
  /** `used` and `referenced` of every snapshot under root (sizes a send where there is no `send -nvP`). */
  async snapshotSpace(root: string): Promise<SnapshotSpace> {
    return parseSnapshotSpace(await this.zfs('zfs get used,referenced', root, snapshotSpaceArgs(root)));
  }

  async heldSnapshots(root: string): Promise<string[]> {
    const out = await this.zfs('zfs get userrefs', root, userrefsArgs(root));
    return parseHeld(out);
  }

  /**
   * `zfs bookmark ds@snap ds#name` (OpenZFS). A bookmark of that name already
   * there is taken only when it marks the same snapshot (same guid): each
   * part of a stream split across disks bookmarks its snapshot again, and
   * OpenZFS words the refusal differently across versions ("bookmark
   * exists"), so the guids decide, not the message.
   */
  async bookmark(snapshot: string, bookmark: string): Promise<void> {
    if (!this.caps.bookmarks) throw new ZferryError(`zfs on this machine has no bookmarks: cannot bookmark ${snapshot}`, { dataset: snapshot });
    const args = ['bookmark', snapshot, bookmark];
    const r = await this.run(this.zfsBin, args);
    if (r.exitCode === 0) return;
    const guids = await this.run(this.zfsBin, ['get', '-H', '-p', '-o', 'name,value', 'guid', snapshot, bookmark]);
    const of = new Map(guids.stdout.split('\n').filter(Boolean).map((l) => l.split('\t') as [string, string]));
    const [want, have] = [of.get(snapshot), of.get(bookmark)];
    if (want !== undefined && want === have) return;
    if (have !== undefined) {
      throw new ZferryError(`${bookmark} already exists and marks another snapshot (guid ${have}, not ${snapshot}'s ${want ?? '?'}): zferry did not make it; rename or destroy it`, { dataset: snapshot });
    }
    throw commandError('zfs bookmark', snapshot, [this.zfsBin, ...args], r.exitCode, r.stderr);
  }

  /** Starts `zfs send`; the caller must consume `stdout` and await `done`. */
  send(spec: SendSpec): ZfsProcessOut {
    const args = buildSendArgs(spec, this.caps);
    this.calls++;
    return spawnSend(this.zfsBin, args, spec.dataset);
  }

  /**
   * Starts `zfs receive` (-u where supported, -F only when asked); the caller
   * writes the stream and awaits `done`. Where zfs recv cannot take -x/-o
   * (zfs-fuse), the same overrides are applied right after it succeeds, or,
   * given `later`, entered there for the caller to apply with the others
   * (applyOverrides) before it reports anything. A clone's origin is checked
   * either way.
   */
  receive(spec: ReceiveSpec, later?: PendingOverrides): ZfsProcessIn {
    const named = this.caps.recvPropertyOverride;
    const { origin, exclude, set, ...rest } = spec;
    const args = buildReceiveArgs(named ? { ...rest, exclude, set: { ...set, ...(origin ? { origin } : {}) } } : rest, this.caps);
    this.calls++;
    const p = spawnReceive(this.zfsBin, args, spec.dataset);
    const done = p.done.then(async () => {
      if (!named && later) later.add(spec.dataset, exclude ?? [], set ?? {});
      else if (!named) {
        for (const prop of exclude ?? []) await this.inherit(spec.dataset, prop);
        for (const [prop, value] of Object.entries(set ?? {})) await this.setProperty(spec.dataset, prop, value);
      }
      if (origin) {
        const got = await this.getProperty(spec.dataset, 'origin');
        if (got !== origin) {
          throw new ZferryError(`${spec.dataset} was received as a clone of ${got ?? 'nothing'}, not of ${origin}: zfs recv picked another snapshot with the same guid`, { dataset: spec.dataset });
        }
      }
    });
    return { ...p, done };
  }

  async create(name: string, opts: { parents?: boolean; props?: Record<string, string> } = {}): Promise<void> {
    const args = ['create', ...(opts.parents ? ['-p'] : [])];
    for (const [k, v] of Object.entries(opts.props ?? {})) args.push('-o', `${k}=${v}`);
    args.push(name);
    await this.zfs('zfs create', name, args);
  }

  /**
   * `zfs rename [-p] FROM TO`: a dataset (with `parents`, missing parents of
   * TO are created) or a snapshot (`ds@old` → `ds@new`, same dataset).
   */
  async rename(from: string, to: string, opts: { parents?: boolean } = {}): Promise<void> {
    if (opts.parents && from.includes('@')) throw new ZferryError(`zfs rename -p takes datasets, not the snapshot ${from}`, { dataset: from });
    await this.zfs('zfs rename', from, ['rename', ...(opts.parents ? ['-p'] : []), from, to]);
  }

  /** Applies the overrides gathered by `receive(spec, later)`, and forgets them. */
  async applyOverrides(pending: PendingOverrides): Promise<void> {
    const datasets = [...new Set([...pending.inherit.values(), ...pending.set.values()].flatMap((d) => [...d]))];
    const props = [...new Set([...pending.inherit.keys(), ...[...pending.set.keys()].map((pv) => pv.slice(0, pv.indexOf('=')))])];
    const now = datasets.length > 0 ? await this.propertiesNow(datasets, props) : undefined;
    // Inherits, then sets, each verb's commands side by side: every dataset's change is a sync task of its
    // own, and tasks from concurrent callers share a txg (zfs-fuse, 200 filesystems: 3.0 s in one call, 1.4 s in four).
    const cmds = overrideCommands(pending, now, OVERRIDE_LANES);
    for (const verb of ['inherit', 'set']) {
      await Promise.all(cmds.filter((args) => args[0] === verb).map((args) => this.zfs(`zfs ${args[0]} ${args[1]}`, args[2]!, args)));
    }
    pending.inherit.clear();
    pending.set.clear();
  }

  /** `zfs inherit PROP DATASET`: drop a local or received value. */
  async inherit(dataset: string, prop: string): Promise<void> {
    await this.zfs('zfs inherit', dataset, ['inherit', prop, dataset]);
  }

  /**
   * Datasets under `root` (full names) holding the resume token of an
   * interrupted `zfs receive -s`, in one call; empty where this zfs has no
   * resumable receives or `root` does not exist.
   */
  async resumeTokens(root: string, exists?: boolean): Promise<Set<string>> {
    if (!this.caps.resumable || !(exists ?? (await this.exists(root)))) return new Set();
    const out = await this.zfs('zfs get', root, ['get', '-H', '-p', '-r', '-o', 'name,value', 'receive_resume_token', root]);
    return parseResumeTokens(out);
  }

  /** `zfs receive -A`: discards the partial state of an interrupted resumable receive. */
  async abortReceive(dataset: string): Promise<void> {
    await this.zfs('zfs receive -A', dataset, ['receive', '-A', dataset]);
  }

  /** Rolls back to `snapshot`; destroyNewer (-r) removes the snapshots taken after it. */
  async rollback(snapshot: string, opts: { destroyNewer?: boolean } = {}): Promise<void> {
    await this.zfs('zfs rollback', snapshot, ['rollback', ...(opts.destroyNewer ? ['-r'] : []), snapshot]);
  }

  /**
   * force (-f) unmounts even when busy. zfs-fuse 0.7.0 (measured) refuses to
   * destroy a freshly created, mounted filesystem with "dataset is busy" on
   * some attempts, -f or not; unmounting it and its children first (deepest
   * first) and trying again succeeds, so that is done there once.
   */
  async destroy(name: string, opts: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    const args = ['destroy', ...(opts.recursive ? ['-r'] : []), ...(opts.force ? ['-f'] : []), name];
    const first = await this.run(this.zfsBin, args);
    if (first.exitCode === 0) return;
    if (this.caps.flavour === 'zfs-fuse' && /dataset is busy/.test(first.stderr)) {
      await this.unmountTree(name);
      const second = await this.run(this.zfsBin, args);
      if (second.exitCode === 0) return;
      await this.refuseHeld(name, opts.recursive === true, [this.zfsBin, ...args], second.stderr);
      throw commandError('zfs destroy', name, [this.zfsBin, ...args], second.exitCode, second.stderr);
    }
    if (!isNotFound(first.stderr)) await this.refuseHeld(name, opts.recursive === true, [this.zfsBin, ...args], first.stderr);
    if (isNotFound(first.stderr)) {
      throw new ZferryError(`zfs destroy: dataset ${name} does not exist`, {
        dataset: name,
        command: [this.zfsBin, ...args],
        exitCode: first.exitCode,
        stderr: first.stderr,
      });
    }
    throw commandError('zfs destroy', name, [this.zfsBin, ...args], first.exitCode, first.stderr);
  }

  /**
   * Destroys snapshots by full name, never -r. Where zfs takes a list
   * (`zfs destroy FS@a,b,c`, caps.destroySnapshotList), each dataset's go in
   * one call, which OpenZFS carries out as one sync task, all or none: an
   * import whose --delete or --keep removes a day of rotated auto-snapshots
   * from 200 datasets makes 200 calls, not thousands. When a list fails,
   * its snapshots are destroyed one by one, as everywhere else, so the error
   * names the snapshot (held, cloned) and those before it are gone.
   */
  async destroySnapshots(fulls: readonly string[]): Promise<void> {
    if (!this.caps.destroySnapshotList) {
      for (const full of fulls) await this.destroy(full);
      return;
    }
    for (const list of snapshotLists(fulls)) {
      // One snapshot (or a name that went alone), or a list whose failure is told snapshot by snapshot.
      if (list.snapshots.length > 1 && (await this.run(this.zfsBin, ['destroy', listOperand(list)])).exitCode === 0) continue;
      for (const full of list.snapshots) await this.destroy(full);
    }
  }

  /**
   * After a failed destroy: throws, naming the snapshot and how to release
   * it, when a hold is what stopped it. zfs says so differently by version
   * (2.3: "it's being held"; 2.1 and zfs-fuse: "dataset is busy", which also
   * means a mounted, busy filesystem), so the holds are counted rather than
   * the message read.
   */
  private async refuseHeld(name: string, recursive: boolean, command: string[], stderr: string): Promise<void> {
    if (name.includes('#')) return;
    let held: string[];
    if (name.includes('@')) {
      const r = await this.run(this.zfsBin, ['get', '-H', '-p', '-o', 'name,value', 'userrefs', name]);
      held = r.exitCode === 0 ? parseHeld(r.stdout) : [];
    } else {
      if (!recursive) return;
      const r = await this.run(this.zfsBin, userrefsArgs(name));
      held = r.exitCode === 0 ? parseHeld(r.stdout) : [];
    }
    const snapshot = held[0];
    if (snapshot === undefined) return;
    throw new ZferryError(
      `cannot destroy ${name}: snapshot ${snapshot} is held${held.length > 1 ? ` (and ${held.length - 1} more under it)` : ''}; see \`zfs holds ${snapshot}\`, then \`zfs release TAG ${snapshot}\``,
      { dataset: snapshot, command, stderr },
    );
  }

  /** Unmounts a filesystem and its descendants, children first; failures are left to the caller's retry. */
  private async unmountTree(name: string): Promise<void> {
    if (name.includes('@')) return;
    const list = await this.run(this.zfsBin, ['list', '-H', '-o', 'name', '-r', '-t', 'filesystem', name]);
    const names = list.stdout.split('\n').filter((n) => n !== '');
    for (const fs of names.reverse()) await this.run(this.zfsBin, ['unmount', fs]);
  }
}

/**
 * Names of every filesystem and volume on the host (`zfs list -H -o name`,
 * the same in every zfs), for shell completion: one call and no probe, so a
 * Tab press costs one zfs process. Empty when zfs cannot answer.
 */
export async function listDatasetNames(opts: ZfsOptions = {}): Promise<string[]> {
  const runner = opts.runner ?? new ExecaRunner();
  const r = await runner.run(resolveProgram(opts.zfs ?? 'zfs'), ['list', '-H', '-o', 'name']).catch(() => null);
  if (!r || r.exitCode !== 0) return [];
  return r.stdout.split('\n').filter((l) => l !== '');
}
