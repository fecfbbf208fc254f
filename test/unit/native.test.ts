// Tests of the C addon (src/native/gwlbtun.c) against its contract (src/io/native.ts).
// Needs root (raw sockets, TUN, network namespaces). UDP/raw traffic stays on loopback
// (127.0.0.1/127.0.0.2); TUN traffic stays inside a namespace created and removed here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { native, type NativeAddon } from '../../src/io/native';
import { resolveAddon } from '../../src/io/addon';
import { monoMs } from '../../src/base/clock';
import { writeIpv4Udp } from './helpers/native-packets';
import type { ChildReport } from './helpers/native-ns-child';

const isRoot = process.getuid?.() === 0;
const needRoot = isRoot ? {} : { skip: 'needs root (raw sockets, TUN, netns)' };
const a: NativeAddon = native();
const LO1 = 0x7f000001; // 127.0.0.1
const LO2 = 0x7f000002; // 127.0.0.2: also local, so pktinfo's destination differs from the source
const enc = new TextEncoder();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
// test/e2e/package.test.ts runs this file on an arm64 Node under qemu-user: a child Node needs
// the emulator in front of it too (e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu").
const EXEC_WRAPPER = (process.env.GWLBTUN_TEST_EXEC_WRAPPER ?? '').split(' ').filter((w) => w !== '');

function codeOf(f: () => unknown): { code: unknown; errno: unknown; message: string; name: string } {
  try {
    f();
  } catch (e) {
    const x = e as Error & { code?: unknown; errno?: unknown };
    return { code: x.code, errno: x.errno, message: x.message, name: x.name };
  }
  assert.fail('expected a throw');
}

/** udpOpen on a free high port: tries 40000 + pid%1000, then further ports on EADDRINUSE. */
function openFreeUdp(reusePort: boolean, rcvbuf = 0): { fd: number; port: number } {
  const base = 40000 + (process.pid % 1000);
  for (let k = 0; k < 50; k++) {
    const port = base + ((k * 997) % 20000);
    try {
      return { fd: a.udpOpen(port, rcvbuf, reusePort), port };
    } catch (e) {
      if ((e as { code?: string }).code !== 'EADDRINUSE') throw e;
    }
  }
  throw new Error('no free UDP port found');
}

/** Receives until `want` datagrams arrived or 2 s passed (bounded). */
async function recvAll(fd: number, buf: Uint8Array, slot: number, want: number, meta: Int32Array,
  perCall = want): Promise<number> {
  let got = 0;
  const tmpMeta = new Int32Array(perCall * 5);
  const deadline = Date.now() + 2000;
  while (got < want && Date.now() < deadline) {
    const max = Math.min(perCall, want - got);
    const n = a.udpRecv(fd, buf.subarray(got * slot), slot, max, tmpMeta);
    assert.ok(n >= 0, `udpRecv returned ${n}`);
    meta.set(tmpMeta.subarray(0, n * 5), got * 5);
    got += n;
    if (n === 0) await sleep(5);
  }
  return got;
}

test('exports exactly the contract functions', () => {
  assert.deepEqual(Object.keys(a).sort(), [
    'close', 'epollAdd', 'epollCreate', 'epollDel', 'epollWait', 'ifIndex', 'linkOffloads', 'linkSetup', 'monoInto', 'rawOpen',
    'rawSend', 'reapOrphans', 'routeDev', 'sdNotify', 'setAffinity', 'setCloexec', 'setSched', 'tapOpen', 'tunOpen', 'tunRead', 'tunSetOffload', 'tunSetPersist', 'tunSetQueue', 'tunWrite', 'udpOpen', 'udpRecv',
  ]);
});

// The worker loop's clock (src/dataplane/loop.ts): CLOCK_MONOTONIC, the clock of monoMs().
test('monoInto writes the monotonic clock in ms into out[0]; a wrong array is a TypeError', () => {
  const out = new Float64Array(1);
  const before = monoMs();
  a.monoInto(out);
  const after = monoMs();
  assert.ok(out[0] >= before - 1 && out[0] <= after + 1, `${before} <= ${out[0]} <= ${after}`);
  assert.throws(() => a.monoInto(new Int32Array(2) as unknown as Float64Array), TypeError);
  assert.throws(() => a.monoInto(new Float64Array(0)), RangeError);
});

