// Health check and metrics on one TCP port (-p), like the original's health listener:
// every request gets an HTTP/1.1 answer, 200 when every worker is alive and its UDP socket
// bound, 503 otherwise, while draining (--drain) and while shutting down,
// `Cache-Control: max-age=0, no-cache`.
// Body: HTML (default), JSON (-j, schema in docs/operations.md, with the original gwlbtun's keys
// too: src/ops/status.ts) or empty (-s).
// GET /metrics answers in the Prometheus text exposition format instead; GET /status and
// /status.json with the live status page and its data (src/ops/status.ts), whatever the health.
//
// Bounded: headers at most 8 KiB, a whole request within 2 s of connecting, no keep-alive, at most
// 64 connections, 8 per source address, the newest always admitted (src/ops/connguard.ts);
// nothing here can hold the port or reach the data path.

import * as fs from 'node:fs';
import * as http from 'node:http';
import type { Daemon, Endpoint } from '../control/daemon';
import { endpointName } from '../control/endpoints';
import { C, EP, GC_HIST, HIST_BOUNDS_S, LOOP_HIST, histView, type HistView } from '../dataplane/counters';
import { MainThreadStats } from './runtime';
import { DROP_NAMES, DROP_SLOTS } from '../wire/reasons';
import { ConnGuard, HEALTH_CONN_LIMITS, type ConnGuardStats, type ConnLimits } from './connguard';
import { monoMs } from '../base/clock';
import { StatusCollector } from './status';
import { dropsByReason, endpointTotals } from './totals';

export type HealthStyle = 'html' | 'json' | 'simple';

export function healthSnapshot(d: Daemon): Record<string, unknown> {
  const now = monoMs();
  const c = d.counters;
  const drops = dropsByReason(c);
  return {
    healthy: d.healthy(),
    shuttingDown: d.shuttingDown,
    draining: d.draining,
    uptimeSeconds: Math.round((now - d.startedMs) / 1000),
    workers: d.workerStatus().map((w) => ({
      ...w,
      udpBound: c.of(w.index, C.UDP_BOUND) === 1,
      udpPackets: c.of(w.index, C.UDP_RX_PACKETS),
      udpBytes: c.of(w.index, C.UDP_RX_BYTES),
      tunPacketsIn: c.of(w.index, C.TUN_RX_PACKETS),
      rawPacketsOut: c.of(w.index, C.RAW_TX_PACKETS),
    })),
    endpoints: [...d.endpoints.values()].map((e) => endpointTotals(d, e, now)),
    flows:
      d.flows === null
        ? null
        : {
            size: d.flows.size(),
            capacity: d.flows.capacity,
            inserts: c.sum(C.FLOW_INSERTS),
            refreshes: c.sum(C.FLOW_REFRESHES),
            evictions: c.sum(C.FLOW_EVICTIONS),
            expiries: d.flowExpiries,
          },
    drops,
  };
}

function htmlEscape(s: string): string {
  return s.replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch] as string);
}

