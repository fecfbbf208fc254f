// The stop sequence (src/control/stop.ts) without a daemon: which signal drains, which shuts down,
// which exits at once, and with what exit code. The daemon end of it is test/e2e/drain.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StopSequence, shutdownLimitMs, type StopTarget } from '../../src/control/stop';
import type { Logger } from '../../src/base/log';

const quietLog = { important: () => undefined, critical: () => undefined } as unknown as Logger;

interface Probe {
  target: StopTarget;
  events: string[];
  exits: number[];
  /** Settles the pending shutdown. */
  finish: (ok: boolean) => void;
}

function probe(): Probe {
  const p: Probe = { events: [], exits: [], finish: () => undefined, target: undefined as unknown as StopTarget };
  p.target = {
    drain: () => p.events.push('drain'),
    shutdown: () => {
      p.events.push('shutdown');
      return new Promise<void>((resolve, reject) => (p.finish = (ok) => (ok ? resolve() : reject(new Error('boom')))));
    },
  };
  return p;
}

function sequence(p: Probe, drainS: number, started = true): StopSequence {
  const s = new StopSequence(p.target, { drainS, hookTimeoutS: 1, exit: (c) => p.exits.push(c) }, quietLog);
  s.started = started;
  return s;
}

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('no drain: the first signal shuts down (exit 0 when done), a second exits at once with 1', async () => {
  const p = probe();
  const s = sequence(p, 0);
  s.signal('SIGTERM');
  assert.deepEqual(p.events, ['shutdown']);
  assert.equal(s.phase, 'stopping');
  s.signal('SIGINT');
  assert.deepEqual(p.exits, [1]);
  p.finish(true);
  await tick();
  assert.deepEqual(p.exits, [1, 0]);
});

test('drain: health first, the shutdown after the drain time, exit 0', async () => {
  const p = probe();
  const s = sequence(p, 0.2);
  s.signal('SIGTERM');
  assert.deepEqual(p.events, ['drain']);
  assert.equal(s.phase, 'draining');
  await tick(50);
  assert.deepEqual(p.events, ['drain'], 'no shutdown before the drain time');
  await tick(400);
  assert.deepEqual(p.events, ['drain', 'shutdown']);
  p.finish(true);
  await tick();
  assert.deepEqual(p.exits, [0]);
});

test('drain: a second signal ends it early (shutdown, exit 0); a third exits at once with 1', async () => {
  const p = probe();
  const s = sequence(p, 3600);
  s.signal('SIGTERM');
  s.signal('SIGTERM');
  assert.deepEqual(p.events, ['drain', 'shutdown']);
  assert.deepEqual(p.exits, []);
  p.finish(true);
  await tick();
  assert.deepEqual(p.exits, [0]);

  const q = probe();
  const s2 = sequence(q, 3600);
  s2.signal('SIGTERM');
  s2.signal('SIGINT');
  s2.signal('SIGTERM');
  assert.deepEqual(q.exits, [1]);
  q.finish(true); // the process would be gone; nothing else may happen twice
  await tick();
  assert.deepEqual(q.events, ['drain', 'shutdown']);
});

test('a signal during start-up skips the drain; a failed shutdown exits 1', async () => {
  const p = probe();
  sequence(p, 3600, false).signal('SIGTERM');
  assert.deepEqual(p.events, ['shutdown']);
  p.finish(false);
  await tick();
  assert.deepEqual(p.exits, [1]);
});

test('the hard limit: 5 s plus twice the hook timeout, after the drain', () => {
  assert.equal(shutdownLimitMs(30), 65_000);
  assert.equal(shutdownLimitMs(1), 7_000);
});
