// Order statistics over the rounds of one measure (empty input: NaN, shown as "n/a").

export const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const max = (xs: number[]): number => (xs.length === 0 ? NaN : Math.max(...xs));
export const min = (xs: number[]): number => (xs.length === 0 ? NaN : Math.min(...xs));
