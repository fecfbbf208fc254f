// Faults against the real daemon: failing hooks, a hook that deletes its own interface, devices
// deleted from outside, the Geneve or health port already taken, missing capabilities, and a
// data-plane worker that dies.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nsSpawnArgs, type Topology } from '../../src/sim/topology';
import {
  BIN,
  hookCalls,
  httpGetInNs,
  links,
  metrics,
  nsRun,
  RECORD_HOOK,
  runEmulator,
  sleep,
  startDaemon,
  stopDaemon,
  useEnv,
  waitFor,
} from './lib';

const PORT = 8084;

/** Run the daemon to completion in the appliance namespace (for start-up failures). */
function runToExit(t: Topology, args: string[], wrap: string[] = [], timeoutMs = 10000): Promise<{ code: number | null; out: string }> {
  const a = nsSpawnArgs(t.applianceNs, wrap.length > 0 ? wrap[0] : process.execPath, [...wrap.slice(1), ...(wrap.length > 0 ? [process.execPath] : []), BIN, ...args]);
  const p = spawn(a.file, a.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    }),
  );
}

describe('faults', () => {
  const env = useEnv('flt');

  const noGw = (): boolean => !links(env.t.applianceNs).some((l) => l.ifname.startsWith('gwi-') || l.ifname.startsWith('gwo-'));

  test('UDP 6081 already in use: one clear error line, exit 1, nothing left behind', async () => {
    const holder = spawn(...(() => {
      const a = nsSpawnArgs(env.t.applianceNs, process.execPath, ['-e', "require('node:dgram').createSocket('udp4').bind(6081, () => console.log('bound')); setTimeout(() => {}, 20000)"]);
      return [a.file, a.args] as const;
    })(), { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((r) => holder.stdout.once('data', () => r()));
      const r = await runToExit(env.t, []);
      assert.equal(r.code, 1, r.out);
      const lines = r.out.trim().split('\n').filter((l) => l.includes('critical'));
      assert.equal(lines.length, 1, r.out);
      assert.match(lines[0], /cannot bind UDP port 6081: .*Address already in use/);
      assert.ok(noGw());
    } finally {
      holder.kill('SIGKILL');
    }
  });

  test('health port already in use: one clear error line, exit 1', async () => {
    const holder = spawn(...(() => {
      const a = nsSpawnArgs(env.t.applianceNs, process.execPath, ['-e', `require('node:net').createServer().listen(${PORT}, () => console.log('bound')); setTimeout(() => {}, 20000)`]);
      return [a.file, a.args] as const;
    })(), { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((r) => holder.stdout.once('data', () => r()));
      const r = await runToExit(env.t, ['-p', String(PORT)]);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /health check port 8084: .*EADDRINUSE/);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  test('without CAP_NET_ADMIN and CAP_NET_RAW: one clear error line, exit 1', async () => {
    const r = await runToExit(env.t, [], ['setpriv', '--bounding-set', '-net_admin,-net_raw', '--inh-caps', '-net_admin,-net_raw']);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /missing capabilities: CAP_NET_ADMIN, CAP_NET_RAW/);
    assert.equal(r.out.trim().split('\n').length, 1, r.out);
  });

  test('a failing CREATE hook is logged and counted; the endpoint still carries traffic', async () => {
    const hook = path.join(env.dir, 'fail.sh');
    fs.writeFileSync(hook, `#!/bin/sh\n${path.resolve(RECORD_HOOK)} "$@"\necho "hook says no" >&2\nexit 3\n`, { mode: 0o755 });
    const d = await startDaemon(env.t, ['-c', hook, '-p', String(PORT)], { GWLBTUN_TEST_HOOK_LOG: path.join(env.dir, 'fail.log') });
    try {
      const r = await runEmulator(env.t, ['--endpoints', '11', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '10', '--rate', '500']);
      assert.equal(r.totals.verified, r.totals.sent);
      assert.equal(metrics(env.t, PORT).get('gwlbtun_hook_create_failures_total'), 1);
      assert.match(d.output(), /create hook failed .*exit=3/);
      assert.match(d.output(), /hook says no/);
    } finally {
      await stopDaemon(d);
    }
  });

  test('interfaces deleted from outside: torn down cleanly (DESTROY hook), re-created by the next packet', async () => {
    const hookLog = path.join(env.dir, 'del.log');
    const d = await startDaemon(env.t, ['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(PORT)], { GWLBTUN_TEST_HOOK_LOG: hookLog });
    try {
      let r = await runEmulator(env.t, ['--endpoints', '12', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '10', '--rate', '500']);
      assert.equal(r.totals.verified, r.totals.sent);
      await sleep(5200); // older than the 5 s that counts as "deleted right after creation"
      assert.equal(nsRun(env.t.applianceNs, 'ip', ['link', 'del', 'gwo-i']).status, 0);
      await waitFor('DESTROY after the deletion', () => hookCalls(hookLog).some((a) => a[0] === 'DESTROY'), 5000);
      await waitFor('gwi- removed too', () => noGw(), 5000);
      r = await runEmulator(env.t, ['--endpoints', '12', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '10', '--rate', '500']);
      assert.equal(r.totals.verified, r.totals.sent, 're-created and working');
      assert.deepEqual(hookCalls(hookLog).map((a) => a[0]), ['CREATE', 'DESTROY', 'CREATE']);
      assert.match(d.output(), /endpoint 00000000000000012: destroyed \(device deleted\)/);
    } finally {
      await stopDaemon(d);
    }
  });

  test('a hook that deletes its own interface: endpoint torn down, its traffic refused for a while, daemon fine', async () => {
    const hook = path.join(env.dir, 'selfdel.sh');
    fs.writeFileSync(hook, `#!/bin/sh\n[ "$1" = CREATE ] && ip link del "$2"\nexit 0\n`, { mode: 0o755 });
    const d = await startDaemon(env.t, ['-c', hook, '-p', String(PORT), '-j'], {});
    try {
      await runEmulator(env.t, ['--endpoints', '13', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '20', '--rate', '200', '--settle-ms', '500']);
      await waitFor('torn down', () => noGw(), 5000);
      // More traffic right away: refused (counted), not a create/delete loop.
      await runEmulator(env.t, ['--endpoints', '13', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '20', '--rate', '200', '--settle-ms', '200']);
      const m = metrics(env.t, PORT);
      assert.equal(m.get('gwlbtun_endpoints'), 0);
      assert.equal(m.get('gwlbtun_hook_create_runs_total'), 1, 'not re-created in a loop');
      assert.ok((m.get('gwlbtun_drops_total{reason="endpoint_failed"}') ?? 0) > 0);
      assert.equal(httpGetInNs(env.t.applianceNs, PORT, '/').status, 200);
    } finally {
      await stopDaemon(d);
    }
  });

  test('one return refused by the appliance\'s own OUTPUT rule costs only itself, not its send batch', async () => {
    const ns = env.t.applianceNs;
    const d = await startDaemon(env.t, ['-c', RECORD_HOOK, '-p', String(PORT)], { GWLBTUN_TEST_HOOK_LOG: path.join(env.dir, 'sendfail.log') });
    try {
      // GWLB sends flow f from UDP port 10000 + f; the firewall refuses every return of flow 0
      // (the raw socket's send fails with EPERM for that datagram alone).
      for (const cmd of ['add table ip gwt_out', 'add chain ip gwt_out out { type filter hook output priority 0; policy accept; }', 'add rule ip gwt_out out udp sport 10000 udp dport 6081 drop']) {
        const x = nsRun(ns, 'nft', [cmd]);
        assert.equal(x.status, 0, `nft ${cmd}: ${x.stderr}`);
      }
      const flows = 8;
      const perFlow = 400;
      // The endpoint first (packets held while it is created are not what this test is about).
      await runEmulator(env.t, ['--endpoints', '15', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '5', '--rate', '500', '--flow-offset', '100']);
      const before = metrics(env.t, PORT).get('gwlbtun_drops_total{reason="raw_send_error"}') ?? 0;
      assert.equal(before, 5);
      const r = await runEmulator(env.t, ['--endpoints', '15', '--families', '4', '--protos', 'udp', '--flows', String(flows), '--packets', String(perFlow), '--rate', '20000', '--settle-ms', '800']);
      const m = metrics(env.t, PORT);
      assert.equal(r.totals.sent, flows * perFlow);
      assert.equal(m.get('gwlbtun_drops_total{reason="raw_send_error"}'), before + perFlow, 'exactly the blocked flow\'s returns are dropped');
      assert.equal(r.totals.returned, (flows - 1) * perFlow, `every packet of the ${flows - 1} other flows comes back (got ${r.totals.returned})`);
      assert.equal(r.totals.verified, r.totals.returned);
    } finally {
      nsRun(ns, 'nft', ['delete', 'table', 'ip', 'gwt_out']);
      await stopDaemon(d);
    }
  });

  test('a data-plane worker that dies is restarted; health is 503 until it is back; endpoints keep working', async () => {
    const d = await startDaemon(env.t, ['-c', RECORD_HOOK, '-p', String(PORT), '-j'], { GWLBTUN_TEST_HOOK_LOG: path.join(env.dir, 'crash.log'), GWLBTUN_FAILPOINT: 'worker-crash:0:30' });
    try {
      // Packets 1-29 are carried; the batch with the 30th kills the worker.
      await runEmulator(env.t, ['--endpoints', '14', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '40', '--rate', '400', '--settle-ms', '200']);
      const down = await waitFor('503 while the worker is down', () => {
        const h = httpGetInNs(env.t.applianceNs, PORT, '/');
        return h.status === 503 ? h : undefined;
      }, 3000, 50);
      assert.equal((JSON.parse(down.body) as { workers: { alive: boolean }[] }).workers[0].alive, false);
      await waitFor('200 again', () => httpGetInNs(env.t.applianceNs, PORT, '/').status === 200, 5000, 100);
      assert.equal(metrics(env.t, PORT).get('gwlbtun_worker_restarts_total{worker="0"}'), 1);
      const r = await runEmulator(env.t, ['--endpoints', '14', '--families', '4,6', '--protos', 'udp,tcp', '--flows', '2', '--packets', '10', '--rate', '500']);
      assert.equal(r.totals.verified, r.totals.sent, 'the restarted worker has the endpoint back');
      assert.match(d.output(), /worker 0 exited .*restarting in 1000 ms/);
    } finally {
      await stopDaemon(d);
    }
  });
});
