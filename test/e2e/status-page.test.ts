// The live status page (GET /status, /status.json) in a real browser, and the original gwlbtun's
// keys in the -j body (docs/operations.md, "Status page"): the daemon carries emulator traffic,
// Debian's chromium (installed here when missing) loads /status in the appliance namespace, runs
// its refresh script, and every number it shows must equal /metrics; its graphs show the history
// /status.json reports, and at 1,280 x 800 it has no horizontal scroll.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { httpGetInNs, RECORD_HOOK, runEmulator, sleep, useEnv } from './lib';
import { chromium, ensureChromium, pageNumbers } from './browser';
import { parsePrometheusText, type Family } from '../unit/helpers/prometheus';

const PORT = 8086;
const ENIS = ['2b8ee1d4db0c51c', '7'];
const HEX = ['002b8ee1d4db0c51c', '00000000000000007'];

/** Key paths of a JSON value: arrays of objects collapse to [] (any length), arrays holding
 * anything else (the original's flow-cache tuples) keep their positions; leaves carry their type. */
export function keyPaths(v: unknown, p = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) {
    const tuple = v.some((x) => x === null || typeof x !== 'object' || Array.isArray(x));
    v.forEach((x, i) => keyPaths(x, `${p}[${tuple ? i : ''}]`, out));
  } else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) keyPaths(x, `${p}.${k}`, out);
  } else out.add(`${p}:${typeof v}`);
  return out;
}

