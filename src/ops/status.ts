// The live status page (GET /status, GET /status.json) and the original gwlbtun's health JSON
// keys (the `udp` and `enis` members of the -j body), both read from the daemon's public members
// only: counters, endpoints, flow table, worker status, hook statistics (docs/operations.md,
// "Status page").
//
// Per-request work is bounded by endpoints x workers: rates come from a sampler that runs once a
// second, flows per endpoint and family from a census of the flow table taken at most once a
// second (FlowTable.countByEndpoint), receive-buffer drops per Geneve socket from /proc/net/udp in
// the sampler. Nothing here iterates over flows per request or touches the data path.
//
// History (the page's graphs): every HISTORY_MS the same sampler (main thread, the shared counters
// it reads anyway) also appends one point to a fixed ring per endpoint and one for the whole
// appliance: packets/s and bits/s from and to GWLB and drops/s over that interval. HISTORY_POINTS
// points (10 minutes) in one preallocated Float64Array each, so a page opened late still shows
// the last minutes; memory is bounded per endpoint (HISTORY_POINTS x 5 doubles, 12 KB) and an
// endpoint's ring is dropped with its other samples when the endpoint goes. /status.json carries
// the rings oldest first, with `history.seq`, the number of the newest point (points never
// change once written, so two answers agree on the points they share).

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Daemon, Endpoint } from '../control/daemon';
import { C, EP, EP_STRIDE, GC_HIST, GLOBAL_CELLS, HIST_BOUNDS_S, LOOP_HIST, histView, type HistView } from '../dataplane/counters';
import { DROP_SLOTS } from '../wire/reasons';
import { monoMs } from '../base/clock';
import { statusPage, type HookState, type StatusJson } from './status-page';
import { dropsByReason, endpointTotals } from './totals';
import type { MainThreadStats } from './runtime';

/** Count and quantiles of a histogram, each as the upper bound in us of the bucket it falls in
 * (-1: the +Inf bucket; null: no observation). The largest: the bound of the highest non-empty
 * bucket. Pure. */
export function histSummary(h: HistView): { count: number; p50Us: number | null; p99Us: number | null; p999Us: number | null; maxUs: number | null } {
  const n = h.count;
  const boundUs = (i: number): number => (i < HIST_BOUNDS_S.length ? Math.round(HIST_BOUNDS_S[i]! * 1e6) : -1);
  const q = (p: number): number | null => {
    if (n === 0) return null;
    const want = Math.ceil(p * n);
    const i = h.cumulative.findIndex((c) => c >= want);
    return boundUs(i < 0 ? h.cumulative.length - 1 : i);
  };
  let top = -1;
  for (let i = 0; i < h.cumulative.length; i++) if (h.cumulative[i]! > (i === 0 ? 0 : h.cumulative[i - 1]!)) top = i;
  return { count: n, p50Us: q(0.5), p99Us: q(0.99), p999Us: q(0.999), maxUs: top < 0 ? null : boundUs(top) };
}

/** Sampling period of the rates (ms). */
export const SAMPLE_MS = 1000;
/** Oldest flow census served (ms). */
export const CENSUS_MAX_AGE_MS = 1000;
/** One history point every HISTORY_MS; HISTORY_POINTS of them (10 minutes). */
export const HISTORY_MS = 2000;
export const HISTORY_POINTS = 300;
/** The series of a history ring, in this order (the names /status.json uses). */
export const HISTORY_SERIES = ['ppsFromGwlb', 'bitsPerSecondFromGwlb', 'ppsToGwlb', 'bitsPerSecondToGwlb', 'dropsPerSecond'] as const;
export type HistorySeries = Record<(typeof HISTORY_SERIES)[number], number[]>;
const NS = HISTORY_SERIES.length;

