// Helpers for the end-to-end tests: the real daemon (bin/gwlbtun) in the appliance namespace,
// the GWLB emulator (src/sim) in the GWLB namespace, both made fresh per test file by
// src/sim/topology.ts and removed afterwards whatever happens.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { after, before } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTopology, destroyTopology, nsSpawnArgs, type Topology } from '../../src/sim/topology';
import { httpGetInNs, parseMetrics } from '../../src/sim/nshttp';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'gwlbtun');
export const SIM_CLI = path.join(ROOT, 'dist', 'src', 'sim', 'cli.js');
export const RECORD_HOOK = path.join(ROOT, 'test', 'e2e', 'fixtures', 'record-hook.sh');

/** End-to-end tests need root (namespaces, TUN, raw sockets). In CI they must run: fail, never skip. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('end-to-end tests need root (network namespaces, TUN devices, raw sockets)');
}

export function sh(file: string, args: string[], timeoutMs = 20000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function nsRun(ns: string, cmd: string, args: string[], timeoutMs = 20000): { status: number | null; stdout: string; stderr: string } {
  const a = nsSpawnArgs(ns, cmd, args);
  return sh(a.file, a.args, timeoutMs);
}

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `gwlbtun-${tag}-`));
}

export interface Daemon {
  proc: ChildProcess;
  pid: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

// The daemons' runtime directory (PID file, hand-over records, state file: RUNTIME_DIRECTORY, else
// /run/gwlbtun) is this test file's own unless a test names one: set here for every process the
// test starts, so that nothing a test runs writes to the machine's /run/gwlbtun and one test's
// state file is never another's to adopt. Removed when the test process exits (not when a daemon
// does: a hand-over's new process goes on using it).
if (process.env.RUNTIME_DIRECTORY === undefined) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-e2e-run-'));
  process.env.RUNTIME_DIRECTORY = dir;
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
}

/** Start bin/gwlbtun (or `bin`, e.g. an installed copy) in the appliance namespace; resolves once
 * it logs that it started. `wrapper` (a command and its arguments) runs it: a seccomp launcher
 * that execs node (the PID stays the daemon's), or unshare (then `pid` is unshare's). */
export async function startDaemon(t: Topology, args: string[], env: Record<string, string> = {}, readyTimeoutMs = 10000, bin = BIN, wrapper: string[] = []): Promise<Daemon> {
  const argv = [...wrapper, process.execPath, bin, ...args];
  const a = nsSpawnArgs(t.applianceNs, argv[0]!, argv.slice(1));
  const proc = spawn(a.file, a.args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const onData = (b: Buffer): void => {
    if (out.length < 1_000_000) out += b.toString();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const d: Daemon = { proc, pid: proc.pid!, output: () => out, exited };
  const deadline = Date.now() + readyTimeoutMs;
  while (!out.includes('gwlbtun started')) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`gwlbtun exited during start-up:\n${out}`);
    if (Date.now() > deadline) {
      await stopDaemon(d);
      throw new Error(`gwlbtun did not start within ${readyTimeoutMs} ms:\n${out}`);
    }
    await sleep(50);
  }
  return d;
}

/** SIGTERM by PID (ip netns exec execs the daemon, so the PID is the daemon's), then SIGKILL. */
export async function stopDaemon(d: Daemon, timeoutMs = 8000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([d.exited, new Promise<null>((res) => (timer = setTimeout(() => res(null), timeoutMs)))]);
  clearTimeout(timer);
  if (r !== null) return r;
  d.proc.kill('SIGKILL');
  return d.exited;
}

export interface EpReport {
  eni: string;
  name: string;
  sent: number;
  returned: number;
  verified: number;
  lost: number;
  bad: Record<string, number>;
}
export interface EmuReport {
  endpoints: EpReport[];
  totals: Omit<EpReport, 'eni' | 'name'>;
  elapsedMs: number;
  pps: number;
  /** The emulator's progress lines (with --progress-ms), in order. */
  progress: { elapsedMs: number; sent: number; returned: number; verified: number; outstanding: number }[];
}

