// The status page's pieces without root (src/ops/status.ts): the render function runs alone in a
// fresh context (as in the browser) and renders what the server renders; the flow census per
// endpoint and family and its once-a-second limit; the /proc/net/udp reader; and the Grafana
// dashboard (examples/grafana/gwlbtun.json) queries only metrics that /metrics exports; the
// history rings behind the page's graphs (bounded, freed with their endpoint) and their SVG.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import type { Daemon } from '../../src/control/daemon';
import { CounterReader, createCountersBuffer } from '../../src/dataplane/counters';
import { createFlowTableBuffer, FlowTable, UPSERT_INSERTED } from '../../src/flow/table';
import { metricsText } from '../../src/ops/health';
import { histSummary, HISTORY_MS, HISTORY_POINTS, HISTORY_SERIES, HistoryRing, StatusCollector, udpSocketDrops } from '../../src/ops/status';
import { GC_HIST, HIST_CELLS, LOOP_HIST, histView, recordHist, workerBlock } from '../../src/dataplane/counters';
import { MainThreadStats } from '../../src/ops/runtime';
import { renderStatus, type StatusJson } from '../../src/ops/status-page';
import { monoMs } from '../../src/base/clock';
import { parsePrometheusText } from './helpers/prometheus';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const HDR = new Uint8Array(64);

function key(ep: number, family: 4 | 6, proto: number, n: number): Uint32Array {
  const k = new Uint32Array(11);
  k[0] = ep;
  k[1] = (family << 8) | proto;
  k[2] = family === 4 ? 0xc0000200 + n : 0x20010db8; // 192.0.2.n / 2001:db8::n
  if (family === 6) k[5] = n;
  k[6] = family === 4 ? 0xcb007100 + 1 : 0x20010db8;
  if (family === 6) k[9] = 0xffff;
  k[10] = proto === 1 ? 0 : ((40000 + n) << 16) | 443;
  return k;
}

function stubDaemon(flows: FlowTable | null): Daemon {
  const hook = { runs: 1, failures: 0, timeouts: 0, durationMsTotal: 12 };
  return {
    healthy: () => true,
    shuttingDown: false,
    startedMs: monoMs(),
    sysctls: { restored: new Map([['ipv4.rp_filter', 0]]), deviceRestored: new Map(), errors: 0 },
    sendDevice: null,
    sendDeviceInUse: null,
    counters: new CounterReader(createCountersBuffer(2, 4), 2, 4),
    endpoints: new Map(),
    flows,
    flowExpiries: 3,
    hookStats: { create: hook, destroy: hook },
    workerStatus: () => [0, 1].map((index) => ({ index, alive: true, restarts: 0, heartbeatAgeMs: 10 })),
    opts: { noReturn: false, udpPort: 6081, tcpIdleS: 350, createHook: null, destroyHook: null },
  } as unknown as Daemon;
}

test('FlowTable.countByEndpoint counts flows per endpoint id and family', () => {
  const t = new FlowTable(createFlowTableBuffer(1000));
  const ep1 = 0x10001;
  const ep2 = 0x80020003; // high bit set: counted as unsigned
  let n = 0;
  for (const [ep, fam, count] of [[ep1, 4, 7], [ep1, 6, 3], [ep2, 6, 5]] as const) {
    for (let i = 0; i < count; i++) assert.equal(t.upsert(key(ep, fam, 17, i + 1), HDR, 0, 40, 1, 2, 3, 0), UPSERT_INSERTED, `${ep} ${fam} ${i}`);
    n += count;
  }
  t.upsert(key(ep2, 4, 1, 9), HDR, 0, 40, 1, 2, 3, 0); // ICMP: no ports
  const c = t.countByEndpoint(new Map([[42, 42]]));
  assert.deepEqual([...c].sort((a, b) => a[0] - b[0]), [[ep1 * 2, 7], [ep1 * 2 + 1, 3], [ep2 * 2, 1], [ep2 * 2 + 1, 5]]);
  assert.equal(t.size(), n + 1);
  t.remove(key(ep1, 4, 17, 1));
  assert.equal(t.countByEndpoint(c).get(ep1 * 2), 6);
});

