// The orphan reaper (src/control/reaper.ts) next to running hooks (src/control/hooks.ts): it
// collects exited children that are not Node's own, and never the exit status of a hook, which
// child_process collects itself by PID (taken away, the hook's 'exit' would never come).
// Outside PID 1 no orphan is re-parented to us, so the children here are the test's own.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runHook } from '../../src/control/hooks';
import { reapOrphans } from '../../src/control/reaper';
import { native } from '../../src/io/native';
import { FakeAddon } from '../../src/testkit/fake';

let dir = '';
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-reaper-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** This process's children that have exited and wait to be collected (state Z). */
function zombieChildren(): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(p)) continue;
    try {
      const st = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z' && Number(f[1]) === process.pid) out.push(Number(p));
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/** Waits without yielding to the event loop (libuv cannot collect anything meanwhile). */
function zombiesNow(n: number): number[] {
  const deadline = Date.now() + 3000;
  for (;;) {
    const z = zombieChildren();
    if (z.length >= n) return z;
    if (Date.now() > deadline) assert.fail(`expected ${n} exited children, have ${z.length}`);
  }
}

test('a hook that has exited but not been collected yet is left to child_process: its exit code arrives', async () => {
  const f = path.join(dir, 'exit3.sh');
  fs.writeFileSync(f, '#!/bin/sh\nexit 3\n', { mode: 0o755 });
  const run = runHook(f, ['CREATE', 'gwi-1', 'gwo-1', '00000000000000001'], 2000);
  zombiesNow(1);
  assert.equal(reapOrphans(native()), 0, 'nothing collected: the only exited child is the hook');
  const r = await run;
  assert.equal(r.timedOut, false);
  assert.equal(r.code, 3);
});

test('an exited child that is not a running hook is collected', () => {
  const other = spawn('/bin/sh', ['-c', 'exit 0'], { stdio: 'ignore' });
  other.unref(); // its 'exit' never comes: the reaper takes its status
  const [pid] = zombiesNow(1);
  assert.equal(pid, other.pid);
  assert.equal(reapOrphans(native()), 1);
  assert.deepEqual(zombieChildren(), []);
});

test('the in-memory addon collects in order up to the first child of ours, like the real one', () => {
  const fake = new FakeAddon();
  fake.zombies.push(11, 12, 13);
  assert.equal(fake.reapOrphans(Int32Array.of(12)), 1);
  assert.deepEqual(fake.zombies, [12, 13]);
});