// The hand-over's two (src/control/handover.ts); sdNotify's datagrams are read by a stand-in
// notification socket in test/e2e/handover.test.ts.
test('setCloexec sets FD_CLOEXEC (EBADF on a closed descriptor); sdNotify returns -errno, never throws for the send', () => {
  const fd = a.udpOpen(0, 0, false);
  const cloexec = (): boolean => (parseInt(/^flags:\s*([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8) & 0o2000000) !== 0;
  a.setCloexec(fd);
  assert.ok(cloexec());
  a.close(fd);
  assert.equal(codeOf(() => a.setCloexec(fd)).code, 'EBADF');
  const missing = path.join(os.tmpdir(), `gwlbtun-no-such-socket-${process.pid}`);
  assert.equal(a.sdNotify(missing, 'READY=1'), -2, 'ENOENT');
  assert.equal(a.sdNotify('', 'READY=1'), -22, 'EINVAL: no path');
  assert.equal(a.sdNotify('/' + 'x'.repeat(200), 'READY=1'), -22, 'EINVAL: longer than sun_path');
  assert.equal(a.sdNotify(missing, ''), -22, 'EINVAL: nothing to say');
});

// The egress device towards GWLB (src/control/egress.ts): nothing is sent, only asked.
test('routeDev names the route\'s device; linkOffloads its driver and active features; ENODEV for none', () => {
  assert.equal(a.routeDev(LO1), 'lo', 'a local address: the loopback device');
  const lo = a.linkOffloads('lo');
  assert.equal(lo.driver, '', 'lo names no driver');
  // qemu-user (the arm64 addon's run in test/e2e/package.test.ts) does not translate SIOCETHTOOL,
  // whose request points at a further buffer: the features come back empty there.
  const emulated = (process.env.GWLBTUN_TEST_EXEC_WRAPPER ?? '').includes('qemu');
  if (!emulated) assert.ok(lo.features.includes('loopback'), `features: ${lo.features.join(' ')}`);
  assert.ok(lo.features.every((f) => /^[a-z0-9_-]+$/.test(f)));
  assert.equal(codeOf(() => a.linkOffloads('nosuchdev0')).code, 'ENODEV');
  assert.equal(codeOf(() => a.linkOffloads('')).name, 'RangeError');
  assert.equal(codeOf(() => a.routeDev(-1)).name, 'RangeError');
});

test('rawSend -> udpRecv on loopback: payload, addresses, pktinfo, truncation', needRoot, async () => {
  const { fd, port } = openFreeUdp(false);
  const raw = a.rawOpen(1 << 20);
  try {
    const buf = new Uint8Array(16 * 2048);
    const meta = new Int32Array(16 * 5);
    assert.equal(a.udpRecv(fd, buf, 2048, 16, meta), 0, 'nothing queued yet');

    const out = new Uint8Array(4096);
    const status = new Int32Array([-1]);
    const len = writeIpv4Udp(out, 100, '127.0.0.1', '127.0.0.2', 12345, port, enc.encode('hello gwlbtun'));
    assert.equal(a.rawSend(raw, out, new Int32Array([100, len, LO2]), 1, status), 1);
    assert.equal(status[0], 0);
    assert.equal(await recvAll(fd, buf, 2048, 1, meta), 1);
    assert.equal(meta[0], 13);
    assert.equal(Buffer.from(buf.subarray(0, 13)).toString(), 'hello gwlbtun');
    assert.equal(meta[1]! >>> 0, LO1, 'source IPv4');
    assert.equal(meta[2], 12345, 'source port');
    assert.equal(meta[3]! >>> 0, LO2, 'pktinfo destination');
    assert.equal(meta[4], 0, 'not truncated');

    // 100-byte payload into 32-byte slots: 32 bytes stored, bit 0 set, next slot untouched.
    const big = new Uint8Array(100).map((_, i) => i);
    const len2 = writeIpv4Udp(out, 0, '127.0.0.1', '127.0.0.1', 2000, port, big);
    assert.equal(a.rawSend(raw, out, new Int32Array([0, len2, LO1]), 1, status), 1);
    const small = new Uint8Array(64).fill(0xee);
    const m2 = new Int32Array(10);
    let n = 0;
    for (let i = 0; i < 400 && n === 0; i++) {
      n = a.udpRecv(fd, small, 32, 1, m2);
      if (n === 0) await sleep(5);
    }
    assert.equal(n, 1);
    assert.equal(m2[0], 32);
    assert.equal(m2[4]! & 1, 1, 'truncated flag');
    assert.deepEqual(Array.from(small.subarray(0, 32)), Array.from(big.subarray(0, 32)));
    assert.ok(small.subarray(32).every((x) => x === 0xee), 'bytes after the slot untouched');
    assert.equal(m2[3]! >>> 0, LO1);
  } finally {
    a.close(fd);
    a.close(raw);
  }
});

test('batches: 64 packets in slices, and 300 (more than one internal chunk) at once', needRoot, async () => {
  const { fd, port } = openFreeUdp(false, 8 << 20);
  const raw = a.rawOpen(0);
  try {
    const out = new Uint8Array(300 * 64);
    const smeta = new Int32Array(300 * 3);
    for (let i = 0; i < 300; i++) {
      const p = enc.encode(`pkt-${String(i).padStart(4, '0')}`); // 8 bytes
      smeta[i * 3] = i * 64;
      smeta[i * 3 + 1] = writeIpv4Udp(out, i * 64, '127.0.0.1', '127.0.0.1', 3000 + i, port, p);
      smeta[i * 3 + 2] = LO1;
    }
    const status = new Int32Array(300);
    const buf = new Uint8Array(400 * 64);
    const meta = new Int32Array(400 * 5);

    assert.equal(a.rawSend(raw, out, smeta, 64, status), 64);
    assert.equal(status[0], 0);
    assert.equal(await recvAll(fd, buf, 64, 64, meta, 10), 64, 'received in calls of at most 10');
    for (let i = 0; i < 64; i++) {
      assert.equal(meta[i * 5], 8);
      assert.equal(meta[i * 5 + 2], 3000 + i);
      assert.equal(Buffer.from(buf.subarray(i * 64, i * 64 + 8)).toString(), `pkt-${String(i).padStart(4, '0')}`);
    }
    assert.equal(a.udpRecv(fd, buf, 64, 400, meta), 0);

    // 300 > the C side's 256-message chunk: both rawSend and udpRecv must loop internally.
    assert.equal(a.rawSend(raw, out, smeta, 300, status), 300);
    await sleep(100); // loopback delivery is done in softirq; leave it time even on a loaded box
    assert.equal(a.udpRecv(fd, buf, 64, 400, meta), 300, 'one call returns everything queued');
    for (let i = 0; i < 300; i++) assert.equal(meta[i * 5 + 2], 3000 + i);
  } finally {
    a.close(fd);
    a.close(raw);
  }
});

test('rawSend skips a datagram the kernel refuses, reports its errno, and sends the rest', needRoot, async () => {
  const { fd, port } = openFreeUdp(false);
  const raw = a.rawOpen(0);
  try {
    const out = new Uint8Array(256);
    const l = writeIpv4Udp(out, 0, '127.0.0.1', '127.0.0.1', 4000, port, enc.encode('x'));
    // Packet 1 is 10 bytes: shorter than its own IPv4 header, the kernel refuses it (EINVAL).
    const smeta = new Int32Array([0, l, LO1, 0, 10, LO1, 0, l, LO1, 0, 10, LO1, 0, l, LO1]);
    const status = new Int32Array(5).fill(-1);
    assert.equal(a.rawSend(raw, out, smeta, 5, status), 5, 'every datagram dealt with');
    const EINVAL = os.constants.errno.EINVAL;
    assert.deepEqual([...status], [0, EINVAL, 0, EINVAL, 0]);
    assert.equal(await recvAll(fd, new Uint8Array(3 * 2048), 2048, 3, new Int32Array(15)), 3, 'its neighbours arrive');
  } finally {
    a.close(fd);
    a.close(raw);
  }
});

test('udpOpen: EADDRINUSE without reusePort, shared port with it', needRoot, () => {
  const first = openFreeUdp(false);
  try {
    const e = codeOf(() => a.udpOpen(first.port, 0, false));
    assert.equal(e.code, 'EADDRINUSE');
    assert.equal(e.errno, os.constants.errno.EADDRINUSE);
    assert.equal(e.message, `udpOpen(${first.port}): bind: Address already in use`);
  } finally {
    a.close(first.fd);
  }
  const s1 = openFreeUdp(true);
  try {
    const s2 = a.udpOpen(s1.port, 0, true);
    a.close(s2);
  } finally {
    a.close(s1.fd);
  }
});

test('epoll on a UDP socket: idle timeout, then readiness', needRoot, async () => {
  const { fd, port } = openFreeUdp(false);
  const raw = a.rawOpen(0);
  const ep = a.epollCreate();
  try {
    a.epollAdd(ep, fd);
    const fds = new Int32Array(8);
    assert.equal(a.epollWait(ep, fds, 0), 0);
    const t0 = process.hrtime.bigint();
    assert.equal(a.epollWait(ep, fds, 50), 0);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.ok(ms >= 40 && ms < 1000, `idle wait took ${ms} ms`);

    const out = new Uint8Array(64);
    const l = writeIpv4Udp(out, 0, '127.0.0.1', '127.0.0.1', 5000, port, enc.encode('wake'));
    assert.equal(a.rawSend(raw, out, new Int32Array([0, l, LO1]), 1, new Int32Array(1)), 1);
    let n = 0;
    for (let i = 0; i < 20 && n === 0; i++) n = a.epollWait(ep, fds, 100);
    assert.equal(n, 1);
    assert.equal(fds[0], fd);
    assert.equal(a.udpRecv(fd, new Uint8Array(64), 64, 1, new Int32Array(5)), 1);
    assert.equal(a.epollWait(ep, fds, 0), 0, 'drained');

    // Two ready sockets: both reported; a 1-element fds array gets exactly one.
    const other = openFreeUdp(false);
    try {
      a.epollAdd(ep, other.fd);
      const l2 = writeIpv4Udp(out, 32, '127.0.0.1', '127.0.0.1', 5001, other.port, enc.encode('wake'));
      assert.equal(a.rawSend(raw, out, new Int32Array([0, l, LO1, 32, l2, LO1]), 2, new Int32Array(2)), 2);
      n = 0;
      for (let i = 0; i < 20 && n < 2; i++) n = a.epollWait(ep, fds.fill(-1), 100);
      assert.equal(n, 2);
      assert.deepEqual([fds[0], fds[1]].sort(), [fd, other.fd].sort());
      assert.equal(fds[2], -1);
      const one = new Int32Array(1);
      assert.equal(a.epollWait(ep, one, 0), 1);
      assert.ok(one[0] === fd || one[0] === other.fd);
      a.epollDel(ep, other.fd);
    } finally {
      a.close(other.fd);
    }
    assert.equal(a.udpRecv(fd, new Uint8Array(64), 64, 1, new Int32Array(5)), 1);

    a.epollDel(ep, fd);
    a.epollDel(ep, fd); // ENOENT ignored
    a.epollDel(ep, 1_000_000); // EBADF ignored
    assert.equal(codeOf(() => a.epollAdd(ep, 1_000_000)).code, 'EBADF');
  } finally {
    a.close(ep);
    a.close(fd);
    a.close(raw);
  }
});

test('bad arguments throw TypeError/RangeError and touch nothing', () => {
  const u8 = new Uint8Array(1024);
  const i32 = new Int32Array(10);
  const range = (f: () => unknown): void => assert.equal(codeOf(f).name, 'RangeError');
  const type = (f: () => unknown): void => assert.equal(codeOf(f).name, 'TypeError');
  const any = a as unknown as Record<string, (...args: unknown[]) => unknown>;
  // Descriptor 1_000_000 is never open: if validation failed to throw, the syscall would only
  // fail with EBADF, not touch memory.
  const BAD = 1_000_000;

  range(() => a.udpRecv(BAD, u8, 512, 3, new Int32Array(15))); // 3 slots of 512 > 1024 bytes
  range(() => a.udpRecv(BAD, u8, 256, 4, new Int32Array(19))); // meta one short
  range(() => a.udpRecv(BAD, u8, 0, 1, i32)); // slotSize 0
  range(() => a.udpRecv(BAD, u8, 256, -1, i32));
  range(() => a.udpRecv(BAD, u8, 1.5, 1, i32));
  range(() => a.udpRecv(BAD, u8, Number.NaN, 1, i32));
  type(() => a.udpRecv(BAD, new Int32Array(256) as unknown as Uint8Array, 256, 1, i32));
  type(() => a.udpRecv(BAD, u8, 256, 1, new Uint32Array(5) as unknown as Int32Array));
  type(() => any.udpRecv!(BAD, [1, 2, 3], 1, 1, i32));
  type(() => any.udpRecv!(BAD, u8));
  assert.equal(a.udpRecv(BAD, Buffer.alloc(64), 64, 1, new Int32Array(5)), -os.constants.errno.EBADF,
    'a Buffer is accepted; I/O errors are returned as -errno');

  range(() => a.rawSend(BAD, u8, new Int32Array([1000, 25, LO1]), 1, i32)); // past the end
  range(() => a.rawSend(BAD, u8, new Int32Array([-1, 20, LO1]), 1, i32));
  range(() => a.rawSend(BAD, u8, new Int32Array([0, 20, LO1]), 2, i32)); // meta too short
  range(() => a.rawSend(BAD, u8, new Int32Array([0, 20, LO1]), 1, new Int32Array(0)));
  range(() => a.rawSend(BAD, u8, new Int32Array([0, 20, LO1, 0, 20, LO1]), 2, new Int32Array(1))); // status too short
  const st = new Int32Array(1);
  assert.equal(a.rawSend(BAD, u8, new Int32Array([0, 20, LO1]), 1, st), 1, 'dealt with: failed alone');
  assert.equal(st[0], os.constants.errno.EBADF);

  range(() => a.tunRead(BAD, u8, 256, 0, 3, 2, i32)); // slots 3..4 end past 1024 bytes
  range(() => a.tunRead(BAD, u8, 256, 0, 0, 4, new Int32Array(3))); // lens too short
  range(() => a.tunRead(BAD, u8, 256, 256, 0, 1, i32)); // headroom leaves no room
  range(() => a.tunRead(BAD, u8, 256, -1, 0, 1, i32));
  assert.equal(a.tunRead(BAD, u8, 256, 16, 1, 2, i32), -os.constants.errno.EBADF);

  range(() => a.tunWrite(u8, new Int32Array([BAD, 1020, 5]), 1));
  range(() => a.tunWrite(u8, new Int32Array([BAD, 0, 5]), 2));
  const wm = new Int32Array([BAD, 0, 5]);
  assert.equal(a.tunWrite(u8, wm, 1), 0);
  assert.equal(wm[2], -os.constants.errno.EBADF);

  range(() => a.tunOpen('x'.repeat(16)));
  range(() => a.tunOpen(''));
  type(() => any.tunOpen!(5));
  assert.equal(a.ifIndex('x'.repeat(40)), 0);
  assert.equal(a.ifIndex('gwt-none-' + (process.pid % 1000)), 0);
  assert.ok(a.ifIndex('lo') > 0);
  range(() => a.udpOpen(70000, 0, false));
  type(() => any.udpOpen!(40000, 0, 1));
  range(() => a.epollWait(BAD, new Int32Array(0), 0));
  range(() => a.epollWait(BAD, i32, -1));
  range(() => a.setAffinity([-1]));
  range(() => a.setAffinity([1 << 20]));
  type(() => any.setAffinity!(0));
  a.close(BAD); // EBADF ignored
});

/** The process has exited and waits to be collected (state Z). */
function isZombie(pid: number): boolean {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2)[0] === 'Z';
  } catch {
    return false;
  }
}

