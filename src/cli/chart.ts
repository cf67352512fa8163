/** Terminal tables and bar charts: pure string building, no I/O. */

/** Whether the terminal's locale is UTF-8 (LC_ALL, then LC_CTYPE, then LANG, as setlocale reads them). */
export function isUtf8Locale(env: NodeJS.ProcessEnv = process.env): boolean {
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || '';
  return /utf-?8/i.test(locale);
}

/** Columns padded to their widest cell; `right` lists the columns aligned right (numbers). */
export function table(rows: string[][], right: ReadonlySet<number> = new Set()): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, [...cell].length)));
  return rows.map((row) =>
    row.map((cell, i) => {
      const pad = ' '.repeat(widths[i]! - [...cell].length);
      return right.has(i) ? pad + cell : cell + pad;
    }).join('  ').trimEnd(),
  );
}

const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/** A bar of `value / max` of `width` cells: Unicode eighth blocks, or `#` in plain ASCII. */
export function bar(value: number, max: number, width: number, unicode: boolean): string {
  if (max <= 0 || value <= 0) return '';
  const cells = (Math.min(value, max) / max) * width;
  if (!unicode) return '#'.repeat(Math.max(1, Math.round(cells)));
  const full = Math.floor(cells);
  const eighth = Math.round((cells - full) * 8);
  const tail = eighth === 8 ? '█' : EIGHTHS[eighth]!;
  const text = '█'.repeat(full) + tail;
  return text === '' ? '▏' : text;
}

export interface BarRow {
  label: string;
  value: number;
  /** Printed after the bar (the value formatted, a note). */
  text: string;
}

/** Label, bar, text; the bars scaled to the largest value, padded so the texts line up. */
export function barChart(rows: readonly BarRow[], width: number, unicode: boolean): string[] {
  const max = Math.max(0, ...rows.map((r) => r.value));
  const labelWidth = Math.max(0, ...rows.map((r) => r.label.length));
  return rows.map((r) => {
    const b = bar(r.value, max, width, unicode);
    return `${r.label.padEnd(labelWidth)} ${b}${' '.repeat(Math.max(0, width - [...b].length))} ${r.text}`.trimEnd();
  });
}
