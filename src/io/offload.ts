// Which TUN offloads the kernel takes (--offload on): probed by trying TUNSETOFFLOAD on an
// endpoint's first queue, the most wanted set first, each step dropping what an older kernel lacks.
//
// What each bit buys (docs/architecture.md "TUN offloads", docs/benchmarks.md): with CSUM and TSO
// the kernel forwards a super-packet written to gwi- and hands it out of gwo- whole (one write,
// one forwarding pass and one read for up to 45 segments); without them it would cut every
// super-packet into segments in software before handing them over. USO4/USO6 (kernel >= 6.2) let
// it hand over UDP GSO packets whole too. A queue opened with a virtio header but no offload
// still works: every packet read is then complete and plain.

import type { NativeAddon } from './native';
import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_USO4, TUN_F_USO6 } from '../wire/virtio';

const TCP = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
/** The sets tried, in order. */
export const OFFLOAD_STEPS: readonly number[] = [TCP | TUN_F_USO4 | TUN_F_USO6, TCP, TUN_F_CSUM, 0];

/** Sets the richest offload set the kernel accepts on the device of queue fd; returns it (0: none,
 * or -errno when even 0 was refused: not a TUN queue with a virtio header). */
export function applyOffloads(nat: NativeAddon, fd: number): number {
  let err = 0;
  for (const flags of OFFLOAD_STEPS) {
    err = nat.tunSetOffload(fd, flags);
    if (err === 0) return flags;
  }
  return -err;
}

const NAMES: readonly [number, string][] = [
  [TUN_F_CSUM, 'csum'],
  [TUN_F_TSO4, 'tso4'],
  [TUN_F_TSO6, 'tso6'],
  [TUN_F_TSO_ECN, 'tso_ecn'],
  [TUN_F_USO4, 'uso4'],
  [TUN_F_USO6, 'uso6'],
];

/** 'csum tso4 tso6' for the bits set; 'none' when none is. */
export function offloadNames(flags: number): string {
  const on = NAMES.filter(([b]) => (flags & b) !== 0).map(([, n]) => n);
  return on.length === 0 ? 'none' : on.join(' ');
}
