// The endpoint half of a hand-over (src/control/endpoints.ts: handOverState, adopt,
// handOverBlocker; src/control/handover.ts), without devices: what one process describes, another
// takes over as it was (same slots, same endpoint ids, ready, no hook), and a description that
// does not fit is refused whole, changing nothing. The whole exchange runs end to end in
// test/e2e/handover.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCli } from '../../src/cli';
import { EndpointLifecycle, type HandedEndpoint, type WorkerControl } from '../../src/control/endpoints';
import { CounterReader, createCountersBuffer } from '../../src/dataplane/counters';
import { defaultLogConfig, Logger } from '../../src/base/log';
import { endpointNames } from '../../src/wire/eni';
import type { ToWorker } from '../../src/dataplane/messages';

const WORKERS = 2;

function lifecycle(extra: string[] = []): { lc: EndpointLifecycle; posted: [number, ToWorker][]; lines: string[] } {
  const opts = parseCli(['--udpthreads', String(WORKERS), '--max-endpoints', '8', ...extra], 2).daemon;
  const lines: string[] = [];
  const log = new Logger(defaultLogConfig(), (l) => lines.push(l));
  const counters = new CounterReader(createCountersBuffer(WORKERS, opts.maxEndpoints), WORKERS, opts.maxEndpoints);
  const posted: [number, ToWorker][] = [];
  const workers: WorkerControl = {
    post: (i, m) => posted.push([i, m]),
    alive: () => true,
    aliveIndexes: () => [0, 1],
    terminate: () => undefined,
  };
  return { lc: new EndpointLifecycle(opts, log, counters, null, workers, () => false), posted, lines };
}

function handed(eni: bigint, slot: number, gen: number, fd0: number): HandedEndpoint {
  return {
    hex: endpointNames(eni).hex,
    slot,
    epId: (slot | (gen << 16)) >>> 0,
    gwiFds: [fd0, fd0 + 1],
    gwoFds: [fd0 + 2, fd0 + 3],
    readyMs: 1000,
    lastMs: 5000,
    netns: null,
    netnsCreated: false,
  };
}

test('adopted endpoints are ready in their slots with their ids, and handed on unchanged', () => {
  const { lc, posted } = lifecycle();
  const list = [handed(0x41n, 3, 7, 10), handed(0x5eed0000c0ffe1n, 0, 65535, 20)];
  lc.adopt(list);
  assert.equal(lc.endpoints.size, 2);
  for (const x of list) {
    const e = lc.bySlot[x.slot]!;
    assert.equal(e.hex, x.hex);
    assert.equal(e.epId, x.epId);
    assert.equal(e.state, 'ready');
    assert.equal(e.gwi, endpointNames(BigInt('0x' + x.hex)).gwi);
    assert.equal(e.readyMs, 5000, 'the -t idle check counts from the last packet');
    assert.ok(lc.live(x.epId), 'its flows are live');
    assert.ok(!lc.live((x.epId + 0x10000) >>> 0), 'another generation of the slot is not');
  }
  assert.equal(lc.handOverBlocker(), null);
  // A worker that comes up gets every adopted endpoint with its own queues; no hook ran.
  lc.workerUp(1);
  assert.deepEqual(
    posted.map(([i, m]) => [i, m.t, (m as { gwi?: number }).gwi]),
    [
      [1, 'add', 11],
      [1, 'add', 21],
    ],
  );
  assert.equal(lc.hookStats.create.runs, 0);
  // What this process would hand on: the same (readyMs, lastMs aside).
  const again = lc.handOverState().map((x) => ({ ...x, readyMs: 0, lastMs: 0 }));
  assert.deepEqual(
    again.sort((a, b) => a.slot - b.slot),
    list.map((x) => ({ ...x, readyMs: 0, lastMs: 0 })).sort((a, b) => a.slot - b.slot),
  );
});

test('a description that does not fit is refused whole, changing nothing', () => {
  const good = handed(0x41n, 1, 1, 10);
  const bad: [string, HandedEndpoint][] = [
    ['ENI ID', { ...good, hex: 'zz' }],
    ['ENI ID', { ...good, hex: '41' }],
    ['slot', { ...good, slot: 8, epId: 8 | (1 << 16) }],
    ['slot', { ...good, slot: -1 }],
    ['slot', { ...good, epId: 2 | (1 << 16) }],
    ['queues', { ...good, gwiFds: [10] }],
    ['queues', { ...good, gwoFds: [] }],
  ];
  for (const [what, x] of bad) {
    const { lc } = lifecycle();
    assert.throws(() => lc.adopt([handed(0x42n, 0, 1, 30), x]), /hand-over/, what);
    assert.equal(lc.endpoints.size, 0, `${what}: nothing adopted`);
  }
  const { lc } = lifecycle();
  assert.throws(() => lc.adopt([good, { ...handed(0x42n, 1, 2, 30) }]), /slot 1/, 'two endpoints in one slot');
  // --no-return: no gwo- queues expected.
  const nr = lifecycle(['--no-return']).lc;
  nr.adopt([{ ...good, gwoFds: [] }]);
  assert.equal(nr.endpoints.size, 1);
});
