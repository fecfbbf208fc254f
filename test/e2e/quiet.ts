// The load harness of the tests that replace a running gwlbtun (test/e2e/handover.test.ts: SIGUSR2;
// test/e2e/crash-adopt.test.ts: SIGKILL and a new start): the endpoints of the emulator's load,
// and one flow whose client is quiet after its first packet (hand-made: one datagram from the GWLB
// namespace, then only returns from a server in the appliance namespace), with what checks them.
// (Processes and interfaces by PID and ifindex: test/e2e/handover-lib.ts.)

import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { buildInnerPacket, concatBytes } from '../../src/testkit/build';
import { endpointNames } from '../../src/wire/eni';
import { writeGeneveHeader } from '../../src/wire/geneve';
import { nsSpawnArgs, type Topology } from '../../src/sim/topology';
import { links, metrics, nsRun, sendFromGwlb, startReplyServer, waitFor } from './lib';
import { mv } from './probe';

export const QUIET = endpointNames(0x5eed0000c0ffe1n);
export const LOAD = ['41', '42', '43'].map((h) => endpointNames(BigInt('0x' + h)));
export const CLIENT = '203.0.113.200';
export const SERVER = '203.0.113.201';
export const GWLB_SPORT = 40321;
export const COOKIE = 0x5eed;

/** The quiet flow's one datagram from GWLB: GWLB's three options + UDP CLIENT:40000 -> SERVER:53. */
export function quietDatagram(): { dgram: Uint8Array; header: Uint8Array } {
  const hdr = new Uint8Array(256);
  const len = writeGeneveHeader(hdr, 0, { protocol: 0x0800, eni: 0x5eed0000c0ffe1n, attachment: 0x77n, cookie: COOKIE });
  const inner = buildInnerPacket({ family: 4, proto: 17, src: CLIENT, dst: SERVER, srcPort: 40000, dstPort: 53, payload: new Uint8Array(16).fill(7) });
  return { dgram: concatBytes(hdr.subarray(0, len), inner), header: hdr.slice(0, len) };
}

/** Receive one datagram on GWLB's port 6081 (GWLB namespace); its payload in hex. Bounded: one
 * datagram or 10 s. Resolves once the socket is bound (`got` then waits for the datagram). */
export async function captureAtGwlb(t: Topology): Promise<{ got: Promise<string> }> {
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m) => { process.stdout.write('got ' + m.toString('hex') + '\\n'); process.exit(0); });
    s.bind(6081, ${JSON.stringify(t.gwlbIp)}, () => process.stdout.write('bound\\n'));
    setTimeout(() => process.exit(3), 10000);`;
  const a = nsSpawnArgs(t.gwlbNs, process.execPath, ['-e', script]);
  const proc = spawn(a.file, a.args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((r) => proc.on('close', () => r())); // its output read whole
  await waitFor('the capture socket', () => out.includes('bound') || proc.exitCode !== null);
  return { got: exited.then(() => /^got ([0-9a-f]+)$/m.exec(out)?.[1] ?? '') };
}

/** The quiet flow set up in the appliance namespace, its first packet sent and its first return
 * seen (metrics on `port`): SERVER owned (a socket receives the flow's packet there), CLIENT routed
 * out of the flow's gwo-. `back(m)` reads its returns from a /metrics map; `reply()` sends one. */
export async function startQuietFlow(t: Topology, port: number): Promise<{ header: Uint8Array; reply: () => Promise<void>; back: (m: Map<string, number>) => number; stop: () => void }> {
  const ip = (args: string[]): void => {
    const r = nsRun(t.applianceNs, 'ip', args);
    assert.equal(r.status, 0, r.stderr);
  };
  ip(['addr', 'add', `${SERVER}/32`, 'dev', 'lo']);
  const server = await startReplyServer(t.applianceNs, SERVER, 53, CLIENT, 40000);
  try {
    const quiet = quietDatagram();
    sendFromGwlb(t, GWLB_SPORT, [quiet.dgram]);
    await waitFor(`${QUIET.gwo} up`, () => links(t.applianceNs).some((l) => l.ifname === QUIET.gwo && l.flags.includes('UP')));
    ip(['route', 'replace', `${CLIENT}/32`, 'dev', QUIET.gwo]);
    const back = (m: Map<string, number>): number => mv(m, `gwlbtun_endpoint_packets_to_gwlb_total{eni="${QUIET.hex}",interface="${QUIET.gwi}"}`);
    await server.reply();
    await waitFor("the quiet flow's return", () => back(metrics(t, port)) === 1);
    return { header: quiet.header, reply: server.reply, back, stop: server.stop };
  } catch (e) {
    server.stop();
    throw e;
  }
}