/** Run the emulator CLI in the GWLB namespace and return its final report. */
export async function runEmulator(t: Topology, args: string[], timeoutMs = 60000): Promise<EmuReport> {
  const a = nsSpawnArgs(t.gwlbNs, process.execPath, [SIM_CLI, 'emulate', '--gwlb-ip', t.gwlbIp, '--appliance-ip', t.applianceIp, ...args]);
  const proc = spawn(a.file, a.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  const lines = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { type: string });
  const line = lines.find((m) => m.type === 'report');
  if (code !== 0 || line === undefined) throw new Error(`emulator failed (exit ${code}):\n${err}\n${out}`);
  return { ...(line as unknown as EmuReport), progress: lines.filter((m) => m.type === 'progress') as unknown as EmuReport['progress'] };
}

export { httpGetInNs, parseMetrics };

export function metrics(t: Topology, port: number): Map<string, number> {
  const r = httpGetInNs(t.applianceNs, port, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body}`);
  return parseMetrics(r.body);
}

export interface LinkInfo {
  ifname: string;
  mtu: number;
  txqlen?: number;
  flags: string[];
  stats64?: { rx: { packets: number; bytes: number }; tx: { packets: number; bytes: number } };
}

export function links(ns: string): LinkInfo[] {
  const r = nsRun(ns, 'ip', ['-s', '-j', 'link', 'show']);
  if (r.status !== 0) throw new Error(`ip link show failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as LinkInfo[];
}

/** SIGINT to a child (by its PID) unless it has exited; SIGKILL when it has not exited within
 * `ms`. Resolves with its exit code, or 'late' when it had to be killed. */
