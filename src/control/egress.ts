// The egress device towards GWLB, and whether the send tier of --offload on may use it (issue 19,
// item 3; docs/architecture.md "TUN offloads", docs/operations.md "Offloads").
//
// The tunnel tier (src/io/txtap.ts) hands the kernel a UDP tunnel GSO packet whose inner TCP
// checksums are partial; the USO tier (src/io/usotun.ts) a UDP GSO packet. Both leave the
// rest of the work -- cutting the datagrams, finishing the checksums -- to the device the route to
// GWLB leaves through, when it advertises the features: a NIC does it in hardware, and for a NIC
// without them the kernel does it in software before the driver. But some drivers deliver what
// they are given to a receiver on this host as it is (PASS_THROUGH_DRIVERS), and a local receiver
// (a lab, a test rig, an emulated GWLB, a container whose GWLB side is on the same host) then gets
// unfinished work: measured through a veth in its default state, Geneve datagrams holding
// 44,928-byte inner packets, and with tunnel segmentation off but checksum offload on, inner TCP
// checksums that were the bare pseudo-header sum.
//
// Rule (tierSafety, pure): on a pass-through device a tier is used only when the features it
// would leave unfinished are off, so that the kernel finishes the work before the device:
//   tunnel  tx-udp_tnl-segmentation, tx-udp_tnl-csum-segmentation and every tx-checksum-* off
//           (the inner checksums are partial: finished only where the device cannot take them);
//   uso     tx-udp-segmentation off (the inner checksums are complete, cut in TypeScript; the
//           outer UDP checksum may stay partial on a veth, as for every local socket's UDP).
// Otherwise the workers use the raw-socket tier (complete datagrams, cut in TypeScript) until the
// device, or the route, changes. A UDP socket behind a veth would have cut a USO packet itself
// (udp_rcv_segment), but a capture, an AF_PACKET or XDP reader, or a forwarding hop that does not
// segment would not: complete datagrams on the wire is the rule.
//
// How it is learnt (EgressWatch, main thread, off the data path): each worker writes the outer
// source of every new flow (a GWLB address) into its control cell CTRL_GWLB_IP; the main thread
// reads those cells every EGRESS_POLL_MS, and for every GWLB address it has seen asks the route's
// device (routeDev: RTM_GETROUTE, `ip route get`) and its driver and features (linkOffloads:
// ethtool ioctls) when an address is new and every EGRESS_RECHECK_MS (routes and features change).
// The tier is used when it is safe for every address's device; until an address is known the
// workers send raw (the first returns of the first flow: at most EGRESS_POLL_MS). The workers are
// told through their CTRL_TX_RAW cell, read once per loop turn (src/dataplane/returns.ts rawOnly).

import type { LinkOffloads, NativeAddon } from '../io/native';
import { ip4ToString } from '../io/native';
import type { Logger } from '../base/log';

export type SendTier = 'tunnel' | 'uso';

/** Drivers that may hand a GSO packet or a partial checksum to a receiver on this host as it is:
 * veth (its peer's stack gets the skb as sent), netkit (the same for BPF-programmable pairs);
 * bridge, macvlan/macvtap, ipvlan/ipvtap, 802.1Q VLAN, bonding, team, openvswitch and vrf pass it
 * to a port or lower device whose features are not seen from here, or deliver it locally
 * (bridge to a veth port, macvlan to another macvlan on the same lower device). A NIC's driver
 * (ena, ixgbevf, virtio_net, mlx5_core, ...) either finishes the work or never advertises it.
 * The loopback device (feature 'loopback') and a device that names no driver are treated alike. */
export const PASS_THROUGH_DRIVERS: ReadonlySet<string> = new Set([
  'veth',
  'netkit',
  'bridge',
  'macvlan',
  'macvtap',
  'ipvlan',
  'ipvtap',
  '802.1Q VLAN Support',
  'bonding',
  'team',
  'openvswitch',
  'vrf',
]);

/** What each tier would leave unfinished to a device that advertises it. */
const UNFINISHED: Record<SendTier, readonly string[]> = {
  tunnel: ['tx-udp_tnl-segmentation', 'tx-udp_tnl-csum-segmentation', 'tx-checksum-ip-generic', 'tx-checksum-ipv4', 'tx-checksum-ipv6'],
  uso: ['tx-udp-segmentation'],
};

