/** Parsing of sizes, rates and intervals given on the command line. Pure. */

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1000, kib: 1024,
  m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

/** `1G`, `512M`, `1.5GiB`, `4096` → bytes. `K/M/G/T` alone are binary, as in zfs and mbuffer. */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new Error(`invalid ${what} '${text}' (examples: 4096, 512M, 1G, 1.5GiB)`);
  }
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`invalid ${what} '${text}': must be a positive size`);
  return bytes;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

const BIT_UNITS: Record<string, number> = {
  bit: 1, b: 1,
  kbit: 1e3, kb: 1e3, kibit: 1024,
  mbit: 1e6, mb: 1e6, mibit: 1024 ** 2,
  gbit: 1e9, gb: 1e9, gibit: 1024 ** 3,
  tbit: 1e12, tb: 1e12,
};

/**
 * A link rate → bytes per second. Bits: `10Mbit`, `10Mbit/s`, `100kbps`,
 * `1Gbps` (decimal, as links are sold). Bytes: `2MB/s` (decimal), `2MiB/s`,
 * `2M/s` (binary, as parseSize), `500B/s`. A bare `bit` suffix or `bps` means
 * bits; anything ending in `/s` without `bit` means bytes.
 */
export function parseRate(text: string, what = 'link rate'): number {
  const fail = (why = ''): never => {
    throw new Error(`invalid ${what} '${text}'${why} (examples: 10Mbit, 100Mbit/s, 2MB/s, 500KiB/s)`);
  };
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*?)(bit(?:\/s)?|bps|\/s)\s*$/i.exec(text);
  if (!m) return fail();
  const value = Number(m[1]);
  const prefix = m[2]!;
  const tail = m[3]!.toLowerCase();
  let bytesPerSecond: number;
  if (tail === '/s') {
    // Byte rates: the prefix is a size unit (`MB`, `MiB`, `M`, `B`, or none).
    const unit = SIZE_UNITS[prefix.toLowerCase()];
    if (unit === undefined) return fail();
    bytesPerSecond = value * unit;
  } else {
    // Bit rates: a case-insensitive prefix (k, M, G, T, Ki, Mi, Gi).
    const unit = BIT_UNITS[`${prefix.toLowerCase()}bit`];
    if (unit === undefined) return fail();
    bytesPerSecond = (value * unit) / 8;
  }
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) fail(': must be a positive rate');
  return bytesPerSecond;
}

const INTERVAL_UNITS: Record<string, number> = {
  s: 1, sec: 1, m: 60, min: 60, h: 3600, hour: 3600, d: 86400, day: 86400, w: 7 * 86400, week: 7 * 86400,
};

/** `90s`, `30m`, `1h`, `12h`, `1d`, `1w` → seconds. */
export function parseInterval(text: string, what = 'interval'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(text);
  const key = m ? m[2]!.toLowerCase() : '';
  const unit = m ? INTERVAL_UNITS[key] ?? INTERVAL_UNITS[key.replace(/s$/, '')] : undefined;
  if (!m || unit === undefined) throw new Error(`invalid ${what} '${text}' (examples: 30m, 1h, 12h, 1d, 1w)`);
  const seconds = Number(m[1]) * unit;
  if (!Number.isFinite(seconds) || seconds < 1) throw new Error(`invalid ${what} '${text}': must be at least one second`);
  return seconds;
}

/** Bytes per second as people read link rates: `10.0 Mbit/s (1.19 MiB/s)`. */
export function formatRate(bytesPerSecond: number): string {
  const bits = bytesPerSecond * 8;
  const units: Array<[number, string]> = [[1e12, 'Tbit/s'], [1e9, 'Gbit/s'], [1e6, 'Mbit/s'], [1e3, 'kbit/s']];
  const [scale, unit] = units.find(([s]) => bits >= s) ?? [1, 'bit/s'];
  const v = bits / scale;
  return `${v.toFixed(v < 10 ? 2 : 1)} ${unit} (${formatBytes(Math.round(bytesPerSecond))}/s)`;
}

/** Seconds as `42 s`, `3 min 5 s`, `2 h 10 min`, `3.5 days`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'never';
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  if (seconds < 2 * 86400) return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

/** An interval for people: `1d` → `day`, `12h` → `12 h`. */
export function formatInterval(seconds: number): string {
  const named: Array<[number, string]> = [[7 * 86400, 'week'], [86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
  for (const [s, name] of named) if (seconds === s) return name;
  return formatDuration(seconds);
}
