// The packet loop (src/dataplane/loop.ts) over the in-memory addon (src/testkit/fake.ts), with the main
// thread's part played by the test: what test/unit/loop.test.ts and loop-offload.test.ts share.

import { createLoop, type Loop, type LoopDeps } from '../../../src/dataplane/loop';
import { createCountersBuffer, workerBlock } from '../../../src/dataplane/counters';
import { CTRL_CELLS, CTRL_MSG_SEQ, type FromWorker, type ToWorker, type WorkerConfig } from '../../../src/dataplane/messages';
import { ip4FromString } from '../../../src/io/native';
import { FakeAddon } from '../../../src/testkit/fake';
import { createFlowTableBuffer, FlowTable } from '../../../src/flow/table';

export const GWLB = ip4FromString('198.18.0.1');
export const APPLIANCE = ip4FromString('198.18.0.2');

export class LoopRig {
  readonly nat = new FakeAddon();
  readonly posted: FromWorker[] = [];
  readonly counters: Float64Array;
  readonly loop: Loop;
  readonly udp: number;
  private readonly inbox: ToWorker[] = [];
  /** The worker's control cells (CTRL_* in src/dataplane/messages.ts). */
  readonly ctrl = new Int32Array(new SharedArrayBuffer(CTRL_CELLS * 4));

  /** `over` gives the config changes of a test; it runs before the loop is made (e.g. to open a TAP). */
  /** `housekeeping`: LoopDeps.housekeeping (called about once a second). */
  constructor(maxEndpoints: number, over: (nat: FakeAddon) => Partial<WorkerConfig> = () => ({}), housekeeping?: LoopDeps['housekeeping']) {
    const counterSab = createCountersBuffer(1, maxEndpoints);
    this.counters = workerBlock(counterSab, 0, maxEndpoints);
    this.udp = this.nat.udpOpen(6081, 0, true);
    const ep = this.nat.epollCreate();
    this.nat.epollAdd(ep, this.udp);
    const flowSab = createFlowTableBuffer(1000);
    const cfg: WorkerConfig = {
      index: 0, workers: 1, udpPort: 6081, rcvbuf: 0, sndbuf: 0, maxEndpoints, noReturn: false, offload: false,
      txTapFd: -1, txTapMac: [], cpus: null,
      holdPackets: 1024, holdMs: 2500, allow: [], flowSab, counterSab, ctrlSab: this.ctrl.buffer as SharedArrayBuffer,
      hexDump: false, failAfter: -1, failKind: 'crash', startDelayMs: 0, logDrops: false,
      udpFd: this.udp, rawFd: this.nat.rawOpen(0), epFd: ep, ...over(this.nat),
    };
    this.loop = createLoop(cfg, {
      nat: this.nat,
      counters: this.counters,
      ctrl: this.ctrl,
      flows: new FlowTable(flowSab),
      post: (m) => this.posted.push(m),
      receive: () => this.inbox.shift(),
      housekeeping,
    });
  }

  /** A datagram from GWLB (from its port `sport`) waiting on the worker's socket. */
  fromGwlb(datagram: Uint8Array, sport = 10000): void {
    this.nat.injectUdp(this.udp, { data: datagram, src: GWLB, sport, dst: APPLIANCE });
  }

  /** A message from the main thread. */
  control(m: ToWorker): void {
    this.inbox.push(m);
    Atomics.add(this.ctrl, CTRL_MSG_SEQ, 1);
  }

  turns(n = 3): void {
    for (let i = 0; i < n; i++) this.loop.turn(0);
  }
}
