// The emulator's flow plan and verifier, fed bytes directly (no sockets, no namespaces).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FlowPlan, PAYLOAD_MAGIC, seqComp } from '../../src/sim/flows';
import { Bad, BAD_NAMES, BAD_SLOTS, SEQ_WINDOW, Verifier } from '../../src/sim/verifier';
import { GeneveInfo, parseGeneve } from '../../src/wire/geneve';
import { OUTER_HEADER_LEN } from '../../src/wire/outer';
import { internetChecksum, pseudoHeaderSum } from '../../src/testkit/checksum';
import { resolveOptions } from '../../src/sim/emulator';
import { parseEmulateArgs, parseEni } from '../../src/sim/cli';

const GWLB = 0xc6120001; // 198.18.0.1
const APPL = 0xc6120002; // 198.18.0.2
const EP_A = 0x0123456789abcdefn;
const EP_B = 0xffffffffffffffffn;

function plan(ttlDecrement = 1): FlowPlan {
  return new FlowPlan({
    gwlbIp: '198.18.0.1',
    applianceIp: '198.18.0.2',
    endpoints: [EP_A, EP_B],
    flowsPerKind: 2,
    families: [4, 6],
    protos: ['tcp', 'udp', 'icmp'],
    innerSize: 200,
    ttlDecrement,
    attachments: [0x1111n, 0x2222n],
  });
}

/** Pretend the sender handed out `n` sequence numbers on every flow. */
function sentAll(v: Verifier, n: number): void {
  for (let f = 0; f < v.plan.count; f++) v.nextSeq[f] += n;
}

function feed(v: Verifier, bytes: Uint8Array, opts: { port: number; src?: number; dst?: number; truncated?: boolean }): number {
  // Put it at an odd offset inside a larger Buffer, as in a receive slot area.
  const b = Buffer.alloc(bytes.length + 64);
  b.set(bytes, 13);
  return v.verify(b, 13, bytes.length, opts.src ?? APPL, opts.port, opts.dst ?? GWLB, opts.truncated ?? false);
}

function badCount(v: Verifier, ep: number, r: number): number {
  return v.bad[ep * BAD_SLOTS + r];
}

test('flow plan: counts, unique ports, documentation addresses, unique address pairs', () => {
  const p = plan();
  assert.equal(p.count, 2 * 2 * 3 * 2);
  const ports = new Set<number>();
  const pairs = new Set<string>();
  for (let f = 0; f < p.count; f++) {
    ports.add(p.port[f]);
    assert.equal(p.flowOfPort(p.port[f]), f);
    pairs.add(`${p.proto[f]} ${p.src[f]} ${p.dst[f]}`);
    if (p.family[f] === 4) {
      assert.match(p.src[f], /^192\.0\.2\.\d+$/);
      assert.match(p.dst[f], /^(198\.51\.100|203\.0\.113)\.\d+$/);
    } else {
      assert.match(p.src[f], /^2001:db8:/);
      assert.match(p.dst[f], /^2001:db8:/);
    }
  }
  assert.equal(ports.size, p.count);
  // Address pairs are unique even ignoring the protocol (ICMP flows are keyed on addresses).
  assert.equal(new Set([...pairs].map((s) => s.split(' ').slice(1).join(' '))).size, p.count);
  assert.equal(p.flowOfPort(9999), -1);
});

test('flow plan: outbound packet is outer IPv4/UDP to 6081 + GWLB Geneve + inner with magic, flow, seq', () => {
  const p = plan();
  const gi = new GeneveInfo();
  for (let f = 0; f < p.count; f++) {
    const pkt = p.outboundPacket(f, 77);
    const dv = new DataView(pkt.buffer, pkt.byteOffset, pkt.byteLength);
    assert.equal(pkt[0], 0x45);
    assert.equal(dv.getUint16(2), pkt.length);
    assert.equal(pkt[9], 17);
    assert.equal(dv.getUint32(12), GWLB);
    assert.equal(dv.getUint32(16), APPL);
    assert.equal(dv.getUint16(20), p.port[f]);
    assert.equal(dv.getUint16(22), 6081);
    assert.equal(dv.getUint16(24), pkt.length - 20);
    assert.equal(parseGeneve(pkt, OUTER_HEADER_LEN, pkt.length - OUTER_HEADER_LEN, gi), 0);
    const eni = f < p.count / 2 ? EP_A : EP_B;
    assert.equal((BigInt(gi.eniHi) << 32n) | BigInt(gi.eniLo), eni);
    assert.equal(gi.cookie, p.cookie[f]);
    assert.equal(gi.protocol, p.family[f] === 4 ? 0x0800 : 0x86dd);
    const s = p.tmplSeqOff[f];
    assert.equal(dv.getUint32(s - 8), PAYLOAD_MAGIC);
    assert.equal(dv.getUint32(s - 4), f);
    assert.equal(dv.getUint32(s), 77);
    assert.equal(dv.getUint16(s + 4), seqComp(77));
  }
});

