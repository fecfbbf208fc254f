// The lab's client side for `--check` (docs/lab.md), run inside its "client" namespace:
//   node client.js '<json list of operations>'
// Runs them one after another and prints one JSON line per operation. Every operation is bounded
// in packets and seconds.
//   {"op":"http","host":H,"port":P,"count":N}   N GET / requests, each on a new TCP connection
//   {"op":"bulk","host":H,"port":P,"bytes":N}   GET /bytes/N, every byte compared
//   {"op":"udp","host":H,"port":P,"count":N}    N datagrams to the echo service, 16 in flight
//   {"op":"connect","host":H,"port":P,"timeoutMs":T}  does a TCP connection open within T ms?

import * as http from 'node:http';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { labBytes } from './content';

export type ClientOp =
  | { op: 'http'; host: string; port: number; count: number }
  | { op: 'bulk'; host: string; port: number; bytes: number }
  | { op: 'udp'; host: string; port: number; count: number }
  | { op: 'connect'; host: string; port: number; timeoutMs: number };

export interface ClientResult {
  op: string;
  host: string;
  ok: boolean;
  ms: number;
  /** http: requests answered 200; bulk: bytes right; udp: datagrams echoed intact. */
  good: number;
  /** what was attempted: requests, bytes, datagrams. */
  total: number;
  error?: string;
}

const REQUEST_TIMEOUT_MS = 15000;

function get(host: string, port: number, path: string, onData: (b: Buffer) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      res.on('data', onData);
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });
}

async function httpOp(host: string, port: number, count: number): Promise<Omit<ClientResult, 'op' | 'host' | 'ms'>> {
  let good = 0;
  let error: string | undefined;
  for (let i = 0; i < count; i++) {
    let body = '';
    try {
      const status = await get(host, port, '/', (b) => (body += b.toString()));
      if (status === 200 && body.startsWith('hello from the lab server')) good++;
      else error ??= `status ${status}: ${body.slice(0, 80)}`;
    } catch (e) {
      error ??= (e as Error).message;
    }
  }
  return { ok: good === count, good, total: count, error };
}

async function bulkOp(host: string, port: number, bytes: number): Promise<Omit<ClientResult, 'op' | 'host' | 'ms'>> {
  const want = labBytes(bytes);
  let at = 0;
  let bad = -1;
  try {
    const status = await get(host, port, `/bytes/${bytes}`, (b) => {
      if (bad < 0) {
        if (at + b.length > bytes) bad = bytes;
        else if (want.compare(b, 0, b.length, at, at + b.length) !== 0) {
          for (let i = 0; i < b.length; i++) if (b[i] !== want[at + i]) { bad = at + i; break; }
        }
      }
      at += b.length;
    });
    if (status !== 200) return { ok: false, good: 0, total: bytes, error: `status ${status}` };
  } catch (e) {
    return { ok: false, good: bad < 0 ? at : bad, total: bytes, error: (e as Error).message };
  }
  if (bad >= 0) return { ok: false, good: bad, total: bytes, error: `byte ${bad} differs` };
  return { ok: at === bytes, good: at, total: bytes, error: at === bytes ? undefined : `${at} of ${bytes} bytes` };
}

async function udpOp(host: string, port: number, count: number): Promise<Omit<ClientResult, 'op' | 'host' | 'ms'>> {
  const s = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  await new Promise<void>((r) => s.bind(0, r));
  const WINDOW = 16;
  const got = new Uint8Array(count);
  let good = 0;
  let sent = 0;
  let inFlight = 0;
  // Datagram i: its number, then bytes derived from it; sizes vary from 32 to about 1,400 bytes.
  const make = (i: number): Buffer => {
    const b = Buffer.alloc(32 + ((i * 97) % 1370));
    b.writeUInt32BE(i, 0);
    for (let j = 4; j < b.length; j++) b[j] = (i + j) & 0xff;
    return b;
  };
  let wake: (() => void) | undefined;
  s.on('message', (m) => {
    const i = m.length >= 4 ? m.readUInt32BE(0) : -1;
    if (i >= 0 && i < count && got[i] === 0 && m.equals(make(i))) {
      got[i] = 1;
      good++;
      inFlight--;
      wake?.();
    }
  });
  const deadline = Date.now() + 15000;
  while (sent < count && Date.now() < deadline) {
    while (inFlight < WINDOW && sent < count) {
      const b = make(sent++);
      inFlight++;
      await new Promise<void>((r) => s.send(b, port, host, () => r()));
    }
    // A lost datagram frees its place in the window after a second.
    await new Promise<void>((r) => {
      const t = setTimeout(() => {
        inFlight = Math.max(0, inFlight - 1);
        r();
      }, 1000);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
  }
  const settle = Date.now() + 2000;
  while (good < sent && Date.now() < settle) await new Promise((r) => setTimeout(r, 20));
  s.close();
  return { ok: good === count, good, total: count, error: good === count ? undefined : `${count - good} of ${count} datagrams not echoed` };
}

function connectOp(host: string, port: number, timeoutMs: number): Promise<Omit<ClientResult, 'op' | 'host' | 'ms'>> {
  return new Promise((resolve) => {
    const c = net.connect({ host, port });
    const t = setTimeout(() => {
      c.destroy();
      resolve({ ok: false, good: 0, total: 1, error: `no connection within ${timeoutMs} ms` });
    }, timeoutMs);
    c.on('connect', () => {
      clearTimeout(t);
      c.destroy();
      resolve({ ok: true, good: 1, total: 1 });
    });
    c.on('error', (e) => {
      clearTimeout(t);
      resolve({ ok: false, good: 0, total: 1, error: e.message });
    });
  });
}

async function main(): Promise<void> {
  const ops = JSON.parse(process.argv[2] ?? '[]') as ClientOp[];
  for (const o of ops) {
    const t0 = performance.now();
    const r =
      o.op === 'http' ? await httpOp(o.host, o.port, o.count)
      : o.op === 'bulk' ? await bulkOp(o.host, o.port, o.bytes)
      : o.op === 'udp' ? await udpOp(o.host, o.port, o.count)
      : await connectOp(o.host, o.port, o.timeoutMs);
    const res: ClientResult = { op: o.op, host: o.host, ms: Math.round(performance.now() - t0), ...r };
    process.stdout.write(JSON.stringify(res) + '\n');
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (e: Error) => {
      process.stderr.write(`lab client: ${e.message}\n`);
      process.exit(1);
    },
  );
}
