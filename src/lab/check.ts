// `npm run lab -- --check` (docs/lab.md): for each example hook, a fresh lab; real TCP (HTTP
// requests, a bulk transfer) and UDP (echo) over IPv4 and IPv6 through GWLB and gwlbtun; then a
// TCP port blocked in the appliance must be seen blocked. A table of figures; any loss, mismatch
// or failure makes the result non-zero.

import { EXAMPLE_HOOKS, Lab, LAB_PORTS } from './lab';
import { LAB } from './topology';
import type { ClientOp, ClientResult } from './client';

const HTTP_REQUESTS = 20;
const BULK_BYTES = 4 << 20;
const UDP_DATAGRAMS = 200;
const BLOCK_WAIT_MS = 1500;

export interface HookCheck {
  hook: string;
  failures: string[];
  http: string;
  bulk4: string;
  bulk6: string;
  udp: string;
  blocked: string;
  gwlbtunIn: number;
  gwlbtunOut: number;
  gwlbtunDrops: number;
  gwlbSent: number;
  mismatches: number;
  ms: number;
}

function sumMetric(m: Map<string, number>, name: string): number {
  let s = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(name + '{')) s += v;
  return s;
}

const mbps = (r: ClientResult | undefined): string => (r === undefined || !r.ok ? 'FAIL' : ((r.good * 8) / (r.ms * 1000)).toFixed(0));

/** Check one hook in a lab of its own (removed before returning, also on failure). */
export async function checkHook(hook: string, onLab: (l: Lab | undefined) => void): Promise<HookCheck> {
  const t0 = Date.now();
  const lab = new Lab({ hook, daemonArgs: [] });
  const row: HookCheck = { hook: lab.hookName, failures: [], http: '-', bulk4: '-', bulk6: '-', udp: '-', blocked: '-', gwlbtunIn: 0, gwlbtunOut: 0, gwlbtunDrops: 0, gwlbSent: 0, mismatches: 0, ms: 0 };
  onLab(lab);
  try {
    await lab.start();
    onLab(lab); // again, now with its namespaces
    const s4 = LAB.server4;
    const s6 = LAB.server6;
    const ops: ClientOp[] = [
      { op: 'http', host: s4, port: LAB_PORTS.http, count: HTTP_REQUESTS },
      { op: 'http', host: s6, port: LAB_PORTS.http, count: HTTP_REQUESTS },
      { op: 'bulk', host: s4, port: LAB_PORTS.http, bytes: BULK_BYTES },
      { op: 'bulk', host: s6, port: LAB_PORTS.http, bytes: BULK_BYTES },
      { op: 'udp', host: s4, port: LAB_PORTS.echo, count: UDP_DATAGRAMS },
      { op: 'udp', host: s6, port: LAB_PORTS.echo, count: UDP_DATAGRAMS },
      // The port about to be blocked answers before the rule.
      { op: 'connect', host: s4, port: LAB_PORTS.blocked, timeoutMs: 8000 },
      { op: 'connect', host: s6, port: LAB_PORTS.blocked, timeoutMs: 8000 },
    ];
    const r = await lab.client(ops);
    for (const x of r) if (!x.ok) row.failures.push(`${x.op} ${x.host}: ${x.error ?? 'failed'}`);
    const [h4, h6, b4, b6, u4, u6] = r;
    row.http = `${(h4?.good ?? 0) + (h6?.good ?? 0)}/${2 * HTTP_REQUESTS}`;
    row.bulk4 = mbps(b4);
    row.bulk6 = mbps(b6);
    row.udp = `${(u4?.good ?? 0) + (u6?.good ?? 0)}/${2 * UDP_DATAGRAMS}`;

    lab.blockTcpPort(LAB_PORTS.blocked);
    const after = await lab.client([
      { op: 'connect', host: s4, port: LAB_PORTS.blocked, timeoutMs: BLOCK_WAIT_MS },
      { op: 'connect', host: s6, port: LAB_PORTS.blocked, timeoutMs: BLOCK_WAIT_MS },
      { op: 'http', host: s4, port: LAB_PORTS.http, count: 1 },
      { op: 'http', host: s6, port: LAB_PORTS.http, count: 1 },
    ]);
    const through = after.slice(0, 2).filter((x) => x.ok).map((x) => x.host);
    if (through.length > 0) row.failures.push(`TCP port ${LAB_PORTS.blocked} still open after the block rule (${through.join(', ')})`);
    for (const x of after.slice(2)) if (!x.ok) row.failures.push(`HTTP ${x.host} after the block rule: ${x.error ?? 'failed'}`);
    row.blocked = through.length === 0 && after.length === 4 ? 'yes' : 'NO';

    const g = await lab.gwlbStats();
    const m = lab.metrics();
    row.gwlbtunIn = sumMetric(m, 'gwlbtun_endpoint_packets_from_gwlb_total');
    row.gwlbtunOut = sumMetric(m, 'gwlbtun_endpoint_packets_to_gwlb_total');
    row.gwlbtunDrops = sumMetric(m, 'gwlbtun_drops_total');
    row.gwlbSent = g.toAppliance;
    row.mismatches = g.headerMismatch + g.portMismatch + g.unknownFlow + g.malformed;
    if (m.size === 0) row.failures.push('gwlbtun /metrics did not answer');
    if (row.gwlbtunIn === 0 || row.gwlbtunOut === 0) row.failures.push('no traffic through gwlbtun by its own counters');
    for (const k of ['headerMismatch', 'portMismatch', 'unknownFlow', 'malformed', 'sendErrors', 'writeErrors']) {
      if (g[k] > 0) row.failures.push(`GWLB counted ${g[k]} ${k}`);
    }
  } catch (e) {
    row.failures.push((e as Error).message);
  } finally {
    if (row.failures.length > 0) {
      const out = lab.daemonOutput().trim().split('\n').slice(-15).join('\n');
      if (out !== '') row.failures.push(`gwlbtun's last lines:\n${out}`);
    }
    await lab.stop();
    onLab(undefined);
    row.ms = Date.now() - t0;
  }
  return row;
}

export function formatTable(rows: HookCheck[]): string {
  const head = ['hook', 'HTTP ok', 'bulk v4 Mbit/s', 'bulk v6 Mbit/s', 'UDP echoed', 'port blocked', 'gwlbtun in/out', 'GWLB sent', 'mismatches', 'time s'];
  const cells = rows.map((r) => [
    r.hook, r.http, r.bulk4, r.bulk6, r.udp, r.blocked, `${r.gwlbtunIn}/${r.gwlbtunOut}`, String(r.gwlbSent), String(r.mismatches), (r.ms / 1000).toFixed(1),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]): string => c.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  return [line(head), ...cells.map(line)].join('\n');
}

/** All example hooks; returns the rows (a row with failures means the check failed). */
export async function runCheck(hooks: string[], onLab: (l: Lab | undefined) => void, log: (s: string) => void): Promise<HookCheck[]> {
  const rows: HookCheck[] = [];
  for (const h of hooks.length > 0 ? hooks : EXAMPLE_HOOKS) {
    log(`lab check: ${h} ...`);
    const r = await checkHook(h, onLab);
    log(`lab check: ${h}: ${r.failures.length === 0 ? 'ok' : 'FAILED'} (${(r.ms / 1000).toFixed(1)} s)`);
    rows.push(r);
  }
  return rows;
}

export { BULK_BYTES, HTTP_REQUESTS, UDP_DATAGRAMS };