test('patched sequence numbers keep every TCP/UDP/ICMP checksum valid', () => {
  const p = plan();
  fc.assert(
    fc.property(fc.nat({ max: p.count - 1 }), fc.integer({ min: 0, max: 0xffffffff }), (f, seq) => {
      const pkt = p.outboundPacket(f, seq);
      const inner = pkt.subarray(OUTER_HEADER_LEN + p.hdrLen[f]);
      const v4 = p.family[f] === 4;
      const l4off = v4 ? 20 : 40;
      const l4 = inner.subarray(l4off);
      const proto = p.proto[f];
      const pseudo = proto === 1 ? 0 : pseudoHeaderSum(
        inner.subarray(v4 ? 12 : 8, v4 ? 16 : 24), inner.subarray(v4 ? 16 : 24, v4 ? 20 : 40), proto, l4.length);
      // A correct checksum makes the sum over the segment (with its checksum) fold to 0xffff.
      return internetChecksum(l4, 0, l4.length, pseudo) === 0;
    }),
    { seed: 42, numRuns: 300 },
  );
});

test('verifier: good returns verify; wrong cookie, ENI, inner byte and others counted by reason', () => {
  const p = plan(1);
  const v = new Verifier(p);
  sentAll(v, 10);
  const fA = 0; // endpoint A
  const fB = p.count - 1; // endpoint B
  assert.equal(p.ep[fA], 0);
  assert.equal(p.ep[fB], 1);

  // Good: what an appliance that forwards through the kernel (TTL - 1) returns.
  assert.equal(feed(v, p.expectedReturn(fA, 0), { port: p.port[fA] }), 0);
  assert.equal(feed(v, p.expectedReturn(fB, 3), { port: p.port[fB] }), 0);
  assert.equal(v.verified[0], 1);
  assert.equal(v.verified[1], 1);

  // Wrong cookie: header differs, ENI right.
  const hdrOff = 0;
  const cookieAt = (f: number) => {
    const b = p.expectedReturn(f, 1);
    const gi = new GeneveInfo();
    assert.equal(parseGeneve(b, hdrOff, b.length, gi), 0);
    return { b, gi };
  };
  {
    const { b } = cookieAt(fA);
    // The cookie is the last 4 bytes of the 40-byte header (option type 3 comes last).
    b[p.hdrLen[fA] - 1] ^= 0x01;
    assert.equal(feed(v, b, { port: p.port[fA] }), Bad.BAD_HEADER);
    assert.equal(badCount(v, 0, Bad.BAD_HEADER), 1);
  }
  // Wrong ENI: endpoint B's packet carrying endpoint A's ENI ID.
  {
    const b = p.expectedReturn(fB, 1);
    const a = p.expectedReturn(fA, 1);
    b.set(a.subarray(8, 20), 8); // option header + ENI data of A (same layout)
    assert.equal(feed(v, b, { port: p.port[fB] }), Bad.WRONG_ENDPOINT);
    assert.equal(badCount(v, 1, Bad.WRONG_ENDPOINT), 1);
  }
  // One inner byte flipped, anywhere: before the seq, in the filler, and the TTL itself.
  for (const where of [p.hdrLen[fA] + 1, p.expLen[fA] - 1, p.hdrLen[fA] + (p.family[fA] === 4 ? 8 : 7)]) {
    const b = p.expectedReturn(fA, 2);
    b[where] ^= 0x40;
    assert.equal(feed(v, b, { port: p.port[fA] }), Bad.INNER_MISMATCH, `byte ${where}`);
  }
  // Inner not decremented (pass-through where forwarding was expected).
  {
    const out = p.outboundPacket(fA, 2);
    assert.equal(feed(v, out.subarray(OUTER_HEADER_LEN), { port: p.port[fA] }), Bad.INNER_MISMATCH);
  }
  // Seq and its compensation word must agree.
  {
    const b = p.expectedReturn(fA, 2);
    b[p.expSeqOff[fA] + 3] ^= 1;
    assert.equal(feed(v, b, { port: p.port[fA] }), Bad.INNER_MISMATCH);
  }
  // Truncated inner.
  assert.equal(feed(v, p.expectedReturn(fA, 2).subarray(0, p.expLen[fA] - 1), { port: p.port[fA] }), Bad.INNER_MISMATCH);
  assert.equal(feed(v, p.expectedReturn(fA, 2).subarray(0, 20), { port: p.port[fA] }), Bad.TOO_SHORT);
  assert.equal(feed(v, p.expectedReturn(fA, 2), { port: 9999 }), Bad.UNKNOWN_PORT);
  assert.equal(v.bad[2 * BAD_SLOTS + Bad.UNKNOWN_PORT], 1, 'unattributed slot');
  assert.equal(feed(v, p.expectedReturn(fA, 2), { port: p.port[fA], src: 0xc6120063 }), Bad.BAD_SOURCE);
  assert.equal(feed(v, p.expectedReturn(fA, 2), { port: p.port[fA], dst: 0xc6120063 }), Bad.BAD_DESTINATION);
  // Negative int32 addresses (as the native layer's Int32Array holds them) compare equal.
  assert.equal(feed(v, p.expectedReturn(fA, 2), { port: p.port[fA], src: APPL | 0, dst: GWLB | 0 }), 0);
  assert.equal(feed(v, p.expectedReturn(fA, 2), { port: p.port[fA], truncated: true }), Bad.TRUNCATED);
  assert.equal(feed(v, p.expectedReturn(fA, 10), { port: p.port[fA] }), Bad.UNKNOWN_SEQ);
  // Duplicates and reordering.
  assert.equal(feed(v, p.expectedReturn(fA, 2), { port: p.port[fA] }), Bad.DUPLICATE);
  assert.equal(feed(v, p.expectedReturn(fA, 1), { port: p.port[fA] }), Bad.REORDERED);
  assert.equal(feed(v, p.expectedReturn(fA, 1), { port: p.port[fA] }), Bad.DUPLICATE);
  assert.equal(feed(v, p.expectedReturn(fA, 0), { port: p.port[fA] }), Bad.DUPLICATE);
  // Verified on A: seq 0, 2, 1 (reordered counts as verified).
  assert.equal(v.verified[0], 3);
  assert.equal(badCount(v, 0, Bad.REORDERED), 1);
  assert.equal(badCount(v, 0, Bad.DUPLICATE), 3);
  assert.equal(BAD_NAMES[Bad.WRONG_ENDPOINT], 'wrong_endpoint');
});

