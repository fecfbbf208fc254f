// Logging by section and level, as the original's --logging: a comma-separated list of
// section=level, case-insensitive. Text to stderr with millisecond timestamps, or one JSON
// object per line (--log-format json). Messages that can repeat per packet go through
// `limited()`, which lets at most `burst` through per key per second and counts the rest.

import { monoMs } from './clock';

export const SECTIONS = ['core', 'udp', 'geneve', 'tunnel', 'healthcheck'] as const;
export type Section = (typeof SECTIONS)[number];
export const LEVELS = ['critical', 'important', 'info', 'debug', 'debugdetail'] as const;
export type Level = (typeof LEVELS)[number];

export const LEVEL = { critical: 0, important: 1, info: 2, debug: 3, debugdetail: 4 } as const;

export interface LogConfig {
  levels: Record<Section, number>;
  format: 'text' | 'json';
}

export function defaultLogConfig(): LogConfig {
  const levels = {} as Record<Section, number>;
  for (const s of SECTIONS) levels[s] = LEVEL.important;
  return { levels, format: 'text' };
}

/** Parse "all=debug,udp=info"; throws with a one-line message naming the bad part. */
export function parseLogging(spec: string, into: LogConfig): void {
  for (const raw of spec.split(',')) {
    const part = raw.trim().toLowerCase();
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) throw new Error(`'${raw}' is not section=level`);
    const section = part.slice(0, eq);
    const level = part.slice(eq + 1);
    if (!(LEVELS as readonly string[]).includes(level)) {
      throw new Error(`unknown logging level '${level}' (levels: ${LEVELS.join(' ')})`);
    }
    const n = LEVEL[level as Level];
    if (section === 'all') for (const s of SECTIONS) into.levels[s] = n;
    else if ((SECTIONS as readonly string[]).includes(section)) into.levels[section as Section] = n;
    else throw new Error(`unknown logging section '${section}' (sections: ${SECTIONS.join(' ')} all)`);
  }
}

export type Sink = (line: string) => void;

export class Logger {
  private readonly windows = new Map<string, { start: number; n: number; suppressed: number }>();
  constructor(
    readonly config: LogConfig,
    private readonly sink: Sink = (l) => process.stderr.write(l + '\n'),
  ) {}

  enabled(section: Section, level: number): boolean {
    return level <= this.config.levels[section];
  }

  log(section: Section, level: number, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(section, level)) return;
    const t = new Date();
    if (this.config.format === 'json') {
      this.sink(JSON.stringify({ time: t.toISOString(), section, level: LEVELS[level], msg, ...fields }));
    } else {
      const extra = fields
        ? ' ' + Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : String(v)}`).join(' ')
        : '';
      this.sink(`${t.toISOString()} ${section.padEnd(11)} ${LEVELS[level].padEnd(9)} ${msg}${extra}`);
    }
  }

  /** Like log(), but at most `burst` messages per key per second; the number suppressed is
   * reported with the next message that gets through. */
  limited(key: string, section: Section, level: number, msg: string, fields?: Record<string, unknown>, burst = 5): void {
    if (!this.enabled(section, level)) return;
    const now = monoMs();
    let w = this.windows.get(key);
    if (w === undefined) {
      if (this.windows.size > 1024) this.windows.clear(); // bounded
      w = { start: now, n: 0, suppressed: 0 };
      this.windows.set(key, w);
    }
    if (now - w.start >= 1000) {
      w.start = now;
      w.n = 0;
    }
    if (w.n >= burst) {
      w.suppressed++;
      return;
    }
    w.n++;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    this.log(section, level, msg, suppressed > 0 ? { ...fields, suppressed } : fields);
  }

  critical(section: Section, msg: string, f?: Record<string, unknown>): void {
    this.log(section, LEVEL.critical, msg, f);
  }
  important(section: Section, msg: string, f?: Record<string, unknown>): void {
    this.log(section, LEVEL.important, msg, f);
  }
  info(section: Section, msg: string, f?: Record<string, unknown>): void {
    this.log(section, LEVEL.info, msg, f);
  }
  debug(section: Section, msg: string, f?: Record<string, unknown>): void {
    this.log(section, LEVEL.debug, msg, f);
  }
}