/** Whether `tier` puts complete datagrams out of a device with these driver and features: null
 * when it does, else why not (for the log). Pure. */
export function tierSafety(tier: SendTier, link: LinkOffloads): string | null {
  const loopback = link.features.includes('loopback');
  if (!loopback && link.driver !== '' && !PASS_THROUGH_DRIVERS.has(link.driver)) return null;
  const on = UNFINISHED[tier].filter((f) => link.features.includes(f));
  if (on.length === 0) return null;
  const what = loopback ? 'the loopback device' : link.driver === '' ? 'a driver that names itself not' : `driver ${link.driver}`;
  return `${what} passes ${tier === 'tunnel' ? 'UDP tunnel GSO packets and partial checksums' : 'UDP GSO packets'} on unfinished to a local receiver (${on.join(', ')} on)`;
}

/** How often the main thread reads the workers' GWLB address cells. */
export const EGRESS_POLL_MS = 200;
/** How often every known GWLB address's route and device are looked at again. */
export const EGRESS_RECHECK_MS = 5000;
/** GWLB addresses remembered (GWLB has one per zone; the oldest is forgotten first). */
const MAX_ADDRESSES = 16;

/** The main thread's watch over the egress devices (see the file header). */
export class EgressWatch {
  private readonly addrs: number[] = [];
  private lastCheckMs = -Infinity;
  /** null: not yet known (the workers send raw); true: the tier is used; false: raw. */
  private usable: boolean | null = null;
  private why = '';

  constructor(
    private readonly nat: Pick<NativeAddon, 'routeDev' | 'linkOffloads'>,
    private readonly log: Logger,
    private readonly tier: SendTier,
    /** The send device (`gwlbtx0`), for the log. */
    private readonly device: string,
    /** Tell the workers: true = send raw, false = use the tier. */
    private readonly setRaw: (raw: boolean) => void,
  ) {}

  /** Whether the tier is in use now (null: no GWLB address known yet). */
  get inUse(): boolean | null {
    return this.usable;
  }

  /** `seen`: the GWLB addresses the workers' cells hold now (0: none). Cheap unless an address is
   * new or EGRESS_RECHECK_MS has passed. */
  poll(seen: ArrayLike<number>, nowMs: number): void {
    let fresh = false;
    for (let i = 0; i < seen.length; i++) {
      const a = seen[i] >>> 0;
      if (a === 0 || this.addrs.includes(a)) continue;
      this.addrs.push(a);
      if (this.addrs.length > MAX_ADDRESSES) this.addrs.shift();
      fresh = true;
    }
    if (!fresh && nowMs - this.lastCheckMs < EGRESS_RECHECK_MS) return;
    this.lastCheckMs = nowMs;
    this.check();
  }

  private check(): void {
    const devices = new Map<string, string | null>(); // device -> why not (null: safe)
    for (const a of this.addrs) {
      let dev = '';
      try {
        dev = this.nat.routeDev(a);
      } catch (e) {
        this.log.debug('tunnel', `offloads: route to ${ip4ToString(a)}: ${(e as Error).message}`);
      }
      if (dev === '' || devices.has(dev)) continue; // no route: nothing goes there, by any tier
      let why: string | null;
      try {
        why = tierSafety(this.tier, this.nat.linkOffloads(dev));
      } catch (e) {
        why = `its driver and features cannot be read (${(e as Error).message})`;
      }
      devices.set(dev, why);
    }
    if (devices.size === 0) return; // not known yet: as it was
    let usable = true;
    let why = '';
    for (const [dev, w] of devices) {
      if (w === null) continue;
      usable = false;
      why = `${dev}: ${w}`;
      break;
    }
    const name = [...devices.keys()].join(', ');
    if (usable !== this.usable || (!usable && why !== this.why)) {
      if (!usable) {
        this.log.important('tunnel', `offloads: returns to GWLB leave through ${why}: super-packets are cut here and sent through the raw socket, not through ${this.device}`);
      } else if (this.usable === false) {
        this.log.important('tunnel', `offloads: returns to GWLB leave through ${name}, which finishes the work: super-packets go back through ${this.device} again`);
      } else this.log.info('tunnel', `offloads: returns to GWLB leave through ${name}: super-packets go back through ${this.device}`);
    }
    this.usable = usable;
    this.why = why;
    this.setRaw(!usable);
  }
}