/** A fixed ring of the newest `capacity` points of the HISTORY_SERIES: allocated once. */
export class HistoryRing {
  private readonly v: Float64Array;
  private next = 0;
  private n = 0;
  /** The cumulative counters at the last point (packets in, bytes in, packets out, bytes out, drops). */
  readonly last = new Float64Array(NS);
  constructor(readonly capacity = HISTORY_POINTS) {
    this.v = new Float64Array(capacity * NS);
  }
  get length(): number {
    return this.n;
  }
  /** Appends the rates from `last` to `now` (cumulative, same order) over `dt` seconds and makes
   * `now` the new `last`. Packets and bits per second are whole numbers, drops/s in tenths. */
  push(now: ArrayLike<number>, dt: number): void {
    const o = this.next * NS;
    for (let i = 0; i < NS; i++) {
      const r = Math.max(0, now[i] - this.last[i]) / dt;
      this.v[o + i] = i === 4 ? Math.round(r * 10) / 10 : Math.round(i === 1 || i === 3 ? r * 8 : r);
      this.last[i] = now[i];
    }
    this.next = (this.next + 1) % this.capacity;
    if (this.n < this.capacity) this.n++;
  }
  /** The points, oldest first. */
  toJson(): HistorySeries {
    const out = {} as HistorySeries;
    const first = (this.next - this.n + this.capacity) % this.capacity;
    HISTORY_SERIES.forEach((name, i) => {
      const a: number[] = new Array<number>(this.n);
      for (let j = 0; j < this.n; j++) a[j] = this.v[((first + j) % this.capacity) * NS + i];
      out[name] = a;
    });
    return out;
  }
}

interface EpSample {
  rxP: number;
  rxB: number;
  txP: number;
  txB: number;
  rate: [number, number, number, number]; // per second, over the last sample period
  history: HistoryRing;
}

interface WorkerSample {
  udpP: number;
  tunP: number;
  rate: [number, number];
}

function readVersion(): string {
  for (const p of [path.join(__dirname, '..', '..', '..', 'package.json'), path.join(__dirname, '..', '..', 'package.json')]) {
    try {
      const v = (JSON.parse(fs.readFileSync(p, 'utf8')) as { version?: unknown }).version;
      if (typeof v === 'string') return v;
    } catch {
      // try the next place
    }
  }
  return 'unknown';
}
const VERSION = readVersion();

/** Receive-buffer drops per UDP socket bound to `port` in this network namespace, by inode (the
 * "drops" column of /proc/net/udp). null when unreadable. */
export function udpSocketDrops(port: number, text?: string): Map<number, number> | null {
  let t = text;
  if (t === undefined) {
    try {
      t = fs.readFileSync('/proc/net/udp', 'utf8');
    } catch {
      return null;
    }
  }
  const out = new Map<number, number>();
  const hexPort = ':' + port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of t.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13 || !f[1].endsWith(hexPort)) continue;
    const inode = Number(f[9]);
    const drops = Number(f[12]);
    if (Number.isFinite(inode) && Number.isFinite(drops)) out.set(inode, drops);
  }
  return out;
}

/** The inode of the socket behind one of this process's descriptors, or -1. */
function socketInode(fd: number): number {
  if (fd < 0) return -1;
  try {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
    return m === null ? -1 : Number(m[1]);
  } catch {
    return -1;
  }
}

export class StatusCollector {
  private readonly eps = new Map<number, EpSample>(); // by endpoint id
  private readonly workers: WorkerSample[] = [];
  private lastSampleMs = 0;
  private periodS = 0;
  private census: Map<number, number> = new Map();
  private censusMs = -Infinity;
  private censusTaken = 0;
  private socketDrops: Map<number, number> | null = null;
  private workerSocket: number[] | null = null; // worker index -> inode of its Geneve socket
  private timer: NodeJS.Timeout | null = null;
  private readonly total = new HistoryRing(); // the whole appliance
  private historyMs = 0; // monotonic ms of the last history point (0: none yet)
  private historySeq = 0; // points taken so far
  private readonly cur = new Float64Array(NS); // scratch

  constructor(
    private readonly d: Daemon,
    private readonly main: MainThreadStats | null = null,
  ) {}

