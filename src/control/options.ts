// The daemon's options (what src/cli.ts makes of the command line), in a file of their own: the
// daemon, the worker supervisor and the endpoint lifecycle all read them, and the daemon imports
// the other two, so keeping the type in daemon.ts would make an import circle
// (docs/architecture.md, "Layers"). src/control/daemon.ts re-exports it.


import type { EndpointEntry } from './endpoints-file';
export interface DaemonOptions {
  createHook: string | null;
  destroyHook: string | null;
  /** -t: destroy an endpoint idle this long (seconds); 0 = never. */
  endpointTimeoutS: number;
  tcpIdleS: number;
  otherIdleS: number;
  hookTimeoutS: number;
  workers: number;
  /** CPU list per worker (null = no affinity). */
  cpus: (number[] | null)[];
  udpPort: number;
  noReturn: boolean;
  /** --offload on: TUN offloads (virtio headers, coalescing, segmentation; src/io/tun.ts). */
  offload: boolean;
  maxEndpoints: number;
  maxFlows: number;
  allow: number[];
  holdPackets: number;
  holdMs: number;
  rcvbuf: number;
  sndbuf: number;
  hexDump: boolean;
  /** Write and keep the gwi-/gwo- sysctls (src/control/sysctl.ts); false with --no-sysctl. */
  manageSysctls: boolean;
  /** --endpoints FILE (null: none) and its entries as read at start (src/control/endpoints-file.ts). */
  endpointsFile: string | null;
  endpoints: EndpointEntry[];
  /** --endpoints-only: traffic of ENI IDs not in the file creates nothing (`endpoint_unlisted`). */
  endpointsOnly: boolean;
  /** --netns-per-endpoint: every endpoint in a network namespace of its own (src/control/netns.ts). */
  netnsPerEndpoint: boolean;
  /** Survive a crash (false with --no-adopt or --snapshot-interval 0): persistent gwi-/gwo- devices, a state file every
   * snapshotIntervalS seconds (0: none) in stateDir, adoption at start (src/control/state.ts). */
  adopt: boolean;
  snapshotIntervalS: number;
  stateDir: string;
}
