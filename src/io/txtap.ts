// The send tier of --offload on for super-packets (docs/architecture.md "TUN offloads"): a TAP
// device, `gwlbtx0`, through which a worker hands the kernel one frame per TCP super-packet read
// from gwo-/gwi- -- Ethernet, the flow's outer IPv4/UDP and Geneve header, then the inner
// super-packet -- and the kernel (>= 6.17: UDP tunnel GSO on TUN/TAP) emits every segment as its
// own Geneve datagram, inner sequence numbers, lengths and checksums computed in C, instead of
// gwlbtun cutting the segments in TypeScript and sending each through the raw socket.
//
// Measured (docs/benchmarks.md, bulk TCP): the segmentation and the per-segment raw sends are the
// return side's largest costs once the TUN writes and reads come in super-packets.
//
// How the kernel treats such a frame: as received on gwlbtx0 (destination MAC = the TAP's own), so
// it is routed: the source is the appliance's own address (accept_local=1 on the TAP), the
// destination GWLB (forwarding=1 on the TAP; rp_filter 0), out of the interface towards GWLB.
// It crosses the FORWARD chain and the outer TTL is decremented (the frame carries 65, so 64
// leaves, what the raw socket sends). Probed at start: when the kernel refuses the UDP tunnel
// offload bits the TAP is closed and the next tier is tried (USO, src/io/usotun.ts).
//
// Opened by the main thread (src/control/workers.ts) and handed to the workers as queue fds; the
// frames are built by src/wire/txframe.ts and written by the device (src/io/device.ts). io/ does
// not import control/: the sysctls the device needs are written by the caller's `settings`.

import * as fs from 'node:fs';
import type { NativeAddon } from './native';
import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UDP_TUNNEL_GSO } from '../wire/virtio';
import type { Logger } from '../base/log';
import { TX_TAP_HDR } from '../wire/txframe';

export const TX_TAP_NAME = 'gwlbtx0';
const TX_TAP_FLAGS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UDP_TUNNEL_GSO;

export interface TxTap {
  name: string;
  /** One queue per worker. */
  fds: number[];
  /** The TAP's MAC address (the destination of every frame). */
  mac: number[];
}

/** Writes a send device's sysctls (writeSendDeviceSettings of src/control/sysctl.ts, passed in by
 * the main thread). */
export type SendDeviceSettings = (name: string) => void;

/** Opens a send device (the TAP here, or the USO TUN of src/io/usotun.ts): one queue per
 * worker with open(), the offload bits `flags` asked for on the first, and, when the kernel takes
 * them, its sysctls (`settings`) and then setup(). The sysctls (SEND_DEVICE_SETTINGS, src/control/sysctl.ts:
 * the appliance's own address as source (accept_local), no reverse-path check, forwarding on; IPv6
 * off, so that it stays quiet) are written even with --no-sysctl, since the device does not work
 * without them; the sysctl keeper then keeps them (not with --no-sysctl). Returns the queues, or null with every
 * queue closed and one line logged: `refused` when the kernel refuses the bits, failed(reason)
 * when anything else fails. */
export function openSendDevice(
  nat: NativeAddon,
  workers: number,
  log: Logger,
  settings: SendDeviceSettings,
  name: string,
  open: () => number,
  flags: number,
  refused: string,
  setup: () => void,
  failed: (reason: string) => string,
): number[] | null {
  const fds: number[] = [];
  const close = (): void => {
    for (const fd of fds) nat.close(fd);
  };
  try {
    for (let i = 0; i < workers; i++) fds.push(open());
    if (nat.tunSetOffload(fds[0], flags) !== 0) {
      close();
      log.important('tunnel', refused);
      return null;
    }
    settings(name);
    setup();
    return fds;
  } catch (e) {
    close();
    log.important('tunnel', failed((e as Error).message));
    return null;
  }
}

/** Opens the TAP with one queue per worker and configures it; null (logged) when this kernel has
 * no UDP tunnel GSO on TAP devices, or the TAP cannot be set up. */
export function openTxTap(nat: NativeAddon, workers: number, log: Logger, settings: SendDeviceSettings, name = TX_TAP_NAME): TxTap | null {
  const mac: number[] = [];
  const fds = openSendDevice(
    nat,
    workers,
    log,
    settings,
    name,
    () => nat.tapOpen(name, TX_TAP_HDR),
    TX_TAP_FLAGS,
    'offloads: no UDP tunnel GSO in this kernel (6.17 or later has it)',
    () => {
      nat.linkSetup(name, 9000, 0);
      mac.push(...fs.readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim().split(':').map((h) => parseInt(h, 16)));
      if (mac.length !== 6 || mac.some((b) => !(b >= 0 && b <= 255))) throw new Error(`cannot read the MAC address of ${name}`);
    },
    (why) => `offloads: cannot set up ${name} (${why})`,
  );
  if (fds === null) return null;
  log.important('tunnel', `offloads: super-packets go back through ${name} (UDP tunnel GSO: the kernel cuts and sends the segments)`);
  return { name, fds, mac };
}
