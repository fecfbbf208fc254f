// examples/hooks/two-arm-nat.sh end to end, once per firewall front end (nft, iptables).
//
// Three namespaces: GWLB (the probe, a small interactive GWLB: test/e2e/fixtures/gwlb-probe.ts),
// the appliance (the real daemon with the hook), and "internet", joined to the appliance by a veth
// (203.0.113.1 / 2001:db8:203::1 on the appliance, the egress interface; 203.0.113.2 /
// 2001:db8:203::2 in "internet", where an echo server runs). Two GWLB endpoints whose customers
// use the SAME address and port send to the server through GWLB -> gwlbtun -> gwi- -> NAT.
// What must hold:
//  - the server sees only the appliance's egress address (masquerade), one distinct NAT port per
//    endpoint although the customers' 5-tuples are identical;
//  - each answer comes back to GWLB de-NATed (customer address again), on the endpoint and flow
//    that sent the request (exact ENI, attachment ID, cookie, GWLB port), with the echoed payload:
//    UDP over IPv4 and IPv6, and a TCP handshake plus echoed data over IPv4;
//  - traffic opened from the internet towards a customer address goes nowhere;
//  - DESTROY removes every rule, table and route the hook made.
// The emulator's byte-for-byte check does not apply here (answers are new packets, not the
// requests coming back), hence the probe and these focused checks.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createTopology, destroyTopology, type Topology } from '../../src/sim/topology';
import { endpointNames } from '../../src/wire/eni';
import { nsRun, requireRoot, sleep, startDaemon, stopDaemon, tmpDir, udpSendInNs, type Daemon } from './lib';
import {
  createExtraNs,
  destroyExtraNs,
  ECHO_JS,
  expand6,
  firewallBackends,
  netfilterState,
  nsOk,
  onlyDefaultRules,
  parseInner,
  probeSend,
  PROBE_JS,
  randomU64,
  ruleSnapshot,
  startJsonChild,
  TCP,
  tcpPacket,
  TWO_ARM_NAT_HOOK,
  type ExtraNs,
  type JsonChild,
  type ProbePacket,
  type ProbeRx,
} from './fixtures/hooks-lib';
import { buildInnerPacket } from '../../src/testkit/build';

const ENI_A = 0x0a0000000000beefn;
const ENI_B = 0x0b0000000000cafen;
const EGRESS4 = '203.0.113.1';
const SERVER4 = '203.0.113.2';
const EGRESS6 = '2001:db8:203::1';
const SERVER6 = '2001:db8:203::2';
const CUSTOMER4 = '192.0.2.10';
const CUSTOMER6 = '2001:db8:1::10';
const ECHO_PORT = 7;

let nextPort = 31000;
function flow(eni: bigint, inner: Uint8Array): ProbePacket {
  return { eni, attachment: randomU64(), cookie: (Math.random() * 2 ** 32) >>> 0, port: nextPort++, inner };
}

/** The first datagram back on flow s (matched by its GWLB port) that satisfies pred, checked to
 * carry exactly s's identity. */
async function rxOn(probe: JsonChild, s: ProbePacket, what: string, pred: (r: ProbeRx) => boolean = () => true): Promise<ProbeRx> {
  const rx = (await probe.waitLine(what, (l) => l.type === 'rx' && l.srcPort === s.port && pred(l as unknown as ProbeRx), 5000)) as unknown as ProbeRx;
  assert.equal(rx.eni, s.eni.toString(16), `${what}: on the endpoint that sent the request`);
  assert.equal(rx.attachment, s.attachment.toString(16), `${what}: attachment ID`);
  assert.equal(rx.cookie, s.cookie, `${what}: the flow's cookie`);
  return rx;
}

const backends = firewallBackends();

test('both firewall front ends are installed (npm test installs them: scripts/test-prereqs.js)', () => {
  requireRoot();
  assert.deepEqual(backends.slice().sort(), ['iptables', 'nft']);
});