  start(): void {
    if (this.timer !== null) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** How many flow-table census passes ran (tests check they are rate-limited). */
  get censusCount(): number {
    return this.censusTaken;
  }

  private sample(): void {
    const d = this.d;
    const c = d.counters;
    const now = monoMs();
    const dt = this.lastSampleMs === 0 ? 0 : (now - this.lastSampleMs) / 1000;
    this.periodS = dt;
    this.lastSampleMs = now;
    // A history point when HISTORY_MS have passed (the first sample only sets the baselines).
    const histDt = this.historyMs === 0 ? 0 : (now - this.historyMs) / 1000;
    const point = this.historyMs === 0 || histDt * 1000 >= HISTORY_MS - SAMPLE_MS / 2;
    if (point) {
      this.historyMs = now;
      if (histDt > 0) this.historySeq++;
    }
    const seen = new Set<number>();
    for (const e of d.endpoints.values()) {
      seen.add(e.epId);
      const rxP = c.epSum(e.slot, EP.RX_PACKETS);
      const rxB = c.epSum(e.slot, EP.RX_BYTES);
      const txP = c.epSum(e.slot, EP.TX_PACKETS);
      const txB = c.epSum(e.slot, EP.TX_BYTES);
      const prev = this.eps.get(e.epId);
      const rate: EpSample['rate'] =
        prev === undefined || dt <= 0 ? [0, 0, 0, 0] : [(rxP - prev.rxP) / dt, (rxB - prev.rxB) / dt, (txP - prev.txP) / dt, (txB - prev.txB) / dt];
      const history = prev?.history ?? new HistoryRing();
      if (point || prev === undefined) this.historyPoint(history, histDt, prev === undefined, rxP, rxB, txP, txB, c.epSum(e.slot, EP.DROPS));
      this.eps.set(e.epId, { rxP, rxB, txP, txB, rate, history });
    }
    for (const id of this.eps.keys()) if (!seen.has(id)) this.eps.delete(id);
    if (point) {
      let drops = 0;
      for (let r = 1; r < DROP_SLOTS; r++) drops += c.sum(r);
      this.historyPoint(this.total, histDt, histDt === 0, c.sum(C.UDP_RX_PACKETS), c.sum(C.UDP_RX_BYTES), c.sum(C.RAW_TX_PACKETS), c.sum(C.RAW_TX_BYTES), drops);
    }
    for (let w = 0; w < c.workers; w++) {
      const udpP = c.of(w, C.UDP_RX_PACKETS);
      const tunP = c.of(w, C.TUN_RX_PACKETS);
      const prev = this.workers[w];
      const rate: WorkerSample['rate'] = prev === undefined || dt <= 0 ? [0, 0] : [(udpP - prev.udpP) / dt, (tunP - prev.tunP) / dt];
      this.workers[w] = { udpP, tunP, rate };
    }
    this.socketDrops = typeof d.opts.udpPort === 'number' ? udpSocketDrops(d.opts.udpPort) : null;
    this.mapSockets();
  }

  /** One history point into `h` from the cumulative counters; a new ring (or the first sample)
   * only takes them as its baseline. */
  private historyPoint(h: HistoryRing, dt: number, baselineOnly: boolean, rxP: number, rxB: number, txP: number, txB: number, drops: number): void {
    const v = this.cur;
    v[0] = rxP;
    v[1] = rxB;
    v[2] = txP;
    v[3] = txB;
    v[4] = drops;
    if (baselineOnly || dt <= 0) h.last.set(v);
    else h.push(v, dt);
  }

  /** Which Geneve socket is which worker's: the inode behind each worker's descriptor. */
  private mapSockets(): void {
    this.workerSocket = this.socketDrops === null ? null : this.d.workerStatus().map((w) => socketInode(w.udpFd));
  }

  /** Flows per endpoint id and family (key epId * 2 + (IPv6 ? 1 : 0)), at most CENSUS_MAX_AGE_MS old. */
  flowCensus(): Map<number, number> {
    const f = this.d.flows;
    if (f === null) return this.census;
    const now = monoMs();
    if (now - this.censusMs >= CENSUS_MAX_AGE_MS) {
      f.countByEndpoint(this.census);
      this.censusMs = now;
      this.censusTaken++;
    }
    return this.census;
  }

  private hookState(e: Endpoint): HookState {
    const rec = e.lastHook;
    return {
      running: e.hookRunning,
      last:
        rec === null
          ? null
          : { kind: rec.kind, result: rec.result, exit: rec.exit, killed: rec.killed, outlived: rec.outlived, ms: rec.ms, secondsAgo: Math.round((monoMs() - rec.atMs) / 100) / 10, output: rec.output },
    };
  }

  /** GET /status.json. */
  statusJson(): StatusJson {
    const d = this.d;
    const c = d.counters;
    const now = monoMs();
    const census = this.flowCensus();
    const drops = dropsByReason(c);
    const totalSocketDrops = this.socketDrops === null ? null : [...this.socketDrops.values()].reduce((a, b) => a + b, 0);
    return {
      version: VERSION,
      node: process.version,
      pid: process.pid,
      flags: process.argv.slice(2),
      healthy: d.healthy(),
      shuttingDown: d.shuttingDown,
      uptimeSeconds: Math.round((now - d.startedMs) / 1000),
      sampleSeconds: Math.round(this.periodS * 1000) / 1000,
      udpPort: d.opts.udpPort,
      workers: d.workerStatus().map((w) => {
        const s = this.workers[w.index];
        const inode = this.workerSocket === null ? undefined : this.workerSocket[w.index];
        return {
          index: w.index,
          alive: w.alive,
          restarts: w.restarts,
          heartbeatAgeMs: Math.round(w.heartbeatAgeMs),
          udpPackets: c.of(w.index, C.UDP_RX_PACKETS),
          tunPackets: c.of(w.index, C.TUN_RX_PACKETS),
          udpPps: s === undefined ? 0 : Math.round(s.rate[0]),
          tunPps: s === undefined ? 0 : Math.round(s.rate[1]),
          rcvbufDrops: inode === undefined || this.socketDrops === null ? null : (this.socketDrops.get(inode) ?? null),
        };
      }),
      geneveSocketDrops: totalSocketDrops,
      history: { periodSeconds: HISTORY_MS / 1000, points: HISTORY_POINTS, seq: this.historySeq, appliance: this.total.toJson() },
      endpoints: [...d.endpoints.values()].map((e) => {
        const s = this.eps.get(e.epId);
        const t = endpointTotals(d, e, now);
        return {
          ...t,
          hook: this.hookState(e),
          ppsFromGwlb: s === undefined ? 0 : Math.round(s.rate[0]),
          bitsPerSecondFromGwlb: s === undefined ? 0 : Math.round(s.rate[1] * 8),
          ppsToGwlb: s === undefined ? 0 : Math.round(s.rate[2]),
          bitsPerSecondToGwlb: s === undefined ? 0 : Math.round(s.rate[3] * 8),
          flowsV4: census.get(e.epId * 2) ?? 0,
          flowsV6: census.get(e.epId * 2 + 1) ?? 0,
          secondsSinceLastPacket: t.secondsSinceLastPacket === null ? null : Math.max(0, t.secondsSinceLastPacket),
          history: s === undefined ? undefined : s.history.toJson(),
        };
      }),
      flows:
        d.flows === null
          ? null
          : { size: d.flows.size(), capacity: d.flows.capacity, inserts: c.sum(C.FLOW_INSERTS), evictions: c.sum(C.FLOW_EVICTIONS), expiries: d.flowExpiries },
      drops,
      hooks: { create: { ...d.hookStats.create }, destroy: { ...d.hookStats.destroy } },
      latency: this.latency(),
    };
  }

  private latency(): StatusJson['latency'] {
    const c = this.d.counters;
    const rows: StatusJson['latency'] = [];
    const row = (thread: string, what: string, h: HistView): void => void rows.push({ thread, what, ...histSummary(h) });
    for (const w of this.d.workerStatus()) {
      row(`worker-${w.index}`, 'loop turn', c.hist(w.index, LOOP_HIST));
      row(`worker-${w.index}`, 'GC pause', c.hist(w.index, GC_HIST));
    }
    if (this.main !== null) {
      row('main', 'GC pause', histView([this.main.gc], 0));
      row('main', 'event-loop delay', histView([this.main.loopDelay], 0));
    }
    return rows;
  }

  /** The original gwlbtun's health JSON members, `udp` and `enis`, with its key spellings and
   * shapes (docs/operations.md, "Keys of the original"). One worker = one "thread". */
  originalKeys(): { enis: unknown[]; udp: unknown } {
    const d = this.d;
    const c = d.counters;
    const now = monoMs();
    const census = this.flowCensus();
    const ws = d.workerStatus();
    const secs = (fromMs: number): number => Math.max(0, Math.round(now - fromMs) / 1000);
    const eps = [...d.endpoints.values()];
    const cell = (slot: number, k: number): number => GLOBAL_CELLS + slot * EP_STRIDE + k;
    const threadOk = (w: (typeof ws)[number]): boolean => w.alive && c.of(w.index, C.UDP_BOUND) === 1 && w.heartbeatAgeMs <= 5000;
    const udpThreads = ws.map((w) => {
      let lastRx = 0;
      for (const e of eps) lastRx = Math.max(lastRx, c.of(w.index, cell(e.slot, EP.LAST_RX_MS)));
      return {
        bytesIn: c.of(w.index, C.UDP_RX_BYTES),
        healthy: threadOk(w),
        pktsIn: c.of(w.index, C.UDP_RX_PACKETS),
        secsSinceLastPacket: secs(lastRx === 0 ? d.startedMs : lastRx),
        threadId: w.index,
        threadNumber: w.index,
        valid: w.alive,
      };
    });
    const flowCache = (family: 'IPv4' | 'IPv6', e: Endpoint): unknown[] => [
      ['cacheName', `${family} Flow Cache for ENI ${e.hex}`],
      ['size', census.get(e.epId * 2 + (family === 'IPv6' ? 1 : 0)) ?? 0],
      ['timedOut', d.flowExpiries],
      'idleTimeoutSecs',
      d.opts.tcpIdleS,
    ];
    const enis = eps.map((e) => {
      const created = e.createdMs;
      const lastRx = c.epMax(e.slot, EP.LAST_RX_MS);
      return {
        eniStr: e.hex,
        tunnelIn: {
          bytesOut: c.epSum(e.slot, EP.RX_BYTES),
          devname: e.gwi,
          pktsOut: c.epSum(e.slot, EP.RX_PACKETS),
          secsSincelastPacket: secs(lastRx === 0 ? created : lastRx),
          // Returns are counted per endpoint, not per interface: all of them are under tunnelOut.
          threads: ws.map((w) => ({ bytesIn: 0, healthy: threadOk(w), pktsIn: 0, secsSincelastPacket: secs(created), threadId: w.index, threadNumber: w.index, valid: w.alive })),
        },
        tunnelOut: {
          bytesOut: 0,
          devname: d.opts.noReturn ? null : e.gwo,
          pktsOut: 0, // nothing is ever written to gwo-
          secsSincelastPacket: secs(created),
          threads: ws.map((w) => {
            const lastTx = c.of(w.index, cell(e.slot, EP.LAST_TX_MS));
            return {
              bytesIn: c.of(w.index, cell(e.slot, EP.TX_BYTES)),
              healthy: threadOk(w),
              pktsIn: c.of(w.index, cell(e.slot, EP.TX_PACKETS)),
              secsSincelastPacket: secs(lastTx === 0 ? created : lastTx),
              threadId: w.index,
              threadNumber: w.index,
              valid: w.alive,
            };
          }),
        },
        v4FlowCache: flowCache('IPv4', e),
        v6FlowCache: flowCache('IPv6', e),
      };
    });
    return { enis, udp: { UDPPacketReceiver: { portNumber: d.opts.udpPort, threads: udpThreads } } };
  }

  /** GET /status: the snapshot rendered on the server (readable without JavaScript), refreshed
   * every 2 s from /status.json by the same render function. */
  statusHtml(): string {
    return statusPage(this.statusJson());
  }

}