test('the flow census is taken at most once a second, however often the page is asked for', () => {
  const flows = new FlowTable(createFlowTableBuffer(100));
  const s = new StatusCollector(stubDaemon(flows));
  for (let i = 0; i < 50; i++) {
    s.statusJson();
    s.originalKeys();
  }
  assert.equal(s.censusCount, 1);
});

test('renderStatus runs alone in a fresh context (as the page script) and renders what the server renders', () => {
  const s = new StatusCollector(stubDaemon(new FlowTable(createFlowTableBuffer(100))));
  const json = s.statusJson() as StatusJson;
  json.endpoints.push({
    eni: '002b8ee1d4db0c51c', name: 'consumer-a', gwi: 'gwi-jrU9stdh1g', gwo: 'gwo-jrU9stdh1g', state: 'ready',
    hook: { running: null, last: { kind: 'create', result: 'ok', exit: 0, killed: null, outlived: false, ms: 35, secondsAgo: 2, output: 'routes <b>&"\'' } },
    packetsFromGwlb: 1234567, bytesFromGwlb: 1, packetsToGwlb: 0, bytesToGwlb: 0, ppsFromGwlb: 12, bitsPerSecondFromGwlb: 9_600_000,
    ppsToGwlb: 0, bitsPerSecondToGwlb: 0, drops: 0, flowsV4: 4, flowsV6: 0, secondsSinceLastPacket: null,
  });
  const quiet = { packetsFromGwlb: 0, bytesFromGwlb: 0, packetsToGwlb: 0, bytesToGwlb: 0, ppsFromGwlb: 0, bitsPerSecondFromGwlb: 0, ppsToGwlb: 0, bitsPerSecondToGwlb: 0, drops: 0, flowsV4: 0, flowsV6: 0, secondsSinceLastPacket: null };
  json.endpoints.push(
    { eni: '0000000000000000a', name: null, gwi: 'gwi-a', gwo: 'gwo-a', state: 'ready', ...quiet,
      hook: { running: null, last: { kind: 'create', result: 'timed out', exit: null, killed: 'KILL', outlived: true, ms: 2001, secondsAgo: 1, output: '' } } },
    { eni: '0000000000000000b', name: null, gwi: 'gwi-b', gwo: 'gwo-b', state: 'ready', ...quiet,
      hook: { running: null, last: { kind: 'create', result: 'ok', exit: 0, killed: null, outlived: true, ms: 12, secondsAgo: 1, output: '' } } },
  );
  json.drops.no_flow = 5;
  json.latency.push({ thread: 'worker-0', what: 'loop turn', count: 1000, p50Us: 25, p99Us: 1000, p999Us: 2500, maxUs: -1 });
  const html = renderStatus(json);
  const sandbox = { json: JSON.parse(JSON.stringify(json)) as unknown, out: '' };
  vm.runInNewContext(`const renderStatus = ${renderStatus.toString()}; out = renderStatus(json);`, sandbox);
  assert.equal(sandbox.out, html);
  assert.match(html, /data-k="ep\.002b8ee1d4db0c51c\.packetsFromGwlb" data-v="1234567">1,234,567</);
  assert.match(html, /9\.60 Mbit\/s/);
  assert.match(html, /<h3>vpce-002b8ee1d4db0c51c consumer-a <span/, 'the name from the endpoints file');
  assert.match(html, /<h3>vpce-0000000000000000a <span/, 'no name: none shown');
  assert.match(html, /data-k="drop\.no_flow" data-v="5">5</);
  assert.match(html, /routes &lt;b&gt;&amp;&quot;&#39;/, 'hook output escaped');
  assert.match(html, /data-k="ep\.0000000000000000a\.hook">create timed out, group killed \(SIGTERM, then SIGKILL\), processes of its group outlived it, 2001 ms/);
  assert.match(html, /data-k="ep\.0000000000000000b\.hook">create ok \(exit 0\), left processes running, 12 ms/);
  assert.match(html, /data-k="ep\.002b8ee1d4db0c51c\.hook">create ok \(exit 0\), 35 ms/);
  assert.match(html, /<td class="l">worker-0<\/td><td class="l">loop turn<\/td><td data-k="lat\.worker-0\.loop-turn\.count" data-v="1000">1,000<\/td><td>&le; 25 us<\/td><td>&le; 1 ms<\/td><td>&le; 2\.5 ms<\/td><td data-k="lat\.worker-0\.loop-turn\.max" data-v="-1">&gt; 1 s<\/td>/);
  assert.doesNotMatch(renderStatus.toString(), /<\/script/i, 'its source can sit in a <script>');
  const page = s.statusHtml();
  assert.match(page, /<main id="status">[\s\S]*<\/main>/);
  assert.doesNotMatch(page, /(src|href)="?https?:/, 'no external assets');
});

test('udpSocketDrops reads the drops column of the sockets on the port', () => {
  const text = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  120: 00000000:17C1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 812345 2 0000000000000000 17
  121: 00000000:17C1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 812346 2 0000000000000000 0
  122: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 700001 2 0000000000000000 99
`;
  assert.deepEqual([...udpSocketDrops(6081, text)!], [[812345, 17], [812346, 0]]);
  assert.deepEqual([...udpSocketDrops(53, text)!], [[700001, 99]]);
});

test('the Grafana dashboard queries only metrics that /metrics exports', () => {
  const dash = JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', 'grafana', 'gwlbtun.json'), 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
    templating: { list: { query?: unknown }[] };
  };
  const exprs: string[] = [];
  for (const p of dash.panels) {
    assert.ok(p.targets.length > 0, `${p.title} has queries`);
    for (const t of p.targets) exprs.push(t.expr);
  }
  for (const v of dash.templating.list) if (typeof v.query === 'object' && v.query !== null) exprs.push((v.query as { query: string }).query);
  const used = new Set<string>();
  for (const e of exprs) for (const m of e.matchAll(/\b[a-zA-Z_:][a-zA-Z0-9_:]*\b/g)) if (m[0].startsWith('gwlbtun_')) used.add(m[0]);
  const exported = new Set(parsePrometheusText(metricsText(stubDaemon(new FlowTable(createFlowTableBuffer(100))), { evicted: 0, sourceLimit: 0, deadline: 0 })).keys());
  assert.ok(used.size >= 15, `the dashboard uses ${used.size} metrics`);
  for (const name of used) assert.ok(exported.has(name), `${name} is queried by the dashboard but not exported`);
  // What the issue asks for: rates per endpoint, drops by reason, flow table fill, hook latency, receive-buffer drops.
  for (const need of ['gwlbtun_endpoint_packets_from_gwlb_total', 'gwlbtun_drops_total', 'gwlbtun_flows_capacity', 'gwlbtun_hook_create_duration_seconds_total', 'gwlbtun_udp_rcvbuf_errors_total']) {
    assert.ok(used.has(need), need);
  }
});

test('HistoryRing: rates between cumulative counters, oldest first, bounded to its capacity', () => {
  const r = new HistoryRing(4);
  r.last.set([100, 1000, 0, 0, 0]); // the baseline
  for (let i = 1; i <= 6; i++) r.push([100 + 20 * i, 1000 + 2000 * i, 10 * i, 500 * i, i], 2);
  assert.equal(r.length, 4);
  const h = r.toJson();
  assert.deepEqual(h.ppsFromGwlb, [10, 10, 10, 10]);
  assert.deepEqual(h.bitsPerSecondFromGwlb, [8000, 8000, 8000, 8000]);
  assert.deepEqual(h.ppsToGwlb, [5, 5, 5, 5]);
  assert.deepEqual(h.bitsPerSecondToGwlb, [2000, 2000, 2000, 2000]);
  assert.deepEqual(h.dropsPerSecond, [0.5, 0.5, 0.5, 0.5]);
  r.push([100 + 20 * 6 + 40, 0, 0, 0, 6], 2); // a counter that went back is 0/s, not negative
  assert.deepEqual(r.toJson().ppsFromGwlb, [10, 10, 10, 20], 'the oldest point left, the newest is last');
  assert.deepEqual(r.toJson().bitsPerSecondFromGwlb.slice(-1), [0]);
  assert.equal(HISTORY_POINTS * HISTORY_MS, 600_000, 'ten minutes');
});

test("the sampler keeps one history ring per endpoint and frees it when the endpoint goes; /status.json and the page's graphs carry it", () => {
  const d = stubDaemon(null);
  const s = new StatusCollector(d);
  const ep = { epId: 7, slot: 0, hex: '00000000000000007', gwi: 'gwi-7', gwo: 'gwo-7', state: 'ready', hookRunning: null, lastHook: null, createdMs: monoMs() };
  (d.endpoints as unknown as Map<string, unknown>).set(ep.hex, ep);
  const sample = (): void => (s as unknown as { sample(): void }).sample();
  const eps = (s as unknown as { eps: Map<number, { history: HistoryRing }> }).eps;
  sample();
  assert.equal(eps.get(7)?.history.length, 0, 'a new ring holds its baseline only');
  const ring = eps.get(7)!.history;
  ring.push([40, 4000, 20, 2000, 2], 2); // as a history point would
  const json = s.statusJson();
  const e = json.endpoints.find((x) => x.eni === ep.hex)!;
  assert.deepEqual(e.history?.ppsFromGwlb, [20]);
  assert.deepEqual(e.history?.dropsPerSecond, [1]);
  assert.deepEqual(Object.keys(json.history.appliance).sort(), [...HISTORY_SERIES].sort());
  const html = renderStatus(json);
  assert.match(html, /<polyline data-k="hist\.ep\.00000000000000007\.pps\.ppsFromGwlb" data-values="20" points="330\.0,/);
  assert.match(html, /data-k="hist\.ep\.00000000000000007\.bps\.bitsPerSecondFromGwlb\.last" data-v="16000">16\.0 kbit\/s</);
  assert.match(html, /data-k="hist\.appliance\.pps"/);
  (d.endpoints as unknown as Map<string, unknown>).delete(ep.hex);
  sample();
  assert.equal(eps.has(7), false, "the endpoint's ring is freed with it");
});

test('histSummary: quantiles as the bounds of the buckets they fall in', () => {
  const h = new Float64Array(HIST_CELLS);
  assert.deepEqual(histSummary(histView([h], 0)), { count: 0, p50Us: null, p99Us: null, p999Us: null, maxUs: null });
  for (let i = 0; i < 990; i++) recordHist(h, 0, 0.00002); // <= 25 us
  for (let i = 0; i < 9; i++) recordHist(h, 0, 0.0008); // <= 1 ms
  recordHist(h, 0, 3); // +Inf
  assert.deepEqual(histSummary(histView([h], 0)), { count: 1000, p50Us: 25, p99Us: 25, p999Us: 1000, maxUs: -1 });
  recordHist(h, 0, 0.0008);
  assert.equal(histSummary(histView([h], 0)).p99Us, 1000, '991st of 1001 falls past the 25 us bucket');
});

test('/status.json latency: each worker\'s loop turns and GC pauses, the main thread\'s GC pauses and event-loop delay', () => {
  const d = stubDaemon(null);
  const sab = createCountersBuffer(2, 4);
  (d as unknown as { counters: CounterReader }).counters = new CounterReader(sab, 2, 4);
  const w1 = workerBlock(sab, 1, 4);
  recordHist(w1, LOOP_HIST, 0.0004);
  recordHist(w1, GC_HIST, 0.002);
  const main = new MainThreadStats();
  recordHist(main.loopDelay, 0, 0.07);
  const lat = new StatusCollector(d, main).statusJson().latency;
  assert.deepEqual(lat.map((l) => [l.thread, l.what, l.count, l.p50Us]), [
    ['worker-0', 'loop turn', 0, null], ['worker-0', 'GC pause', 0, null],
    ['worker-1', 'loop turn', 1, 500], ['worker-1', 'GC pause', 1, 2500],
    ['main', 'GC pause', 0, null], ['main', 'event-loop delay', 1, 100000],
  ]);
});