for (const fw of backends) {
  describe(`two-arm NAT hook (${fw})`, () => {
    let t: Topology | undefined;
    let inet: ExtraNs | undefined;
    let d: Daemon | undefined;
    let probe: JsonChild | undefined;
    let server: JsonChild | undefined;
    let dir = '';
    const tables: number[] = [];

    before(async () => {
      requireRoot();
      dir = tmpDir('nat');
      t = createTopology('hnat');
      inet = createExtraNs(t.id, t.applianceNs, 'inet');
      nsOk(t.applianceNs, 'ip', ['addr', 'add', `${EGRESS4}/24`, 'dev', inet.applianceIf]);
      nsOk(t.applianceNs, 'ip', ['addr', 'add', `${EGRESS6}/64`, 'dev', inet.applianceIf, 'nodad']);
      nsOk(inet.ns, 'ip', ['addr', 'add', `${SERVER4}/24`, 'dev', inet.peerIf]);
      nsOk(inet.ns, 'ip', ['addr', 'add', `${SERVER6}/64`, 'dev', inet.peerIf, 'nodad']);
      server = startJsonChild(inet.ns, ECHO_JS, [String(ECHO_PORT), '40']);
      await server.waitLine('echo server ready', (l) => l.type === 'ready');
      d = await startDaemon(t, ['-c', TWO_ARM_NAT_HOOK, '-r', TWO_ARM_NAT_HOOK, '--logging', 'core=info'], {
        GWLBTUN_EGRESS_IF: inet.applianceIf,
        GWLBTUN_FIREWALL: fw,
        RUNTIME_DIRECTORY: dir,
      });
      probe = startJsonChild(t.gwlbNs, PROBE_JS, [t.gwlbIp, t.applianceIp, '40']);
      await probe.waitLine('probe ready', (l) => l.type === 'ready');
    });

    after(async () => {
      try {
        if (probe !== undefined) await probe.stop();
        if (server !== undefined) await server.stop();
        if (d !== undefined) {
          const r = await stopDaemon(d);
          if (r.code !== 0) console.error(`daemon exit ${r.code} ${r.signal}\n${d.output()}`);
        }
      } finally {
        if (inet !== undefined) destroyExtraNs(inet);
        if (t !== undefined) destroyTopology(t);
        if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    for (const fam of [4, 6] as const) {
      test(`UDP over IPv${fam}: identical customer 5-tuples on two endpoints, NATed apart, each answer back on its own flow`, async () => {
        const [cust, srv, egress] = fam === 4 ? [CUSTOMER4, SERVER4, EGRESS4] : [CUSTOMER6, SERVER6, EGRESS6];
        const req = (who: string): Uint8Array =>
          buildInnerPacket({ family: fam, proto: 17, src: cust, dst: srv, srcPort: 40000, dstPort: ECHO_PORT, payload: Buffer.from(`udp${fam} from ${who}`) });
        const sent = [flow(ENI_A, req('A')), flow(ENI_B, req('B'))];
        probeSend(probe!, sent);
        for (const [i, s] of sent.entries()) {
          const who = i === 0 ? 'A' : 'B';
          const rx = await rxOn(probe!, s, `echo for ${who} (IPv${fam})`);
          const p = parseInner(rx.innerHex);
          const want = fam === 4 ? [srv, cust] : [expand6(srv), expand6(cust)];
          assert.deepEqual([p.src, p.dst, p.sport, p.dport], [...want, ECHO_PORT, 40000], 'de-NATed: addressed to the customer again');
          assert.equal(p.payload.toString(), `udp${fam} from ${who}`, "the echo of this endpoint's request, not the other's");
          assert.equal(p.ttl, 63, 'routed once by the appliance on the way back');
        }
        // The server's view: both requests, from the egress address, on two different NAT ports.
        const seen = server!.lines.filter((l) => l.type === 'udp' && String(l.data).startsWith(`udp${fam} from`));
        assert.equal(seen.length, 2, JSON.stringify(server!.lines));
        for (const l of seen) assert.equal(l.from, egress, `the server sees the egress address, not ${String(l.from)}`);
        assert.notEqual(seen[0].port, seen[1].port, 'one NAT binding per endpoint');
        if (fam === 4 && tables.length === 0) {
          for (const eni of [ENI_A, ENI_B]) {
            const nm = endpointNames(eni);
            const m = new RegExp(`two-arm-nat: ${nm.gwi} -> ${inet!.applianceIf} \\(masquerade\\), answers -> ${nm.gwo}, for vpce-${nm.hex}: zone (\\d+), mark (\\d+), tables (\\d+)/(\\d+) \\(${fw}\\)`).exec(d!.output());
            assert.ok(m, `CREATE logged for ${nm.gwi}:\n${d!.output()}`);
            tables.push(Number(m[3]), Number(m[4]));
          }
        }
      });
    }

    test('TCP over IPv4: handshake and echoed data through the NAT, both endpoints at once', async () => {
      const base = { src: CUSTOMER4, dst: SERVER4, sport: 40001, dport: ECHO_PORT };
      const syns = [flow(ENI_A, tcpPacket({ ...base, flags: TCP.SYN, seq: 1000, ack: 0 })), flow(ENI_B, tcpPacket({ ...base, flags: TCP.SYN, seq: 1000, ack: 0 }))];
      probeSend(probe!, syns);
      for (const [i, s] of syns.entries()) {
        const who = i === 0 ? 'A' : 'B';
        const sa = parseInner((await rxOn(probe!, s, `SYN-ACK for ${who}`, (r) => (parseInner(r.innerHex).tcpFlags & TCP.SYN) !== 0)).innerHex);
        assert.equal(sa.tcpFlags & (TCP.SYN | TCP.ACK), TCP.SYN | TCP.ACK);
        assert.deepEqual([sa.src, sa.dst, sa.sport, sa.dport, sa.tcpAck], [SERVER4, CUSTOMER4, ECHO_PORT, 40001, 1001]);
        // Complete the handshake and send data on the same GWLB flow (same port, cookie, header).
        const data = Buffer.from(`tcp from ${who}`);
        probeSend(probe!, [{ ...s, inner: tcpPacket({ ...base, flags: TCP.ACK | TCP.PSH, seq: 1001, ack: sa.tcpSeq + 1, payload: data }) }]);
        const echo = parseInner((await rxOn(probe!, s, `echoed data for ${who}`, (r) => parseInner(r.innerHex).payload.length > 0)).innerHex);
        assert.equal(echo.payload.toString(), `tcp from ${who}`);
        assert.deepEqual([echo.src, echo.dst, echo.dport, echo.tcpSeq, echo.tcpAck], [SERVER4, CUSTOMER4, 40001, sa.tcpSeq + 1, 1001 + data.length]);
        // Reset the connection, so that the server does not keep retransmitting its echo.
        probeSend(probe!, [{ ...s, inner: tcpPacket({ ...base, flags: TCP.RST, seq: 1001 + data.length, ack: 0 }) }]);
      }
      const accepts = server!.lines.filter((l) => l.type === 'tcp-accept');
      assert.equal(accepts.length, 2, JSON.stringify(server!.lines));
      for (const l of accepts) assert.equal(l.from, EGRESS4);
      assert.notEqual(accepts[0].port, accepts[1].port);
      const got = server!.lines.filter((l) => l.type === 'tcp-data').map((l) => String(l.data)).sort();
      assert.deepEqual(got, ['tcp from A', 'tcp from B']);
    });

    test('a connection opened from the internet towards a customer address goes nowhere', async () => {
      const before = probe!.lines.length;
      // The "internet" routes the customer range to the appliance and sends to a customer's
      // address and port (not an answer to anything the customer sent).
      nsOk(inet!.ns, 'ip', ['route', 'add', '192.0.2.0/24', 'via', EGRESS4]);
      udpSendInNs(inet!.ns, SERVER4, CUSTOMER4, 40000, 3);
      await sleep(500);
      const towardsCustomer = probe!.lines.slice(before).filter((l) => l.type === 'rx' && parseInner((l as unknown as ProbeRx).innerHex).dport === 40000);
      assert.deepEqual(towardsCustomer, [], 'nothing reached GWLB');
      // Why: only a packet carrying an endpoint's mark (an answer, restored from its connection)
      // is routed to that endpoint's gwo-; an unmarked one from the egress side is not.
      const route = (extra: string[]): string => {
        const r = nsRun(t!.applianceNs, 'ip', ['-4', 'route', 'get', CUSTOMER4, 'from', SERVER4, 'iif', inet!.applianceIf, ...extra]);
        return r.stdout + r.stderr;
      };
      assert.doesNotMatch(route([]), /gwo-/, 'unmarked: not towards any endpoint');
      const mark = /mark (\d+), tables/.exec(d!.output())![1];
      assert.match(route(['mark', mark]), /dev gwo-/, "marked: into the endpoint's gwo-");
    });

    test('CREATE run again on a live endpoint keeps its numbers and leaves one copy of everything', () => {
      const ns = t!.applianceNs;
      const before = ruleSnapshot(ns);
      const nm = endpointNames(ENI_B);
      const r = nsRun(ns, 'env', [`GWLBTUN_EGRESS_IF=${inet!.applianceIf}`, `GWLBTUN_FIREWALL=${fw}`, `RUNTIME_DIRECTORY=${dir}`, TWO_ARM_NAT_HOOK, 'CREATE', nm.gwi, nm.gwo, nm.hex]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`tables ${tables[2]}/${tables[3]} \\(${fw}\\)`));
      assert.equal(ruleSnapshot(ns), before);
    });

    test('DESTROY at shutdown removes every rule, table and route of the hook', async () => {
      const ns = t!.applianceNs;
      const r = await stopDaemon(d!);
      d = undefined;
      assert.equal(r.code, 0);
      const s = netfilterState(ns);
      assert.ok(onlyDefaultRules(s.rules), `IPv4 rules left:\n${s.rules}`);
      assert.ok(onlyDefaultRules(s.rules6), `IPv6 rules left:\n${s.rules6}`);
      assert.ok(!s.nft.includes('gwlbtun'), `nftables left:\n${s.nft}`);
      assert.ok(!s.ipt.includes('gwlbtun'), `iptables left:\n${s.ipt}`);
      assert.equal(tables.length, 4);
      for (const tb of tables) {
        for (const f of ['-4', '-6']) assert.equal(nsRun(ns, 'ip', [f, 'route', 'show', 'table', String(tb)]).stdout.trim(), '', `table ${tb} (${f}) empty`);
      }
    });
  });
}
