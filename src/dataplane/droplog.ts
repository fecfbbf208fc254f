// Packet log lines of a worker: dropped packets (-d, or debug level for the geneve/tunnel
// sections) and, with -x, hex dumps plus a sample of the packets carried.
//
// Contract: off the fast path unless enabled (the loop checks `enabled`/`hexDump` before calling),
// and at most `perSecond` lines a second per worker, so a flood of bad packets cannot flood the
// log; the number of lines left out is reported on the next line that is written. Lines go to the
// main thread as 'log' messages (the main thread's logger decides the level and format).

import { DROP_NAMES } from '../wire/reasons';
import type { FromWorker } from './messages';

export class DropLog {
  private windowMs = 0;
  private inWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly worker: number,
    /** Log dropped packets at all. */
    readonly enabled: boolean,
    /** -x: hex dumps, and a sample of carried packets. */
    readonly hexDump: boolean,
    private readonly post: (m: FromWorker) => void,
    private readonly perSecond = 10,
  ) {}

  /** A dropped packet (reason > 0). */
  dropped(nowMs: number, reason: number, section: string, buf: Uint8Array, off: number, len: number): void {
    if (this.enabled) this.line(nowMs, reason, section, buf, off, len);
  }

  /** -x: a packet carried (from GWLB when section is 'geneve', to GWLB when 'tunnel'). */
  carried(nowMs: number, section: string, buf: Uint8Array, off: number, len: number): void {
    if (this.hexDump && this.inWindow < this.perSecond) this.line(nowMs, 0, section, buf, off, len);
  }

  private line(nowMs: number, reason: number, section: string, buf: Uint8Array, off: number, len: number): void {
    if (nowMs - this.windowMs >= 1000) {
      this.windowMs = nowMs;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.perSecond) {
      this.suppressed++;
      return;
    }
    this.inWindow++;
    let msg =
      reason === 0
        ? `worker ${this.worker}: ${section === 'geneve' ? 'from GWLB' : 'to GWLB'}: ${len}-byte packet`
        : `worker ${this.worker}: dropped ${len}-byte packet: ${DROP_NAMES[reason]}`;
    if (this.suppressed > 0) msg += ` (${this.suppressed} similar lines suppressed)`;
    this.suppressed = 0;
    if (this.hexDump) msg += '\n' + hexDump(buf, off, Math.min(len, 256));
    this.post({ t: 'log', index: this.worker, level: 3, section, msg });
  }
}

/** Lines of 16 bytes: offset, then the bytes in hex. */
export function hexDump(buf: Uint8Array, off: number, len: number): string {
  const lines: string[] = [];
  for (let i = 0; i < len; i += 16) {
    const row: string[] = [];
    for (let j = i; j < Math.min(i + 16, len); j++) row.push(buf[off + j].toString(16).padStart(2, '0'));
    lines.push(`  ${i.toString(16).padStart(4, '0')}  ${row.join(' ')}`);
  }
  return lines.join('\n');
}