describe('status page', () => {
  const env = useEnv('stp', { args: ['-p', String(PORT), '-j', '-c', RECORD_HOOK, '--udpthreads', '2'] });
  before(() => ensureChromium());

  const metricFamilies = (): Map<string, Family> => {
    const r = httpGetInNs(env.t.applianceNs, PORT, '/metrics');
    assert.equal(r.status, 200);
    return parsePrometheusText(r.body);
  };
  const value = (fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number => {
    const s = fams.get(name)?.samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
    assert.ok(s, `${name}${JSON.stringify(labels)} in /metrics`);
    return s.value;
  };
  /** Every counter the page shows, as /metrics gives it. */
  const expected = (fams: Map<string, Family>): Map<string, number> => {
    const m = new Map<string, number>();
    for (const hex of HEX) {
      const ep = { eni: hex };
      m.set(`ep.${hex}.packetsFromGwlb`, value(fams, 'gwlbtun_endpoint_packets_from_gwlb_total', ep));
      m.set(`ep.${hex}.packetsToGwlb`, value(fams, 'gwlbtun_endpoint_packets_to_gwlb_total', ep));
      m.set(`ep.${hex}.drops`, value(fams, 'gwlbtun_endpoint_drops_total', ep));
    }
    for (const s of fams.get('gwlbtun_drops_total')!.samples) if (s.value > 0) m.set(`drop.${s.labels.reason}`, s.value);
    m.set('flows.size', value(fams, 'gwlbtun_flows'));
    m.set('flows.capacity', value(fams, 'gwlbtun_flows_capacity'));
    m.set('flows.inserts', value(fams, 'gwlbtun_flow_inserts_total'));
    m.set('flows.evictions', value(fams, 'gwlbtun_flow_evictions_total'));
    m.set('flows.expiries', value(fams, 'gwlbtun_flow_expiries_total'));
    m.set('hooks.create.runs', value(fams, 'gwlbtun_hook_create_runs_total'));
    m.set('hooks.create.failures', value(fams, 'gwlbtun_hook_create_failures_total'));
    for (const w of [0, 1]) m.set(`worker.${w}.restarts`, value(fams, 'gwlbtun_worker_restarts_total', { worker: String(w) }));
    return m;
  };

  test('chromium shows the same numbers as /metrics, refreshed by the page script; hooks and flows per family shown', async () => {
    // 2 endpoints x 2 families x 2 protocols x 3 flows, 20 packets each: 480 packets, all returned.
    const r = await runEmulator(env.t, ['--endpoints', ENIS.join(','), '--families', '4,6', '--protos', 'udp,tcp', '--flows', '3', '--rate', '1000', '--packets', '20']);
    assert.equal(r.totals.verified, r.totals.sent);
    assert.equal(r.totals.sent, 480);
    // Counters can still move after the traffic (IPv6 housekeeping of the new interfaces counted
    // as link_local): compare a DOM taken between two equal /metrics answers, a few tries.
    let last = '';
    for (let attempt = 1; ; attempt++) {
      const before = expected(metricFamilies());
      const dom = chromium(env.t.applianceNs, `http://127.0.0.1:${PORT}/status`, ['--dump-dom'], 5000);
      const after = expected(metricFamilies());
      const shown = pageNumbers(dom);
      const same = JSON.stringify([...before]) === JSON.stringify([...after]);
      const mismatches = [...after].filter(([k, v]) => shown.get(k) !== v).map(([k, v]) => `${k}: page ${shown.get(k)}, /metrics ${v}`);
      last = mismatches.join('; ');
      if (same && mismatches.length === 0) {
        // The page's script replaced the server-rendered snapshot with /status.json at least once.
        const refreshes = Number(/data-refreshes="(\d+)"/.exec(dom)?.[1] ?? 0);
        assert.ok(refreshes >= 1, `the page refreshed itself (data-refreshes=${refreshes})`);
        // What is shown is the exact value, digits grouped.
        for (const m of dom.matchAll(/data-k="(ep\.[^"]+\.packets\w+|flows\.\w+|drop\.\w+)" data-v="(\d+)">([^<]*)</g)) assert.equal(m[3].replace(/,/g, ''), m[2], m[1]);
        for (const [i, hex] of HEX.entries()) {
          // 2 protocols x 3 flows per family; all flows of the table are these endpoints'.
          assert.equal(shown.get(`ep.${hex}.flowsV4`), 6, `${hex} IPv4 flows`);
          assert.equal(shown.get(`ep.${hex}.flowsV6`), 6, `${hex} IPv6 flows`);
          assert.match(dom, new RegExp(`data-k="ep\\.${hex}\\.hook">create ok \\(exit 0\\)`), `${ENIS[i]} hook state`);
          assert.match(dom, new RegExp(`data-k="ep\\.${hex}\\.hookOutput">one-arm: gwi-\\S+ -&gt; gwo-\\S+ \\(table \\d+\\) for vpce-${hex}`));
        }
        assert.equal(shown.get('flows.size'), 24);
        assert.match(dom, /id="version">\d+\.\d+\.\d+/);
        assert.match(dom, /id="flags">-p 8086 -j -c \S+record-hook\.sh --udpthreads 2</);
        assert.match(dom, /gwi-jrU9stdh1g gwo-jrU9stdh1g/);
        for (const w of [0, 1]) assert.ok(shown.has(`worker.${w}.udpPackets`) && shown.has(`worker.${w}.rcvbufDrops`), `worker ${w} row`);
        assert.equal(shown.get('worker.0.udpPackets')! + shown.get('worker.1.udpPackets')!, value(metricFamilies(), 'gwlbtun_udp_packets_total'));
        break;
      }
      assert.ok(attempt < 5, `page and /metrics disagree after ${attempt} tries: ${last}`);
      await sleep(1500);
    }
  });

  test('/status.json rates: packets per second from and to GWLB while traffic flows', async () => {
    // 2 s of 400 packets/s per endpoint in the background; the 1 s sampler sees about that.
    const run = runEmulator(env.t, ['--endpoints', ENIS[0], '--families', '4', '--protos', 'udp', '--flows', '4', '--rate', '400', '--duration', '3', '--packets', '100000', '--flow-offset', '100']);
    let best = 0;
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline && best < 200) {
      await sleep(500);
      const s = JSON.parse(httpGetInNs(env.t.applianceNs, PORT, '/status.json').body) as { endpoints: { eni: string; ppsFromGwlb: number; ppsToGwlb: number; bitsPerSecondFromGwlb: number }[] };
      const e = s.endpoints.find((x) => x.eni === HEX[0])!;
      if (e.ppsFromGwlb > best && e.ppsToGwlb > 0 && e.bitsPerSecondFromGwlb > 0) best = e.ppsFromGwlb;
    }
    const r = await run;
    assert.equal(r.totals.verified, r.totals.sent);
    assert.ok(best >= 200 && best <= 600, `a rate near 400 packets/s was shown (best ${best})`);
  });

  test('graphs: the history /status.json reports, drawn as inline SVG; at 1,280 x 800 the page has no horizontal scroll', async () => {
    type Hist = Record<string, number[]>;
    type Json = { history: { seq: number; points: number; appliance: Hist }; endpoints: { eni: string; history?: Hist }[] };
    const json = (): Json => JSON.parse(httpGetInNs(env.t.applianceNs, PORT, '/status.json').body) as Json;
    // The previous tests' traffic is in the rings (one point every 2 s): wait for a point with it.
    const deadline = Date.now() + 15000;
    while (Math.max(0, ...(json().endpoints.find((e) => e.eni === HEX[0])?.history?.ppsFromGwlb ?? [])) === 0) {
      assert.ok(Date.now() < deadline, 'a history point with traffic within 15 s');
      await sleep(500);
    }
    const dom = chromium(env.t.applianceNs, `http://127.0.0.1:${PORT}/status`, ['--dump-dom', '--window-size=1280,800'], 3000);
    const after = json();
    const scroll = Number(/data-scroll-width="(\d+)"/.exec(dom)?.[1]);
    const client = Number(/data-client-width="(\d+)"/.exec(dom)?.[1]);
    assert.ok(client > 1000 && client <= 1280, `the page measured its window (clientWidth ${client})`);
    assert.ok(scroll <= client, `no horizontal scroll at 1,280 pixels: scrollWidth ${scroll} > clientWidth ${client}`);
    // Every line of every graph: its values are the points /status.json has for the same sequence
    // numbers (points never change once taken), its polyline has one vertex per value, and the
    // newest value is the one printed under the graph.
    const figs = [...dom.matchAll(/<figure class="g" data-k="([^"]+)" data-seq="(\d+)" data-n="(\d+)">([\s\S]*?)<\/figure>/g)];
    const keys = ['hist.appliance', ...HEX.map((h) => `hist.ep.${h}`)];
    for (const k of keys) for (const g of ['pps', 'bps', 'drops']) assert.ok(figs.some((f) => f[1] === `${k}.${g}`), `graph ${k}.${g}`);
    let compared = 0;
    let nonzero = 0;
    for (const f of figs) {
      const [, key, seqS, , body] = f;
      const owner = key.split('.').slice(0, -1).join('.');
      const h = owner === 'hist.appliance' ? after.history.appliance : after.endpoints.find((e) => `hist.ep.${e.eni}` === owner)?.history;
      assert.ok(h, `${owner} in /status.json`);
      for (const m of body.matchAll(/<polyline data-k="[^"]+\.(\w+)" data-values="([^"]*)" points="([^"]*)"/g)) {
        const shown = m[2] === '' ? [] : m[2].split(',').map(Number);
        assert.equal(m[3] === '' ? 0 : m[3].split(' ').length, shown.length, `${key}.${m[1]}: one vertex per value`);
        const last = new RegExp(`data-k="${key.replace(/\./g, '\\.')}\\.${m[1]}\\.last" data-v="([^"]+)"`).exec(body);
        if (shown.length > 0) assert.equal(Number(last?.[1]), shown[shown.length - 1], `${key}.${m[1]}: newest value printed`);
        const series: number[] | undefined = h[m[1]];
        assert.ok(series, `${m[1]} in /status.json`);
        const domSeq = Number(seqS);
        for (let i = 0; i < shown.length; i++) {
          const seq = domSeq - (shown.length - 1 - i);
          const j: number = series.length - 1 - (after.history.seq - seq);
          if (j < 0 || j >= series.length) continue;
          assert.equal(shown[i], series[j], `${key}.${m[1]} point ${seq}`);
          compared++;
          if (shown[i] > 0) nonzero++;
        }
      }
    }
    assert.ok(compared >= 20, `points compared with /status.json: ${compared}`);
    assert.ok(nonzero > 0, 'the traffic shows in the graphs');
  });

  test("-j carries the original gwlbtun's keys (udp, enis) with its shapes, next to ours", () => {
    const res = httpGetInNs(env.t.applianceNs, PORT, '/');
    assert.equal(res.status, 200);
    const ours = JSON.parse(res.body) as Record<string, unknown> & { enis: Record<string, unknown>[]; udp: unknown };
    const original = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'test', 'e2e', 'fixtures', 'original-health.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual([...keyPaths({ enis: ours.enis, udp: ours.udp })].sort(), [...keyPaths(original)].sort());
    for (const k of ['healthy', 'workers', 'endpoints', 'flows', 'drops']) assert.ok(k in ours, `our key ${k} kept`);
    const eni = ours.enis.find((e) => e.eniStr === HEX[0]) as { tunnelIn: { devname: string; pktsOut: number }; tunnelOut: { devname: string; threads: { pktsIn: number }[] }; v4FlowCache: unknown[] };
    assert.ok(eni, 'eniStr is the 17-digit hex ENI');
    assert.equal(eni.tunnelIn.devname, 'gwi-jrU9stdh1g');
    assert.equal(eni.tunnelOut.devname, 'gwo-jrU9stdh1g');
    const ep = (ours.endpoints as { eni: string; packetsFromGwlb: number; packetsToGwlb: number }[]).find((e) => e.eni === HEX[0])!;
    assert.equal(eni.tunnelIn.pktsOut, ep.packetsFromGwlb);
    assert.equal(eni.tunnelOut.threads.reduce((a, t) => a + t.pktsIn, 0), ep.packetsToGwlb);
    assert.deepEqual(eni.v4FlowCache[0], ['cacheName', `IPv4 Flow Cache for ENI ${HEX[0]}`]);
    assert.deepEqual(eni.v4FlowCache.slice(3), ['idleTimeoutSecs', 350]);
    const udp = ours.udp as { UDPPacketReceiver: { portNumber: number; threads: { pktsIn: number; healthy: boolean }[] } };
    assert.equal(udp.UDPPacketReceiver.portNumber, 6081);
    assert.deepEqual(udp.UDPPacketReceiver.threads.map((t) => t.healthy), [true, true]);
    assert.equal(udp.UDPPacketReceiver.threads.reduce((a, t) => a + t.pktsIn, 0), (ours.workers as { udpPackets: number }[]).reduce((a, w) => a + w.udpPackets, 0));
  });
});
