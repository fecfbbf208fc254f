// End to end with two data-plane workers (--udpthreads 2): every packet of 64 flows verified and
// in order per flow, and proof that the workers share the return path: the kernel spreads GWLB's
// flows over the workers' SO_REUSEPORT sockets by the outer 4-tuple, but picks the gwo- queue of a
// returned packet by the inner flow, so a flow regularly comes in on one worker and goes back out
// through the other (and the shared flow table is what makes that work).

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import type { Topology } from '../../src/sim/topology';
import { httpGetInNs, metrics, RECORD_HOOK, ROOT, runEmulator, startDaemon, stopDaemon, useEnv, waitFor, type EmuReport } from './lib';
import { countedNonZero, kernelDrops } from './probe';

const HEALTH_PORT = 8082;
const ONE_ARM = path.join(ROOT, 'examples', 'hooks', 'one-arm.sh');

interface WorkerHealth {
  index: number;
  alive: boolean;
  udpPackets: number;
  rawPacketsOut: number;
}

function workerHealth(t: Topology): WorkerHealth[] {
  const r = httpGetInNs(t.applianceNs, HEALTH_PORT, '/');
  assert.equal(r.status, 200, `health answered ${r.status}: ${r.body}`);
  return (JSON.parse(r.body) as { workers: WorkerHealth[] }).workers;
}

function assertAllVerifiedInOrder(r: EmuReport, what: string): void {
  for (const ep of r.endpoints) {
    assert.ok(ep.sent > 0, `${what}: endpoint ${ep.eni} sent nothing`);
    assert.equal(ep.bad.reordered ?? 0, 0, `${what}: endpoint ${ep.eni}: ${ep.bad.reordered} packets came back out of order`);
    assert.deepEqual(ep.bad, {}, `${what}: endpoint ${ep.eni} bad packets: ${JSON.stringify(ep.bad)}`);
    assert.equal(ep.verified, ep.sent, `${what}: endpoint ${ep.eni}: ${ep.verified} of ${ep.sent} verified (lost ${ep.lost})`);
  }
}

describe('two workers: shared flow table, returns through either worker', () => {
  const ctx = useEnv('wk', { args: ['--udpthreads', '2', '-c', ONE_ARM, '-r', ONE_ARM, '-p', String(HEALTH_PORT), '-j'] });
  before(async () => {
    // Healthy once both workers have been through their loop once.
    await waitFor('a healthy daemon', () => httpGetInNs(ctx.t.applianceNs, HEALTH_PORT, '/').status === 200);
  });

  test('64 flows, every packet verified and in order; a flow in on one worker goes out through the other', async () => {
    assert.equal(workerHealth(ctx.t).length, 2, 'two workers');
    // The split of flows over the workers is by two independent hashes, so with 64 flows there is
    // roughly a one-in-ten chance that each worker happens to receive exactly as many packets as
    // it returns. Each further run uses another flow count (so other GWLB ports and inner tuples
    // per flow index) and adds to the totals; four runs make that coincidence negligible.
    let sent = 0;
    let crossed = false;
    let ws: WorkerHealth[] = [];
    for (const flowsPerKind of [16, 12, 10, 14]) {
      const r = await runEmulator(ctx.t, [
        '--endpoints', '1',
        '--families', '4,6',
        '--protos', 'tcp,udp',
        '--flows', String(flowsPerKind), // x 2 families x 2 protocols: 64, 48, 40, 56 flows
        '--packets', '40',
        '--rate', '5000',
        '--size', '200',
        '--ttl-decrement', '1',
        '--settle-ms', '2000',
      ]);
      if (r.totals.verified !== r.totals.sent) {
        // A rare loss of one packet under load (seen once in ~10 loaded runs): say where it went.
        console.error(`two workers: ${r.totals.sent - r.totals.verified} lost; the daemon counted:\n${await countedNonZero(ctx.t.applianceNs, HEALTH_PORT)}\n` +
          `kernel, appliance side:\n${await kernelDrops(ctx.t.applianceNs)}\nkernel, GWLB side:\n${await kernelDrops(ctx.t.gwlbNs)}\nemulator: ${JSON.stringify(r.totals)}`);
      }
      assertAllVerifiedInOrder(r, `${flowsPerKind * 4} flows`);
      sent += r.totals.sent;
      ws = workerHealth(ctx.t);
      const udp = ws.map((w) => w.udpPackets);
      const raw = ws.map((w) => w.rawPacketsOut);
      // Every packet received is returned exactly once: the sums match, whichever worker returned it.
      assert.equal(udp[0] + udp[1], sent, `packets received by the workers (${udp.join(' + ')}) = packets sent (${sent})`);
      assert.equal(raw[0] + raw[1], sent, `packets returned by the workers (${raw.join(' + ')}) = packets sent (${sent})`);
      if (udp[0] !== raw[0]) {
        crossed = true;
        break;
      }
    }
    assert.ok(ws.every((w) => w.alive && w.udpPackets > 0), `both workers received traffic: ${JSON.stringify(ws)}`);
    assert.ok(ws.every((w) => w.rawPacketsOut > 0), `both workers returned traffic: ${JSON.stringify(ws)}`);
    assert.ok(crossed, `per-worker received and returned counts differ (cross-worker returns): ${JSON.stringify(ws)}`);
  });
});