test('verifier: a new phase expects the new cookies; old headers and old seqs are rejected', () => {
  const p = plan(0);
  const v = new Verifier(p);
  sentAll(v, 5);
  const oldCookies = p.cookie.slice();
  const old = p.expectedReturn(3, 4);
  assert.equal(feed(v, old, { port: p.port[3] }), 0);
  p.newCookies();
  v.beginPhase();
  for (let f = 0; f < p.count; f++) assert.notEqual(p.cookie[f], oldCookies[f]);
  sentAll(v, 5);
  assert.equal(feed(v, old, { port: p.port[3] }), Bad.BAD_HEADER, 'phase-1 header');
  assert.equal(feed(v, p.expectedReturn(3, 4), { port: p.port[3] }), Bad.STALE_PHASE, 'new header, old seq');
  assert.equal(feed(v, p.expectedReturn(3, 5), { port: p.port[3] }), 0);
  assert.equal(v.phaseVerified, 1);
  // The outbound template carries the new cookie too.
  const gi = new GeneveInfo();
  const out = p.outboundPacket(3, 5);
  assert.equal(parseGeneve(out, OUTER_HEADER_LEN, out.length - OUTER_HEADER_LEN, gi), 0);
  assert.equal(gi.cookie, p.cookie[3]);
});

