// The IPv4 header prologue that the flow key, the fragment and the ICMP error parsers share
// (src/wire/flowkey.ts, src/wire/fragments.ts, src/wire/icmp.ts): the header length from IHL and
// its consistency with the total length and with the bytes present. One rule, in one place: IHL
// at least 5 words (20 bytes), the total length at least the header and at most the bytes present;
// bytes after the total length (padding) are not the packet's. A quoted packet inside an ICMP error
// follows another rule (it may be cut short: src/wire/icmp.ts, quote4) and does not use this.
// Hot path: two reads, no allocation; small enough for V8 to inline into its callers.

/** The header length in bytes (IHL * 4) of the IPv4 packet at buf[off, off+len) when its header
 * is consistent, else 0. The caller has checked that len >= 20 bytes are present and that the
 * version nibble is 4. Never throws. */
export function ipv4HeaderLen(buf: Uint8Array, off: number, len: number): number {
  const ihl = (buf[off] & 0x0f) * 4;
  const total = (buf[off + 2] << 8) | buf[off + 3];
  return ihl >= 20 && total >= ihl && total <= len ? ihl : 0;
}

/** The total length field of the IPv4 header at buf[off] (20 bytes present). */
export function ipv4TotalLen(buf: Uint8Array, off: number): number {
  return (buf[off + 2] << 8) | buf[off + 3];
}
