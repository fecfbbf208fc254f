// The lab's GWLB process, started by the lab inside its "gwlb" namespace (docs/lab.md):
//   node gwlb-main.js '<json options>'
// Creates the TUN device (no IPv6 link-local address, so the kernel sends nothing of its own
// into it), opens the UDP 6081 and raw sockets, prints {"type":"ready"} and forwards (gwlb.ts)
// until stdin closes (the lab went away) or SIGTERM/SIGINT. Each line "stats" on stdin is
// answered with a {"type":"stats",...} line.

import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ip4FromString, native } from '../io/native';
import { GENEVE_PORT } from '../wire/geneve';
import { LabFlows } from './flows';
import { LabGwlb } from './gwlb';

interface Opts {
  tun: string;
  gwlbIp: string;
  applianceIp: string;
  eni: string; // hex
  attachment: string; // hex
}

const SLICE_MS = 25;
const FLOWS = 8192;
/** The inner MTU of GWLB. */
const TUN_MTU = 8500;

function main(): void {
  const o = JSON.parse(process.argv[2] ?? '{}') as Opts;
  const n = native();
  const tunFd = n.tunOpen(o.tun);
  fs.writeFileSync(`/proc/sys/net/ipv6/conf/${o.tun}/addr_gen_mode`, '1');
  n.linkSetup(o.tun, TUN_MTU, 1000);
  const udpFd = n.udpOpen(GENEVE_PORT, 8 << 20, false);
  const rawFd = n.rawOpen(8 << 20);
  const ep = n.epollCreate();
  n.epollAdd(ep, tunFd);
  n.epollAdd(ep, udpFd);
  const flows = new LabFlows(FLOWS, BigInt('0x' + o.eni), BigInt('0x' + o.attachment), randomBytes(4).readUInt32BE(0));
  const fw = new LabGwlb(n, { tunFd, udpFd, rawFd, gwlbIp: ip4FromString(o.gwlbIp), applianceIp: ip4FromString(o.applianceIp), flows });
  const fds = new Int32Array(8);
  let stopping = false;

  const stats = (type: string): void => {
    process.stdout.write(JSON.stringify({ type, ...fw.snapshot() }) + '\n');
  };
  const stop = (): void => {
    stopping = true;
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === 'stats') stats('stats');
    }
    if (buf.length > 4096) buf = '';
  });
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);

  const loop = (): void => {
    if (stopping) {
      stats('final');
      n.close(ep);
      n.close(rawFd);
      n.close(udpFd);
      n.close(tunFd);
      process.exit(0);
    }
    const t0 = performance.now();
    for (;;) {
      const now = performance.now();
      const got = fw.fromNetwork(now) + fw.fromAppliance(now);
      if (got === 0 && n.epollWait(ep, fds, 20) === 0) break;
      if (now - t0 >= SLICE_MS) break;
    }
    setImmediate(loop);
  };
  process.stdout.write(JSON.stringify({ type: 'ready', tun: o.tun }) + '\n');
  loop();
}

try {
  main();
} catch (e) {
  process.stderr.write(`lab gwlb: ${(e as Error).message}\n`);
  process.exit(1);
}
