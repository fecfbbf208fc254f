// The emulator's catalogue of hostile input: Geneve datagrams that GWLB would never send, one
// kind per way a packet can be malformed, each with the drop reason the appliance must count it
// under (src/wire/reasons.ts), plus valid packets with random ENI IDs (an endpoint flood).
//
// Setup code (may allocate): the emulator builds every variant once, as a complete outer IPv4 +
// UDP packet, and its sender copies them into batch slots (see Extras in extras.ts).
//
// Every malformed packet carries an ENI ID that no good flow uses (malformedEni below), so that a
// packet wrongly accepted would show up as a new interface (gwi-<X>) and a CREATE hook run.

import { makeGeneveOption, writeGeneveHeader, AWS_OPTION_CLASS } from '../wire/geneve';
import { buildInnerPacket, concatBytes, u64Bytes } from '../testkit/build';

export interface MalformedKind {
  /** CLI / report name. */
  name: string;
  /** The drop reason (DROP_NAMES entry) the appliance must count it under. */
  reason: string;
  what: string;
  /** UDP payloads (Geneve header + inner), several variants of the same defect. */
  build: (eni: bigint, attachment: bigint) => Uint8Array[];
}

const IPV4 = 0x0800;
const IPV6 = 0x86dd;

/** Inner packets of malformed datagrams: small, valid, documentation addresses only. */
function innerV4(): Uint8Array {
  return buildInnerPacket({ family: 4, proto: 17, src: '192.0.2.254', dst: '198.51.100.254', srcPort: 4000, dstPort: 4001, payload: new Uint8Array(16).fill(0xee) });
}
function innerV6(): Uint8Array {
  return buildInnerPacket({ family: 6, proto: 17, src: '2001:db8:bad::1', dst: '2001:db8:bad::2', srcPort: 4000, dstPort: 4001, payload: new Uint8Array(16).fill(0xee) });
}
function innerTcpV4(): Uint8Array {
  return buildInnerPacket({ family: 4, proto: 6, src: '192.0.2.254', dst: '203.0.113.254', srcPort: 4000, dstPort: 443, payload: new Uint8Array(8) });
}

const concat = concatBytes;

const u64 = u64Bytes;

/** Base header (8 bytes) + options, written by hand so that any field can be wrong. */
function rawGeneve(protocol: number, options: Uint8Array[], inner: Uint8Array, o: { version?: number; optWords?: number } = {}): Uint8Array {
  const opts = concat(...options);
  const words = o.optWords ?? opts.length / 4;
  const base = Uint8Array.of(((o.version ?? 0) << 6) | (words & 0x3f), 0, protocol >> 8, protocol & 0xff, 0, 0, 0, 0);
  return concat(base, opts, inner);
}

const optEni = (eni: bigint): Uint8Array => makeGeneveOption(AWS_OPTION_CLASS, 1, u64(eni));
const optAtt = (att: bigint): Uint8Array => makeGeneveOption(AWS_OPTION_CLASS, 2, u64(att));
const optCookie = (c: number): Uint8Array => makeGeneveOption(AWS_OPTION_CLASS, 3, Uint8Array.of(c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff));
const COOKIE = 0x5eed0bad;

/** A valid GWLB datagram for the given ENI (the starting point of most defects). */
function valid(eni: bigint, att: bigint, protocol = IPV4, inner = protocol === IPV4 ? innerV4() : innerV6()): Uint8Array {
  return rawGeneve(protocol, [optEni(eni), optAtt(att), optCookie(COOKIE)], inner);
}

function omitted(eni: bigint, att: bigint, omit: 1 | 2 | 3): Uint8Array[] {
  return [IPV4, IPV6].map((protocol) => {
    const inner = protocol === IPV4 ? innerV4() : innerV6();
    const h = new Uint8Array(300);
    const n = writeGeneveHeader(h, 0, { protocol, eni, attachment: att, cookie: COOKIE, omit: [omit] });
    return concat(h.subarray(0, n), inner);
  });
}

/** Options in GWLB's order with one replaced. */
function withOption(eni: bigint, att: bigint, type: 1 | 2 | 3, replacement: Uint8Array): Uint8Array {
  const opts = [optEni(eni), optAtt(att), optCookie(COOKIE)];
  opts[type - 1] = replacement;
  return rawGeneve(IPV4, opts, innerV4());
}

