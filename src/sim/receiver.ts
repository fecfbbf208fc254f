// The emulator's receive side: drains the UDP 6081 socket with recvmmsg into preallocated
// slots and hands every datagram to the verifier, or to its extra kind's counter when it came
// back on an extra packet's port. Contract: allocates nothing after construction; a failing
// recvmmsg throws (the socket is the emulator's own, so that is a bug, not traffic).

import type { NativeAddon } from '../io/native';
import { RX_SLOT } from '../wire/sizes';
import type { Verifier } from './verifier';
import type { Extras } from './extras';

/** Datagrams per recvmmsg. */
const RX_BATCH = 64;

/** Receive side: drains the socket in batches into preallocated slots and verifies each. */
export class Rx {
  private readonly buf = Buffer.alloc(RX_BATCH * RX_SLOT);
  private readonly meta = new Int32Array(RX_BATCH * 5);

  constructor(
    private readonly n: NativeAddon,
    private readonly fd: number,
    private readonly v: Verifier,
    private readonly x: Extras | null,
  ) {}

  /** Up to `rounds` recvmmsg calls; returns the number of datagrams processed. */
  drain(rounds: number): number {
    let total = 0;
    const m = this.meta;
    for (let r = 0; r < rounds; r++) {
      const k = this.n.udpRecv(this.fd, this.buf, RX_SLOT, RX_BATCH, m);
      if (k < 0) throw new Error(`udpRecv failed: errno ${-k}`);
      for (let i = 0; i < k; i++) {
        const b = i * 5;
        // A return for an extra packet (it should never come back if malformed): its kind's.
        const xk = this.x === null ? -1 : this.x.portKind[m[b + 2] & 0xffff];
        if (xk >= 0) {
          this.x!.returned[xk]++;
          continue;
        }
        this.v.verify(this.buf, i * RX_SLOT, m[b], m[b + 1], m[b + 2], m[b + 3], (m[b + 4] & 1) !== 0);
      }
      total += k;
      if (k < RX_BATCH) break;
    }
    return total;
  }
}
