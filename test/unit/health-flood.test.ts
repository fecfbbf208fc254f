// The health port under a flood of connections that never finish a request (docs/security.md,
// "What the health port exposes"): health checks keep being answered, promptly, and the
// connections the server holds stay bounded. The real health server (src/ops/health.ts) on
// 127.0.0.1 with a stub daemon; no root needed. Every connection is closed at the end.

import { monoMs } from '../../src/base/clock';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import type { Daemon } from '../../src/control/daemon';
import { CounterReader, createCountersBuffer } from '../../src/dataplane/counters';
import { EventEmitter } from 'node:events';
import { ConnGuard, HEALTH_CONN_LIMITS, sourceKey, type ConnLimits } from '../../src/ops/connguard';
import { startHealthServer, type HealthServer } from '../../src/ops/health';

const HOST = '127.0.0.1';
const FLOOD = 300; // half-request connections per test
const GETS = 20; // health checks interleaved with them
const PROMPT_MS = 1000; // each must be answered within this

// What the health and metrics answers read of the daemon: healthy, no endpoints, no flow table.
const hook = { runs: 0, failures: 0, timeouts: 0, durationMsTotal: 0 };
const stubDaemon = {
  healthy: () => true,
  shuttingDown: false,
  startedMs: monoMs(),
  sysctls: null,
  counters: new CounterReader(createCountersBuffer(1, 1), 1, 1),
  endpoints: new Map(),
  flows: null,
  flowExpiries: 0,
  hookStats: { create: hook, destroy: hook },
  workerStatus: () => [],
  sendDevice: null,
  sendDeviceInUse: null,
  opts: { noReturn: false },
} as unknown as Daemon;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** GET path on a fresh connection; status and milliseconds. Rejects on a reset or after 3 s. */
function get(port: number, path = '/'): Promise<{ status: number; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path, agent: false, timeout: 3000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - t0 }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 3 s')));
    req.on('error', reject);
  });
}

interface Held {
  socket: net.Socket;
  closed: boolean;
}

/** A connection that sends part of a request and then nothing (what = 'half'), or nothing at all. */
function hold(port: number, what: 'half' | 'silent'): Promise<Held> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, HOST);
    const h: Held = { socket, closed: false };
    socket.on('close', () => (h.closed = true));
    socket.once('error', (e) => (h.closed ? undefined : reject(e)));
    socket.once('connect', () => {
      socket.on('error', () => undefined); // resets by the server are expected from now on
      if (what === 'half') socket.write('GET / HTTP/1.1\r\nHost: gwlbtun\r\n');
      resolve(h);
    });
  });
}

async function withServer(limits: ConnLimits, fn: (h: HealthServer, port: number) => Promise<void>): Promise<void> {
  const hs = await startHealthServer(stubDaemon, 0, 'simple', HOST, limits);
  const held: Held[] = [];
  try {
    await fn(hs, (hs.server.address() as net.AddressInfo).port);
  } finally {
    for (const h of held) h.socket.destroy();
    hs.server.closeAllConnections();
    await new Promise<void>((r) => hs.server.close(() => r()));
  }
}

/** FLOOD half-request connections with GETS health checks spread among them; returns the
 * connections (the caller closes them) and the slowest answer. */
async function flood(hs: HealthServer, port: number, limits: ConnLimits): Promise<{ held: Held[]; slowest: number }> {
  const held: Held[] = [];
  let slowest = 0;
  let gets = 0;
  try {
    for (let i = 0; i < FLOOD; i++) {
      held.push(await hold(port, i % 3 === 2 ? 'silent' : 'half'));
      assert.ok(hs.guard.open <= limits.max, `${hs.guard.open} connections open, over ${limits.max}`);
      if ((i + 1) % (FLOOD / GETS) === 0) {
        const r = await get(port, gets % 2 === 0 ? '/' : '/metrics');
        gets++;
        assert.equal(r.status, 200, `health check ${gets} after ${i + 1} idle connections`);
        assert.ok(r.ms < PROMPT_MS, `health check ${gets} took ${r.ms} ms`);
        slowest = Math.max(slowest, r.ms);
      }
    }
    assert.equal(gets, GETS);
    return { held, slowest };
  } catch (e) {
    for (const h of held) h.socket.destroy();
    throw e;
  }
}

test(`${FLOOD} half-request connections from one address: every health check answered within ${PROMPT_MS} ms, at most ${HEALTH_CONN_LIMITS.perSource} of them kept`, async () => {
  const limits = HEALTH_CONN_LIMITS;
  await withServer(limits, async (hs, port) => {
    const { held, slowest } = await flood(hs, port, limits);
    try {
      // The server closed all but the newest few: bounded by the per-address limit.
      await waitFor('the server to close the older connections', () => held.filter((h) => !h.closed).length <= limits.perSource, 5000);
      assert.ok(hs.guard.open <= limits.perSource, `${hs.guard.open} open`);
      assert.ok(hs.guard.stats.sourceLimit >= FLOOD - limits.perSource, JSON.stringify(hs.guard.stats));
      const m = await new Promise<string>((resolve, reject) =>
        http.get({ host: HOST, port, path: '/metrics', agent: false }, (res) => {
          let body = '';
          res.on('data', (b: Buffer) => (body += b.toString()));
          res.on('end', () => resolve(body));
        }).on('error', reject),
      );
      assert.match(m, /^gwlbtun_health_connections_closed_total\{cause="source_limit"\} \d+$/m);
      console.log(`# one address: slowest health check ${slowest} ms; closed ${JSON.stringify(hs.guard.stats)}`);
    } finally {
      for (const h of held) h.socket.destroy();
    }
  });
});

