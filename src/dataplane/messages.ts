// Messages between the control plane (main thread) and the data-plane workers.
// They are per endpoint event, never per packet.
//
// Main -> worker travels on a MessagePort that the worker reads synchronously
// (receiveMessageOnPort) from its packet loop: the loop never returns to the event loop, so a
// shared sequence word (CTRL_MSG_SEQ) tells it cheaply that something is waiting.

export interface WorkerConfig {
  index: number;
  workers: number;
  udpPort: number;
  rcvbuf: number;
  sndbuf: number;
  maxEndpoints: number;
  noReturn: boolean;
  /** --offload on: the TUN queues carry virtio headers; batches are coalesced into TCP
   * super-packets and super-packets read are cut into segments (src/io/tun.ts). */
  offload: boolean;
  /** --offload on with UDP tunnel GSO (src/io/txtap.ts): this worker's queue of the TAP that
   * takes whole super-packets back to GWLB, and the TAP's MAC; -1 and [] without. The main thread
   * owns the queue. */
  txTapFd: number;
  txTapMac: number[];
  /** --offload on with USO but no UDP tunnel GSO (src/io/usotun.ts): this worker's queue of
   * the USO device; -1 or absent without. The main thread owns the queue. */
  txUsoFd?: number;
  cpus: number[] | null;
  /** Held packets per endpoint being created, and how long (ms) they may wait. */
  holdPackets: number;
  holdMs: number;
  /** Allowed GWLB sources: pairs [network, mask] of IPv4 numbers; empty = all. */
  allow: number[];
  flowSab: SharedArrayBuffer | null;
  counterSab: SharedArrayBuffer;
  ctrlSab: SharedArrayBuffer;
  /** -x: hex dumps in the dropped-packet log lines. */
  hexDump: boolean;
  /** Test fault injection (GWLBTUN_FAILPOINT, see src/control/workers.ts): after this many received packets
   * (-1: never) the worker throws ('crash') or spins without turning its loop ('wedge');
   * startDelayMs delays its start (a slow start-up). */
  failAfter: number;
  failKind: 'crash' | 'wedge';
  startDelayMs: number;
  /** Log dropped packets (rate-limited): -x, or debug level for geneve/tunnel. */
  logDrops: boolean;
  /** Descriptors the main thread opened for this worker and owns: it closes them when the worker
   * exits, however it exits, so a worker never leaves a bound UDP socket behind. The worker
   * never closes them. */
  udpFd: number;
  rawFd: number;
  epFd: number;
}

/** Int32 cells of the control buffer (one block of CTRL_CELLS per worker). */
export const CTRL_STOP = 0; // set to 1 by main: leave the loop
export const CTRL_MSG_SEQ = 1; // incremented by main after each postMessage
/** Written by the worker: the outer source (a GWLB address, uint32 as int32) of its latest new
 * flow; the main thread's egress watch reads it (src/control/egress.ts). */
export const CTRL_GWLB_IP = 2;
/** Written by main: 1 = send every return through the raw socket, not the send device of
 * --offload on (its egress device would pass the work on unfinished: src/control/egress.ts).
 * Read by the worker once per loop turn. */
export const CTRL_TX_RAW = 3;
export const CTRL_CELLS = 4;

export type ToWorker =
  | { t: 'add'; hi: number; lo: number; slot: number; epId: number; gwi: number; gwo: number }
  | { t: 'reject'; hi: number; lo: number; failed: boolean; unlisted?: boolean } // unlisted: --endpoints-only
  | { t: 'remove'; slot: number; epId: number };

export type FromWorker =
  | { t: 'up'; index: number }
  | { t: 'new'; index: number; hi: number; lo: number }
  | { t: 'removed'; index: number; epId: number }
  | { t: 'gone'; index: number; slot: number; errno: number } // a TUN queue failed: device deleted
  | { t: 'log'; index: number; level: number; section: string; msg: string };