function healthHtml(s: Record<string, unknown>): string {
  const rows = (s.endpoints as Record<string, unknown>[])
    .map((e) => `<tr>${['eni', 'name', 'gwi', 'gwo', 'state', 'packetsFromGwlb', 'bytesFromGwlb', 'packetsToGwlb', 'bytesToGwlb', 'drops', 'secondsSinceLastPacket'].map((k) => `<td>${htmlEscape(String(e[k]))}</td>`).join('')}</tr>`)
    .join('\n');
  const workers = (s.workers as Record<string, unknown>[])
    .map((w) => `<tr>${['index', 'alive', 'udpBound', 'udpPackets', 'tunPacketsIn', 'rawPacketsOut', 'restarts'].map((k) => `<td>${htmlEscape(String(w[k]))}</td>`).join('')}</tr>`)
    .join('\n');
  const drops = Object.entries(s.drops as Record<string, number>)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`)
    .join('\n');
  return `<!DOCTYPE html><html><head><title>gwlbtun health</title></head><body>
<h1>gwlbtun: ${s.healthy ? 'healthy' : 'UNHEALTHY'}</h1><p>Uptime ${s.uptimeSeconds} s</p>
<h2>Workers</h2><table border="1"><tr><th>worker</th><th>alive</th><th>UDP bound</th><th>UDP packets</th><th>TUN packets in</th><th>packets to GWLB</th><th>restarts</th></tr>
${workers}</table>
<h2>Endpoints</h2><table border="1"><tr><th>ENI</th><th>name</th><th>gwi</th><th>gwo</th><th>state</th><th>packets from GWLB</th><th>bytes from GWLB</th><th>packets to GWLB</th><th>bytes to GWLB</th><th>drops</th><th>s since last packet</th></tr>
${rows}</table>
<h2>Flows</h2><pre>${htmlEscape(JSON.stringify(s.flows))}</pre>
<h2>Drops</h2><table border="1">${drops}</table>
</body></html>
`;
}

/** A counter of a /proc/net/snmp-style file (a header line and a value line per section, e.g.
 * "Udp:"); null when unreadable. The daemon's own network namespace. */
function procNetCounter(file: string, section: string, name: string): number | null {
  try {
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith(section));
    const i = lines[0].trim().split(/\s+/).indexOf(name);
    const v = i > 0 ? Number(lines[1].trim().split(/\s+/)[i]) : NaN;
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** The "Udp:" RcvbufErrors counter of /proc/net/snmp: mostly the Geneve sockets' overflows. */
function udpRcvbufErrors(): number | null {
  return procNetCounter('/proc/net/snmp', 'Udp:', 'RcvbufErrors');
}

/** The "TcpExt:" IPReversePathFilter counter of /proc/net/netstat: packets the kernel dropped by
 * reverse-path filtering, on any interface (gwi-, and gwlbtx0's returns when its rp_filter is not
 * 0). */
function ipReversePathFilterDrops(): number | null {
  return procNetCounter('/proc/net/netstat', 'TcpExt:', 'IPReversePathFilter');
}

/** A counter of /sys/class/net/<dev>/statistics; null when unreadable (no such device). */
function linkStat(dev: string, stat: string): number | null {
  try {
    const v = Number(fs.readFileSync(`/sys/class/net/${dev}/statistics/${stat}`, 'latin1').trim());
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** Prometheus text format (version 0.0.4). `main`: the main thread's histograms (src/ops/runtime.ts). */
export function metricsText(d: Daemon, conns: ConnGuardStats | null = null, main: MainThreadStats | null = null): string {
  const c = d.counters;
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: [string, number][]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) out.push(`${name}${labels} ${v}`);
  };
  /** A histogram family: per series (its labels without braces, e.g. 'worker="0"'), cumulative
   * `_bucket{le=...}` up to "+Inf", `_sum` and `_count`. */
  const histogram = (name: string, help: string, series: [string, HistView][]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    for (const [labels, h] of series) {
      const sep = labels === '' ? '' : ',';
      h.cumulative.forEach((v, i) => out.push(`${name}_bucket{${labels}${sep}le="${i < HIST_BOUNDS_S.length ? String(HIST_BOUNDS_S[i]) : '+Inf'}"} ${v}`));
      const braces = labels === '' ? '' : `{${labels}}`;
      out.push(`${name}_sum${braces} ${h.sum}`, `${name}_count${braces} ${h.count}`);
    }
  };
  const eps = [...d.endpoints.values()];
  // An endpoint's name (--endpoints) joins its labels; names need no escaping (src/control/endpoints-file.ts).
  const lbl = (e: Endpoint): string => {
    const name = endpointName(e);
    return `{eni="${e.hex}",interface="${e.gwi}"${name === null ? '' : `,name="${name}"`}}`;
  };
  metric('gwlbtun_up', 'gauge', '1 when healthy (all workers alive, UDP bound).', [['', d.healthy() ? 1 : 0]]);
  metric('gwlbtun_uptime_seconds', 'gauge', 'Seconds since the process started.', [['', (monoMs() - d.startedMs) / 1000]]);
  metric('gwlbtun_endpoint_packets_from_gwlb_total', 'counter', 'Packets decapsulated and written to gwi-, per endpoint.', eps.map((e) => [lbl(e), c.epSum(e.slot, EP.RX_PACKETS)]));
  metric('gwlbtun_endpoint_bytes_from_gwlb_total', 'counter', 'Inner bytes written to gwi-, per endpoint.', eps.map((e) => [lbl(e), c.epSum(e.slot, EP.RX_BYTES)]));
  metric('gwlbtun_endpoint_packets_to_gwlb_total', 'counter', 'Packets encapsulated and sent back to GWLB, per endpoint.', eps.map((e) => [lbl(e), c.epSum(e.slot, EP.TX_PACKETS)]));
  metric('gwlbtun_endpoint_bytes_to_gwlb_total', 'counter', 'Inner bytes sent back to GWLB, per endpoint.', eps.map((e) => [lbl(e), c.epSum(e.slot, EP.TX_BYTES)]));
  metric('gwlbtun_endpoint_drops_total', 'counter', 'Packets of a known endpoint dropped, any reason.', eps.map((e) => [lbl(e), c.epSum(e.slot, EP.DROPS)]));
  metric('gwlbtun_endpoints', 'gauge', 'Endpoints (gwi-/gwo- pairs) that exist.', [['', eps.length]]);
  const drops: [string, number][] = [];
  for (let r = 1; r < DROP_SLOTS; r++) drops.push([`{reason="${DROP_NAMES[r]}"}`, c.sum(r)]);
  metric('gwlbtun_drops_total', 'counter', 'Packets dropped, by reason.', drops);
  metric('gwlbtun_udp_packets_total', 'counter', 'Datagrams received on the Geneve port.', [['', c.sum(C.UDP_RX_PACKETS)]]);
  metric('gwlbtun_udp_bytes_total', 'counter', 'Bytes received on the Geneve port.', [['', c.sum(C.UDP_RX_BYTES)]]);
  metric('gwlbtun_tun_packets_read_total', 'counter', 'Packets read from gwi-/gwo- interfaces.', [['', c.sum(C.TUN_RX_PACKETS)]]);
  metric('gwlbtun_tun_coalesced_packets_total', 'counter', 'Packets from GWLB written to gwi- inside TCP super-packets (--offload on).', [['', c.sum(C.TUN_COALESCED)]]);
  metric('gwlbtun_tun_superpackets_written_total', 'counter', 'TCP super-packets written to gwi- (--offload on).', [['', c.sum(C.TUN_SUPERS_WRITTEN)]]);
  metric('gwlbtun_tun_superpackets_read_total', 'counter', 'Super-packets read from gwi-/gwo- and cut into segments (--offload on).', [['', c.sum(C.TUN_SUPERS_READ)]]);
  metric('gwlbtun_tun_segmented_packets_total', 'counter', 'Segments cut from super-packets read from gwi-/gwo- (--offload on).', [['', c.sum(C.TUN_SEGMENTED)]]);
  metric('gwlbtun_tun_superpackets_tunneled_total', 'counter', 'Super-packets read from gwi-/gwo- and sent to GWLB whole through the UDP tunnel GSO TAP (--offload on, kernel >= 6.17).', [['', c.sum(C.TUN_SUPERS_TAPPED)]]);
  metric('gwlbtun_tun_tunneled_packets_total', 'counter', 'Packets (segments) of those super-packets: the kernel cut and sent them.', [['', c.sum(C.TUN_TAPPED)]]);
  metric('gwlbtun_tun_tap_errors_total', 'counter', 'Writes to the UDP tunnel GSO TAP that failed (those super-packets were cut and sent through the raw socket).', [['', c.sum(C.TUN_TAP_ERRORS)]]);
  metric('gwlbtun_tun_superpackets_uso_total', 'counter', 'Super-packets read from gwi-/gwo-, cut into segments here and sent to GWLB as UDP GSO packets through the USO device (--offload on, kernels with USO but without UDP tunnel GSO).', [['', c.sum(C.TUN_SUPERS_USO)]]);
  metric('gwlbtun_tun_uso_packets_total', 'counter', 'Packets (segments) of those super-packets that went out in USO writes.', [['', c.sum(C.TUN_USO)]]);
  metric('gwlbtun_tun_uso_errors_total', 'counter', 'Writes to the USO device that failed (their segments and the rest of the super-packet were sent through the raw socket).', [['', c.sum(C.TUN_USO_ERRORS)]]);
  metric('gwlbtun_tun_superpackets_long_total', 'counter', 'Super-packets read from gwi-/gwo- with more than 64 segments (a return batch; a peer with a small MSS): cut and sent here in chunks of at most 64, or handed whole to the UDP tunnel GSO TAP (--offload on).', [['', c.sum(C.TUN_SUPERS_LONG)]]);
  metric('gwlbtun_raw_packets_sent_total', 'counter', 'Encapsulated packets sent to GWLB.', [['', c.sum(C.RAW_TX_PACKETS)]]);
  const rpDrops = ipReversePathFilterDrops();
  if (rpDrops !== null) {
    metric('gwlbtun_ip_reverse_path_filter_drops_total', 'counter', 'Packets the kernel dropped by reverse-path filtering (IPReversePathFilter of /proc/net/netstat, this network namespace, all interfaces): traffic from GWLB on gwi- or returns written to gwlbtx0 while an rp_filter is not 0.', [['', rpDrops]]);
  }
  const sendDevice = d.sendDevice;
  const sendDropped = sendDevice === null ? null : linkStat(sendDevice, 'rx_dropped');
  const inUse = d.sendDeviceInUse;
  if (inUse !== null) {
    metric('gwlbtun_send_device_in_use', 'gauge', 'Whether the returns go through the send device gwlbtx0 (1) or, because the device towards GWLB would pass its segmentation or checksums on unfinished (a veth), through the raw socket (0); absent until the first GWLB address is known.', [['', inUse ? 1 : 0]]);
  }
  if (sendDropped !== null) {
    metric('gwlbtun_send_device_rx_dropped_total', 'counter', 'Frames or packets written to the send device gwlbtx0 (--offload on) that the kernel dropped on receipt (rx_dropped of the device).', [['', sendDropped]]);
  }
  const rcvbufErrors = udpRcvbufErrors();
  if (rcvbufErrors !== null) {
    metric('gwlbtun_udp_rcvbuf_errors_total', 'counter', "UDP datagrams the kernel dropped because a socket's receive buffer was full (RcvbufErrors of /proc/net/snmp, this network namespace, all sockets).", [['', rcvbufErrors]]);
  }
  if (d.flows !== null) {
    metric('gwlbtun_flows', 'gauge', 'Flows in the flow table.', [['', d.flows.size()]]);
    metric('gwlbtun_flows_capacity', 'gauge', 'Flow table capacity.', [['', d.flows.capacity]]);
    metric('gwlbtun_flow_inserts_total', 'counter', 'Flows inserted.', [['', c.sum(C.FLOW_INSERTS)]]);
    metric('gwlbtun_flow_run_skips_total', 'counter', 'Flow refreshes skipped: the packet repeated the flow, header and addresses of the one just before it in its receive batch (same-flow runs).', [['', c.sum(C.FLOW_RUN_SKIPS)]]);
    metric('gwlbtun_flow_evictions_total', 'counter', 'Flows evicted because the table was full.', [['', c.sum(C.FLOW_EVICTIONS)]]);
    metric('gwlbtun_flow_expiries_total', 'counter', 'Flows removed after their idle timeout.', [['', d.flowExpiries]]);
    metric('gwlbtun_fragments_tracked_total', 'counter', 'First fragments whose datagram was recorded in the datagram table.', [['', c.sum(C.FRAG_TRACKED)]]);
    metric('gwlbtun_fragments_returned_total', 'counter', 'Fragments sent back to GWLB, by how their flow was found: by their datagram, or by the address pair alone.', [
      ['{by="datagram"}', c.sum(C.FRAG_BY_DATAGRAM)],
      ['{by="address_pair"}', c.sum(C.FRAG_BY_PAIR)],
    ]);
    metric('gwlbtun_fragment_table_evictions_total', 'counter', 'Datagram table entries taken over by another datagram while still live.', [['', c.sum(C.FRAG_EVICTIONS)]]);
    metric('gwlbtun_icmp_errors_returned_total', 'counter', 'ICMP errors sent back to GWLB with the flow of the packet they quote.', [['', c.sum(C.ICMP_BY_QUOTE)]]);
  }
  metric('gwlbtun_hold_packets_total', 'counter', 'Packets held while their endpoint was being created.', [['', c.sum(C.HOLD_QUEUED)]]);
  for (const kind of ['create', 'destroy'] as const) {
    const h = d.hookStats[kind];
    metric(`gwlbtun_hook_${kind}_runs_total`, 'counter', `${kind} hook runs.`, [['', h.runs]]);
    metric(`gwlbtun_hook_${kind}_failures_total`, 'counter', `${kind} hook runs that failed, timed out or could not start.`, [['', h.failures]]);
    metric(`gwlbtun_hook_${kind}_timeouts_total`, 'counter', `${kind} hook runs killed after --hook-timeout.`, [['', h.timeouts]]);
    metric(`gwlbtun_hook_${kind}_duration_seconds_total`, 'counter', `Total run time of ${kind} hooks.`, [['', h.durationMsTotal / 1000]]);
  }
  if (conns !== null) {
    metric('gwlbtun_health_connections_closed_total', 'counter', 'Health port connections closed by gwlbtun before a request: evicted (the oldest, for a newer one), source_limit (the oldest of an address with 8 open), deadline (no whole request within 2 s).', [
      ['{cause="evicted"}', conns.evicted],
      ['{cause="source_limit"}', conns.sourceLimit],
      ['{cause="deadline"}', conns.deadline],
    ]);
  }
  if (d.sysctls !== null) {
    metric('gwlbtun_sysctl_restored_total', 'counter', 'gwi-/gwo- interface sysctls changed by someone else (udev) and written back, by setting.', [...d.sysctls.restored].map(([k, v]) => [`{setting="${k}"}`, v]));
    if (d.sysctls.deviceRestored.size > 0) {
      metric('gwlbtun_sysctl_send_device_restored_total', 'counter', 'Sysctls of the send device gwlbtx0 (--offload on) changed by someone else (udev) and written back, by setting.', [...d.sysctls.deviceRestored].map(([k, v]) => [`{setting="${k}"}`, v]));
    }
    metric('gwlbtun_sysctl_errors_total', 'counter', 'gwi-/gwo- and gwlbtx0 interface sysctls that could not be written.', [['', d.sysctls.errors]]);
  }
  const ws = d.workerStatus();
  histogram('gwlbtun_worker_loop_turn_seconds', "How long each turn of a data-plane worker's loop took, from epoll_wait's return to the end of its work: what a packet arriving during a turn may wait before it is read.", ws.map((w) => [`worker="${w.index}"`, c.hist(w.index, LOOP_HIST)]));
  histogram('gwlbtun_gc_pause_seconds', 'Garbage collection pauses, per thread: main, or worker-N (a pause stops only its own thread).', [
    ...(main === null ? [] : [['thread="main"', histView([main.gc], 0)] as [string, HistView]]),
    ...ws.map((w): [string, HistView] => [`thread="worker-${w.index}"`, c.hist(w.index, GC_HIST)]),
  ]);
  if (main !== null) {
    histogram('gwlbtun_main_event_loop_delay_seconds', "How late the main thread's event loop ran a timer (sampled every 50 ms): what health checks, control messages and hook completions waited on that thread.", [['', histView([main.loopDelay], 0)]]);
  }
  metric('gwlbtun_worker_alive', 'gauge', '1 while the data-plane worker runs.', ws.map((w) => [`{worker="${w.index}"}`, w.alive ? 1 : 0]));
  metric('gwlbtun_worker_restarts_total', 'counter', 'Times the worker was restarted after dying.', ws.map((w) => [`{worker="${w.index}"}`, w.restarts]));
  return out.join('\n') + '\n';
}

export interface HealthServer {
  server: http.Server;
  guard: ConnGuard;
  status: StatusCollector;
}

/** host: the address to listen on (default: every local address); limits: for the tests. */
export function startHealthServer(d: Daemon, port: number, style: HealthStyle, host?: string, limits: ConnLimits = HEALTH_CONN_LIMITS): Promise<HealthServer> {
  const server = http.createServer({ maxHeaderSize: 8192, requestTimeout: 5000, headersTimeout: limits.requestDeadlineMs, keepAliveTimeout: 0 }, (req, res) => {
    res.shouldKeepAlive = false;
    const headers: Record<string, string> = { 'Cache-Control': 'max-age=0, no-cache', Connection: 'close' };
    if (req.url === '/metrics') {
      const body = metricsText(d, guard.stats, runtime);
      res.writeHead(200, { ...headers, 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    if (req.url === '/status' || req.url === '/status.json') {
      const json = req.url === '/status.json';
      const body = json ? JSON.stringify(status.statusJson()) + '\n' : status.statusHtml();
      res.writeHead(200, { ...headers, 'Content-Type': json ? 'application/json' : 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    const code = d.healthy() ? 200 : 503;
    let body = '';
    let type = 'text/html';
    if (style === 'json') {
      body = JSON.stringify({ ...healthSnapshot(d), ...status.originalKeys() }) + '\n';
      type = 'application/json';
    } else if (style === 'html') body = healthHtml(healthSnapshot(d));
    res.writeHead(code, { ...headers, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  // Not server.maxConnections: it refuses the newest connection, so 64 connections that never
  // finish a request would lock every health check out. The guard admits the newest instead and
  // closes connections without a whole request after 2 s (Node's own header timeout is only
  // checked every 30 s).
  const guard = new ConnGuard(server, limits);
  const runtime = new MainThreadStats();
  runtime.start();
  const status = new StatusCollector(d, runtime);
  status.start();
  server.on('close', () => {
    status.stop();
    runtime.stop();
  });
  // A backstop for connections that did send a request (answered at once, then closed): any
  // socket idle for 5 s is closed.
  server.setTimeout(5000, (socket) => socket.destroy());
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  return new Promise((resolve, reject) => {
    // Not listening (the port in use: a hand-over retries while the old process lets it go):
    // nothing of this server may keep running.
    const failed = (e: Error): void => {
      status.stop();
      runtime.stop();
      server.close(() => undefined); // 'close': the connection guard's timer stops too
      reject(e);
    };
    server.once('error', failed);
    const ready = (): void => {
      server.off('error', failed);
      resolve({ server, guard, status });
    };
    if (host === undefined) server.listen(port, ready);
    else server.listen(port, host, ready);
  });
}
