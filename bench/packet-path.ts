// Micro-benchmark of the per-packet path in user space (not a test; needs no root):
//   node dist/bench/packet-path.js [--flows 4096] [--quick] [--json]
// The functions a worker runs for every packet, on preallocated packets as GWLB sends them (Geneve
// with its three AWS options, 40 bytes, in front of inner IPv4/IPv6 TCP/UDP packets of 128 bytes,
// one packet per flow, the four kinds in turn) and as the appliance returns them (the replies):
//   from GWLB:  parseGeneve -> flowKeyFromIp -> FlowTable.upsert (a refresh: the flow is known;
//               inserts of new flows are timed too, alone)
//   to GWLB:    flowKeyFromIp -> FlowTable.lookupInto (header into the headroom) -> writeOuterIpUdp
// Each function is timed alone over all flows, then each direction as the worker chains them. The
// figures are this process's CPU time (so a shared machine's other jobs do not count while this
// one waits for a CPU), ns per operation and per packet, the best of the rounds after a warm-up
// round. No system call is measured: for those, and the kernel's share, see `npm run bench`.
// --quick (about 2 s, what the unit test runs) measures fewer operations in fewer rounds.
// Packets lie 256 bytes apart (one just-received batch stays in the caches, as in the worker);
// --flows sets the flow table's working set (4096 fits the caches; bench/flowtable.ts measures
// the table alone at 1M flows). Every result is checked (each parse valid, each lookup a hit with
// the header stored), so a broken path fails (exit 1) instead of looking fast.

import { parseArgs } from 'node:util';
import { buildInnerPacket } from '../src/testkit/build';
import { flowKeyFromIp, KEY_WORDS } from '../src/wire/flowkey';
import { GENEVE_PORT, GeneveInfo, parseGeneve, writeGeneveHeader } from '../src/wire/geneve';
import { OUTER_HEADER_LEN, writeOuterIpUdp } from '../src/wire/outer';
import { createFlowTableBuffer, FlowTable, UPSERT_INSERTED, UPSERT_REFRESHED } from '../src/flow/table';

// A failed check is one line and exit 1, not a stack trace.
process.on('uncaughtException', (e: Error) => {
  console.error(e.message.startsWith('packet-path:') ? e.message : `packet-path: ${e.message}`);
  process.exit(1);
});

