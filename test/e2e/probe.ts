// Asynchronous probes of a running daemon for the hostile-input and soak tests: /metrics and
// `ip -j link` from inside the appliance namespace without blocking the event loop (so they can
// poll while an emulator child process is sending), and the daemon's resident memory.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { nsSpawnArgs } from '../../src/sim/topology';
import { parseMetrics } from './lib';

/** Run a command in a namespace; resolves with its output (never rejects; killed after timeoutMs). */
export function nsRunAsync(ns: string, cmd: string, args: string[], timeoutMs = 10000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const a = nsSpawnArgs(ns, cmd, args);
  return new Promise((resolve) => {
    const p = spawn(a.file, a.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: stderr + String(e) });
    });
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const GET = `
const http = require('node:http');
const req = http.get({ host: '127.0.0.1', port: Number(process.argv[1]), path: process.argv[2], timeout: 5000 }, (res) => {
  let b = ''; res.setEncoding('utf8'); res.on('data', (c) => (b += c));
  res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body: b })));
});
req.on('error', (e) => process.stdout.write(JSON.stringify({ status: 0, body: String(e) })));
req.on('timeout', () => req.destroy(new Error('timeout')));`;

export async function httpGetAsync(ns: string, port: number, path: string): Promise<{ status: number; body: string }> {
  const r = await nsRunAsync(ns, process.execPath, ['-e', GET, String(port), path], 15000);
  try {
    return JSON.parse(r.stdout) as { status: number; body: string };
  } catch {
    return { status: 0, body: r.stderr };
  }
}

export async function metricsAsync(ns: string, port: number): Promise<Map<string, number>> {
  const r = await httpGetAsync(ns, port, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body}`);
  return parseMetrics(r.body);
}

/** Names of the interfaces in a namespace. */
export async function linkNamesAsync(ns: string): Promise<string[]> {
  const r = await nsRunAsync(ns, 'ip', ['-j', 'link', 'show']);
  if (r.code !== 0) throw new Error(`ip link show failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname);
}

/** VmRSS of a process in KiB (from /proc/<pid>/status), or NaN when it is gone. */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? NaN : Number(m[1]);
  } catch {
    return NaN;
  }
}

/** A metric's value, 0 when absent. */
export function mv(m: Map<string, number>, key: string): number {
  return m.get(key) ?? 0;
}

export function drop(m: Map<string, number>, reason: string): number {
  return mv(m, `gwlbtun_drops_total{reason="${reason}"}`);
}

/** The daemon's non-zero drop, endpoint, hold, flow, raw and TUN counters, one per line: printed
 * when a test finds a packet missing, so that the next occurrence of a rare loss says where. */
export async function countedNonZero(ns: string, port: number): Promise<string> {
  const m = await metricsAsync(ns, port);
  return [...m]
    .filter(([k, v]) => v !== 0 && /^gwlbtun_(drops_total|endpoint_|hold_|flow_|raw_|tun_|udp_)/.test(k))
    .map(([k, v]) => `  ${k} ${v}`)
    .join('\n');
}

/** What the kernel counted in a namespace where packets can vanish without the daemon seeing
 * them: interface drops, the IP/UDP error counters of /proc/net/snmp and the failure counters of
 * conntrack (insert races, early drops, invalid) when it is loaded (non-zero ones). */
export async function kernelDrops(ns: string): Promise<string> {
  const links = await nsRunAsync(ns, 'ip', ['-s', '-o', 'link']);
  const snmp = await nsRunAsync(ns, 'cat', ['/proc/net/snmp']);
  const ct = await nsRunAsync(ns, 'cat', ['/proc/net/stat/nf_conntrack']);
  const out: string[] = [];
  const ctLines = ct.stdout.trim().split('\n');
  if (ct.code === 0 && ctLines.length > 1) {
    // One line of hex counters per CPU under one header line: summed.
    const names = ctLines[0].trim().split(/\s+/);
    const sums = names.map((_, j) => ctLines.slice(1).reduce((s, l) => s + parseInt(l.trim().split(/\s+/)[j] ?? '0', 16), 0));
    const nz = names.map((k, j) => [k, sums[j]] as const).filter(([k, v]) => v !== 0 && /drop|fail|invalid|error|ignore/.test(k));
    if (nz.length > 0) out.push(`  conntrack ${nz.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  for (const l of links.stdout.split('\n')) if (/dropped|errors/.test(l) && l.trim() !== '') out.push('  ' + l.replace(/\s+/g, ' ').slice(0, 400));
  const lines = snmp.stdout.split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const keys = lines[i].split(/\s+/);
    const vals = lines[i + 1].split(/\s+/);
    const nz = keys.slice(1).map((k, j) => [k, vals[j + 1]] as const).filter(([k, v]) => v !== '0' && /Err|Discard|Drop|NoRoutes|NoPorts|Fail/.test(k));
    if (nz.length > 0) out.push(`  ${keys[0]} ${nz.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  return out.join('\n');
}
