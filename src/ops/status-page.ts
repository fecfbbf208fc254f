// The status page's HTML (GET /status): server-rendered, and refreshed every 2 s from
// /status.json by the same render function, sent to the browser as its own source text. No
// external assets: the graphs are inline SVG drawn by that function from the history rings
// /status.json carries (src/ops/status.ts). The data comes from src/ops/status.ts.
//
// Layout: it must fit a 1,280-pixel window without a horizontal scroll bar (the e2e test checks
// scrollWidth <= clientWidth there): one block per endpoint instead of one wide table row, table
// headers that wrap, graphs that flow onto the next line, and hook output that wraps anywhere.

/** Points of the history graphs, oldest first (src/ops/status.ts, HistoryRing). */
export interface HistorySeries {
  ppsFromGwlb: number[];
  bitsPerSecondFromGwlb: number[];
  ppsToGwlb: number[];
  bitsPerSecondToGwlb: number[];
  dropsPerSecond: number[];
}

/** An endpoint's `hook` in /status.json (src/ops/status.ts): the hook running now and the last
 * run; `killed` and `outlived` as in HookResult (src/control/hooks.ts). */
export interface HookState {
  running: string | null;
  last: { kind: string; result: string; exit: number | null; killed: 'TERM' | 'KILL' | null; outlived: boolean; ms: number; secondsAgo: number; output: string } | null;
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
  /** One point every periodSeconds, at most `points`; seq numbers the newest point. The
   * appliance's series count Geneve datagrams (from GWLB) and encapsulated packets (to GWLB) and
   * their outer bytes; drops are all drops of every reason. */
  history: { periodSeconds: number; points: number; seq: number; appliance: HistorySeries };
  endpoints: {
    eni: string;
    /** Its name from the endpoints file (--endpoints), or null. */
    name: string | null;
    gwi: string;
    gwo: string | null;
    state: string;
    hook: HookState;
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
    /** Inner packets and bytes; drops are this endpoint's. Absent before its first sample. */
    history?: HistorySeries;
  }[];
  flows: { size: number; capacity: number; inserts: number; evictions: number; expiries: number } | null;
  drops: Record<string, number>;
  hooks: Record<string, { runs: number; failures: number; timeouts: number; durationMsTotal: number }>;
  /** The histograms of /metrics that say how long a packet may wait inside gwlbtun, since start:
   * per thread (`main`, `worker-N`), what was measured (`loop turn`: a worker's turn, `GC pause`,
   * `event-loop delay`: the main thread's late timers), the observations, and the quantiles as
   * the upper bound (us) of the histogram bucket they fall in (null: no observation; -1: above
   * the last bound, 1 s). */
  latency: { thread: string; what: string; count: number; p50Us: number | null; p99Us: number | null; p999Us: number | null; maxUs: number | null }[];
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
  // A graph of some series of a history, newest at the right edge, x = the point's time in a
  // window of at least one minute and at most the whole ring (a young history fills what it
  // has), y from 0 to the largest value shown. Each line carries its values (data-values) and its
  // newest value (data-k/data-v); the second line is dashed, so equal lines both show.
  const GW = 330;
  const GH = 70;
  const hs = s.history;
  const graph = (key: string, title: string, h: HistorySeries | undefined, lines: [keyof HistorySeries, string, string][], fmt: (n: number) => string): string => {
    let max = 0;
    for (const [name] of lines) for (const v of h === undefined ? [] : h[name]) max = Math.max(max, v);
    const top = max > 0 ? max : 1;
    const n = h === undefined ? 0 : h[lines[0][0]].length;
    const slots = Math.min(hs.points, Math.max(n, Math.round(60 / hs.periodSeconds)));
    const x = (i: number, len: number): string => ((GW * (slots - len + i)) / Math.max(1, slots - 1)).toFixed(1);
    const y = (v: number): string => (GH - 1 - ((GH - 4) * v) / top).toFixed(1);
    let svg = `<line x1="0" y1="${GH - 0.5}" x2="${GW}" y2="${GH - 0.5}" stroke="#bbb"/><line x1="0" y1="2.5" x2="${GW}" y2="2.5" stroke="#eee"/>`;
    let legend = '';
    for (const [li, [name, label, color]] of lines.entries()) {
      const vs = h === undefined ? [] : h[name];
      const pts = vs.map((v, i) => x(i, vs.length) + ',' + y(v)).join(' ');
      svg += `<polyline data-k="${esc(key + '.' + name)}" data-values="${vs.join(',')}" points="${pts}" fill="none" stroke="${color}" stroke-width="1.5"${li > 0 ? ' stroke-dasharray="5 3"' : ''}/>`;
      const last = vs.length === 0 ? null : vs[vs.length - 1];
      legend += `<span class="sw" style="background:${color}"></span>${esc(label)} <b data-k="${esc(key + '.' + name + '.last')}"${last === null ? '' : ` data-v="${last}"`}>${last === null ? '-' : esc(fmt(last))}</b> `;
    }
    return (
      `<figure class="g" data-k="${esc(key)}" data-seq="${hs.seq}" data-n="${n}"><figcaption><b>${esc(title)}</b> <span class="meta">max <span data-k="${esc(key + '.max')}" data-v="${max}">${esc(fmt(max))}</span> &middot; ${n === 0 ? 'no points yet' : `the last ${esc(Math.round((slots * hs.periodSeconds) / 6) / 10)} min`}</span></figcaption>` +
      `<svg width="${GW}" height="${GH}" viewBox="0 0 ${GW} ${GH}" role="img" aria-label="${esc(title)}">${svg}</svg>` +
      `<figcaption class="meta">${legend}</figcaption></figure>`
    );
  };
  const graphs = (key: string, h: HistorySeries | undefined, what: [string, string]): string =>
    '<div class="graphs">' +
    graph(key + '.pps', what[0] + '/s', h, [['ppsFromGwlb', 'from GWLB', '#1f6feb'], ['ppsToGwlb', 'to GWLB', '#d4622a']], group) +
    graph(key + '.bps', what[1], h, [['bitsPerSecondFromGwlb', 'from GWLB', '#1f6feb'], ['bitsPerSecondToGwlb', 'to GWLB', '#d4622a']], bits) +
    graph(key + '.drops', 'drops/s', h, [['dropsPerSecond', 'dropped', '#b3261e']], (n: number) => (n < 10 && n !== Math.round(n) ? n.toFixed(1) : group(n))) +
    '</div>';
  const parts: string[] = [];
  parts.push(
    `<h1>gwlbtun <span class="${s.healthy ? 'ok' : 'bad'}" id="health">${s.shuttingDown ? 'shutting down' : s.healthy ? 'healthy' : 'UNHEALTHY'}</span></h1>`,
    `<p class="meta">version <b id="version">${esc(s.version)}</b> &middot; node ${esc(s.node)} &middot; pid ${esc(s.pid)} &middot; up <span data-k="uptime" data-v="${s.uptimeSeconds}">${esc(s.uptimeSeconds)} s</span> &middot; UDP ${esc(s.udpPort)} &middot; rates over the last ${esc(s.sampleSeconds)} s<span id="stale"></span><br>flags: <code id="flags">${esc(s.flags.length === 0 ? '(none)' : s.flags.join(' '))}</code></p>`,
  );
  parts.push(
    `<h2>Whole appliance <span class="meta">(one point every ${esc(hs.periodSeconds)} s, the last ${esc(Math.round((hs.points * hs.periodSeconds) / 60))} minutes)</span></h2>`,
    graphs('hist.appliance', hs.appliance, ['Geneve packets', 'Geneve bits/s']),
  );
  parts.push('<h2>Endpoints</h2>');
  if (s.endpoints.length === 0) parts.push('<p class="meta">no endpoints yet</p>');
  for (const e of s.endpoints) {
    const k = 'ep.' + e.eni + '.';
    const h = e.hook;
    // After a timeout: what the hook's process group got (SIGTERM, then SIGKILL after the grace
    // period); whether processes of its group outlived it (killed after a timeout, else left running).
    let ht = 'none';
    if (h.running !== null) ht = `${h.running} running`;
    else if (h.last !== null) {
      const l = h.last;
      const killed = l.killed === 'KILL' ? ', group killed (SIGTERM, then SIGKILL)' : l.killed === 'TERM' ? ', group killed (SIGTERM)' : '';
      const left = !l.outlived ? '' : l.killed !== null ? ', processes of its group outlived it' : ', left processes running';
      ht = `${l.kind} ${l.result}${l.exit !== null ? ' (exit ' + l.exit + ')' : ''}${killed}${left}, ${l.ms} ms, ${l.secondsAgo} s ago`;
    }
    const hook = ht;
    parts.push(
      `<section class="ep" data-eni="${esc(e.eni)}"><h3>vpce-${esc(e.eni)}${e.name === null ? '' : ' ' + esc(e.name)} <span class="meta">${esc(e.gwo === null ? e.gwi : e.gwi + ' ' + e.gwo)} &middot; ${esc(e.state)}</span></h3>` +
        '<table><tr><th>packets/s from GWLB</th><th>bits/s from GWLB</th><th>packets/s to GWLB</th><th>bits/s to GWLB</th><th>packets from GWLB</th><th>packets to GWLB</th><th>flows IPv4</th><th>flows IPv6</th><th>drops</th><th>s since last packet</th></tr><tr>' +
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
        '</tr></table>' +
        `<div class="hook">hook: <span data-k="${esc(k + 'hook')}">${esc(hook)}${h.last !== null && h.last.output !== '' ? `<pre data-k="${esc(k + 'hookOutput')}">${esc(h.last.output)}</pre>` : ''}</span></div>` +
        graphs('hist.ep.' + e.eni, e.history, ['inner packets', 'inner bits/s']) +
        '</section>',
    );
  }
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
  // Quantiles are bucket bounds: "at most" that long (docs/operations.md, "Latency inside gwlbtun").
  const le = (v: number | null): string => (v === null ? '-' : v < 0 ? '&gt; 1 s' : v >= 1000 ? `&le; ${esc((v / 1000).toFixed(v % 1000 === 0 ? 0 : 1))} ms` : `&le; ${esc(v)} us`);
  parts.push('<h2>Latency inside gwlbtun <span class="meta">(since start; bucket bounds of the /metrics histograms)</span></h2><table><tr><th class="l">thread</th><th class="l">what</th><th>count</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th></tr>');
  for (const l of s.latency) {
    const k = 'lat.' + l.thread + '.' + l.what.replace(/ /g, '-') + '.';
    parts.push(`<tr>${txt(l.thread)}${txt(l.what)}${num(k + 'count', l.count)}<td>${le(l.p50Us)}</td><td>${le(l.p99Us)}</td><td>${le(l.p999Us)}</td><td data-k="${esc(k + 'max')}"${l.maxUs === null ? '' : ` data-v="${l.maxUs}"`}>${le(l.maxUs)}</td></tr>`);
  }
  parts.push('</table>');
  return parts.join('\n');
}

