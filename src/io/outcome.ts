// What a send tier of src/io/device.ts did with the segments of one super-packet it took: sent
// (packets, inner bytes, bytes on the wire), refused alone by the raw socket, stopped by a full
// send queue, or dropped as malformed. The data plane reads it after the call and counts it per
// endpoint (it owns the counters; io/ only reports). One instance per device, reused.

export class SendOutcome {
  packets = 0;
  bytes = 0;
  wire = 0;
  refused = 0;
  busy = 0;
  malformed = 0;

  clear(): void {
    this.packets = this.bytes = this.wire = 0;
    this.refused = this.busy = this.malformed = 0;
  }

  sent(packets: number, bytes: number, wire: number): void {
    this.packets += packets;
    this.bytes += bytes;
    this.wire += wire;
  }
}