/** Waits, without yielding to the event loop (so libuv cannot collect it meanwhile), until the
 * child is a zombie. */
function zombieNow(pid: number): void {
  const deadline = Date.now() + 3000;
  while (!isZombie(pid)) if (Date.now() > deadline) assert.fail(`child ${pid} did not exit`);
}

test('reapOrphans leaves the children in `ours` to child_process (their exit code still arrives) and collects the others', async () => {
  const kept = spawn('/bin/sh', ['-c', 'exit 7'], { stdio: 'ignore' });
  const keptExit = new Promise<number | null>((res) => kept.on('exit', (c) => res(c)));
  zombieNow(kept.pid!);
  assert.equal(a.reapOrphans(Int32Array.of(1, kept.pid!)), 0, 'a child of ours is only peeked at');
  assert.equal(isZombie(kept.pid!), true, 'its exit status is still there');
  assert.equal(await keptExit, 7, 'child_process collects it itself');

  // Not in `ours`: collected here, so child_process never sees it (unref: the test must not wait for its 'exit').
  const other = spawn('/bin/sh', ['-c', 'exit 3'], { stdio: 'ignore' });
  other.unref();
  zombieNow(other.pid!);
  assert.equal(a.reapOrphans(new Int32Array(0)), 1);
  assert.equal(fs.existsSync(`/proc/${other.pid}`), false, 'collected: gone from /proc');
  assert.equal(a.reapOrphans(new Int32Array(0)), 0, 'nothing left to collect');
  assert.throws(() => (a as unknown as { reapOrphans(x: unknown): number }).reapOrphans([1]), TypeError);
});