/** The whole page for one /status.json object. */
export function statusPage(s: StatusJson): string {
return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gwlbtun status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.ok{color:#116329}.bad{color:#b3261e}.meta{color:#555}
h3{font-size:1em;margin:0 0 .3em}
table{border-collapse:collapse;margin:.3em 0}th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right;vertical-align:top}
th{background:#f3f4f6;font-weight:600;font-size:.9em;max-width:9em}td.l,th.l{text-align:left}td{white-space:nowrap}
code,pre{font:12px ui-monospace,monospace}pre{margin:.2em 0 0;white-space:pre-wrap;overflow-wrap:anywhere;color:#333}
main,#flags{overflow-wrap:anywhere}
.ep{border:1px solid #ddd;border-radius:6px;padding:.6em .8em;margin:.6em 0}.hook{margin:.3em 0;color:#333}
.graphs{display:flex;flex-wrap:wrap;gap:.4em 1.4em;margin-top:.4em}figure.g{margin:0}figure.g svg{display:block;background:#fafbfc;border:1px solid #e5e7eb}
figcaption{font-size:.85em}.sw{display:inline-block;width:.8em;height:.8em;margin:0 .2em 0 .4em;vertical-align:-.05em}
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
  // Whether the page fits its window (read by the e2e test from the DOM).
  document.body.dataset.scrollWidth = String(document.documentElement.scrollWidth);
  document.body.dataset.clientWidth = String(document.documentElement.clientWidth);
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