/** The catalogue. Order is the order of the checks in parseGeneve; names are stable (CLI, report). */
export const MALFORMED_KINDS: readonly MalformedKind[] = [
  {
    name: 'too_short',
    reason: 'geneve_too_short',
    what: 'UDP payload shorter than the 8-byte Geneve base header (0, 1 and 7 bytes)',
    build: (eni, att) => {
      const v = valid(eni, att);
      return [new Uint8Array(0), v.slice(0, 1), v.slice(0, 7)];
    },
  },
  {
    name: 'bad_version',
    reason: 'geneve_bad_version',
    what: 'Geneve version 1, 2 and 3 (must be 0)',
    build: (eni, att) =>
      [1, 2, 3].map((ver) => {
        const v = valid(eni, att);
        v[0] |= ver << 6;
        return v;
      }),
  },
  {
    name: 'bad_protocol',
    reason: 'geneve_bad_protocol',
    what: 'protocol type neither IPv4 nor IPv6 (Ethernet 0x6558, ARP 0x0806, 0x0000, 0x86dc)',
    build: (eni, att) => [0x6558, 0x0806, 0x0000, 0x86dc].map((p) => valid(eni, att, p, innerV4())),
  },
  {
    name: 'options_overrun',
    reason: 'geneve_options_overrun',
    what: 'declared option length runs past the end of the datagram',
    build: (eni, att) => [
      rawGeneve(IPV4, [optEni(eni), optAtt(att), optCookie(COOKIE)], innerV4(), { optWords: 63 }),
      rawGeneve(IPV4, [], new Uint8Array(0), { optWords: 1 }),
      // Options as declared, but the datagram ends inside them.
      rawGeneve(IPV4, [optEni(eni), optAtt(att), optCookie(COOKIE)], new Uint8Array(0)).slice(0, 36),
    ],
  },
  {
    name: 'option_overrun',
    reason: 'geneve_option_overrun',
    what: "an option whose own length runs past the declared option area",
    build: (eni, att) => {
      // The cookie option claims 2 words of data in an area that has room for 1.
      const longCookie = optCookie(COOKIE);
      longCookie[3] = 2;
      // An unknown option at the end claiming 31 words.
      const unknown = makeGeneveOption(0xfffe, 0x7f, new Uint8Array(4));
      unknown[3] = 31;
      // The ENI option, first, claiming 31 words (the inner packet follows the area).
      const longEni = optEni(eni);
      longEni[3] = 31;
      return [
        rawGeneve(IPV4, [optEni(eni), optAtt(att), longCookie], innerV4()),
        rawGeneve(IPV4, [optEni(eni), optAtt(att), optCookie(COOKIE), unknown], innerV4()),
        rawGeneve(IPV4, [longEni, optAtt(att), optCookie(COOKIE)], innerV4()),
      ];
    },
  },
  {
    name: 'duplicate_option',
    reason: 'geneve_duplicate_option',
    what: 'one of the three AWS options twice (ENI, attachment, cookie)',
    build: (eni, att) => [
      rawGeneve(IPV4, [optEni(eni), optAtt(att), optCookie(COOKIE), optEni(eni)], innerV4()),
      rawGeneve(IPV4, [optEni(eni), optAtt(att), optAtt(att), optCookie(COOKIE)], innerV4()),
      rawGeneve(IPV6, [optCookie(COOKIE), optEni(eni), optAtt(att), optCookie(COOKIE)], innerV6()),
    ],
  },
  {
    name: 'bad_eni_length',
    reason: 'geneve_bad_eni_length',
    what: 'ENI option (type 1) with 4 or 12 bytes of data instead of 8',
    build: (eni, att) => [
      withOption(eni, att, 1, makeGeneveOption(AWS_OPTION_CLASS, 1, u64(eni).slice(4))),
      withOption(eni, att, 1, makeGeneveOption(AWS_OPTION_CLASS, 1, concat(u64(eni), new Uint8Array(4)))),
    ],
  },
  {
    name: 'bad_attachment_length',
    reason: 'geneve_bad_attachment_length',
    what: 'attachment option (type 2) with 4 or 16 bytes of data instead of 8',
    build: (eni, att) => [
      withOption(eni, att, 2, makeGeneveOption(AWS_OPTION_CLASS, 2, u64(att).slice(4))),
      withOption(eni, att, 2, makeGeneveOption(AWS_OPTION_CLASS, 2, concat(u64(att), u64(att)))),
    ],
  },
  {
    name: 'bad_cookie_length',
    reason: 'geneve_bad_cookie_length',
    what: 'cookie option (type 3) with 0 or 8 bytes of data instead of 4',
    build: (eni, att) => [
      withOption(eni, att, 3, makeGeneveOption(AWS_OPTION_CLASS, 3, new Uint8Array(0))),
      withOption(eni, att, 3, makeGeneveOption(AWS_OPTION_CLASS, 3, new Uint8Array(8).fill(0x5e))),
    ],
  },
  {
    name: 'missing_eni',
    reason: 'geneve_missing_eni',
    what: 'no ENI option (type 1)',
    build: (eni, att) => omitted(eni, att, 1),
  },
  {
    name: 'missing_attachment',
    reason: 'geneve_missing_attachment',
    what: 'no attachment option (type 2)',
    build: (eni, att) => omitted(eni, att, 2),
  },
  {
    name: 'missing_cookie',
    reason: 'geneve_missing_cookie',
    what: 'no cookie option (type 3)',
    build: (eni, att) => omitted(eni, att, 3),
  },
  {
    name: 'inner_empty',
    reason: 'inner_empty',
    what: 'nothing after the options (zero-length inner packet), IPv4 and IPv6 protocol types',
    build: (eni, att) => [valid(eni, att, IPV4, new Uint8Array(0)), valid(eni, att, IPV6, new Uint8Array(0))],
  },
  {
    name: 'inner_version_mismatch',
    reason: 'inner_version_mismatch',
    what: 'inner packet does not match the protocol type (IPv6 under 0x0800, IPv4 under 0x86DD, version 0)',
    build: (eni, att) => {
      const zero = innerV4();
      zero[0] = 0x05;
      return [valid(eni, att, IPV4, innerV6()), valid(eni, att, IPV6, innerV4()), valid(eni, att, IPV4, zero)];
    },
  },
  {
    name: 'inner_truncated_v4',
    reason: 'inner_truncated',
    what: 'inner IPv4 header cut short or inconsistent (19 bytes, IHL 4, IHL beyond the data, total length beyond the data)',
    build: (eni, att) => {
      const ihl4 = innerV4();
      ihl4[0] = 0x44;
      const ihl15 = innerV4();
      ihl15[0] = 0x4f; // 60-byte header in a 44-byte packet
      const total = innerV4();
      total[2] = 0x05; // total length 1280+ in a 44-byte packet
      return [valid(eni, att, IPV4, innerV4().slice(0, 19)), valid(eni, att, IPV4, ihl4), valid(eni, att, IPV4, ihl15), valid(eni, att, IPV4, total)];
    },
  },
  {
    name: 'inner_truncated_v6',
    reason: 'inner_truncated',
    what: 'inner IPv6 header cut short (39 bytes) or payload length beyond the data',
    build: (eni, att) => {
      const plen = innerV6();
      plen[4] = 0x01; // payload length 256+ in a 24-byte payload
      return [valid(eni, att, IPV6, innerV6().slice(0, 39)), valid(eni, att, IPV6, plen)];
    },
  },
  {
    name: 'inner_ports_truncated',
    reason: 'inner_truncated',
    what: 'valid inner IPv4 header, but the TCP header ends before its ports (total length 22)',
    build: (eni, att) => {
      const p = innerTcpV4().slice(0, 22);
      p[2] = 0;
      p[3] = 22;
      // IPv4 header checksum does not matter to the appliance; keep the bytes otherwise valid.
      return [valid(eni, att, IPV4, p)];
    },
  },
];

/** Kinds `--malformed all` selects: every kind. */
export const MALFORMED_ALL: readonly string[] = MALFORMED_KINDS.map((k) => k.name);

export function malformedKind(name: string): MalformedKind {
  const k = MALFORMED_KINDS.find((x) => x.name === name);
  if (k === undefined) throw new RangeError(`unknown malformed kind: ${name} (known: ${MALFORMED_KINDS.map((x) => x.name).join(', ')})`);
  return k;
}

/** Index of a kind in MALFORMED_KINDS (its ENI ID derives from it); -1 when unknown. */
export function malformedIndex(name: string): number {
  return MALFORMED_KINDS.findIndex((k) => k.name === name);
}

/** The ENI ID carried by malformed kind k: 0x0bad0000_0000_00kk, moved off any ID in `avoid`
 * (the good endpoints), so that it is never the ID of a good flow. Distinct per kind. */
export function malformedEni(k: number, avoid: readonly bigint[]): bigint {
  let eni = 0x0bad000000000000n + BigInt(k + 1);
  while (avoid.includes(eni)) eni += 0x0000010000000000n;
  return eni;
}

/** The name of the extra kind for valid packets with random ENI IDs (the endpoint flood). */
export const RANDOM_ENI_KIND = 'random_eni';
