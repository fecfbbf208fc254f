// The emulator against the reflector, each in its own network namespace (needs root: CI runs
// the tests as root). Real Geneve over UDP through a veth pair; every packet must come back
// verified, per endpoint and per phase.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { createTopology, destroyTopology, nsSpawnArgs, Topology } from '../../src/sim/topology';
import type { EmulatorReport } from '../../src/sim/emulator';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'sim', 'cli.js');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = isRoot ? false : 'needs root (network namespaces)';

function nsList(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').map((l) => l.split(' ')[0]).filter((s) => s !== '');
}

interface Ran {
  code: number | null;
  lines: Array<Record<string, unknown>>;
  stderr: string;
}

/** Run the CLI in a namespace to completion (killed by PID after timeoutMs). */
function runCli(ns: string, args: string[], timeoutMs: number): Promise<Ran> {
  const a = nsSpawnArgs(ns, process.execPath, [CLI, ...args]);
  const child = spawn(a.file, a.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => {
    if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }, timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines = out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, lines, stderr: err });
    });
  });
}

/** Start the reflector in the appliance namespace; resolves once it reports ready. */
function startReflector(t: Topology, seconds: number): Promise<{ child: ChildProcess; result: Promise<Ran> }> {
  const a = nsSpawnArgs(t.applianceNs, process.execPath, [CLI, 'reflect', '--duration', String(seconds)]);
  const child = spawn(a.file, a.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const result = new Promise<Ran>((resolve) => {
    child.on('close', (code) => {
      const lines = out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, lines, stderr: err });
    });
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`reflector not ready: ${err}`)), 10000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"type":"ready"')) {
        clearTimeout(timer);
        resolve({ child, result });
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`reflector exited (${code}): ${err}`));
    });
  });
}

function kill(child: ChildProcess | undefined, sig: NodeJS.Signals): void {
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, sig);
    } catch {
      // already gone
    }
  }
}

test('topology: two namespaces joined by a veth, removed again', { skip }, () => {
  const t = createTopology('simtopo');
  try {
    assert.ok(t.gwlbIf.length <= 15 && t.applianceIf.length <= 15);
    assert.ok(nsList().includes(t.gwlbNs) && nsList().includes(t.applianceNs));
    const show = spawnSync('ip', ['-n', t.gwlbNs, '-o', 'addr', 'show', 'dev', t.gwlbIf], { encoding: 'utf8' });
    assert.match(show.stdout, /inet 198\.18\.0\.1\/24/);
    const link = spawnSync('ip', ['-n', t.applianceNs, '-o', 'link', 'show', 'dev', t.applianceIf], { encoding: 'utf8' });
    assert.match(link.stdout, /mtu 9001/);
    assert.match(link.stdout, /state UP|LOWER_UP/);
    assert.deepEqual(nsSpawnArgs(t.gwlbNs, 'true', ['x']), { file: 'ip', args: ['netns', 'exec', t.gwlbNs, 'true', 'x'] });
  } finally {
    destroyTopology(t);
  }
  assert.ok(!nsList().includes(t.gwlbNs) && !nsList().includes(t.applianceNs));
  destroyTopology(t); // idempotent, does not throw
});

