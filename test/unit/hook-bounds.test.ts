// The bounds on what a hook can cost the daemon (src/control/hooks.ts): captured output at most
// 16 KiB whatever the hook prints, a hook (and everything it started) killed after its timeout
// even when it ignores SIGTERM or dies of it while its background children do not, and
// arguments never interpreted by a shell. A hook that ends by itself keeps its background
// processes (they may be daemons it started on purpose).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runHook } from '../../src/control/hooks';

let dir = '';
/** PIDs of background processes the hooks below started, killed in after() if still there. */
const strays: number[] = [];

/** Running: /proc/PID/stat exists and its state is not Z (a zombie has ended). */
function running(pid: number): boolean {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Waits (at most ms) for the background process to write its PID to `file`. */
async function pidFrom(file: string, ms = 3000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const txt = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : '';
    if (/^[0-9]+$/.test(txt)) {
      const pid = Number(txt);
      strays.push(pid);
      return pid;
    }
    if (Date.now() > deadline) throw new Error(`no PID in ${file}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A background process that ignores SIGTERM (the ignored disposition survives exec), writes
 * its own PID to `pidFile` and sleeps `secs`. */
const stubbornChild = (pidFile: string, secs: number): string => `sh -c 'trap "" TERM; echo $$ > "$1"; exec sleep ${secs}' sh ${pidFile} &`;

function script(name: string, body: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return f;
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-hookbounds-'));
});
after(() => {
  for (const pid of strays) if (running(pid)) process.kill(pid, 'SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('output is captured up to 16 KiB, however much the hook prints (3 MB on stdout and stderr)', async () => {
  const f = script('loud.sh', 'head -c 3000000 /dev/zero | tr "\\000" x\nhead -c 3000000 /dev/zero | tr "\\000" y >&2\nexit 0');
  const r = await runHook(f, ['CREATE', 'gwi-1', 'gwo-1', '00000000000000001'], 10_000);
  assert.equal(r.code, 0);
  assert.equal(r.timedOut, false);
  assert.equal(r.output.length, 16 * 1024);
  assert.match(r.output, /^x+$/);
});

test('a hook ignoring SIGTERM, with a child holding its output open, is killed (group, SIGKILL) shortly after its timeout', async () => {
  const marker = path.join(dir, 'grandchild-alive');
  const f = script('stubborn.sh', `trap '' TERM\n(trap '' TERM; sleep 30; touch ${marker}) &\nwhile :; do sleep 1; done`);
  const t0 = Date.now();
  const r = await runHook(f, ['CREATE', 'gwi-1', 'gwo-1', '00000000000000001'], 500);
  const ms = Date.now() - t0;
  assert.equal(r.timedOut, true);
  assert.equal(r.signal, 'SIGKILL');
  assert.ok(ms >= 1400 && ms < 4000, `took ${ms} ms (timeout 500 ms + 1 s to SIGKILL)`);
  assert.equal(r.killed, 'KILL');
});

test('after a timeout the whole group gets SIGKILL, also when the hook itself died of SIGTERM: its background child ignoring SIGTERM is gone when runHook resolves', async () => {
  const pidFile = path.join(dir, 'stubborn-child.pid');
  const f = script('leader-dies.sh', `${stubbornChild(pidFile, 30)}\nsleep 30`);
  const t0 = Date.now();
  const r = await runHook(f, ['CREATE', 'gwi-1', 'gwo-1', '00000000000000001'], 500);
  const ms = Date.now() - t0;
  const pid = await pidFrom(pidFile);
  // SIGKILL was sent before runHook resolved; its delivery takes a scheduler tick at most.
  for (let i = 0; i < 20 && running(pid); i++) await new Promise((res) => setTimeout(res, 10));
  assert.equal(running(pid), false, `background child ${pid} still running after runHook resolved`);
  assert.equal(r.timedOut, true);
  assert.equal(r.signal, 'SIGTERM', 'the hook itself died of SIGTERM');
  assert.equal(r.killed, 'KILL');
  assert.equal(r.outlived, true, 'a group member outlived the hook');
  assert.ok(ms >= 1400 && ms < 4000, `took ${ms} ms (timeout 500 ms + 1 s to SIGKILL)`);
});

test('after a timeout, a group that SIGTERM ends is reported at once: no SIGKILL, nothing outlived the hook', async () => {
  const f = script('polite.sh', 'sleep 30 &\nsleep 30');
  const t0 = Date.now();
  const r = await runHook(f, ['CREATE', 'gwi-1', 'gwo-1', '00000000000000001'], 300);
  const ms = Date.now() - t0;
  assert.equal(r.timedOut, true);
  assert.equal(r.killed, 'TERM');
  assert.equal(r.outlived, false);
  assert.ok(ms < 1000, `took ${ms} ms: reported when the group was gone, not after the 1 s grace period`);
});

test('a hook that ends by itself keeps its background processes (left alone, reported as outliving it)', async () => {
  const pidFile = path.join(dir, 'daemon.pid');
  const f = script('starts-daemon.sh', `${stubbornChild(pidFile, 5)}\nwhile [ ! -s ${pidFile} ]; do sleep 0.01; done\nexit 0`);
  const r = await runHook(f, ['CREATE', 'gwi-1', 'gwo-1', '00000000000000001'], 2000);
  const pid = await pidFrom(pidFile);
  assert.equal(r.code, 0);
  assert.equal(r.timedOut, false);
  assert.equal(r.killed, null);
  assert.equal(r.outlived, true);
  await new Promise((res) => setTimeout(res, 2500)); // past the timeout and the grace period
  assert.equal(running(pid), true, 'the background process the hook started is left alone');
  process.kill(pid, 'SIGKILL');
});

test('arguments reach the hook verbatim: no shell ever sees them', async () => {
  const marker = path.join(dir, 'injected');
  const f = script('echo.sh', 'for a in "$@"; do printf "[%s]" "$a"; done');
  const evil = `$(touch ${marker})`;
  const r = await runHook(f, ['CREATE', evil, '; touch x', '`id`'], 5000);
  assert.equal(r.code, 0);
  assert.equal(r.output, `[CREATE][${evil}][; touch x][\`id\`]`);
  assert.equal(fs.existsSync(marker), false);
});
