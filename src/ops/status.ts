// The live status page (GET /status, GET /status.json) and the original gwlbtun's health JSON
// keys (the `udp` and `enis` members of the -j body), both read from the daemon's public members
// only: counters, endpoints, flow table, worker status, hook statistics (docs/operations.md,
// "Status page").
//
// Per-request work is bounded by endpoints x workers: rates come from a sampler that runs once a
// second, flows per endpoint and family from a census of the flow table taken at most once a
// second (FlowTable.countByEndpoint), receive-buffer drops per Geneve socket from /proc/net/udp in
// the sampler. Nothing here iterates over flows per request or touches the data path.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Daemon, Endpoint } from '../control/daemon';
import { C, EP, EP_STRIDE, GLOBAL_CELLS } from '../dataplane/counters';
import { DROP_NAMES, DROP_SLOTS } from '../wire/reasons';
import { monoMs } from '../flow/clock';
import type { Logger } from './log';

/** Sampling period of the rates (ms). */
export const SAMPLE_MS = 1000;
/** Oldest flow census served (ms). */
export const CENSUS_MAX_AGE_MS = 1000;
/** Hook output kept per endpoint for the page (bytes of text; the log has up to 16 KiB). */
export const HOOK_OUTPUT_MAX = 4096;

export interface HookRecord {
  kind: 'create' | 'destroy';
  result: 'ok' | 'failed' | 'timed out' | 'could not run';
  exit: number | null;
  ms: number;
  atMs: number;
  output: string;
}