/** Every drop the daemon counted (all reasons but the kernel's own IPv6 link-local chatter). */
function countedDrops(t: Topology): number {
  let n = 0;
  for (const [k, v] of metrics(t, DEATH_PORT)) {
    if (k.startsWith('gwlbtun_drops_total{') && !k.includes('"link_local"')) n += v;
  }
  return n;
}

const DEATH_PORT = 8085;

describe('a worker that dies: its share of traffic goes to the live one, and what it had is counted', () => {
  const env = useEnv('wkd');
  const emu = (extra: string[]): Promise<EmuReport> =>
    runEmulator(env.t, ['--endpoints', '7', '--families', '4', '--protos', 'udp', '--size', '200', '--settle-ms', '1500', ...extra]);

  test('killed mid-traffic: returns keep flowing through the other worker while it is away; every packet returned or counted', async () => {
    // Worker 1 receives about half of the traffic; it dies at its 700th packet (about 1.4 s in),
    // long after the endpoint is up, and is restarted 1 s later.
    const d = await startDaemon(env.t, ['--udpthreads', '2', '-c', ONE_ARM, '-r', ONE_ARM, '-p', String(DEATH_PORT), '-j'], { GWLBTUN_FAILPOINT: 'worker-crash:1:700' });
    try {
      const r = await emu(['--flows', '40', '--packets', '100', '--rate', '1000', '--progress-ms', '200']);
      await waitFor('worker 1 restarted', () => metrics(env.t, DEATH_PORT).get('gwlbtun_worker_restarts_total{worker="1"}') === 1, 5000);
      assert.match(d.output(), /worker 1 exited/);
      const counted = countedDrops(env.t);
      // Nothing vanishes: each packet came back or was counted (at most one each may fall between
      // the last read of the dead worker's socket and its close, and of a queue and its detach,
      // microseconds later: the kernel discards those).
      const missing = r.totals.sent - r.totals.returned - counted;
      assert.ok(missing >= 0 && missing <= 2, `sent ${r.totals.sent}, returned ${r.totals.returned}, counted ${counted}: ${missing} unaccounted`);
      assert.equal(r.totals.verified, r.totals.returned);
      // Returns kept flowing while worker 1 was away: its queues were detached at once, so the
      // kernel sent its share of the returns to worker 0 instead of a queue nobody read. Had they
      // not been, about half of what was sent in the 1 s until the restart (500 packets at 1000/s)
      // would have waited there, and half of that at the least at one tick. Ticks before the first
      // return are left out: the endpoint is still being created then (its CREATE hook's time
      // depends on the machine, not on gwlbtun: 190-440 outstanding seen on a loaded 2-core one).
      const up = r.progress.findIndex((p) => p.returned > 0);
      const worst = Math.max(...r.progress.slice(Math.max(up, 0)).map((p) => p.outstanding));
      assert.ok(up >= 0 && worst < 250, `at most ${worst} packets outstanding at any progress tick once the endpoint was up (tick ${up}): ${JSON.stringify(r.progress.map((p) => p.outstanding))}`);
      assert.ok(counted < 150, `lost with the worker: ${counted}`);
    } finally {
      await stopDaemon(d);
    }
  });

  test('killed while holding packets for an endpoint being created: the held packets are counted', async () => {
    // The kernel's own IPv6 link-local chatter (MLD) waits on the TUN queues of an endpoint being
    // created, like the held packets. Where the kernel's per-boot flow hash put it on the dead
    // worker's queue, the main thread counted it as lost with the worker, so returned + counted
    // exceeded what was sent (issue 18: -2 to -4 on every run of one machine; tallyDrained in
    // src/wire/segment.ts, and its unit test, now tell it apart).
    const hookLog = path.join(env.dir, 'hold.log');
    const d = await startDaemon(env.t, ['--udpthreads', '2', '-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(DEATH_PORT), '-j'], {
      GWLBTUN_FAILPOINT: 'worker-crash:1:60',
      GWLBTUN_TEST_HOOK_SLEEP: '1.5',
      GWLBTUN_TEST_HOOK_LOG: hookLog,
    });
    try {
      const r = await emu(['--flows', '16', '--packets', '25', '--rate', '300', '--flow-offset', '50']);
      await waitFor('worker 1 restarted', () => metrics(env.t, DEATH_PORT).get('gwlbtun_worker_restarts_total{worker="1"}') === 1, 5000);
      const m = metrics(env.t, DEATH_PORT);
      const died = m.get('gwlbtun_drops_total{reason="worker_died"}') ?? 0;
      assert.ok(died >= 1, `packets held by the dead worker are counted as worker_died (${died})`);
      const counted = countedDrops(env.t);
      const missing = r.totals.sent - r.totals.returned - counted;
      if (missing !== 0) console.error(`held: ${missing} unaccounted; the daemon counted:\n${await countedNonZero(env.t.applianceNs, DEATH_PORT)}\nemulator: ${JSON.stringify(r.totals)}\n${d.output()}`);
      assert.ok(missing >= 0 && missing <= 2, `sent ${r.totals.sent}, returned ${r.totals.returned}, counted ${counted}: ${missing} unaccounted`);
    } finally {
      await stopDaemon(d);
    }
  });
});
