// errno values the packet loops compare against, as plain numbers (Linux x86-64 and arm64; the
// addon only builds for Linux). The addon returns them in per-datagram status words and as
// -errno from batch calls (src/io/native.ts). A unit test checks them against
// os.constants.errno, so a platform with other values fails loudly rather than miscounting.

/** The queue is empty (reads) or full (non-blocking writes); EWOULDBLOCK is the same number. */
export const EAGAIN = 11;
/** A send queue is out of buffer space: for a raw socket, the same "full, retry later" as EAGAIN
 * (rawSend stops its batch at either). */
export const ENOBUFS = 105;

/** True for the errno of a full send queue (EAGAIN or ENOBUFS): retry later, the datagram itself
 * is not at fault. */
export function sendQueueFull(errno: number): boolean {
  return errno === EAGAIN || errno === ENOBUFS;
}
