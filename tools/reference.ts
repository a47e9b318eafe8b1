/**
 * What the benchmarks under tools/ share: how they run PyTorch, the reference, and how they compare and print.
 */

/** The Python that has PyTorch: Debian's python3-torch, or $INGRAPH_PYTHON. */
export const PYTHON = process.env.INGRAPH_PYTHON ?? '/usr/bin/python3';

/**
 * PyTorch at its best on this machine: without these, glibc hands PyTorch's large per-step buffers back to the OS and
 * maps them again every step, and its step time swings 1.5-4x from run to run (ingraph is unaffected: onnxruntime
 * keeps its own arena).
 */
export const TORCH_MALLOC = {
  MALLOC_MMAP_THRESHOLD_: '4000000000',
  MALLOC_TRIM_THRESHOLD_: '4000000000',
  MALLOC_TOP_PAD_: '536870912',
};

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * The median of a[r] / b[r] over the repeats: each pair ran back to back, so a drift of the machine's speed during
 * the run (this VM's can move 30% within minutes) cancels out of every ratio, which a ratio of medians does not do.
 */
export const pairedRatio = (a: number[], b: number[]) => median(a.map((x, r) => x / b[r]));

/** `v` with thousands separators and `digits` decimals; a dash for a missing value. */
export function fmt(v: number | null, digits = 0): string {
  return v === null ? '—' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Rows as aligned columns: the first left-aligned, the others right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows
    .map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '))
    .join('\n');
}
