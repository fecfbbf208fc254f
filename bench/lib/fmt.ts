// Number formatting shared by the document (report.ts), the mechanisms table (mechanisms.ts) and
// the charts (charts.ts): en-US grouping, fixed decimals, "n/a" for a value that is missing.

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The finite numbers of a list (saved results hold null where a run produced NaN). */
export function finite(xs: ReadonlyArray<number | null | undefined>): number[] {
  return xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
}
