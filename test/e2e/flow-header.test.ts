// A Geneve header longer than the flow table stores (60 bytes; GWLB's is 40), end to end
// (docs/security.md, "stored Geneve header"): the packet is dropped and counted once
// (flow_header_too_long), and the flow's older header, with its older cookie, is never used again:
// a return packet of that 5-tuple finds no flow (no_flow) instead of going back to GWLB with it.
// Hand-made datagrams from the GWLB namespace; returns sent out of gwo-<X> in the appliance's.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildInnerPacket, concatBytes } from '../../src/testkit/build';
import { endpointNames } from '../../src/wire/eni';
import { makeGeneveOption, writeGeneveHeader } from '../../src/wire/geneve';
import { links, metrics, nsRun, sendFromGwlb, startReplyServer, useEnv, waitFor } from './lib';
import { drop, mv } from './probe';

const PORT = 8191;
const ENI = 0x5eed0000c0ffeen;
const names = endpointNames(ENI);
const GWLB_SPORT = 40123; // the outer UDP source port "GWLB" uses for the flow
const CLIENT = '192.0.2.10';
const SERVER = '198.51.100.10';

/** Geneve (GWLB's three options, plus extraBytes of one more option when > 0) + inner UDP CLIENT:40000 -> SERVER:53. */
function datagram(cookie: number, extraBytes: number): Uint8Array {
  const hdr = new Uint8Array(256);
  const extra = extraBytes === 0 ? undefined : makeGeneveOption(0xff01, 7, new Uint8Array(extraBytes - 4).fill(0x5a));
  const len = writeGeneveHeader(hdr, 0, { protocol: 0x0800, eni: ENI, attachment: 0x1234n, cookie, extraOptions: extra });
  const inner = buildInnerPacket({ family: 4, proto: 17, src: CLIENT, dst: SERVER, srcPort: 40000, dstPort: 53, payload: new Uint8Array(32).fill(cookie) });
  return concatBytes(hdr.subarray(0, len), inner);
}

describe('a Geneve header too long to store', () => {
  const env = useEnv('fhdr', { args: ['-p', String(PORT)] });

  test('is dropped once as flow_header_too_long, and the flow\'s older header is never used for a return', async () => {
    const { t } = env;
    const m = (): Map<string, number> => metrics(t, PORT);
    const delivered = (x: Map<string, number>): number => mv(x, `gwlbtun_endpoint_packets_from_gwlb_total{eni="${names.hex}",interface="${names.gwi}"}`);
    const sent = (x: Map<string, number>): number => mv(x, 'gwlbtun_raw_packets_sent_total');
    assert.equal(datagram(1, 0).length - 28 - 32, 40);
    assert.equal(datagram(2, 32).length - 28 - 32, 72, 'over the 60 bytes stored');

    // The appliance owns SERVER, and a socket receives the flow's inbound packets there (no ICMP
    // port unreachable that could be sent back); no forwarding.
    for (const args of [['sysctl', '-qw', 'net.ipv4.ip_forward=0'], ['ip', 'addr', 'add', `${SERVER}/32`, 'dev', 'lo']]) {
      const r = nsRun(t.applianceNs, args[0], args.slice(1));
      assert.equal(r.status, 0, r.stderr);
    }
    const server = await startReplyServer(t.applianceNs, SERVER, 53, CLIENT, 40000);
    try {
      // 1. The flow with GWLB's 40-byte header: delivered; its return goes back to GWLB.
      sendFromGwlb(t, GWLB_SPORT, [datagram(1, 0)]);
      await waitFor('the first packet delivered', () => delivered(m()) === 1);
      await waitFor(`${names.gwo}`, () => links(t.applianceNs).some((l) => l.ifname === names.gwo && l.flags.includes('UP')));
      const rt = nsRun(t.applianceNs, 'ip', ['route', 'replace', `${CLIENT}/32`, 'dev', names.gwo]);
      assert.equal(rt.status, 0, rt.stderr);
      const m0 = m();
      await server.reply();
      await waitFor('the return sent to GWLB', () => sent(m()) === sent(m0) + 1);

      // 2. The same 5-tuple with a 72-byte header (a new cookie GWLB would expect back): dropped,
      //    counted once, not delivered.
      sendFromGwlb(t, GWLB_SPORT, [datagram(2, 32)]);
      const m1 = await waitFor('flow_header_too_long', () => {
        const x = m();
        return drop(x, 'flow_header_too_long') === 1 ? x : undefined;
      });
      assert.equal(delivered(m1), 1, 'the long-header packet was not delivered');

      // 3. A return now finds no flow: never sent with the first packet's header and cookie.
      await server.reply();
      const m2 = await waitFor('no_flow', () => {
        const x = m();
        return drop(x, 'no_flow') === drop(m1, 'no_flow') + 1 ? x : undefined;
      });
      assert.equal(sent(m2), sent(m0) + 1, 'nothing more was sent to GWLB');

      // 4. A header that fits again: delivered, and returns flow again.
      sendFromGwlb(t, GWLB_SPORT, [datagram(3, 0)]);
      await waitFor('the third packet delivered', () => delivered(m()) === 2);
      await server.reply();
      await waitFor('the return sent to GWLB', () => sent(m()) === sent(m0) + 2);
      const end = m();
      assert.equal(drop(end, 'flow_header_too_long'), 1);
      // The endpoint's drops: those two, and the kernel's IPv6 housekeeping on the new interfaces.
      const epDrops = mv(end, `gwlbtun_endpoint_drops_total{eni="${names.hex}",interface="${names.gwi}"}`);
      assert.equal(epDrops - drop(end, 'link_local'), 2, 'flow_header_too_long and no_flow, each once');
    } finally {
      server.stop();
    }
  });
});
