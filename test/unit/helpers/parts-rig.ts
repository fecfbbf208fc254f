// The three parts of a worker's loop (src/dataplane/inbound.ts, returns.ts, epcontrol.ts) made by
// hand over the in-memory addon (src/testkit/fake.ts) and one device (src/io/device.ts), so that
// each can be driven alone, without createLoop's turn: what test/unit/inbound.test.ts and
// epcontrol.test.ts share.

import { FakeAddon } from '../../../src/testkit/fake';
import { TunDevice } from '../../../src/io/device';
import { ip4FromString } from '../../../src/io/native';
import { writeGeneveHeader } from '../../../src/wire/geneve';
import { createCountersBuffer, workerBlock } from '../../../src/dataplane/counters';
import { CTRL_CELLS, CTRL_MSG_SEQ, type FromWorker, type ToWorker, type WorkerConfig } from '../../../src/dataplane/messages';
import { createFlowTableBuffer, FlowTable } from '../../../src/flow/table';
import { LocalEndpoints } from '../../../src/dataplane/endpoints';
import { HoldRing } from '../../../src/dataplane/hold';
import { DropLog } from '../../../src/dataplane/droplog';
import { Related } from '../../../src/dataplane/related';
import { ReturnPath } from '../../../src/dataplane/returns';
import { InboundPath, RX_COALESCE_OFF, createRxBuffer } from '../../../src/dataplane/inbound';
import { EndpointControl } from '../../../src/dataplane/epcontrol';

export const GWLB = ip4FromString('198.18.0.1');
export const APPLIANCE = ip4FromString('198.18.0.2');
export const ENI = 0x2b8ee1d4db0c51c4n;
export const ENI_HI = Number(ENI >> 32n);
export const ENI_LO = Number(ENI & 0xffffffffn);

/** A UDP packet 192.0.2.1:sport -> 198.51.100.2:53 with `payload` bytes. */
export function udp4(sport: number, payload = 20): Uint8Array {
  const n = 28 + payload;
  const p = new Uint8Array(n);
  p[0] = 0x45;
  p[2] = n >> 8;
  p[3] = n & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set([192, 0, 2, 1, 198, 51, 100, 2], 12);
  p[20] = sport >> 8;
  p[21] = sport & 0xff;
  p[23] = 53;
  p[24] = (n - 20) >> 8;
  p[25] = (n - 20) & 0xff;
  for (let i = 28; i < n; i++) p[i] = i & 0xff;
  return p;
}

/** The datagram GWLB sends for `inner` (ENI above, a cookie). */
export function geneve(inner: Uint8Array, cookie = 0xc0ffee): Uint8Array {
  const h = new Uint8Array(64);
  const n = writeGeneveHeader(h, 0, { protocol: 0x0800, eni: ENI, attachment: 0x77n, cookie });
  const d = new Uint8Array(n + inner.length);
  d.set(h.subarray(0, n), 0);
  d.set(inner, n);
  return d;
}

export class PartsRig {
  readonly nat = new FakeAddon();
  readonly posted: FromWorker[] = [];
  readonly inbox: ToWorker[] = [];
  readonly counters: Float64Array;
  readonly ctrl = new Int32Array(new SharedArrayBuffer(CTRL_CELLS * 4));
  readonly eps: LocalEndpoints;
  readonly hold: HoldRing;
  readonly dev: TunDevice;
  readonly returns: ReturnPath;
  readonly inbound: InboundPath;
  readonly control: EndpointControl;
  readonly udp: number;
  readonly ep: number;
  readonly cfg: WorkerConfig;

  constructor(over: Partial<WorkerConfig> = {}, maxEndpoints = 4) {
    const counterSab = createCountersBuffer(1, maxEndpoints);
    this.counters = workerBlock(counterSab, 0, maxEndpoints);
    this.udp = this.nat.udpOpen(6081, 0, true);
    this.ep = this.nat.epollCreate();
    const flowSab = createFlowTableBuffer(1000);
    const flows = new FlowTable(flowSab);
    const cfg: WorkerConfig = (this.cfg = {
      index: 0, workers: 1, udpPort: 6081, rcvbuf: 0, sndbuf: 0, maxEndpoints, noReturn: false, offload: false,
      txTapFd: -1, txTapMac: [], cpus: null,
      holdPackets: 1024, holdMs: 2500, allow: [], flowSab, counterSab, ctrlSab: this.ctrl.buffer as SharedArrayBuffer,
      hexDump: false, failAfter: -1, failKind: 'crash', startDelayMs: 0, logDrops: false,
      udpFd: this.udp, rawFd: this.nat.rawOpen(0), epFd: this.ep, ...over,
    });
    const post = (m: FromWorker): void => void this.posted.push(m);
    this.eps = new LocalEndpoints(maxEndpoints);
    this.hold = new HoldRing(this.eps.held, cfg.holdPackets);
    const log = new DropLog(0, false, false, post);
    const related = new Related(flows, this.counters);
    const rxBuf = createRxBuffer(cfg.offload);
    this.dev = new TunDevice(this.nat, {
      rawFd: cfg.rawFd, writeBatch: 64, vnet: cfg.offload, tapFd: -1, tapMac: [], usoFd: -1,
      coalesceArea: cfg.offload ? { buf: rxBuf, off: RX_COALESCE_OFF, cap: RX_COALESCE_OFF } : undefined,
    });
    this.returns = new ReturnPath(this.dev, this.dev, this.counters, flows, related, this.eps, log, (fd, li, errno) => this.control.gone(fd, li, errno), cfg.offload);
    this.inbound = new InboundPath(cfg, this.nat, this.counters, this.ctrl, flows, related, this.eps, this.hold, log, post, rxBuf, this.dev.out, this.returns);
    this.control = new EndpointControl(this.nat, this.ep, 0, this.eps, this.inbound, this.ctrl, post, () => this.inbox.shift());
  }

  /** A datagram from GWLB waiting on the worker's socket. */
  fromGwlb(datagram: Uint8Array, src = GWLB, sport = 10000): void {
    this.nat.injectUdp(this.udp, { data: datagram, src, sport, dst: APPLIANCE });
  }

  /** A message from the main thread, announced on the sequence word. */
  message(m: ToWorker): void {
    this.inbox.push(m);
    Atomics.add(this.ctrl, CTRL_MSG_SEQ, 1);
  }

  /** The endpoint's queues, as the main thread makes them; returns the 'add' message. */
  addMessage(slot = 1): Extract<ToWorker, { t: 'add' }> {
    const gwi = this.nat.tunOpen('gwi-test', this.cfg.offload);
    const gwo = this.nat.tunOpen('gwo-test', this.cfg.offload);
    return { t: 'add', hi: ENI_HI, lo: ENI_LO, slot, epId: 1 | (slot << 16), gwi, gwo };
  }

  /** The monotonic ms of every part (as the loop sets them once per turn). */
  at(nowMs: number): void {
    this.inbound.nowMs = this.returns.nowMs = this.control.nowMs = nowMs;
  }
}
