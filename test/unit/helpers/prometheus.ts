// A strict parser of the Prometheus text exposition format (version 0.0.4), for tests: it
// throws on anything a Prometheus server would reject (bad names, bad label syntax or escapes,
// unparsable values, TYPE after samples, duplicate TYPE/HELP, a family's samples not contiguous,
// duplicate series).

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s: string, line: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)$/.test(s)) throw new Error(`bad value '${s}' in: ${line}`);
  return Number(s);
}

function familyOf(sample: string, families: Map<string, Family>): string {
  if (families.has(sample)) return sample;
  for (const suf of ['_bucket', '_sum', '_count']) {
    const base = sample.endsWith(suf) ? sample.slice(0, -suf.length) : '';
    const f = base === '' ? undefined : families.get(base);
    if (f !== undefined && (f.type === 'histogram' || f.type === 'summary')) return base;
  }
  return sample;
}

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  const series = new Set<string>();
  let current = '';
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('text must end with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null) continue; // plain comment
      const [, kind, name, rest] = m;
      if (!METRIC.test(name)) throw new Error(`bad metric name in: ${line}`);
      let f = families.get(name);
      if (f === undefined) {
        if (closed.has(name)) throw new Error(`family ${name} is not contiguous`);
        f = { name, type: 'untyped', help: '', samples: [] };
        families.set(name, f);
      }
      if (current !== name && current !== '') closed.add(current);
      current = name;
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`bad type in: ${line}`);
        if (f.samples.length > 0) throw new Error(`TYPE after samples for ${name}`);
        if ((f as Family & { typed?: boolean }).typed) throw new Error(`duplicate TYPE for ${name}`);
        (f as Family & { typed?: boolean }).typed = true;
        f.type = rest;
      } else {
        if ((f as Family & { helped?: boolean }).helped) throw new Error(`duplicate HELP for ${name}`);
        (f as Family & { helped?: boolean }).helped = true;
        f.help = rest;
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?$/.exec(line);
    if (m === null) throw new Error(`bad sample line: ${line}`);
    const [, name, rawLabels, value] = m;
    const labels: Record<string, string> = {};
    if (rawLabels !== undefined) {
      let s = rawLabels.slice(1, -1);
      while (s.length > 0) {
        const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,?)/.exec(s);
        if (lm === null || !LABEL.test(lm[1])) throw new Error(`bad labels in: ${line}`);
        if (lm[1] in labels) throw new Error(`duplicate label ${lm[1]} in: ${line}`);
        labels[lm[1]] = lm[2].replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
        s = s.slice(lm[0].length);
        if (lm[3] === '' && s.length > 0) throw new Error(`bad labels in: ${line}`);
      }
    }
    const fam = familyOf(name, families);
    let f = families.get(fam);
    if (f === undefined) {
      if (closed.has(fam)) throw new Error(`family ${fam} is not contiguous`);
      f = { name: fam, type: 'untyped', help: '', samples: [] };
      families.set(fam, f);
    }
    if (current !== fam) {
      if (current !== '') closed.add(current);
      if (closed.has(fam)) throw new Error(`family ${fam} is not contiguous`);
      current = fam;
    }
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (series.has(key)) throw new Error(`duplicate series: ${line}`);
    series.add(key);
    f.samples.push({ name, labels, value: parseValue(value, line) });
  }
  return families;
}
