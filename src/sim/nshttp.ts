// HTTP GET from inside a network namespace: the daemon's health port listens in the appliance
// namespace, out of reach of a process in the root namespace. Used by the demo, the benchmark
// and the end-to-end tests. Synchronous (a child node process), bounded by a 5 s request timeout.

import { spawnSync } from 'node:child_process';
import { nsSpawnArgs } from './topology';

export interface HttpAnswer {
  status: number; // 0 when the request failed
  headers: Record<string, string>;
  body: string;
}

export function httpGetInNs(ns: string, port: number, urlPath: string): HttpAnswer {
  const script = `
    const http = require('node:http');
    const req = http.get({ host: '127.0.0.1', port: ${port}, path: ${JSON.stringify(urlPath)}, timeout: 5000 }, (res) => {
      let b = ''; res.setEncoding('utf8'); res.on('data', (c) => (b += c));
      res.on('end', () => { process.stdout.write(JSON.stringify({ status: res.statusCode, headers: res.headers, body: b })); });
    });
    req.on('error', (e) => { process.stdout.write(JSON.stringify({ status: 0, headers: {}, body: String(e) })); });
    req.on('timeout', () => req.destroy(new Error('timeout')));`;
  const a = nsSpawnArgs(ns, process.execPath, ['-e', script]);
  const r = spawnSync(a.file, a.args, { encoding: 'utf8', timeout: 15000 });
  try {
    return JSON.parse(r.stdout) as HttpAnswer;
  } catch {
    return { status: 0, headers: {}, body: r.stderr ?? '' };
  }
}

/** Prometheus text into `name{labels}` -> value (lenient: for reading, not for validating). */
export function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    m.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return m;
}

/** GET /metrics in the namespace; an empty map when it does not answer 200. */
export function metricsInNs(ns: string, port: number): Map<string, number> {
  const r = httpGetInNs(ns, port, '/metrics');
  return r.status === 200 ? parseMetrics(r.body) : new Map();
}
