// Fragments and ICMP errors end to end (docs/architecture.md, "Fragments", "ICMP errors"): the mini
// GWLB (test/e2e/fixtures/gwlb-probe.ts) sends crafted Geneve to the real daemon with the one-arm
// hook (via fixtures/record-hook.sh) and checks which flow's Geneve header each returned packet has.
//  - Eight UDP flows between one address pair, differing only in the client port, each sending
//    1028-byte datagrams cut in 4 fragments, the flows' fragments interleaved (and in a second
//    burst each datagram's fragments last first): every fragment must come back with the header of
//    its own datagram's flow (before datagrams were tracked most came back with another's).
//  - A flood of first fragments with distinct IDs: the datagram table evicts (counted) and stays
//    at its size; fragmented traffic is still matched afterwards.
//  - ICMP errors the appliance generates: a REJECT rule (port unreachable) and a too-big DF packet
//    on a smaller egress MTU (fragmentation needed / packet too big), IPv4 and IPv6: each error
//    reaches GWLB with the Geneve header of the flow whose packet it quotes, and is counted.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildInnerPacket } from '../../src/testkit/build';
import { endpointNames } from '../../src/wire/eni';
import { fragmentPacket } from '../../src/sim/fragment';
import { metrics, RECORD_HOOK, sleep, useEnv, waitFor } from './lib';
import { nsOk, probeSend, PROBE_JS, randomU64, startJsonChild, type JsonChild, type ProbePacket, type ProbeRx } from './fixtures/hooks-lib';

const HEALTH_PORT = 8087;
const ENI = 0x0f00000000001234n;
const NAMES = endpointNames(ENI);
const CLIENT = { 4: '192.0.2.10', 6: '2001:db8:1::10' } as const;
const SERVER = { 4: '198.51.100.20', 6: '2001:db8:2::20' } as const;
/** The appliance's own address for the ICMP errors it sends (on lo). */
const APPL = { 4: '203.0.113.254', 6: '2001:db8:ff::1' } as const;
const FLOWS = 8;

const ATTACHMENT = randomU64();
let nextPort = 20000;
let nextCookie = 0x10000;
interface Flow {
  port: number;
  cookie: number;
}
function newFlow(): Flow {
  return { port: nextPort++, cookie: nextCookie++ };
}
function pkt(f: Flow, inner: Uint8Array): ProbePacket {
  return { eni: ENI, attachment: ATTACHMENT, cookie: f.cookie, port: f.port, inner };
}

function udp(family: 4 | 6, sport: number, dport: number, payloadLen: number, df = false): Uint8Array {
  const payload = new Uint8Array(payloadLen);
  for (let i = 0; i < payloadLen; i++) payload[i] = (i + sport) & 0xff;
  const p = buildInnerPacket({ family, proto: 17, src: CLIENT[family], dst: SERVER[family], srcPort: sport, dstPort: dport, payload });
  if (df && family === 4) {
    p[6] |= 0x40;
    p[10] = 0;
    p[11] = 0;
    let s = 0;
    for (let i = 0; i < 20; i += 2) s += (p[i] << 8) | p[i + 1];
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    const c = ~s & 0xffff;
    p[10] = c >> 8;
    p[11] = c & 0xff;
  }
  return p;
}

/** Fragment offset in bytes (IPv4 or IPv6 fragment header). */
function fragOff(innerHex: string): number {
  const b = Buffer.from(innerHex, 'hex');
  return b[0] >> 4 === 4 ? (b.readUInt16BE(6) & 0x1fff) * 8 : b.readUInt16BE(42) & 0xfff8;
}

/** Fragment identification of a returned inner packet, or -1 when it is not a fragment. */
function fragId(innerHex: string): number {
  const b = Buffer.from(innerHex, 'hex');
  if (b[0] >> 4 === 4) return (b.readUInt16BE(6) & 0x3fff) !== 0 ? b.readUInt16BE(4) : -1;
  return b[6] === 44 ? b.readUInt32BE(44) : -1;
}

function rxs(probe: JsonChild, from: number): ProbeRx[] {
  return probe.lines.slice(from).filter((l) => l.type === 'rx') as unknown as ProbeRx[];
}