export async function interrupt(p: ChildProcess, exited: Promise<number | null>, ms = 30_000): Promise<number | null | 'late'> {
  if (p.exitCode === null) p.kill('SIGINT');
  let t: NodeJS.Timeout | undefined;
  const code = await Promise.race([exited, new Promise<'late'>((r) => (t = setTimeout(() => r('late'), ms)))]);
  clearTimeout(t);
  if (code === 'late') p.kill('SIGKILL');
  return code;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 10000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Send `count` UDP datagrams from inside a namespace (bounded), e.g. out of a gwo- interface. */
export function udpSendInNs(ns: string, from: string, to: string, port: number, count: number): void {
  const script = `
    const dgram = require('node:dgram');
    const s = dgram.createSocket('udp4');
    s.bind(0, ${JSON.stringify(from)}, async () => {
      for (let i = 0; i < ${count}; i++) await new Promise((r) => s.send(Buffer.from('probe ' + i), ${port}, ${JSON.stringify(to)}, () => r()));
      s.close();
    });`;
  const r = nsRun(ns, process.execPath, ['-e', script], 10000);
  if (r.status !== 0) throw new Error(`udp send in ${ns} failed: ${r.stderr}`);
}

/** Send these datagrams (exactly these, once each) to the appliance's UDP 6081 from the GWLB
 * namespace, from (t.gwlbIp, sport): hand-made Geneve, as GWLB would send it. */
export function sendFromGwlb(t: { gwlbNs: string; gwlbIp: string; applianceIp: string }, sport: number, dgrams: Uint8Array[]): void {
  const script = `
    const dgram = require('node:dgram');
    const s = dgram.createSocket('udp4');
    const list = process.argv.slice(1).map((h) => Buffer.from(h, 'hex'));
    s.bind(${sport}, ${JSON.stringify(t.gwlbIp)}, async () => {
      for (const b of list) await new Promise((r) => s.send(b, 6081, ${JSON.stringify(t.applianceIp)}, () => r()));
      s.close();
    });`;
  const r = nsRun(t.gwlbNs, process.execPath, ['-e', script, ...dgrams.map((d) => Buffer.from(d).toString('hex'))], 10000);
  if (r.status !== 0) throw new Error(`send in ${t.gwlbNs} failed: ${r.stderr}`);
}

/** The server side of a hand-made flow in a namespace: one process bound to server:serverPort
 * (so the inbound packets are received, never answered with ICMP) that sends one return packet
 * (to client:clientPort, routed as the namespace routes it) per reply(). Exits when its stdin
 * closes, after 120 s at the latest; stop() kills it by its PID. */
export async function startReplyServer(ns: string, server: string, serverPort: number, client: string, clientPort: number): Promise<{ reply: () => Promise<void>; stop: () => void }> {
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', () => undefined);
    s.bind(${serverPort}, ${JSON.stringify(server)}, () => process.stdout.write('ready\\n'));
    require('node:readline').createInterface({ input: process.stdin }).on('line', () =>
      s.send(Buffer.from('reply'), ${clientPort}, ${JSON.stringify(client)}, (e) => process.stdout.write(e ? 'error ' + e.message + '\\n' : 'sent\\n')));
    process.stdin.on('end', () => process.exit(0));
    setTimeout(() => process.exit(0), 120000);`;
  const a = nsSpawnArgs(ns, process.execPath, ['-e', script]);
  const proc = spawn(a.file, a.args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  const lines = (w: string): number => out.split('\n').filter((l) => l === w).length;
  await waitFor('the server socket', () => lines('ready') === 1 || proc.exitCode !== null);
  if (lines('ready') !== 1) throw new Error(`server in ${ns} did not start: ${out}`);
  return {
    reply: async () => {
      const n = lines('sent');
      proc.stdin!.write('send\n');
      await waitFor('the return packet sent', () => lines('sent') === n + 1 || out.includes('error'));
      if (out.includes('error')) throw new Error(`return send failed: ${out}`);
    },
    stop: () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); // by its PID
    },
  };
}

/** The argument vectors recorded by fixtures/record-hook.sh, in call order ('done' lines excluded). */
export function hookCalls(file: string): string[][] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('done\t'))
    .map((l) => l.split('\t').slice(1));
}

/** Every line of the hook log (calls as "CREATE gwi-1 ...", completions as "done CREATE gwi-1"). */
export function hookEvents(file: string): string[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (l.startsWith('done\t') ? l.split('\t').join(' ') : l.split('\t').slice(1).join(' ')));
}

/** What useEnv() provides to the tests of one describe block, filled in by its before(). */
export interface Env {
  t: Topology;
  dir: string;
  /** Where fixtures/record-hook.sh records (GWLBTUN_TEST_HOOK_LOG of the daemon). */
  hookLog: string;
  /** The daemon, when useEnv() was asked to start one. */
  d: Daemon;
}

/** Registers, in the calling describe block, a before() that makes a fresh topology and temp
 * directory (and starts the daemon with `daemon.args`, when given) and an after() that stops the
 * daemon and removes all of it, also when a test failed. */
export function useEnv(tag: string, daemon?: { args: string[]; env?: Record<string, string> }): Env {
  const env = {} as Env;
  before(async () => {
    requireRoot();
    env.dir = tmpDir(tag);
    env.hookLog = path.join(env.dir, 'hooks.log');
    env.t = createTopology(tag);
    if (daemon !== undefined) env.d = await startDaemon(env.t, daemon.args, { GWLBTUN_TEST_HOOK_LOG: env.hookLog, ...daemon.env });
  });
  after(async () => {
    try {
      if (env.d !== undefined) {
        const r = await stopDaemon(env.d);
        if (r.code !== 0) console.error(`daemon exit ${r.code} ${r.signal}\n${env.d.output()}`);
      }
    } finally {
      if (env.t !== undefined) destroyTopology(env.t);
      if (env.dir !== undefined) fs.rmSync(env.dir, { recursive: true, force: true });
    }
  });
  return env;
}