test('verifier: sliding duplicate window', () => {
  const p = plan(0);
  const v = new Verifier(p);
  sentAll(v, SEQ_WINDOW * 3);
  const f = 5;
  const port = p.port[f];
  assert.equal(feed(v, p.expectedReturn(f, SEQ_WINDOW * 2), { port }), 0);
  // Within the window below the highest: first time reordered, then duplicate.
  assert.equal(feed(v, p.expectedReturn(f, SEQ_WINDOW + 5), { port }), Bad.REORDERED);
  assert.equal(feed(v, p.expectedReturn(f, SEQ_WINDOW + 5), { port }), Bad.DUPLICATE);
  // Moving forward reuses the ring slot of an earlier lap (W + 5): still new, verified.
  assert.equal(feed(v, p.expectedReturn(f, SEQ_WINDOW * 2 + 5), { port }), 0);
  // Too old to tell: reordered.
  assert.equal(feed(v, p.expectedReturn(f, 3), { port }), Bad.REORDERED);
});

test('options: validation and CLI parsing', () => {
  assert.throws(() => resolveOptions({ flowsPerKind: 0 }), RangeError);
  assert.throws(() => resolveOptions({ phases: 0 }), RangeError);
  assert.throws(() => resolveOptions({ packetsPerFlow: 2 ** 31, phases: 2 }), RangeError);
  assert.equal(parseEni('vpce-0123456789abcdef0'), 0x123456789abcdef0n);
  assert.equal(parseEni('0xff'), 255n);
  assert.throws(() => parseEni('1ffffffffffffffff'));
  const o = parseEmulateArgs(['--endpoints', '1,ffffffffffffffff', '--families', '6', '--protos', 'icmp,udp',
    '--flows', '3', '--size', '1000', '--rate', '0', '--packets', '7', '--duration', '2.5', '--settle-ms', '10',
    '--ttl-decrement', '0', '--phases', '2', '--progress-ms', '0']);
  assert.deepEqual(o.endpoints, [1n, 0xffffffffffffffffn]);
  assert.deepEqual(o.families, [6]);
  assert.deepEqual(o.protos, ['icmp', 'udp']);
  assert.equal(o.flowsPerKind, 3);
  assert.equal(o.innerSize, 1000);
  assert.equal(o.rate, 0);
  assert.equal(o.packetsPerFlow, 7);
  assert.equal(o.maxSeconds, 2.5);
  assert.equal(o.settleMs, 10);
  assert.equal(o.ttlDecrement, 0);
  assert.equal(o.phases, 2);
  assert.equal(o.progressMs, 0);
  assert.throws(() => parseEmulateArgs(['--families', '5']));
  assert.throws(() => parseEmulateArgs(['--bogus']));
  assert.throws(() => parseEmulateArgs(['--gwlb-ip', '198.18.0.256']));
  assert.throws(() => parseEmulateArgs(['--endpoints', '1,1']));
});

test('flow plan: rejects too many flows for the port range and oversized inner packets', () => {
  const base = { gwlbIp: '198.18.0.1', applianceIp: '198.18.0.2', endpoints: [1n], families: [4 as const],
    protos: ['udp' as const], ttlDecrement: 0 };
  assert.throws(() => new FlowPlan({ ...base, flowsPerKind: 60000, innerSize: 100 }), RangeError);
  assert.throws(() => new FlowPlan({ ...base, flowsPerKind: 1, innerSize: 8501 }), RangeError);
  const big = new FlowPlan({ ...base, flowsPerKind: 1, innerSize: 8500 });
  assert.equal(big.expLen[0] - big.hdrLen[0], 8500);
  // Below the minimum, the inner packet grows to carry the 16-byte payload header.
  const small = new FlowPlan({ ...base, flowsPerKind: 1, innerSize: 0 });
  assert.equal(small.expLen[0] - small.hdrLen[0], 20 + 8 + 16);
});
