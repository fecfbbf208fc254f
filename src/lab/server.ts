// The lab's server side (docs/lab.md), run inside its "server" namespace:
//   node server.js <http port> <extra http port> <echo port>
// HTTP on both ports (IPv4 and IPv6): "/" answers who is asking, "/bytes/N" N bytes of
// content.ts's stream. TCP and UDP echo on the echo port. Prints {"type":"ready"} when all listen;
// exits when stdin closes (the lab went away) or on SIGTERM/SIGINT.

import * as http from 'node:http';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import * as os from 'node:os';
import { labBytes } from './content';

const [httpPort, extraPort, echoPort] = process.argv.slice(2, 5).map(Number);
let served = 0;

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  served++;
  const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
  if (m !== null) {
    const n = Number(m[1]);
    if (n > 64 << 20) {
      res.writeHead(400).end('at most 64 MiB\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
    res.end(labBytes(n));
    return;
  }
  const plain = (a: string | undefined): string => (a ?? '?').replace(/^::ffff:/, '');
  const body = `hello from the lab server ${plain(req.socket.localAddress)} port ${req.socket.localPort}; you are ${plain(req.socket.remoteAddress)} port ${req.socket.remotePort}\n`;
  res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
}

async function listen(): Promise<void> {
  const wait = (s: { once(ev: string, f: (...a: unknown[]) => void): unknown }): Promise<void> =>
    new Promise((resolve, reject) => {
      s.once('listening', () => resolve());
      s.once('error', (e) => reject(e as Error));
    });
  const done: Promise<void>[] = [];
  for (const port of [httpPort, extraPort]) {
    const s = http.createServer({ keepAliveTimeout: 2000 }, handler);
    s.listen({ port, host: '::', ipv6Only: false });
    done.push(wait(s));
  }
  const echo = net.createServer((c) => {
    c.on('error', () => c.destroy());
    c.pipe(c);
  });
  echo.listen({ port: echoPort, host: '::', ipv6Only: false });
  done.push(wait(echo));
  // UDP echo: one socket per local address, so that each answer leaves from the address the
  // datagram was sent to (a wildcard socket would answer from the outgoing interface's address,
  // which a NAT in the appliance does not recognise as the connection's).
  for (const a of Object.values(os.networkInterfaces()).flat()) {
    if (a === undefined || (a.family === 'IPv6' && a.address.startsWith('fe80'))) continue;
    const u = dgram.createSocket({ type: a.family === 'IPv4' ? 'udp4' : 'udp6', ipv6Only: a.family === 'IPv6' });
    u.on('message', (msg, rinfo) => u.send(msg, rinfo.port, rinfo.address));
    u.bind(echoPort, a.address);
    done.push(wait(u));
  }
  await Promise.all(done);
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
listen().then(
  () => process.stdout.write(JSON.stringify({ type: 'ready' }) + '\n'),
  (e: Error) => {
    process.stderr.write(`lab server: ${e.message}\n`);
    process.exit(1);
  },
);
process.on('exit', () => process.stderr.write(`lab server: served ${served} HTTP requests\n`));
