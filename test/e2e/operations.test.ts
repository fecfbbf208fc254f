// Operations against the real daemon: the health check in its three styles and its 503 while
// shutting down, /metrics in the Prometheus text format, SIGTERM (DESTROY hooks, exit 0) and a
// second signal, and the effect of the other flags (--no-return, -i/--idle-other, logging,
// affinity).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
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
  udpSendInNs,
  useEnv,
  waitFor,
  type Daemon,
} from './lib';
import { parsePrometheusText } from '../unit/helpers/prometheus';

const PORT = 8083;

describe('operations', () => {
  const ctx = useEnv('ops');

  async function withDaemon(args: string[], env: Record<string, string>, fn: (d: Daemon) => Promise<void>): Promise<Daemon> {
    const d = await startDaemon(ctx.t, args, env);
    try {
      await fn(d);
    } finally {
      await stopDaemon(d);
    }
    return d;
  }

  test('health: 200 with an HTML body by default, JSON with -j, empty with -s; no-cache headers', async () => {
    for (const [flag, type] of [[[], 'text/html'], [['-j'], 'application/json'], [['-s'], 'text/html']] as const) {
      await withDaemon(['-p', String(PORT), ...flag], {}, async () => {
        const r = httpGetInNs(ctx.t.applianceNs, PORT, '/');
        assert.equal(r.status, 200);
        assert.equal(r.headers['cache-control'], 'max-age=0, no-cache');
        assert.equal(r.headers['content-type'], type);
        assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
        if (flag[0] === '-s') assert.equal(r.body, '');
        else if (flag[0] === '-j') {
          const j = JSON.parse(r.body) as Record<string, unknown>;
          for (const k of ['healthy', 'uptimeSeconds', 'workers', 'endpoints', 'flows', 'drops']) assert.ok(k in j, k);
          assert.equal(j.healthy, true);
        } else assert.match(r.body, /<html>[\s\S]*healthy/);
      });
    }
  });

  test('/metrics is valid Prometheus text with per-endpoint, drop, flow, hook and worker metrics', async () => {
    const hookLog = path.join(ctx.dir, 'metrics.log');
    await withDaemon(['-p', String(PORT), '-c', RECORD_HOOK], { GWLBTUN_TEST_HOOK_LOG: hookLog }, async () => {
      const r = await runEmulator(ctx.t, ['--endpoints', '5', '--families', '4,6', '--protos', 'udp,tcp', '--flows', '2', '--rate', '1000', '--packets', '10']);
      assert.equal(r.totals.verified, r.totals.sent);
      const res = httpGetInNs(ctx.t.applianceNs, PORT, '/metrics');
      assert.equal(res.status, 200);
      assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
      const families = parsePrometheusText(res.body); // throws on any malformed line
      const sample = (name: string, labels: Record<string, string> = {}): number => {
        const f = families.get(name);
        assert.ok(f, `metric ${name}`);
        const s = f.samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
        assert.ok(s, `${name}${JSON.stringify(labels)}`);
        return s.value;
      };
      const ep = { eni: '00000000000000005', interface: 'gwi-5' };
      assert.equal(sample('gwlbtun_endpoint_packets_from_gwlb_total', ep), r.totals.sent);
      assert.equal(sample('gwlbtun_endpoint_packets_to_gwlb_total', ep), r.totals.sent);
      assert.ok(sample('gwlbtun_endpoint_bytes_to_gwlb_total', ep) > 0);
      assert.equal(sample('gwlbtun_drops_total', { reason: 'geneve_bad_version' }), 0);
      assert.equal(sample('gwlbtun_flows'), 8);
      assert.equal(sample('gwlbtun_flow_inserts_total'), 8);
      assert.equal(sample('gwlbtun_hook_create_runs_total'), 1);
      assert.equal(sample('gwlbtun_worker_alive', { worker: '0' }), 1);
      assert.equal(sample('gwlbtun_up'), 1);
      assert.ok(sample('gwlbtun_uptime_seconds') >= 0);
      assert.equal(families.get('gwlbtun_drops_total')!.type, 'counter');
      // Latency histograms (issue 20): the worker's loop turns (it has turned: the packets above),
      // GC pauses per thread, the main thread's event-loop delay.
      const hist = (name: string, labels: Record<string, string>): { count: number; inf: number } => {
        const f = families.get(name);
        assert.ok(f, `metric ${name}`);
        const one = (sampleName: string, l: Record<string, string>): number => {
          const s = f.samples.find((x) => x.name === sampleName && Object.keys(x.labels).length === Object.keys(l).length && Object.entries(l).every(([k, v]) => x.labels[k] === v));
          assert.ok(s, `${sampleName}${JSON.stringify(l)}`);
          return s.value;
        };
        return { count: one(`${name}_count`, labels), inf: one(`${name}_bucket`, { ...labels, le: '+Inf' }) };
      };
      for (const name of ['gwlbtun_worker_loop_turn_seconds', 'gwlbtun_gc_pause_seconds', 'gwlbtun_main_event_loop_delay_seconds']) assert.equal(families.get(name)?.type, 'histogram', name);
      const turns = hist('gwlbtun_worker_loop_turn_seconds', { worker: '0' });
      assert.ok(turns.count > 0 && turns.inf === turns.count, JSON.stringify(turns));
      for (const thread of ['main', 'worker-0']) {
        const g = hist('gwlbtun_gc_pause_seconds', { thread });
        assert.equal(g.inf, g.count, thread);
      }
      const delay = hist('gwlbtun_main_event_loop_delay_seconds', {});
      assert.equal(delay.inf, delay.count);
    });
  });

  test('SIGTERM: 503 while shutting down, DESTROY hooks run, exit 0; a second signal exits at once', async () => {
    const hookLog = path.join(ctx.dir, 'term.log');
    const env = { GWLBTUN_TEST_HOOK_LOG: hookLog, GWLBTUN_TEST_HOOK_DESTROY_SLEEP: '2' };
    const d = await startDaemon(ctx.t, ['-p', String(PORT), '-j', '-c', RECORD_HOOK, '-r', RECORD_HOOK], env);
    try {
      await runEmulator(ctx.t, ['--endpoints', '1,2', '--families', '4', '--protos', 'udp', '--flows', '1', '--rate', '500', '--packets', '5']);
      const t0 = Date.now();
      d.proc.kill('SIGTERM');
      const r = await waitFor('503 while shutting down', () => {
        const h = httpGetInNs(ctx.t.applianceNs, PORT, '/');
        return h.status === 503 ? h : undefined;
      }, 3000, 50);
      assert.equal((JSON.parse(r.body) as { healthy: boolean }).healthy, false);
      const exit = await d.exited;
      assert.equal(exit.code, 0);
      assert.ok(Date.now() - t0 < 5000, 'exits within 5 s (the DESTROY hooks take 2 s, in parallel)');
      const destroys = hookCalls(hookLog).filter((a) => a[0] === 'DESTROY').map((a) => a.join(' ')).sort();
      assert.deepEqual(destroys, ['DESTROY gwi-1 gwo-1 00000000000000001', 'DESTROY gwi-2 gwo-2 00000000000000002']);
      assert.ok(!links(ctx.t.applianceNs).some((l) => l.ifname.startsWith('gw')), 'interfaces removed');
    } finally {
      await stopDaemon(d);
    }
    const d2 = await startDaemon(ctx.t, ['-r', RECORD_HOOK], { ...env, GWLBTUN_TEST_HOOK_DESTROY_SLEEP: '20' });
    try {
      await runEmulator(ctx.t, ['--endpoints', '3', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '3', '--settle-ms', '300']);
      d2.proc.kill('SIGTERM');
      await sleep(300);
      const t1 = Date.now();
      d2.proc.kill('SIGINT');
      const exit = await d2.exited;
      assert.ok(Date.now() - t1 < 1000, 'second signal exits at once');
      assert.equal(exit.code, 1);
    } finally {
      await stopDaemon(d2);
    }
  });

  test('--no-return: only gwi- interfaces, hooks get none, packets delivered, nothing sent back', async () => {
    const hookLog = path.join(ctx.dir, 'noret.log');
    await withDaemon(['--no-return', '-c', RECORD_HOOK, '-p', String(PORT)], { GWLBTUN_TEST_HOOK_LOG: hookLog, GWLBTUN_TEST_HOOK_NOROUTE: '1' }, async () => {
      const r = await runEmulator(ctx.t, ['--endpoints', '9', '--families', '4', '--protos', 'udp', '--flows', '2', '--rate', '500', '--packets', '10', '--settle-ms', '300']);
      assert.equal(r.totals.verified, 0);
      const names = links(ctx.t.applianceNs).map((l) => l.ifname);
      assert.ok(names.includes('gwi-9') && !names.includes('gwo-9'), names.join(' '));
      assert.deepEqual(hookCalls(hookLog)[0], ['CREATE', 'gwi-9', 'none', '00000000000000009']);
      const m = metrics(ctx.t, PORT);
      assert.equal(m.get('gwlbtun_endpoint_packets_from_gwlb_total{eni="00000000000000009",interface="gwi-9"}'), r.totals.sent);
      assert.equal(m.get('gwlbtun_flows'), undefined, 'no flow table');
    });
  });

  test('-i and --idle-other: TCP and other flows expire after their own idle timeouts', async () => {
    await withDaemon(['-c', RECORD_HOOK, '-i', '30', '--idle-other', '1', '-p', String(PORT)], { GWLBTUN_TEST_HOOK_LOG: path.join(ctx.dir, 'idle.log') }, async () => {
      const r = await runEmulator(ctx.t, ['--endpoints', 'a', '--families', '4', '--protos', 'tcp,udp,icmp', '--flows', '2', '--rate', '600', '--packets', '5']);
      assert.equal(r.totals.verified, r.totals.sent);
      assert.equal(metrics(ctx.t, PORT).get('gwlbtun_flows'), 6);
      // UDP and ICMP flows go after 1 s (swept within about one more second); TCP ones stay.
      await waitFor('non-TCP flows expired', () => metrics(ctx.t, PORT).get('gwlbtun_flows') === 2, 4000, 200);
      assert.equal(metrics(ctx.t, PORT).get('gwlbtun_flow_expiries_total'), 4);
    });
  });

  test('--log-format json, -d and -x', async () => {
    const jd = await withDaemon(['--log-format', 'json', '-c', RECORD_HOOK], { GWLBTUN_TEST_HOOK_LOG: path.join(ctx.dir, 'log.log') }, async () => {
      await runEmulator(ctx.t, ['--endpoints', 'b', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '3']);
    });
    const lines = jd.output().trim().split('\n');
    assert.ok(lines.length >= 3);
    for (const l of lines) {
      const o = JSON.parse(l) as Record<string, unknown>;
      assert.ok(typeof o.time === 'string' && typeof o.section === 'string' && typeof o.level === 'string' && typeof o.msg === 'string', l);
    }
    const plain = await withDaemon(['-c', RECORD_HOOK], { GWLBTUN_TEST_HOOK_LOG: path.join(ctx.dir, 'log.log') }, async () => {
      await runEmulator(ctx.t, ['--endpoints', 'b', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '3']);
    });
    assert.doesNotMatch(plain.output(), / info /);
    assert.match(plain.output(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /m, 'millisecond timestamps');
    const dbg = await withDaemon(['-d', '-x', '-c', RECORD_HOOK], { GWLBTUN_TEST_HOOK_LOG: path.join(ctx.dir, 'log.log') }, async () => {
      await runEmulator(ctx.t, ['--endpoints', 'b', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '3']);
      // A packet routed out of gwo- with no flow behind it: dropped, logged with a hex dump.
      nsRun(ctx.t.applianceNs, 'ip', ['addr', 'add', '192.0.2.251/32', 'dev', 'lo']);
      nsRun(ctx.t.applianceNs, 'ip', ['route', 'replace', '203.0.113.251/32', 'dev', 'gwo-b']);
      await sleep(1100); // a fresh second of the 10-lines-a-second budget for the dropped ones
      udpSendInNs(ctx.t.applianceNs, '192.0.2.251', '203.0.113.251', 9, 2);
      await sleep(300);
    });
    assert.match(dbg.output(), / info +create hook done/);
    assert.match(dbg.output(), /from GWLB: \d+-byte packet\n {2}0000 {2}08 00 08 00 /, 'a carried Geneve datagram, dumped');
    assert.match(dbg.output(), /to GWLB: \d+-byte packet\n {2}0000 {2}45 /, 'a returned packet, dumped');
    assert.match(dbg.output(), /dropped \d+-byte packet: no_flow/);
    assert.match(dbg.output(), /\n {2}0000 {2}45 /, 'hex dump of the IPv4 packet');
  });

  test('--logging tunnel=critical silences tunnel messages; --rcvbuf sets the receive buffer', async () => {
    const quiet = await withDaemon(['--logging', 'TUNNEL=Critical', '--rcvbuf', '1048576'], {}, async () => {
      await runEmulator(ctx.t, ['--endpoints', 'd', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '2', '--settle-ms', '200']);
      const ss = nsRun(ctx.t.applianceNs, 'ss', ['-u', '-a', '-n', '-m', 'sport', '=', ':6081']);
      // The kernel doubles SO_RCVBUF for its own bookkeeping: rb2097152.
      assert.match(ss.stdout, /rb2097152/, ss.stdout);
    });
    assert.doesNotMatch(quiet.output(), /tunnel +important/);
    assert.match(quiet.output(), /core +important/);
  });

  test('--udpaffinity: one worker per listed CPU, each pinned', async () => {
    await withDaemon(['--udpaffinity', '0-1', '-p', String(PORT), '-j'], {}, async (d) => {
      const j = JSON.parse(httpGetInNs(ctx.t.applianceNs, PORT, '/').body) as { workers: unknown[] };
      assert.equal(j.workers.length, 2);
      const allowed = fs
        .readdirSync(`/proc/${d.pid}/task`)
        .map((tid) => /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync(`/proc/${d.pid}/task/${tid}/status`, 'utf8'))?.[1]);
      assert.ok(allowed.includes('0') && allowed.includes('1'), `threads pinned to 0 and 1: ${allowed.join(' ')}`);
    });
  });
});
