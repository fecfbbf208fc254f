// End to end with two data-plane workers (--udpthreads 2): every packet of 64 flows verified and
// in order per flow, and proof that the workers share the return path: the kernel spreads GWLB's
// flows over the workers' SO_REUSEPORT sockets by the outer 4-tuple, but picks the gwo- queue of a
// returned packet by the inner flow, so a flow regularly comes in on one worker and goes back out
// through the other (and the shared flow table is what makes that work).

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import type { Topology } from '../../src/sim/topology';
import { httpGetInNs, ROOT, runEmulator, useEnv, waitFor, type EmuReport } from './lib';

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