test('emulator verifies every packet through the reflector, two endpoints, two phases', { skip, timeout: 30000 }, async () => {
  let t: Topology | undefined;
  let refl: ChildProcess | undefined;
  try {
    t = createTopology('simemu');
    const r = await startReflector(t, 25);
    refl = r.child;
    const endpoints = ['1', 'ffffffffffffffff'];
    const flows = 3;
    const packets = 20;
    const run = await runCli(t.gwlbNs, ['emulate', '--endpoints', endpoints.join(','), '--flows', String(flows),
      '--families', '4,6', '--protos', 'tcp,udp,icmp', '--size', '300', '--rate', '5000', '--packets', String(packets),
      '--duration', '10', '--settle-ms', '2000', '--ttl-decrement', '0', '--phases', '2', '--progress-ms', '100'], 25000);
    assert.equal(run.code, 0, run.stderr);
    const report = run.lines.find((l) => l.type === 'report') as unknown as EmulatorReport;
    assert.ok(report, 'report line');
    const prog = run.lines.filter((l) => l.type === 'progress');
    assert.ok(prog.length > 0, 'progress lines');
    assert.equal((prog[0].endpoints as unknown[]).length, 2, 'progress per endpoint');
    const perEndpoint = 2 * 3 * flows * packets * 2; // families * protos * flows * packets * phases
    assert.equal(report.flows, 2 * 2 * 3 * flows);
    assert.deepEqual(report.endpoints.map((e) => e.eni), ['00000000000000001', '0ffffffffffffffff']);
    assert.deepEqual(report.endpoints.map((e) => e.name), ['gwi-1', 'gwi-uur953OEv0f']);
    for (const e of report.endpoints) {
      assert.equal(e.sent, perEndpoint, `${e.name} sent`);
      assert.equal(e.verified, perEndpoint, `${e.name} verified`);
      assert.equal(e.returned, perEndpoint, `${e.name} returned`);
      assert.equal(e.lost, 0);
      assert.deepEqual(e.bad, {});
    }
    assert.equal(report.phases.length, 2);
    for (const p of report.phases) {
      assert.equal(p.sent, perEndpoint, `phase ${p.phase}`); // two endpoints, half the packets each
      assert.equal(p.verified, p.sent);
      assert.equal(p.lost, 0);
    }
    assert.equal(report.totals.verified, 2 * perEndpoint);
    assert.deepEqual(report.totals.bad, {});

    // The same traffic checked as if the appliance forwarded it through the kernel: the
    // reflector does not decrement the TTL, so every packet must be flagged, none verified.
    const wrong = await runCli(t.gwlbNs, ['emulate', '--endpoints', '1', '--flows', '1', '--packets', '2',
      '--ttl-decrement', '1', '--settle-ms', '300', '--progress-ms', '0'], 15000);
    assert.equal(wrong.code, 0, wrong.stderr);
    const w = wrong.lines.find((l) => l.type === 'report') as unknown as EmulatorReport;
    assert.equal(w.totals.verified, 0);
    assert.equal(w.totals.bad.inner_mismatch, w.totals.sent);
    assert.equal(w.totals.sent, 2 * 3 * 2);

    kill(refl, 'SIGTERM');
    const rr = await r.result;
    const stats = rr.lines.find((l) => l.type === 'reflector');
    assert.ok(stats, rr.stderr);
    assert.equal(stats.received, 2 * perEndpoint + w.totals.sent);
    assert.equal(stats.reflected, stats.received);
  } finally {
    kill(refl, 'SIGKILL');
    if (t) destroyTopology(t);
  }
  if (t) assert.ok(!nsList().includes(t.gwlbNs));
});

test('topology: destroyOnExit removes the namespaces on SIGTERM', { skip, timeout: 20000 }, async () => {
  const mod = path.resolve(__dirname, '..', '..', 'src', 'sim', 'topology.js');
  const script = `const m = require(${JSON.stringify(mod)}); const t = m.createTopology('simexit'); m.destroyOnExit(t);` +
    `process.stdout.write(JSON.stringify(t) + '\\n'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let t: Topology | undefined;
  try {
    let out = '';
    t = await new Promise<Topology>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no topology line')), 10000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) {
          clearTimeout(timer);
          resolve(JSON.parse(out.slice(0, nl)) as Topology);
        }
      });
      child.on('exit', () => reject(new Error('exited early')));
    });
    assert.ok(nsList().includes(t.gwlbNs));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    process.kill(child.pid!, 'SIGTERM');
    assert.equal(await exited, 143);
    assert.ok(!nsList().includes(t.gwlbNs) && !nsList().includes(t.applianceNs));
  } finally {
    kill(child, 'SIGKILL');
    if (t) destroyTopology(t);
  }
});

test('cli: bad arguments exit 2', async () => {
  const r = spawnSync(process.execPath, [CLI, 'emulate', '--families', '5'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /usage/);
  const r2 = spawnSync(process.execPath, [CLI, 'nope'], { encoding: 'utf8' });
  assert.equal(r2.status, 2);
  const r3 = spawnSync(process.execPath, [CLI, 'emulate', '--flows', '60000'], { encoding: 'utf8' });
  assert.equal(r3.status, 2, r3.stderr);
});
