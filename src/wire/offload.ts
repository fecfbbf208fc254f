// TCP offloads done in TypeScript (issue #13, docs/architecture.md "TUN offloads"): coalescing a
// receive batch into TCP super-packets for a TUN write, and cutting super-packets read from a TUN
// back into segments. Pure functions over preallocated typed arrays: no allocation per packet or
// batch, numbers only.
//
// The coalescer lives in src/wire/coalesce.ts, the segmentation in src/wire/segment.ts; this
// module holds what both use and re-exports them.
//
// Measured (node dist/bench/offload.js --rounds 10000, Node 20, this 2-core machine while other
// builds and tests ran: load average 7-10, so figures are CPU time and vary by +-30% between runs;
// an idle machine should be faster), runs of 32 IPv4 segments of 1448 bytes with timestamps:
//   coalesce, one flow, 32 -> 1 super-packet   0.9-1.3 us per segment (checksum verify + copy)
//   coalesce, 32 flows, nothing merges         70-110 ns per packet (parse, hash, no payload pass)
//   split into complete segments               0.75-1.0 us per segment
//   split, headers only (iovec form)           0.8-0.9 us per segment
//   sumBytes32 / onesSum over 1448 bytes       0.5-1.0 us / 1.1-1.7 us;  copyWithin 50-80 ns
// After sumBytes32 took aligned runs as native 32-bit words added as doubles (src/wire/checksum32.ts),
// on the same machine, same load, one run: sumBytes32 994 -> 329 ns per 1448 bytes, coalesce
// 1194 -> 810 ns and split-copy 866 -> 759 ns per segment. In the daemon (perf, --offload on, bulk
// TCP) the coalescer's checksum verification had been its largest JavaScript cost (14% of the CPU).
// Against that: the kernel time a TUN write + forward + read of one super-packet saves, 0.9 us per
// 1448-byte segment one by one against 0.09 us as one super-packet (measured with C programs on
// kernel 6.18). Almost all of the JS cost is the one's complement sum over the payload, which the
// coalescer cannot skip (the checksum rule in src/wire/coalesce.ts) and the split cannot either
// (each segment needs its own checksum).

export { MAX_INNER, MAX_SUPER } from './offload-common';
export * from './coalesce';
export * from './segment';
