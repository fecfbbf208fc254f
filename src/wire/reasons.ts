// Every reason a packet can be dropped, as small integers (counters are indexed by them) with
// the stable names used in metrics and logs. One list for the whole data plane, so that a
// drop is counted exactly once and under exactly one name.
//
// Numbers are array indices, not a wire format: add new reasons at the end.

export const Drop = {
  // Geneve validation (docs/protocol.md section 1), in the order the checks run.
  GENEVE_TOO_SHORT: 1, // fewer than 8 bytes
  GENEVE_BAD_VERSION: 2, // version bits not 0
  GENEVE_BAD_PROTOCOL: 3, // protocol type neither 0x0800 nor 0x86DD
  GENEVE_OPTIONS_OVERRUN: 4, // declared option area runs past the end of the packet
  GENEVE_OPTION_OVERRUN: 5, // an option header or an option's data runs past the option area
  GENEVE_DUPLICATE_OPTION: 6, // one of the three AWS options appears twice
  GENEVE_BAD_ENI_LENGTH: 7, // AWS option type 1 whose data is not 8 bytes
  GENEVE_BAD_ATTACHMENT_LENGTH: 8, // AWS option type 2 whose data is not 8 bytes
  GENEVE_BAD_COOKIE_LENGTH: 9, // AWS option type 3 whose data is not 4 bytes
  GENEVE_MISSING_ENI: 10,
  GENEVE_MISSING_ATTACHMENT: 11,
  GENEVE_MISSING_COOKIE: 12,
  INNER_EMPTY: 13, // nothing after the options
  INNER_VERSION_MISMATCH: 14, // first nibble does not agree with the protocol type
  INNER_TRUNCATED: 15, // inner IP header (or its TCP/UDP ports) cut short, or bad IHL/lengths
  // Receive side.
  UDP_TRUNCATED: 16, // datagram larger than a receive slot
  SOURCE_NOT_ALLOWED: 17, // outer source outside --gwlb-cidr
  ENDPOINT_LIMIT: 18, // new ENI ID while --max-endpoints endpoints exist
  ENDPOINT_FAILED: 19, // the endpoint could not be created (TUN error, hook refused)
  HOLD_FULL: 20, // endpoint being created, its hold queue (or the worker's hold memory) is full
  HOLD_TIMEOUT: 21, // held longer than the hold limit while the endpoint was being created
  PENDING_TABLE_FULL: 22, // too many distinct ENI IDs waiting to be created at once
  TUN_WRITE_ERROR: 23, // write to gwi- failed (queue full, device gone)
  FLOW_HEADER_TOO_LONG: 24, // Geneve header too long to store for the return path (flow table on)
  // Return side.
  RETURN_MALFORMED: 25, // packet read from gwi-/gwo- is not a parseable IPv4/IPv6 packet
  NO_FLOW: 26, // no flow from GWLB matches it (symmetric 5-tuple / 3-tuple)
  RETURN_TOO_BIG: 27, // inner packet over 8500 bytes: GWLB would drop it silently
  RAW_SEND_ERROR: 28, // the raw socket refused this datagram alone (EPERM from an OUTPUT rule,
  //                    EMSGSIZE, EHOSTUNREACH...); the rest of its batch was still sent
  LINK_LOCAL: 29, // IPv6 link-local housekeeping the kernel sends on a new interface (router
  //               solicitations, MLD): from fe80::/10 or ::, or to ff02::/16; never GWLB traffic
  RAW_SEND_BUSY: 30, // the raw socket's send queue was full (EAGAIN/ENOBUFS) when its turn came
  WORKER_DIED: 31, // lost with a data-plane worker that died: held for a new endpoint, in its
  //                  receive batch, or waiting in its UDP socket or TUN queues (counted by main)
  ICMP_QUOTE_MALFORMED: 32, // ICMP error (v4 type 3/11/12, v6 type 1-4) whose quoted packet cannot name a flow
  // Return side with offloads (--offload on): a packet read from gwi-/gwo- behind its virtio header.
  GSO_MALFORMED: 33, // the virtio header does not agree with the packet, or the packet is cut short
  GSO_UNSUPPORTED: 34, // a segmentation type not cut here (UFO, UDP tunnel), IPv6 extension headers
  GSO_TOO_BIG: 35, // its segments would exceed 8500 bytes (GWLB's inner MTU)
  GSO_NO_ROOM: 36, // output slots too small for one segment (more segments than a batch are cut in chunks)
  ICMP_QUOTE_MISMATCH: 37, // ICMP error that matches no flow by its own addresses, not sent to the source of the packet it quotes
  ENDPOINT_UNLISTED: 38, // new ENI ID not in the endpoints file, with --endpoints-only (src/control/endpoints-file.ts)
} as const;

export type DropReason = (typeof Drop)[keyof typeof Drop];

/** Number of reason slots (index 0 is unused, so counters can be indexed by reason directly). */
export const DROP_SLOTS = 39;

/** Metric/log name of each reason, indexed by its number. */
export const DROP_NAMES: readonly string[] = (() => {
  const names = new Array<string>(DROP_SLOTS).fill('');
  for (const [k, v] of Object.entries(Drop)) names[v] = k.toLowerCase();
  return names;
})();
