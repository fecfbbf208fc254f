// The emulator's options: their type, defaults and validation, in a file of their own so that the
// parts the Emulator (emulator.ts) ties together can read them without importing it (loop.ts did:
// an import circle, docs/architecture.md "Layers"). emulator.ts re-exports all of it.

import type { SimFamily, SimProto } from './flows';
import { malformedKind } from './malformed';
import type { ProgressSnapshot } from './reports';

export interface EmulatorOptions {
  gwlbIp: string;
  applianceIp: string;
  /** ENI IDs of the GWLB endpoints to emulate. */
  endpoints: bigint[];
  /** Flows per (endpoint, family, protocol). */
  flowsPerKind: number;
  families: SimFamily[];
  protos: SimProto[];
  /** Inner IP packet size in bytes (raised to the minimum a kind can carry: 16 payload bytes). */
  innerSize: number;
  /** Target send rate, packets/s, all flows together; 0 = as fast as possible. */
  rate: number;
  /** Packets per flow per phase (the packet bound of the send loop). */
  packetsPerFlow: number;
  /** Bound on the sending time of the whole run, seconds (split evenly across phases). */
  maxSeconds: number;
  /** After a phase's sending ends: wait at most this long for its packets to come back. */
  settleMs: number;
  /** TTL/hop-limit decrements expected on the way through the appliance (1 = kernel forwarding,
   * 0 = pass-through such as the reflector). */
  ttlDecrement: number;
  /** Number of phases; every new phase gives every flow a new cookie (same 5-tuple). */
  phases: number;
  onProgress?: (s: ProgressSnapshot) => void;
  /** Progress interval, ms (0 = no progress callbacks). */
  progressMs: number;
  /** First GWLB UDP source port (flow f uses firstPort + f). */
  firstPort?: number;
  /** SO_RCVBUF of the receive socket / SO_SNDBUF of the raw socket, bytes. */
  rcvbuf?: number;
  sndbuf?: number;
  /** Largest send batch (one sendmmsg). */
  batch?: number;
  /** Attachment ID per endpoint (default random). */
  attachments?: bigint[];
  /** Every endpoint sends the same inner packets (overlapping customer CIDRs); see FlowPlanOptions. */
  sameInner?: boolean;
  /** Malformed kinds (src/sim/malformed.ts names) interleaved with the good traffic; default none. */
  malformed?: string[];
  /** One malformed packet after every this many good packets (default 10). */
  malformedEvery?: number;
  /** Valid packets, each with a new random ENI ID (an endpoint flood), sent before the good
   * traffic of the first phase, paced like all packets (rate 0: back to back). Default 0. */
  randomEnis?: number;
  /** Shift of the flows' inner addresses and ports: runs with different offsets use different
   * 5-tuples (flow churn across runs). Default 0. */
  flowOffset?: number;
}

export const EMULATOR_DEFAULTS: EmulatorOptions = {
  gwlbIp: '198.18.0.1',
  applianceIp: '198.18.0.2',
  endpoints: [1n],
  flowsPerKind: 4,
  families: [4, 6],
  protos: ['tcp', 'udp', 'icmp'],
  innerSize: 256,
  rate: 10000,
  packetsPerFlow: 100,
  maxSeconds: 10,
  settleMs: 1000,
  ttlDecrement: 1,
  phases: 1,
  progressMs: 1000,
};

function check(cond: boolean, msg: string): void {
  if (!cond) throw new RangeError(msg);
}

/** Fill in defaults and validate. */
export function resolveOptions(o: Partial<EmulatorOptions>): EmulatorOptions {
  const r: EmulatorOptions = { ...EMULATOR_DEFAULTS, ...o };
  const posInt = (v: number) => Number.isInteger(v) && v >= 1;
  check(posInt(r.flowsPerKind), 'flowsPerKind must be an integer >= 1');
  check(Number.isFinite(r.rate) && r.rate >= 0, 'rate must be >= 0');
  check(posInt(r.packetsPerFlow), 'packetsPerFlow must be an integer >= 1');
  check(Number.isFinite(r.maxSeconds) && r.maxSeconds > 0, 'maxSeconds must be > 0');
  check(Number.isFinite(r.settleMs) && r.settleMs >= 0, 'settleMs must be >= 0');
  check(posInt(r.phases) && r.phases <= 1000, 'phases must be 1..1000');
  // Sequence numbers are 32 bits on the wire.
  check(r.packetsPerFlow * r.phases < 2 ** 32, 'packetsPerFlow * phases must stay below 2^32');
  check(Number.isFinite(r.progressMs) && r.progressMs >= 0, 'progressMs must be >= 0');
  check(r.batch === undefined || (posInt(r.batch) && r.batch <= 1024), 'batch must be 1..1024');
  check(r.families.every((f) => f === 4 || f === 6), 'families must be 4 and/or 6');
  check(r.protos.every((p) => p === 'tcp' || p === 'udp' || p === 'icmp'), 'protos must be tcp, udp, icmp');
  for (const m of r.malformed ?? []) malformedKind(m); // throws RangeError naming the kind
  check(r.malformed === undefined || new Set(r.malformed).size === r.malformed.length, 'malformed kinds must be distinct');
  check(r.malformedEvery === undefined || (posInt(r.malformedEvery) && r.malformedEvery <= 1_000_000), 'malformedEvery must be 1..1000000');
  check(r.randomEnis === undefined || (Number.isInteger(r.randomEnis) && r.randomEnis >= 0 && r.randomEnis <= 10_000_000), 'randomEnis must be 0..10000000');
  check(r.flowOffset === undefined || (Number.isInteger(r.flowOffset) && r.flowOffset >= 0 && r.flowOffset < 2 ** 31), 'flowOffset must be an integer >= 0');
  return r;
}