interface EpSample {
  rxP: number;
  rxB: number;
  txP: number;
  txB: number;
  rate: [number, number, number, number]; // per second, over the last sample period
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

/** The socket inodes among this process's descriptors, in descriptor order. */
function socketInodesByFd(wanted: Set<number>): number[] {
  const found: [number, number][] = [];
  try {
    for (const name of fs.readdirSync('/proc/self/fd')) {
      let link: string;
      try {
        link = fs.readlinkSync(`/proc/self/fd/${name}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m !== null && wanted.has(Number(m[1]))) found.push([Number(name), Number(m[1])]);
    }
  } catch {
    return [];
  }
  return found.sort((a, b) => a[0] - b[0]).map((x) => x[1]);
}

export class StatusCollector {
  private readonly eps = new Map<number, EpSample>(); // by endpoint id
  private readonly workers: WorkerSample[] = [];
  private lastSampleMs = 0;
  private periodS = 0;
  private census: Map<number, number> = new Map();
  private censusMs = -Infinity;
  private censusTaken = 0;
  private readonly hooks = new Map<string, HookRecord>(); // by ENI hex
  private lastHook: HookRecord | null = null;
  private socketDrops: Map<number, number> | null = null;
  private socketInodes = ''; // the set of inodes the worker mapping below was made for
  private workerSocket: number[] | null = null; // worker index -> inode
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly d: Daemon) {
    // A stub daemon in unit tests may have no logger.
    (d.log as Logger | undefined)?.tap((_section, _level, msg, fields) => this.onLog(msg, fields));
  }

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

  /** The daemon logs each hook run ("create hook done" with the arguments, then, when it wrote
   * anything, "create hook output: ..."): keep the last of each endpoint. */
  private onLog(msg: string, fields: Record<string, unknown> | undefined): void {
    const m = /^(create|destroy) hook (done|failed|timed out|could not run)/.exec(msg);
    if (m !== null && fields !== undefined && typeof fields.args === 'string') {
      const hex = fields.args.split(' ')[3];
      if (hex === undefined) return;
      const rec: HookRecord = {
        kind: m[1] as HookRecord['kind'],
        result: m[2] === 'done' ? 'ok' : (m[2] as HookRecord['result']),
        exit: typeof fields.exit === 'number' ? fields.exit : null,
        ms: typeof fields.ms === 'number' ? Math.round(fields.ms) : 0,
        atMs: monoMs(),
        output: '',
      };
      this.hooks.delete(hex); // re-insert: the map's order is the order of the last runs
      this.hooks.set(hex, rec);
      this.lastHook = rec;
      // Bounded: records of endpoints that no longer exist go, oldest first.
      const max = 2 * this.d.endpoints.size + 64;
      for (const k of this.hooks.keys()) {
        if (this.hooks.size <= max) break;
        if (!this.d.endpoints.has(k)) this.hooks.delete(k);
      }
      return;
    }
    const o = /^(create|destroy) hook output: /.exec(msg);
    if (o !== null && this.lastHook !== null && this.lastHook.kind === o[1]) {
      this.lastHook.output = msg.slice(o[0].length, o[0].length + HOOK_OUTPUT_MAX);
      this.lastHook = null;
    }
  }

  private sample(): void {
    const d = this.d;
    const c = d.counters;
    const now = monoMs();
    const dt = this.lastSampleMs === 0 ? 0 : (now - this.lastSampleMs) / 1000;
    this.periodS = dt;
    this.lastSampleMs = now;
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
      this.eps.set(e.epId, { rxP, rxB, txP, txB, rate });
    }
    for (const id of this.eps.keys()) if (!seen.has(id)) this.eps.delete(id);
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

  /** Which Geneve socket is which worker's. The daemon opens the workers' sockets in worker order
   * at start-up, so before any restart their descriptors ascend with the worker index; after a
   * restart (or with foreign sockets on the port) the mapping is unknown and per-worker drops are
   * not shown (the per-socket list still is). Recomputed only when the set of sockets changes. */
  private mapSockets(): void {
    const drops = this.socketDrops;
    const key = drops === null ? '' : [...drops.keys()].sort((a, b) => a - b).join(',');
    const ws = this.d.workerStatus();
    const restarted = ws.some((w) => w.restarts > 0);
    if (key === this.socketInodes && !(restarted && this.workerSocket !== null)) return;
    this.socketInodes = key;
    this.workerSocket = null;
    if (drops === null || drops.size !== ws.length || restarted) return;
    const inodes = socketInodesByFd(new Set(drops.keys()));
    if (inodes.length === ws.length) this.workerSocket = inodes;
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

  private hookState(e: Endpoint): Record<string, unknown> {
    const d = this.d;
    const rec = this.hooks.get(e.hex);
    let running: string | null = null;
    if (e.state === 'creating' && d.opts.createHook !== null && (rec === undefined || rec.kind !== 'create')) running = 'create';
    if (e.state === 'destroying' && d.opts.destroyHook !== null && (rec === undefined || rec.kind !== 'destroy')) running = 'destroy';
    return {
      running,
      last:
        rec === undefined
          ? null
          : { kind: rec.kind, result: rec.result, exit: rec.exit, ms: rec.ms, secondsAgo: Math.round((monoMs() - rec.atMs) / 100) / 10, output: rec.output },
    };
  }

  /** GET /status.json. */
  statusJson(): StatusJson {
    const d = this.d;
    const c = d.counters;
    const now = monoMs();
    const census = this.flowCensus();
    const drops: Record<string, number> = {};
    for (let r = 1; r < DROP_SLOTS; r++) drops[DROP_NAMES[r]] = c.sum(r);
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
      endpoints: [...d.endpoints.values()].map((e) => {
        const s = this.eps.get(e.epId);
        const last = Math.max(c.epMax(e.slot, EP.LAST_RX_MS), c.epMax(e.slot, EP.LAST_TX_MS));
        return {
          eni: e.hex,
          gwi: e.gwi,
          gwo: d.opts.noReturn ? null : e.gwo,
          state: e.state,
          hook: this.hookState(e),
          packetsFromGwlb: c.epSum(e.slot, EP.RX_PACKETS),
          bytesFromGwlb: c.epSum(e.slot, EP.RX_BYTES),
          packetsToGwlb: c.epSum(e.slot, EP.TX_PACKETS),
          bytesToGwlb: c.epSum(e.slot, EP.TX_BYTES),
          ppsFromGwlb: s === undefined ? 0 : Math.round(s.rate[0]),
          bitsPerSecondFromGwlb: s === undefined ? 0 : Math.round(s.rate[1] * 8),
          ppsToGwlb: s === undefined ? 0 : Math.round(s.rate[2]),
          bitsPerSecondToGwlb: s === undefined ? 0 : Math.round(s.rate[3] * 8),
          drops: c.epSum(e.slot, EP.DROPS),
          flowsV4: census.get(e.epId * 2) ?? 0,
          flowsV6: census.get(e.epId * 2 + 1) ?? 0,
          secondsSinceLastPacket: last === 0 ? null : Math.max(0, Math.round((now - last) / 100) / 10),
        };
      }),
      flows:
        d.flows === null
          ? null
          : { size: d.flows.size(), capacity: d.flows.capacity, inserts: c.sum(C.FLOW_INSERTS), evictions: c.sum(C.FLOW_EVICTIONS), expiries: d.flowExpiries },
      drops,
      hooks: { create: { ...d.hookStats.create }, destroy: { ...d.hookStats.destroy } },
    };
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
    const s = this.statusJson();
    return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gwlbtun status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.ok{color:#116329}.bad{color:#b3261e}.meta{color:#555}
table{border-collapse:collapse;margin:.3em 0}th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right;vertical-align:top}
th{background:#f3f4f6;font-weight:600}td.l,th.l{text-align:left}td{white-space:nowrap}td.h{white-space:normal;min-width:14em}
code,pre{font:12px ui-monospace,monospace}pre{margin:0;white-space:pre-wrap;max-width:40em;text-align:left;color:#333}
</style></head>
<body data-refreshes="0">
<main id="status">${renderStatus(s)}</main>
<script>
"use strict";
const renderStatus = ${renderStatus.toString()};
let refreshes = 0;
async function refresh() {
  try {
    const r = await fetch('/status.json', { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const s = await r.json();
    document.getElementById('status').innerHTML = renderStatus(s);
    document.body.dataset.refreshes = String(++refreshes);
  } catch (e) {
    const el = document.getElementById('stale');
    if (el) el.textContent = ' (refresh failed: ' + e.message + ')';
  }
}
setInterval(refresh, 2000);
</script>
</body></html>
`;
  }
}

export interface StatusJson {
  version: string;
  node: string;
  pid: number;
  flags: string[];
  healthy: boolean;
  shuttingDown: boolean;
  uptimeSeconds: number;
  sampleSeconds: number;
  udpPort: number;
  workers: {
    index: number;
    alive: boolean;
    restarts: number;
    heartbeatAgeMs: number;
    udpPackets: number;
    tunPackets: number;
    udpPps: number;
    tunPps: number;
    rcvbufDrops: number | null;
  }[];
  geneveSocketDrops: number | null;
  endpoints: {
    eni: string;
    gwi: string;
    gwo: string | null;
    state: string;
    hook: Record<string, unknown>;
    packetsFromGwlb: number;
    bytesFromGwlb: number;
    packetsToGwlb: number;
    bytesToGwlb: number;
    ppsFromGwlb: number;
    bitsPerSecondFromGwlb: number;
    ppsToGwlb: number;
    bitsPerSecondToGwlb: number;
    drops: number;
    flowsV4: number;
    flowsV6: number;
    secondsSinceLastPacket: number | null;
  }[];
  flows: { size: number; capacity: number; inserts: number; evictions: number; expiries: number } | null;
  drops: Record<string, number>;
  hooks: Record<string, { runs: number; failures: number; timeouts: number; durationMsTotal: number }>;
}

/** The page's body from a /status.json object. Runs on the server and, as its own source text, in
 * the browser: it must stay self-contained (no imports, no helpers outside it). Every number has
 * a `data-k` key and its exact value in `data-v` (the end-to-end test reads them). */
export function renderStatus(s: StatusJson): string {
  const esc = (v: unknown): string =>
    String(v).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] as string);
  const group = (n: number): string => {
    const neg = n < 0;
    const t = String(Math.round(Math.abs(n)));
    let out = '';
    for (let i = 0; i < t.length; i++) out += (i > 0 && (t.length - i) % 3 === 0 ? ',' : '') + t[i];
    return (neg ? '-' : '') + out;
  };
  const bits = (n: number): string => {
    const u = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
    let i = 0;
    let v = n;
    while (v >= 1000 && i < u.length - 1) {
      v /= 1000;
      i++;
    }
    return (i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + u[i];
  };
  const num = (k: string, v: number | null, shown?: string): string =>
    v === null ? `<td data-k="${esc(k)}">-</td>` : `<td data-k="${esc(k)}" data-v="${v}">${esc(shown ?? group(v))}</td>`;
  const txt = (v: unknown, cls = 'l'): string => `<td class="${cls}">${esc(v)}</td>`;
  const parts: string[] = [];
  parts.push(
    `<h1>gwlbtun <span class="${s.healthy ? 'ok' : 'bad'}" id="health">${s.shuttingDown ? 'shutting down' : s.healthy ? 'healthy' : 'UNHEALTHY'}</span></h1>`,
    `<p class="meta">version <b id="version">${esc(s.version)}</b> &middot; node ${esc(s.node)} &middot; pid ${esc(s.pid)} &middot; up <span data-k="uptime" data-v="${s.uptimeSeconds}">${esc(s.uptimeSeconds)} s</span> &middot; UDP ${esc(s.udpPort)} &middot; rates over the last ${esc(s.sampleSeconds)} s<span id="stale"></span><br>flags: <code id="flags">${esc(s.flags.length === 0 ? '(none)' : s.flags.join(' '))}</code></p>`,
  );
  parts.push(
    '<h2>Endpoints</h2><table><tr><th class="l">ENI</th><th class="l">interfaces</th><th class="l">state</th><th>packets/s from GWLB</th><th>from GWLB</th><th>packets/s to GWLB</th><th>to GWLB</th><th>packets from GWLB</th><th>packets to GWLB</th><th>flows IPv4</th><th>flows IPv6</th><th>drops</th><th>s since last packet</th><th class="l">hook</th></tr>',
  );
  if (s.endpoints.length === 0) parts.push('<tr><td class="l" colspan="14">no endpoints yet</td></tr>');
  for (const e of s.endpoints) {
    const k = 'ep.' + e.eni + '.';
    const h = e.hook as { running: string | null; last: { kind: string; result: string; exit: number | null; ms: number; secondsAgo: number; output: string } | null };
    let hook = h.running !== null ? `${h.running} running` : h.last === null ? 'none' : `${h.last.kind} ${h.last.result}${h.last.exit !== null ? ' (exit ' + h.last.exit + ')' : ''}, ${h.last.ms} ms, ${h.last.secondsAgo} s ago`;
    hook = `<td class="l h" data-k="${esc(k + 'hook')}">${esc(hook)}${h.last !== null && h.last.output !== '' ? `<pre data-k="${esc(k + 'hookOutput')}">${esc(h.last.output)}</pre>` : ''}</td>`;
    parts.push(
      `<tr data-eni="${esc(e.eni)}">${txt('vpce-' + e.eni)}${txt(e.gwo === null ? e.gwi : e.gwi + ' ' + e.gwo)}${txt(e.state)}` +
        num(k + 'ppsFromGwlb', e.ppsFromGwlb) +
        num(k + 'bpsFromGwlb', e.bitsPerSecondFromGwlb, bits(e.bitsPerSecondFromGwlb)) +
        num(k + 'ppsToGwlb', e.ppsToGwlb) +
        num(k + 'bpsToGwlb', e.bitsPerSecondToGwlb, bits(e.bitsPerSecondToGwlb)) +
        num(k + 'packetsFromGwlb', e.packetsFromGwlb) +
        num(k + 'packetsToGwlb', e.packetsToGwlb) +
        num(k + 'flowsV4', e.flowsV4) +
        num(k + 'flowsV6', e.flowsV6) +
        num(k + 'drops', e.drops) +
        num(k + 'idle', e.secondsSinceLastPacket, e.secondsSinceLastPacket === null ? '-' : String(e.secondsSinceLastPacket)) +
        hook +
        '</tr>',
    );
  }
  parts.push('</table>');
  parts.push(
    '<h2>Workers</h2><table><tr><th>worker</th><th class="l">state</th><th>restarts</th><th>datagrams/s from GWLB</th><th>packets/s from TUN</th><th>datagrams from GWLB</th><th>packets from TUN</th><th>receive-buffer drops</th><th>heartbeat age ms</th></tr>',
  );
  for (const w of s.workers) {
    const k = 'worker.' + w.index + '.';
    parts.push(
      `<tr>${txt(w.index, '')}${txt(w.alive ? 'running' : 'down')}` +
        num(k + 'restarts', w.restarts) +
        num(k + 'udpPps', w.udpPps) +
        num(k + 'tunPps', w.tunPps) +
        num(k + 'udpPackets', w.udpPackets) +
        num(k + 'tunPackets', w.tunPackets) +
        num(k + 'rcvbufDrops', w.rcvbufDrops) +
        num(k + 'heartbeat', w.heartbeatAgeMs) +
        '</tr>',
    );
  }
  parts.push('</table>');
  parts.push(`<p class="meta">receive-buffer drops of all Geneve sockets: <span data-k="geneveSocketDrops"${s.geneveSocketDrops === null ? '' : ` data-v="${s.geneveSocketDrops}"`}>${s.geneveSocketDrops === null ? 'unknown' : group(s.geneveSocketDrops)}</span></p>`);
  if (s.flows !== null) {
    const f = s.flows;
    parts.push(
      '<h2>Flow table</h2><table><tr><th>flows</th><th>capacity</th><th>fill</th><th>inserted</th><th>evicted</th><th>expired</th></tr><tr>' +
        num('flows.size', f.size) +
        num('flows.capacity', f.capacity) +
        `<td>${esc(((100 * f.size) / Math.max(1, f.capacity)).toFixed(1))} %</td>` +
        num('flows.inserts', f.inserts) +
        num('flows.evictions', f.evictions) +
        num('flows.expiries', f.expiries) +
        '</tr></table>',
    );
  }
  parts.push('<h2>Drops by reason</h2><table><tr><th class="l">reason</th><th>packets</th></tr>');
  const nonzero = Object.keys(s.drops).filter((r) => s.drops[r] > 0);
  if (nonzero.length === 0) parts.push('<tr><td class="l" colspan="2">none</td></tr>');
  for (const r of nonzero) parts.push(`<tr>${txt(r)}${num('drop.' + r, s.drops[r])}</tr>`);
  parts.push('</table>');
  parts.push('<h2>Hooks</h2><table><tr><th class="l">hook</th><th>runs</th><th>failures</th><th>timeouts</th><th>total run time ms</th></tr>');
  for (const kind of Object.keys(s.hooks)) {
    const h = s.hooks[kind];
    parts.push(`<tr>${txt(kind)}${num('hooks.' + kind + '.runs', h.runs)}${num('hooks.' + kind + '.failures', h.failures)}${num('hooks.' + kind + '.timeouts', h.timeouts)}${num('hooks.' + kind + '.ms', Math.round(h.durationMsTotal))}</tr>`);
  }
  parts.push('</table>');
  return parts.join('\n');
}