/** This thread's Cpus_allowed_list, e.g. '0-1' or '2,5'. */
function allowedList(): string {
  return fs.readFileSync('/proc/thread-self/status', 'utf8').match(/Cpus_allowed_list:\s*(\S+)/)![1]!;
}

/** '0-2,5' -> [0, 1, 2, 5] */
function parseCpuList(s: string): number[] {
  const out: number[] = [];
  for (const part of s.split(',')) {
    const [lo, hi] = part.split('-').map(Number);
    for (let c = lo!; c <= (hi ?? lo)!; c++) out.push(c);
  }
  return out;
}

test('loads in several worker threads; setAffinity pins only the calling thread', async () => {
  const addon = resolveAddon(path.resolve(__dirname, '..', '..', '..')); // what native() loaded
  const mainBefore = allowedList();
  const allowed = parseCpuList(mainBefore); // a container may allow only some CPUs
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const fs = require('node:fs');
    const a = require(workerData.addon);
    a.setAffinity([workerData.cpu]);
    const cpus = fs.readFileSync('/proc/thread-self/status', 'utf8').match(/Cpus_allowed_list:\\s*(\\S+)/)[1];
    const fd = a.udpOpen(0, 0, false);
    const n = a.udpRecv(fd, new Uint8Array(64), 64, 1, new Int32Array(5));
    a.close(fd);
    parentPort.postMessage({ cpus, n });`;
  const run = (cpu: number): Promise<{ cpus: string; n: number }> => new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { addon, cpu } });
    const timer = setTimeout(() => {
      void w.terminate();
      reject(new Error('worker timed out'));
    }, 10000);
    w.once('message', (m: { cpus: string; n: number }) => {
      clearTimeout(timer);
      resolve(m);
    });
    w.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  const cpus = [0, 1, 2, 3].map((i) => allowed[i % allowed.length]!);
  const results = await Promise.all(cpus.map(run));
  for (let i = 0; i < cpus.length; i++) {
    assert.equal(results[i]!.cpus, String(cpus[i]));
    assert.equal(results[i]!.n, 0);
  }
  assert.equal(allowedList(), mainBefore, 'main thread affinity unchanged');
});

// src/io/sched.ts: the workers ask for a short slice, the main thread for SCHED_BATCH.
test('setSched sets the calling thread\'s policy and slice only', async () => {
  const addon = resolveAddon(path.resolve(__dirname, '..', '..', '..'));
  const schedOf = (f: string): { policy: number; slice: number } => {
    const t = fs.readFileSync(f, 'utf8');
    return { policy: Number(/^policy\s*:\s*(\d+)/m.exec(t)![1]), slice: Number(/^se\.slice\s*:\s*(\d+)/m.exec(t)?.[1] ?? 0) };
  };
  const mainBefore = schedOf('/proc/thread-self/sched');
  const code = `
    const { parentPort } = require('node:worker_threads');
    const fs = require('node:fs');
    const a = require(${JSON.stringify(addon)});
    const read = () => fs.readFileSync('/proc/thread-self/sched', 'utf8');
    const batch = a.setSched(true, 0);
    const b = read();
    const slice = a.setSched(false, 100000);
    parentPort.postMessage({ batch, b, slice, o: read() });`;
  const m = await new Promise<{ batch: number; b: string; slice: number; o: string }>((resolve, reject) => {
    const w = new Worker(code, { eval: true });
    w.once('message', resolve);
    w.once('error', reject);
  });
  assert.match(m.b, /^policy\s*:\s*3$/m, 'SCHED_BATCH');
  assert.match(m.o, /^policy\s*:\s*0$/m, 'back to SCHED_OTHER');
  if (m.slice !== 0) {
    // Linux 6.12+ (EEVDF custom slices): the slice asked for, as the kernel shows it.
    assert.equal(m.slice, 100000);
    assert.match(m.o, /^se\.slice\s*:\s*100000$/m);
  }
  assert.deepEqual(schedOf('/proc/thread-self/sched'), mainBefore, 'main thread unchanged');
  const any = a as unknown as Record<string, (...x: unknown[]) => unknown>;
  assert.throws(() => any.setSched!(1, 0), TypeError);
  assert.throws(() => any.setSched!(false, 200_000_000), RangeError);
  assert.throws(() => any.setSched!(false, -1), RangeError);
});

test('TUN queues, link setup, tunWrite/tunRead and epoll inside a network namespace', needRoot, () => {
  const ns = `gwt-native-${process.pid}`;
  const child = path.join(__dirname, 'helpers', 'native-ns-child.js');
  execFileSync('ip', ['netns', 'add', ns]);
  let out = '';
  try {
    try {
      out = execFileSync('ip', ['netns', 'exec', ns, ...EXEC_WRAPPER, process.execPath, child, 'gwi-test'], {
        encoding: 'utf8', timeout: 30000, killSignal: 'SIGKILL', stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string; message: string };
      assert.fail(`child failed: ${x.message}\nstdout: ${x.stdout}\nstderr: ${x.stderr}`);
    }
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
  const r = JSON.parse(out) as ChildReport;
  assert.equal(r.error, undefined);
  const E = os.constants.errno;
  assert.ok(r.ifIndexOpen > 0);
  assert.equal(r.longNameError, 'ERR_OUT_OF_RANGE');
  assert.equal(r.noDevError.code, 'ENODEV');
  assert.equal(r.noDevError.errno, E.ENODEV);
  assert.equal(r.noDevError.message, 'linkSetup(gwt-nodev0): SIOCSIFMTU: No such device');
  assert.equal(r.mtu, 8500);
  assert.equal(r.flags & 1, 1, 'IFF_UP');
  assert.ok(['up', 'unknown'].includes(r.operstate), `operstate ${r.operstate}`);
  assert.deepEqual(r.idleReads, [0, 0]);
  assert.equal(r.writeReturn, 2);
  assert.deepEqual(r.writeStatus.slice(6), [1_000_000, 0, -E.EBADF]);
  assert.equal(r.rxDelta, 2);
  assert.equal(r.epollIdle, 0);

  const payload = Buffer.from('gwlbtun-native-test');
  assert.equal(r.readReturn, 1);
  assert.equal(r.readLen, 28 + payload.length);
  assert.equal(r.readLen0, -7, 'slots before firstSlot untouched');
  const p = Buffer.from(r.readPacketHex, 'hex');
  assert.equal(p[0], 0x45);
  assert.equal(p[9], 17);
  assert.deepEqual([...p.subarray(16, 20)], [198, 51, 100, 7]);
  assert.equal(p.readUInt16BE(22), 9);
  assert.deepEqual(p.subarray(28), payload);
  assert.ok(r.guardIntact, 'headroom and other slots untouched');
  assert.equal(r.truncReturn, 1);
  assert.equal(r.truncLen, 64);
  assert.ok(r.truncGuardIntact);
  assert.equal(r.ifIndexClosed, 0, 'device gone after its last queue closed');
  assert.equal(r.readAfterClose, -E.EBADF);
  assert.equal(r.persistFlags & 0x1901, 0x1901, 'IFF_TUN | IFF_MULTI_QUEUE | IFF_PERSIST | IFF_NO_PI');
  assert.ok(r.persistIfIndexClosed > 0, 'a persistent device outlives its last queue');
  assert.equal(r.persistCarrierClosed, '0', 'no carrier without a queue');
  assert.ok(r.persistIfIndexReopened > 0, 'the same device attached to again');
  assert.equal(r.persistIfIndexCleared, 0, 'gone with its last queue once persistence is cleared');
  assert.equal(r.persistBadFd, 'EBADF');
});
