// The USO send tier of --offload on (docs/architecture.md "TUN offloads"), for kernels with UDP
// GSO on TUN devices (TUN_F_USO4, 6.2 and later) but without UDP tunnel GSO (src/io/txtap.ts,
// 6.17 and later): a worker cuts a TCP super-packet read from gwo-/gwi- into segments in
// TypeScript, as the raw-socket tier does, but writes all the flow's Geneve datagrams of it as one
// UDP GSO packet (src/wire/uso.ts) into this TUN device, and the kernel routes it out and cuts it
// into datagrams: a few writes per super-packet instead of one raw send per segment.
//
// The device is an L3 TUN (IFF_TUN, virtio headers, one queue per worker, owned by the main
// thread) and takes the TAP's name, `gwlbtx0`, since only one of the two tiers runs: a packet
// written to it is received on it and forwarded (accept_local=1 for the appliance's own source
// address, rp_filter 0, forwarding=1, all on this device only), so it crosses the FORWARD chain
// like the TAP's frames. Probed at start: when the kernel refuses the USO bits the device is
// closed (it disappears with its last queue) and the raw-socket tier is used. The segments are cut
// and written by the device (src/io/device.ts, src/io/uso.ts).

import type { NativeAddon } from './native';
import { TUN_F_CSUM, TUN_F_USO4, TUN_F_USO6 } from '../wire/virtio';
import type { Logger } from '../base/log';
import { openSendDevice, TX_TAP_NAME, type SendDeviceSettings } from './txtap';

/** The kernel takes USO only for both families at once (USO4 alone is refused). */
const USO_FLAGS = TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6;
/** MTUs tried, the largest first (a USO packet is up to 64 KiB; the device's MTU does not limit
 * what is written to it, but keep it out of the way). */
const USO_MTUS = [65535, 65520, 9000];

export interface UsoTun {
  name: string;
  /** One queue per worker. */
  fds: number[];
}

/** Opens the USO device with one queue per worker and configures it; null (logged) when this
 * kernel has no USO on TUN devices, or the device cannot be set up. */
export function openUsoTun(nat: NativeAddon, workers: number, log: Logger, settings: SendDeviceSettings, name = TX_TAP_NAME): UsoTun | null {
  const fds = openSendDevice(
    nat,
    workers,
    log,
    settings,
    name,
    () => nat.tunOpen(name, true),
    USO_FLAGS,
    'offloads: no UDP tunnel GSO nor USO on TUN devices in this kernel (6.2 or later has USO): super-packets read back are cut into segments here and sent through the raw socket',
    () => {
      let mtuErr: Error | null = null;
      for (const mtu of USO_MTUS) {
        try {
          nat.linkSetup(name, mtu, 0);
          return;
        } catch (e) {
          mtuErr = e as Error;
        }
      }
      if (mtuErr !== null) throw mtuErr;
    },
    (why) => `offloads: cannot set up ${name} for USO (${why}): super-packets read back are cut into segments here and sent through the raw socket`,
  );
  if (fds === null) return null;
  log.important('tunnel', `offloads: super-packets read back are cut into segments here and go back through ${name} as UDP GSO packets (USO: the kernel sends the datagrams)`);
  return { name, fds };
}
