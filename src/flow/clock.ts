// Coarse clock shared by every thread that touches the flow table.
//
// Ticks are deciseconds (100 ms) since 2024-01-01T00:00:00Z. They come from
// performance.timeOrigin + performance.now(): each worker thread has its own timeOrigin, but
// timeOrigin + now() is the same wall-clock-anchored instant on every thread (measured: threads
// agree to about 1 ms), and performance.now() is monotonic within a thread, so a wall-clock step
// (NTP, settimeofday) does not move the ticks of a running thread.
//
// Width: the flow table stores ticks in Int32 words and compares them only through the 32-bit
// wrapping difference ((a - b) | 0), so a tick value passing 2^31 (in 2030) or 2^32 (in 2037)
// changes nothing; only differences must stay below 2^31 ticks (6.8 years).

/** 2024-01-01T00:00:00Z in milliseconds since the Unix epoch. */
const EPOCH_2024_MS = 1704067200000;

export const TICKS_PER_SECOND = 10;

/** Coarse monotonic-enough clock shared by all threads: deciseconds (100 ms ticks) since 2024-01-01,
 * computed from performance.timeOrigin + performance.now() (consistent across worker threads).
 * Costs about 45 ns: call it once per batch of packets, not per packet. */
export function nowTicks(): number {
  return Math.floor((performance.timeOrigin - EPOCH_2024_MS + performance.now()) / 100);
}
