// Buffer sizes shared by everything that receives Geneve datagrams (the daemon's workers, the
// emulator, the test probes). Constants only; no I/O.

/** Bytes per receive slot (one datagram per slot in a recvmmsg batch). It holds the largest
 * datagram either side of the tunnel can meet:
 * - from GWLB: at most GENEVE_HEADER_MAX (8 + 252 option bytes = 260) + 8500 inner bytes
 *   (GWLB's inner MTU) = 8760 bytes of UDP payload;
 * - on the test veth (MTU 9001, src/sim/topology.ts): at most 9001 - 28 = 8973 bytes.
 * 9216 (9 KiB, a multiple of 64 so slots stay cache-line aligned) is above both; a longer
 * datagram arrives truncated and is dropped as `udp_truncated` (docs/operations.md). */
export const RX_SLOT = 9216;

/** Longest Geneve header a flow stores (GWLB's is 40 bytes): src/flow/table.ts checks it has the
 * same; here so that the send tiers (src/io/) size their room without importing the flow table. */
export const FLOW_HEADER_MAX = 60;