test(`${FLOOD} half-request connections (no per-address limit): the oldest is evicted for the newest, health checks answered, at most ${HEALTH_CONN_LIMITS.max} open`, async () => {
  // As if the flood came from many addresses: the total bound alone.
  const limits: ConnLimits = { ...HEALTH_CONN_LIMITS, perSource: 100_000 };
  await withServer(limits, async (hs, port) => {
    const { held, slowest } = await flood(hs, port, limits);
    try {
      await waitFor('the server to close the evicted connections', () => held.filter((h) => !h.closed).length <= limits.max, 5000);
      assert.ok(hs.guard.stats.evicted >= FLOOD - limits.max, JSON.stringify(hs.guard.stats));
      // The survivors are the newest ones.
      assert.ok(held.slice(0, FLOOD - limits.max).every((h) => h.closed), 'the oldest were evicted');
      console.log(`# many addresses: slowest health check ${slowest} ms; closed ${JSON.stringify(hs.guard.stats)}`);
    } finally {
      for (const h of held) h.socket.destroy();
    }
  });
});

test(`a connection without a whole request is closed after ${HEALTH_CONN_LIMITS.requestDeadlineMs} ms`, async () => {
  const limits = HEALTH_CONN_LIMITS;
  await withServer(limits, async (hs, port) => {
    const t0 = Date.now();
    const held = [await hold(port, 'half'), await hold(port, 'silent'), await hold(port, 'half')];
    try {
      await sleep(limits.requestDeadlineMs / 2);
      assert.ok(held.every((h) => !h.closed), 'not before the deadline');
      assert.equal((await get(port)).status, 200);
      await waitFor('the deadline to close them', () => held.every((h) => h.closed), limits.requestDeadlineMs * 3);
      const ms = Date.now() - t0;
      assert.ok(ms >= limits.requestDeadlineMs, `closed after ${ms} ms`);
      assert.equal(hs.guard.stats.deadline, 3);
      assert.equal(hs.guard.open, 0);
    } finally {
      for (const h of held) h.socket.destroy();
    }
  });
});

/** A stand-in for a net.Socket as the guard sees it: its remote address, destroy() and 'close'. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  constructor(readonly remoteAddress: string) {
    super();
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

test('per-source bound: an IPv6 /64 is one source; IPv4 and IPv4-mapped addresses one each', () => {
  // Loopback has one IPv6 address, so the guard is fed connections as its server would.
  const server = new EventEmitter();
  const guard = new ConnGuard(server as unknown as http.Server, { max: 64, perSource: 8, requestDeadlineMs: 60_000 });
  const open = (addr: string): FakeSocket => {
    const s = new FakeSocket(addr);
    server.emit('connection', s);
    return s;
  };
  try {
    // 16 connections from two addresses of one /64 (written two ways): 8 kept, the oldest closed.
    const a = Array.from({ length: 16 }, (_, i) => open(i % 2 === 0 ? '2001:db8:0:1::a' : '2001:db8:0:1:ffff:ffff:ffff:b'));
    assert.equal(guard.open, 8);
    assert.equal(guard.stats.sourceLimit, 8);
    assert.deepEqual(a.map((s) => s.destroyed), [...new Array<boolean>(8).fill(true), ...new Array<boolean>(8).fill(false)]);
    // Another /64 and IPv4 clients (plain, or mapped as a dual-stack listener reports them) have
    // their own quotas: 8 each, nothing closed.
    for (const addr of ['2001:db8:0:2::a', '::ffff:192.0.2.1', '::ffff:192.0.2.2', '198.51.100.7']) for (let i = 0; i < 8; i++) open(addr);
    assert.equal(guard.open, 40);
    assert.equal(guard.stats.sourceLimit, 8);
    // One more from the first /64: its own oldest goes, not another source's.
    const before = a.filter((s) => !s.destroyed);
    open('2001:db8:0:1::c');
    assert.equal(guard.stats.sourceLimit, 9);
    assert.equal(before.filter((s) => s.destroyed).length, 1);
    assert.equal(guard.open, 40);
  } finally {
    server.emit('close');
  }
});

test('sourceKey: IPv6 by /64 in any spelling, IPv4-mapped as IPv4, anything else as it is', () => {
  assert.equal(sourceKey('192.0.2.1'), '192.0.2.1');
  assert.equal(sourceKey('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(sourceKey('::FFFF:c000:201'), '192.0.2.1');
  assert.notEqual(sourceKey('::ffff:192.0.2.1'), sourceKey('::ffff:192.0.2.2'));
  const p = sourceKey('2001:db8:0:1::5');
  assert.equal(p, '2001:db8:0:1::/64');
  for (const a of ['2001:db8:0:1:ffff::6', '2001:0DB8:0000:0001:0:0:0:7', '2001:db8::1:0:0:0:9']) assert.equal(sourceKey(a), p, a);
  assert.notEqual(sourceKey('2001:db8:0:2::5'), p);
  assert.notEqual(sourceKey('2001:db8:1:1::5'), p);
  assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64%eth0');
  assert.notEqual(sourceKey('fe80::1%eth0'), sourceKey('fe80::1%eth1'));
  for (const odd of ['?', '', 'bogus:::x', '1:2:3:4:5:6:7:8:9', '::ffff:1.2.3.256', '2001:db8::1::2']) assert.equal(sourceKey(odd), odd);
});