function options(): { flows?: string; quick?: boolean; json?: boolean } {
  try {
    return parseArgs({
      options: {
        flows: { type: 'string', default: '4096' },
        quick: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    }).values;
  } catch (e) {
    console.error(`packet-path: ${(e as Error).message}`);
    process.exit(2);
  }
}
const values = options();
const F = Number(values.flows);
if (!Number.isInteger(F) || F < 4 || F > 262_144) {
  console.error('packet-path: --flows must be an integer in 4..262144');
  process.exit(2);
}
const QUICK = values.quick === true;
/** Operations per timed loop (all flows, as many passes as it takes), and rounds per measure. */
const OPS_TARGET = QUICK ? 100_000 : 500_000;
const ROUNDS = QUICK ? 3 : 5;
const PASSES = Math.max(1, Math.round(OPS_TARGET / F));
const OPS = PASSES * F;

// ---- the packets (setup: allocates) ------------------------------------------------------------
const SLOT = 256;
/** Room in front of a returned inner packet for the outer headers and the stored Geneve header. */
const HEADROOM = 96;
const INNER_LEN = 128;
const GENEVE_LEN = 40;
const EP_ID = 1;
const GWLB_IP = 0xc6120001 | 0; // 198.18.0.1
const LOCAL_IP = 0xc6120002 | 0; // 198.18.0.2
const NOW = 1000;

const rx = new Uint8Array(F * SLOT); // from GWLB: Geneve + inner, at i * SLOT
const tx = new Uint8Array(F * SLOT); // to GWLB: the reply's inner packet at i * SLOT + HEADROOM
const gwlbPort = new Int32Array(F);
const keysIn: Uint32Array[] = [];
const keysOut: Uint32Array[] = [];

/** Flow i: kind i % 4 (IPv4 TCP, IPv4 UDP, IPv6 TCP, IPv6 UDP); client address and port from i >> 2. */
function innerOf(i: number, reply: boolean): Uint8Array {
  const j = i >> 2;
  const v6 = (i & 2) !== 0;
  const proto = (i & 1) === 0 ? 6 : 17;
  const host = 1 + (j % 250);
  const client = v6 ? `2001:db8::${host.toString(16)}` : `192.0.2.${host}`;
  const server = v6 ? '2001:db8:1::10' : '198.51.100.10';
  const cport = 1024 + (Math.floor(j / 250) % 64_000);
  const sport = proto === 6 ? 443 : 53;
  const hdr = (v6 ? 40 : 20) + (proto === 6 ? 20 : 8);
  const payload = new Uint8Array(INNER_LEN - hdr).fill(0x5a);
  return reply
    ? buildInnerPacket({ family: v6 ? 6 : 4, proto, src: server, dst: client, srcPort: sport, dstPort: cport, payload })
    : buildInnerPacket({ family: v6 ? 6 : 4, proto, src: client, dst: server, srcPort: cport, dstPort: sport, payload });
}

const gi = new GeneveInfo();
for (let i = 0; i < F; i++) {
  const inner = innerOf(i, false);
  const v6 = (i & 2) !== 0;
  const off = i * SLOT;
  const hl = writeGeneveHeader(rx, off, { protocol: v6 ? 0x86dd : 0x0800, eni: 0x2b8ee1d4db0c51c4n, attachment: 0x0123456789abcdefn, cookie: (0x9e3779b9 * (i + 1)) >>> 0 });
  if (hl !== GENEVE_LEN || inner.length !== INNER_LEN) throw new Error('packet-path: unexpected packet layout');
  rx.set(inner, off + hl);
  tx.set(innerOf(i, true), off + HEADROOM);
  gwlbPort[i] = 1024 + (i % 60_000);
  const kin = new Uint32Array(KEY_WORDS);
  const kout = new Uint32Array(KEY_WORDS);
  if (!flowKeyFromIp(rx, off + hl, INNER_LEN, kin) || !flowKeyFromIp(tx, off + HEADROOM, INNER_LEN, kout)) throw new Error('packet-path: a built packet has no flow key');
  kin[0] = EP_ID;
  kout[0] = EP_ID;
  keysIn.push(kin);
  keysOut.push(kout);
}
const table = new FlowTable(createFlowTableBuffer(Math.max(1024, 2 * F)));
const key = new Uint32Array(KEY_WORDS);

// ---- the measures ------------------------------------------------------------------------------
function fail(what: string, got: number, want: number): never {
  throw new Error(`packet-path: ${what}: ${got} of ${want} as expected (the packets or the path are broken)`);
}

/** CPU time of this process, ns (user + system; a shared machine's other load does not count). */
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** One timed loop: PASSES passes over all flows. Returns ns per operation; `body` returns how many
 * operations gave the expected result, which must be all of them. */
function timed(name: string, body: () => number): number {
  const t0 = cpuNs();
  const ok = body();
  const ns = (cpuNs() - t0) / OPS;
  if (ok !== OPS) fail(name, ok, OPS);
  return ns;
}

function parseAll(): number {
  let ok = 0;
  for (let p = 0; p < PASSES; p++) for (let i = 0; i < F; i++) if (parseGeneve(rx, i * SLOT, GENEVE_LEN + INNER_LEN, gi) === 0) ok++;
  return ok;
}
function keyInAll(): number {
  let ok = 0;
  for (let p = 0; p < PASSES; p++) for (let i = 0; i < F; i++) if (flowKeyFromIp(rx, i * SLOT + GENEVE_LEN, INNER_LEN, key)) ok++;
  return ok;
}
function upsertAll(): number {
  let ok = 0;
  for (let p = 0; p < PASSES; p++) {
    for (let i = 0; i < F; i++) if (table.upsert(keysIn[i], rx, i * SLOT, GENEVE_LEN, GWLB_IP, LOCAL_IP, gwlbPort[i], NOW) === UPSERT_REFRESHED) ok++;
  }
  return ok;
}
/** Inserts: the table is emptied (not timed) before each pass. */
function insertAll(): number {
  let ok = 0;
  let ns = 0;
  for (let p = 0; p < PASSES; p++) {
    table.sweep(NOW + 1_000_000, 0, 0, table.buckets, null);
    const t0 = cpuNs();
    for (let i = 0; i < F; i++) if (table.upsert(keysIn[i], rx, i * SLOT, GENEVE_LEN, GWLB_IP, LOCAL_IP, gwlbPort[i], NOW) === UPSERT_INSERTED) ok++;
    ns += cpuNs() - t0;
  }
  if (ok !== OPS) fail('insert', ok, OPS);
  return ns / OPS;
}
function keyOutAll(): number {
  let ok = 0;
  for (let p = 0; p < PASSES; p++) for (let i = 0; i < F; i++) if (flowKeyFromIp(tx, i * SLOT + HEADROOM, INNER_LEN, key)) ok++;
  return ok;
}
function lookupAll(): number {
  let ok = 0;
  for (let p = 0; p < PASSES; p++) for (let i = 0; i < F; i++) if (table.lookupInto(keysOut[i], tx, i * SLOT + HEADROOM, NOW) === GENEVE_LEN) ok++;
  return ok;
}
function outerAll(): number {
  const start = HEADROOM - GENEVE_LEN - OUTER_HEADER_LEN;
  for (let p = 0; p < PASSES; p++) {
    for (let i = 0; i < F; i++) writeOuterIpUdp(tx, i * SLOT + start, LOCAL_IP, GWLB_IP, gwlbPort[i], GENEVE_PORT, GENEVE_LEN + INNER_LEN);
  }
  return OPS;
}
/** From GWLB, as the worker chains it (inbound + deliver, minus the TUN write). */
function inboundAll(): number {
  let ok = 0;
  for (let p = 0; p < PASSES; p++) {
    for (let i = 0; i < F; i++) {
      const off = i * SLOT;
      if (parseGeneve(rx, off, GENEVE_LEN + INNER_LEN, gi) !== 0) continue;
      if (!flowKeyFromIp(rx, off + gi.headerLen, gi.innerLen, key)) continue;
      key[0] = EP_ID;
      if (table.upsert(key, rx, off, gi.headerLen, GWLB_IP, LOCAL_IP, gwlbPort[i], NOW) === UPSERT_REFRESHED) ok++;
    }
  }
  return ok;
}
/** To GWLB, as the worker chains it (after the TUN read, before the sendmmsg). */
function returnAll(): number {
  let ok = 0;
  for (let p = 0; p < PASSES; p++) {
    for (let i = 0; i < F; i++) {
      const base = i * SLOT + HEADROOM;
      if (!flowKeyFromIp(tx, base, INNER_LEN, key)) continue;
      key[0] = EP_ID;
      const h = table.lookupInto(key, tx, base, NOW);
      if (h < 0) continue;
      writeOuterIpUdp(tx, base - h - OUTER_HEADER_LEN, table.hitLocalIp | 0, table.hitGwlbIp | 0, table.hitGwlbPort, GENEVE_PORT, h + INNER_LEN);
      ok++;
    }
  }
  return ok;
}

const nsPerOp: Record<string, number> = {};
const nsPerPacket: Record<string, number> = {};
const best = (r: Record<string, number>, k: string, ns: number): void => {
  r[k] = k in r ? Math.min(r[k], ns) : ns;
};
const t0 = process.hrtime.bigint();
// Round 0 warms up (the optimizing compiler) and is not reported.
for (let round = 0; round <= ROUNDS; round++) {
  const o: Record<string, number> = {};
  o.insert = insertAll(); // leaves every flow in the table for the rest
  o.parseGeneve = timed('parseGeneve', parseAll);
  o.flowKeyIn = timed('flowKeyFromIp (from GWLB)', keyInAll);
  o.upsertRefresh = timed('upsert (refresh)', upsertAll);
  o.flowKeyOut = timed('flowKeyFromIp (to GWLB)', keyOutAll);
  o.lookupInto = timed('lookupInto', lookupAll);
  o.writeOuter = timed('writeOuterIpUdp', outerAll);
  const inbound = timed('inbound chain', inboundAll);
  const ret = timed('return chain', returnAll);
  if (round === 0) continue;
  for (const [k, v] of Object.entries(o)) best(nsPerOp, k, v);
  best(nsPerPacket, 'fromGwlb', inbound);
  best(nsPerPacket, 'toGwlb', ret);
  best(nsPerPacket, 'roundTrip', inbound + ret);
}
// The returned headers are GWLB's, byte for byte (a last check on what was measured).
for (let i = 0; i < F; i++) {
  const a = i * SLOT;
  const b = a + HEADROOM - GENEVE_LEN;
  for (let k = 0; k < GENEVE_LEN; k++) if (tx[b + k] !== rx[a + k]) fail('returned Geneve headers equal to the stored ones', i, F);
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

const round1 = (r: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v * 10) / 10]));
const report = {
  flows: F,
  quick: QUICK,
  opsPerMeasure: OPS,
  rounds: ROUNDS,
  innerBytes: INNER_LEN,
  geneveBytes: GENEVE_LEN,
  nsPerOp: round1(nsPerOp),
  nsPerPacket: round1(nsPerPacket),
  seconds: Math.round(seconds * 100) / 100,
  node: process.version,
};
if (values.json) {
  console.log(JSON.stringify(report));
} else {
  console.log(`packet path: ${F} flows (IPv4/IPv6 x TCP/UDP, ${INNER_LEN}-byte inner packets, ${GENEVE_LEN}-byte Geneve), ` +
    `${OPS} operations per measure, best of ${ROUNDS} rounds${QUICK ? ' (quick)' : ''}`);
  console.log('operation              ns/op');
  for (const [k, v] of Object.entries(report.nsPerOp)) console.log(`${k.padEnd(22)} ${v.toFixed(1).padStart(6)}`);
  console.log('per packet             ns');
  for (const [k, v] of Object.entries(report.nsPerPacket)) console.log(`${k.padEnd(22)} ${v.toFixed(1).padStart(6)}`);
  console.log(`${report.seconds} s`);
}
