// Child process for test/unit/native.test.ts: runs inside a network namespace the parent test
// created (`ip netns exec NS node native-ns-child.js <ifname>`), because tunOpen creates the
// device in the calling process's namespace. Exercises the TUN and epoll calls, prints one JSON
// object (ChildReport) on stdout, and exits. The parent asserts on it.
import { execFileSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { native } from '../../../src/io/native';
import { ipv4Udp } from './native-packets';

export interface ChildReport {
  error?: string;
  ifIndexOpen: number;
  longNameError: string;
  noDevError: { code: string; errno: number; message: string };
  mtu: number;
  flags: number;
  operstate: string;
  idleReads: number[];
  writeReturn: number;
  writeStatus: number[];
  rxDelta: number;
  epollIdle: number;
  readReturn: number;
  readLen: number;
  readLen0: number;
  readPacketHex: string;
  guardIntact: boolean;
  truncReturn: number;
  truncLen: number;
  truncGuardIntact: boolean;
  ifIndexClosed: number;
  readAfterClose: number;
  /** tunSetPersist: tun_flags with it, the device after its last queue closed (ifindex, carrier),
   * the same ifindex when a queue is opened on it again, and gone once it is cleared. */
  persistFlags: number;
  persistIfIndexClosed: number;
  persistCarrierClosed: string;
  persistIfIndexReopened: number;
  persistIfIndexCleared: number;
  persistBadFd: string;
}

const name = process.argv[2] ?? 'gwi-test';
const a = native();
const sys = (f: string): string => fs.readFileSync(`/sys/class/net/${name}/${f}`, 'utf8').trim();

function errInfo(f: () => unknown): { code: string; errno: number; message: string } {
  try {
    f();
  } catch (e) {
    const x = e as { code?: unknown; errno?: unknown; message?: unknown };
    return { code: String(x.code), errno: Number(x.errno), message: String(x.message) };
  }
  return { code: 'no error', errno: 0, message: '' };
}

function sendUdp(payload: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.send(payload, 9, '198.51.100.7', (err) => {
      s.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

/** epoll-waits (bounded: 20 x 100 ms) for one of `fds` to be readable; returns it or -1. */
function waitReadable(ep: number, ready: Int32Array): number {
  for (let i = 0; i < 20; i++) {
    const n = a.epollWait(ep, ready, 100);
    if (n > 0) return ready[0]!;
  }
  return -1;
}

async function main(): Promise<ChildReport> {
  // New devices would otherwise get IPv6 housekeeping packets (router solicitations, MLD),
  // which would make the "nothing queued" read flaky. These sysctls are per namespace.
  for (const k of ['all', 'default']) {
    try {
      fs.writeFileSync(`/proc/sys/net/ipv6/conf/${k}/disable_ipv6`, '1');
    } catch {
      /* no IPv6 in this kernel: nothing to silence */
    }
  }
  const r = {} as ChildReport;
  const fd1 = a.tunOpen(name);
  const fd2 = a.tunOpen(name); // second queue of the same device
  r.ifIndexOpen = a.ifIndex(name);
  r.longNameError = errInfo(() => a.tunOpen('x'.repeat(16))).code;
  r.noDevError = errInfo(() => a.linkSetup('gwt-nodev0', 1500, 0));
  a.linkSetup(name, 8500, 2048);
  r.mtu = Number(sys('mtu'));
  r.flags = parseInt(sys('flags'), 16);
  r.operstate = sys('operstate');

  const lens = new Int32Array(8);
  const buf = new Uint8Array(4 * 2048);
  r.idleReads = [a.tunRead(fd1, buf, 2048, 0, 0, 4, lens), a.tunRead(fd2, buf, 2048, 0, 0, 4, lens)];

  // tunWrite: one packet per queue plus one to a bad descriptor (must be marked, not thrown).
  const rxBefore = Number(sys('statistics/rx_packets'));
  const pkt = ipv4Udp('192.0.2.1', '203.0.113.9', 1000, 9, new TextEncoder().encode('to-the-kernel'));
  buf.set(pkt, 0);
  const wmeta = new Int32Array([fd1, 0, pkt.length, fd2, 0, pkt.length, 1_000_000, 0, pkt.length]);
  r.writeReturn = a.tunWrite(buf, wmeta, 3);
  r.writeStatus = Array.from(wmeta);
  r.rxDelta = Number(sys('statistics/rx_packets')) - rxBefore;

  // A real tunRead: the kernel routes a datagram out of the device.
  execFileSync('ip', ['route', 'add', '198.51.100.0/24', 'dev', name]);
  const ep = a.epollCreate();
  a.epollAdd(ep, fd1);
  a.epollAdd(ep, fd2);
  const ready = new Int32Array(4);
  r.epollIdle = a.epollWait(ep, ready, 0);
  await sendUdp(Buffer.from('gwlbtun-native-test'));
  let fd = waitReadable(ep, ready);
  buf.fill(0xaa);
  lens.fill(-7);
  r.readReturn = fd < 0 ? -1000 : a.tunRead(fd, buf, 2048, 16, 1, 2, lens);
  r.readLen = lens[1]!;
  r.readLen0 = lens[0]!;
  r.readPacketHex = Buffer.from(buf.subarray(2048 + 16, 2048 + 16 + Math.max(0, r.readLen))).toString('hex');
  r.guardIntact = buf.subarray(2048, 2048 + 16).every((x) => x === 0xaa) && buf.subarray(0, 2048).every((x) => x === 0xaa);

  // A packet longer than the slot: only slotSize bytes stored, nothing after the slot touched.
  await sendUdp(Buffer.alloc(300, 0x55));
  fd = waitReadable(ep, ready);
  const small = new Uint8Array(128).fill(0xaa);
  lens.fill(-7);
  r.truncReturn = fd < 0 ? -1000 : a.tunRead(fd, small, 64, 0, 0, 1, lens);
  r.truncLen = lens[0]!;
  r.truncGuardIntact = small.subarray(64).every((x) => x === 0xaa);

  a.epollDel(ep, fd1);
  a.epollDel(ep, fd2);
  a.close(ep);
  a.close(fd1);
  a.close(fd2);
  r.ifIndexClosed = a.ifIndex(name);
  // A descriptor number that cannot be open (re-reading the closed fd1 could hit a reused number).
  r.readAfterClose = a.tunRead(1_000_000, buf, 2048, 0, 0, 1, lens);

  // A persistent device outlives its last queue and is attached to again (crash survival).
  const p1 = a.tunOpen('gwi-persist');
  const p2 = a.tunOpen('gwi-persist');
  const idx = a.ifIndex('gwi-persist');
  a.linkSetup('gwi-persist', 8500, 0);
  a.tunSetPersist(p1, true);
  r.persistFlags = parseInt(fs.readFileSync('/sys/class/net/gwi-persist/tun_flags', 'utf8'), 16);
  a.close(p1);
  a.close(p2);
  r.persistIfIndexClosed = a.ifIndex('gwi-persist');
  r.persistCarrierClosed = fs.readFileSync('/sys/class/net/gwi-persist/carrier', 'utf8').trim();
  const p3 = a.tunOpen('gwi-persist');
  r.persistIfIndexReopened = a.ifIndex('gwi-persist') === idx ? idx : -1;
  a.tunSetPersist(p3, false);
  a.close(p3);
  r.persistIfIndexCleared = a.ifIndex('gwi-persist');
  r.persistBadFd = errInfo(() => a.tunSetPersist(1_000_000, true)).code;
  return r;
}

main().then(
  (r) => {
    process.stdout.write(JSON.stringify(r) + '\n');
  },
  (e: unknown) => {
    process.stdout.write(JSON.stringify({ error: e instanceof Error ? `${e.stack}` : String(e) }) + '\n');
    process.exitCode = 1;
  },
);