describe('fragments of flows sharing an address pair, and ICMP errors, go back with their flow', () => {
  const env = useEnv('frag', { args: ['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(HEALTH_PORT)] });
  let probe: JsonChild | undefined;
  let nextId = 1;

  before(async () => {
    probe = startJsonChild(env.t.gwlbNs, PROBE_JS, [env.t.gwlbIp, env.t.applianceIp, '90']);
    await probe.waitLine('probe ready', (l) => l.type === 'ready');
    // Create the endpoint with one plain packet and wait for it to come back (hook done, routed).
    const f = newFlow();
    const mark = probe.lines.length;
    probeSend(probe, [pkt(f, udp(4, 1000, 2000, 16))]);
    await waitFor('the first packet back', () => rxs(probe!, mark).some((r) => r.srcPort === f.port), 15000);
  });
  after(async () => {
    if (probe !== undefined) await probe.stop();
  });

  /** Send interleaved bursts of fragmented datagrams on FLOWS flows of one address pair; returns
   * how many fragments came back and how many carried another flow's header. */
  async function burst(family: 4 | 6, rounds: number, reverse: boolean): Promise<{ sent: number; back: number; wrong: string[] }> {
    const flows = Array.from({ length: FLOWS }, () => newFlow());
    const owner = new Map<number, Flow>(); // fragment id -> flow
    const sent: ProbePacket[] = [];
    for (let r = 0; r < rounds; r++) {
      const per = flows.map((f, i) => {
        const id = nextId++;
        owner.set(id, f);
        // 1028-byte IPv4 datagram (1048 for IPv6): 4 fragments of at most 256 bytes of payload.
        const frags = fragmentPacket(udp(family, 40000 + i, 4500, 1000), 256, id);
        return reverse ? frags.reverse() : frags;
      });
      for (let j = 0; j < per[0].length; j++) for (let i = 0; i < FLOWS; i++) sent.push(pkt(flows[i], per[i][j]));
    }
    const mark = probe!.lines.length;
    probeSend(probe!, sent);
    const ports = new Set(flows.map((f) => f.port));
    const mine = (): ProbeRx[] => rxs(probe!, mark).filter((r) => ports.has(r.srcPort) || owner.has(fragId(r.innerHex)));
    await waitFor(`${sent.length} fragments back`, () => mine().length >= sent.length, 15000).catch(() => undefined);
    const got = mine();
    const wrong: string[] = [];
    for (const r of got) {
      const f = owner.get(fragId(r.innerHex));
      if (f === undefined) wrong.push(`not a fragment we sent: ${r.innerHex.slice(0, 80)}`);
      else if (r.srcPort !== f.port || r.cookie !== f.cookie || r.eni !== ENI.toString(16)) wrong.push(`id ${fragId(r.innerHex)} offset ${fragOff(r.innerHex)} of flow port ${f.port} came back on port ${r.srcPort} cookie ${r.cookie}`);
    }
    return { sent: sent.length, back: got.length, wrong };
  }

  for (const family of [4, 6] as const) {
    test(`IPv${family}: ${FLOWS} flows on one address pair, interleaved fragments, in order and last-first: each back with its own flow's header`, async () => {
      const before = metrics(env.t, HEALTH_PORT);
      for (const reverse of [false, true]) {
        const r = await burst(family, 10, reverse);
        assert.deepEqual(r.wrong.slice(0, 10), [], `${r.wrong.length} of ${r.back} fragments with another flow's header (${reverse ? 'last first' : 'in order'})`);
        assert.equal(r.back, r.sent, `all ${r.sent} fragments back (${reverse ? 'last first' : 'in order'})`);
      }
      const m = metrics(env.t, HEALTH_PORT);
      const by = (k: string): number => (m.get(`gwlbtun_fragments_returned_total{by="${k}"}`) ?? 0) - (before.get(`gwlbtun_fragments_returned_total{by="${k}"}`) ?? 0);
      assert.equal(by('datagram') + by('address_pair'), 2 * 10 * FLOWS * 4, 'every fragment counted once');
      assert.ok(by('datagram') >= 10 * FLOWS * 4, `most by their datagram (${by('datagram')}, by pair ${by('address_pair')})`);
    });
  }

  test('a flood of first fragments stays within the datagram table: oldest evicted and counted', async () => {
    const before = metrics(env.t, HEALTH_PORT);
    const f = newFlow();
    const TOTAL = 10000;
    for (let sent = 0; sent < TOTAL; sent += 500) {
      const batch: ProbePacket[] = [];
      // First fragments only (8 bytes: the UDP header), never completed, distinct IDs.
      for (let i = 0; i < 500; i++) batch.push(pkt(f, fragmentPacket(udp(4, 50000, 4600, 40), 8, nextId++ & 0xffff)[0]));
      probeSend(probe!, batch);
      await sleep(20);
    }
    const m = await waitFor(
      'the flood received',
      () => {
        const x = metrics(env.t, HEALTH_PORT);
        return (x.get('gwlbtun_udp_packets_total') ?? 0) - (before.get('gwlbtun_udp_packets_total') ?? 0) >= TOTAL * 0.9 ? x : undefined;
      },
      15000,
    ).catch(() => metrics(env.t, HEALTH_PORT));
    const d = (k: string): number => (m.get(k) ?? 0) - (before.get(k) ?? 0);
    const received = d('gwlbtun_udp_packets_total');
    assert.ok(received >= TOTAL * 0.9, `received ${received} of ${TOTAL}`);
    const evictions = d('gwlbtun_fragment_table_evictions_total');
    assert.ok(evictions >= received - 4096, `evictions ${evictions} >= ${received} received - 4096 entries`);
    // Fragmented traffic is still matched after the flood.
    const r = await burst(4, 2, false);
    assert.deepEqual(r.wrong, []);
    assert.equal(r.back, r.sent);
  });

  describe('ICMP errors generated by the appliance', () => {
    before(() => {
      const ns = env.t.applianceNs;
      // Errors are sent from the appliance's own address, routed back out of gwo- to the client.
      nsOk(ns, 'ip', ['addr', 'add', `${APPL[4]}/32`, 'dev', 'lo']);
      nsOk(ns, 'ip', ['addr', 'add', `${APPL[6]}/128`, 'dev', 'lo', 'nodad']);
      nsOk(ns, 'ip', ['route', 'add', `${CLIENT[4]}/32`, 'dev', NAMES.gwo, 'src', APPL[4]]);
      nsOk(ns, 'ip', ['-6', 'route', 'add', `${CLIENT[6]}/128`, 'dev', NAMES.gwo, 'src', APPL[6]]);
      // No ICMP rate limit in this namespace, so every error is sent.
      nsOk(ns, 'sysctl', ['-q', '-w', 'net.ipv4.icmp_ratelimit=0', 'net.ipv6.icmp.ratelimit=0']);
      nsOk(ns, 'iptables', ['-I', 'FORWARD', '-i', NAMES.gwi, '-p', 'udp', '--dport', '9', '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable']);
      nsOk(ns, 'ip6tables', ['-I', 'FORWARD', '-i', NAMES.gwi, '-p', 'udp', '--dport', '9', '-j', 'REJECT', '--reject-with', 'icmp6-port-unreachable']);
    });

    /** Send one packet on each of `n` flows; every flow must get an ICMP error of `type`/`code`
     * from the appliance to the client, with exactly that flow's Geneve header. */
    async function expectErrors(family: 4 | 6, n: number, make: (sport: number) => Uint8Array, type: number, code: number): Promise<void> {
      const before = metrics(env.t, HEALTH_PORT);
      const flows = Array.from({ length: n }, () => newFlow());
      const mark = probe!.lines.length;
      probeSend(probe!, flows.map((f, i) => pkt(f, make(41000 + i))));
      const icmp = family === 4 ? 1 : 58;
      const isErr = (r: ProbeRx): boolean => {
        const b = Buffer.from(r.innerHex, 'hex');
        return family === 4 ? b[0] >> 4 === 4 && b[9] === icmp && b[20] === type && b[21] === code : b[0] >> 4 === 6 && b[6] === icmp && b[40] === type && b[41] === code;
      };
      const errs = await waitFor(`${n} ICMPv${family === 4 ? 4 : 6} type ${type} errors`, () => {
        const e = rxs(probe!, mark).filter(isErr);
        return e.length >= n ? e : undefined;
      }, 10000);
      for (const [i, f] of flows.entries()) {
        const e = errs.filter((r) => r.srcPort === f.port);
        assert.equal(e.length, 1, `one error on flow ${i}'s GWLB port`);
        assert.equal(e[0].cookie, f.cookie, `flow ${i}'s cookie`);
        const b = Buffer.from(e[0].innerHex, 'hex');
        // The quoted packet is this flow's: its client port.
        const quotedSport = family === 4 ? b.readUInt16BE(28 + 20) : b.readUInt16BE(48 + 40);
        assert.equal(quotedSport, 41000 + i, 'the error quotes this flow\'s packet');
      }
      const m = metrics(env.t, HEALTH_PORT);
      const counted = (m.get('gwlbtun_icmp_errors_returned_total') ?? 0) - (before.get('gwlbtun_icmp_errors_returned_total') ?? 0);
      assert.equal(counted, n, 'each error counted');
    }

    for (const family of [4, 6] as const) {
      test(`IPv${family}: port unreachable from a REJECT rule, per flow on one address pair`, async () => {
        await expectErrors(family, 4, (sport) => udp(family, sport, 9, 32), family === 4 ? 3 : 1, family === 4 ? 3 : 4);
      });
    }

    for (const family of [4, 6] as const) {
      test(`IPv${family}: too-big packet on a 1280-byte egress MTU: ${family === 4 ? 'fragmentation needed' : 'packet too big'} back with the flow's header`, async () => {
        nsOk(env.t.applianceNs, 'ip', ['link', 'set', NAMES.gwo, 'mtu', '1280']);
        try {
          await expectErrors(family, 3, (sport) => udp(family, sport, 4700, 1400, true), family === 4 ? 3 : 2, family === 4 ? 4 : 0);
        } finally {
          nsOk(env.t.applianceNs, 'ip', ['link', 'set', NAMES.gwo, 'mtu', '8500']);
        }
      });
    }
  });
});
