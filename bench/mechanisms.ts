// The before/after figures of the performance pass and of the mechanisms measured and not kept
// (docs/benchmarks.md, "Changes of the performance pass" and "Measured and not kept"). They were
// measured by hand (perf, side-by-side builds), not by `npm run bench`, so they are constants; this
// table is the only place they are written: the prose (bench/prose/analysis.md) quotes them
// through {{placeholders}} and the before/after chart (charts.ts) draws them.
//
// Each measure compares the path WITHOUT the mechanism against the path WITH it: for a change that
// was kept, without = before and with = after; for one that was not kept, without = what runs today
// and with = what was tried.

import { finite, fmt } from './lib/fmt';

/** How the prose quotes a list of values: "23, 117 and 64" (the same value for all: "0"),
 * "7.76 / 7.96 / 7.96", "7.7-8.9", "~240", or the largest alone. */
export type Say = 'list' | 'slash' | 'range' | 'approx' | 'max';

export interface Measure {
  /** Prefix of the prose placeholders {{<key>Without}} and {{<key>With}}. */
  key: string;
  /** What is measured, as the chart labels it (with its unit). */
  label: string;
  /** The unit printed after the chart's values ('' for counts). */
  unit: string;
  better: 'lower' | 'higher';
  /** One value per run (or the two ends of a quoted range). */
  without: number[];
  with: number[];
  say: Say;
  digits: number;
  /** Values are packets/s, quoted in thousands with a "k" ("140.4k"). */
  thousands?: boolean;
}

export interface Mechanism {
  name: string;
  kept: boolean;
  measures: Measure[];
}

const m = (key: string, label: string, unit: string, better: Measure['better'], without: number[], withIt: number[], say: Say, digits = 0, thousands = false): Measure =>
  ({ key, label, unit, better, without, with: withIt, say, digits, thousands });

export const MECHANISMS: Mechanism[] = [
  {
    name: 'Return traffic read right after it is written (drainTouched)',
    kept: true,
    measures: [
      m('readBackLoss', 'packets lost of 500,000 at 100 kpps', '', 'lower', [23, 117, 64], [0, 0, 0], 'list'),
      m('readBackEpoll', 'epoll_wait per packet', '', 'lower', [0.15], [0.1], 'list', 3),
      m('readBackSwitches', 'context switches per second', '', 'lower', [3449], [2574], 'list'),
    ],
  },
  {
    name: 'At most as many reads as packets were written',
    kept: true,
    measures: [
      m('boundedReads', 'reads per packet at 100 kpps', '', 'lower', [1.08], [1.0], 'list', 2),
      m('boundedSyscalls', 'system calls per packet at 100 kpps', '', 'lower', [2.44], [2.31], 'list', 2),
    ],
  },
  {
    name: 'The whole performance pass (changes 1-5)',
    kept: true,
    measures: [
      m('passUs', 'CPU per packet at 100 kpps', 'us', 'lower', [7.76, 7.96, 7.96], [7.7, 7.74, 7.86], 'slash', 2),
      m('passSat', 'returned packets/s at saturation', '', 'higher', [140_400, 141_200, 140_300], [141_400, 140_200, 143_600], 'slash', 1, true),
    ],
  },
  {
    name: '8 MiB receive buffer (--rcvbuf default) instead of the kernel default',
    kept: true,
    measures: [m('rcvbufLoss', 'packets lost of 500,000 at 100 kpps (two runs)', '', 'lower', [519, 0], [0, 0], 'max')],
  },
  {
    name: 'Busy-polling before sleeping',
    kept: false,
    measures: [m('busyPollUs', 'CPU per packet at 100 kpps', 'us', 'lower', [7.8, 7.9], [7.7, 8.9], 'range', 1)],
  },
  {
    name: 'RPS on the veth',
    kept: false,
    measures: [m('rpsGen', "generator's sending rate", 'kpps', 'higher', [240], [100], 'approx')],
  },
  {
    name: 'IFF_NAPI on the TUN devices',
    kept: false,
    measures: [
      m('napiSat', 'returned packets/s at saturation', '', 'higher', [140_200], [123_600], 'list', 1, true),
      m('napiUs', 'CPU per packet at 100 kpps', 'us', 'lower', [7.78], [9.16], 'list', 2),
    ],
  },
  {
    name: 'Transparent huge pages for the flow table',
    kept: false,
    measures: [
      m('thpLookup', 'lookup at 1M flows', 'ns', 'lower', [316, 336], [320, 330], 'range'),
      m('thpInsert', 'insert at 1M flows', 'ns', 'lower', [499, 503], [624, 687], 'range'),
    ],
  },
  {
    name: 'One-arm default route in the main table instead of ip rule',
    kept: false,
    measures: [m('mainRouteUs', 'CPU per packet', 'us', 'lower', [7.3, 7.7], [6.1, 7.2], 'range', 1)],
  },
];

/** One value as the prose and the chart quote it. */
export function say1(x: number, meas: Pick<Measure, 'digits' | 'thousands'>): string {
  return meas.thousands === true ? `${fmt(x / 1000, meas.digits)}k` : fmt(x, meas.digits);
}

/** A list of values as the prose quotes it. */
export function sayValues(values: number[], meas: Pick<Measure, 'say' | 'digits' | 'thousands'>): string {
  const xs = finite(values);
  if (xs.length === 0) return 'n/a';
  const one = (x: number): string => say1(x, meas);
  switch (meas.say) {
    case 'list':
      if (xs.every((x) => x === xs[0])) return one(xs[0]);
      return xs.length === 1 ? one(xs[0]) : `${xs.slice(0, -1).map(one).join(', ')} and ${one(xs[xs.length - 1])}`;
    case 'slash':
      return xs.map(one).join(' / ');
    case 'range': {
      const lo = Math.min(...xs);
      const hi = Math.max(...xs);
      return lo === hi ? one(lo) : `${one(lo)}-${one(hi)}`;
    }
    case 'approx':
      return xs.map((x) => `~${one(x)}`).join(', ');
    case 'max':
      return one(Math.max(...xs));
  }
}

/** The prose placeholders of every measure: {{<key>Without}} and {{<key>With}}. */
export function mechanismVars(mechs: Mechanism[] = MECHANISMS): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const mech of mechs) {
    for (const meas of mech.measures) {
      vars[`${meas.key}Without`] = sayValues(meas.without, meas);
      vars[`${meas.key}With`] = sayValues(meas.with, meas);
    }
  }
  return vars;
}
