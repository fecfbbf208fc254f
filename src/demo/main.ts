// npm run demo: gwlbtun against the built-in GWLB emulator, in two network namespaces made here
// and removed at the end (also on Ctrl-C).
//
//   [GWLB namespace: emulator] --veth, Geneve/UDP 6081--> [appliance namespace: gwlbtun]
//        ^ verifies every returned packet                     gwi-X -> kernel routing -> gwo-X
//
// It runs for about 20 s, printing live per-endpoint counters, then shuts gwlbtun down with
// SIGTERM (DESTROY hooks run) and exits 0.
//
//   npm run demo [-- --seconds S]      --help prints this; a bad option is one line, exit 2

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { createTopology, destroyTopology, nsSpawnArgs, type Topology } from '../sim/topology';
import { metricsInNs } from '../sim/nshttp';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'gwlbtun');
const HOOK = path.join(ROOT, 'examples', 'hooks', 'one-arm.sh');
const SIM = path.join(ROOT, 'dist', 'src', 'sim', 'cli.js');
const HEALTH_PORT = 8080;
const ENIS = ['1', '2b8ee1d4db0c51c4', 'ffffffffffffffff'];
const HELP = `usage: npm run demo [-- --seconds S]   (as root)
gwlbtun against the built-in GWLB emulator in two network namespaces of its own, removed at the end.
  --seconds S   how long the emulator sends (default 20, or $GWLBTUN_DEMO_SECONDS; 1 to 3600)
  -h, --help    this help
`;

/** Seconds of traffic from the command line, or the help (exit 0), or one line and exit 2. */
function options(argv: string[]): number {
  let v: { help?: boolean; seconds?: string };
  try {
    v = parseArgs({ args: argv, strict: true, allowPositionals: false, options: { help: { type: 'boolean', short: 'h' }, seconds: { type: 'string' } } }).values;
  } catch (e) {
    return usage((e as Error).message.split('\n')[0].replace(/\. To specify.*$/, ''));
  }
  if (v.help === true) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const s = v.seconds ?? process.env.GWLBTUN_DEMO_SECONDS ?? '20';
  if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 3600) return usage(`--seconds: '${s}' is not a whole number from 1 to 3600`);
  return Number(s);
}
function usage(msg: string): never {
  process.stderr.write(`demo: ${msg} (see npm run demo -- --help)\n`);
  process.exit(2);
}
const SECONDS = options(process.argv.slice(2));

interface EpProgress {
  name: string;
  sent: number;
  returned: number;
  verified: number;
  bad: number;
}

let topo: Topology | undefined;
const children: ChildProcess[] = [];
let cleaning = false;

let runDir: string | undefined;

function cleanup(): void {
  if (cleaning) return;
  cleaning = true;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (topo !== undefined) destroyTopology(topo);
  if (runDir !== undefined) fs.rmSync(runDir, { recursive: true, force: true });
}

function metrics(): Map<string, number> {
  return topo === undefined ? new Map() : metricsInNs(topo.applianceNs, HEALTH_PORT);
}

function table(eps: EpProgress[] | undefined, m: Map<string, number>, elapsed: number): void {
  const rows: string[] = [];
  rows.push(`t=${elapsed.toFixed(0).padStart(3)} s  endpoint          | emulator: sent  returned  verified   bad | gwlbtun: in      out     drops`);
  const names = new Set<string>([...(eps ?? []).map((e) => e.name)]);
  for (const k of m.keys()) {
    const mm = /^gwlbtun_endpoint_packets_from_gwlb_total\{eni="[0-9a-f]+",interface="([^"]+)"\}$/.exec(k);
    if (mm !== null) names.add(mm[1]);
  }
  for (const name of [...names].sort()) {
    const e = eps?.find((x) => x.name === name);
    const pick = (metric: string): number => {
      for (const [k, v] of m) if (k.startsWith(metric + '{') && k.includes(`interface="${name}"`)) return v;
      return 0;
    };
    rows.push(
      `          ${name.padEnd(17)} | ${String(e?.sent ?? '-').padStart(14)} ${String(e?.returned ?? '-').padStart(9)} ${String(e?.verified ?? '-').padStart(9)} ${String(e?.bad ?? '-').padStart(5)} |` +
        ` ${String(pick('gwlbtun_endpoint_packets_from_gwlb_total')).padStart(11)} ${String(pick('gwlbtun_endpoint_packets_to_gwlb_total')).padStart(7)} ${String(pick('gwlbtun_endpoint_drops_total')).padStart(9)}`,
    );
  }
  process.stdout.write(rows.join('\n') + '\n\n');
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('demo: needs root (it creates network namespaces and TUN devices)');
    return 1;
  }
  process.on('SIGINT', () => {
    console.log('\ndemo: interrupted, cleaning up');
    cleanup();
    process.exit(130);
  });
  process.on('SIGTERM', () => {
    cleanup();
    process.exit(143);
  });
  topo = createTopology('demo');
  console.log(`demo: namespaces ${topo.gwlbNs} (GWLB emulator, ${topo.gwlbIp}) and ${topo.applianceNs} (gwlbtun, ${topo.applianceIp})`);

  const d = nsSpawnArgs(topo.applianceNs, process.execPath, [BIN, '-c', HOOK, '-r', HOOK, '-p', String(HEALTH_PORT), '-t', '60']);
  // Its own runtime directory (PID file, state file), not the machine's /run/gwlbtun.
  runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-demo-run-'));
  const daemon = spawn(d.file, d.args, { stdio: ['ignore', 'inherit', 'pipe'], env: { ...process.env, RUNTIME_DIRECTORY: runDir } });
  children.push(daemon);
  let daemonLog = '';
  let partial = '';
  daemon.stderr!.on('data', (b: Buffer) => {
    daemonLog += b.toString();
    const lines = (partial + b.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) process.stderr.write(`  gwlbtun | ${l}\n`);
  });
  const t0 = Date.now();
  while (!daemonLog.includes('gwlbtun started')) {
    if (daemon.exitCode !== null) throw new Error('gwlbtun exited during start-up');
    if (Date.now() - t0 > 10000) throw new Error('gwlbtun did not start');
    await new Promise((r) => setTimeout(r, 50));
  }

  console.log(`demo: emulator sends IPv4+IPv6 TCP/UDP/ICMP for endpoints ${ENIS.join(', ')} for ${SECONDS} s\n`);
  const e = nsSpawnArgs(topo.gwlbNs, process.execPath, [
    SIM, 'emulate', '--gwlb-ip', topo.gwlbIp, '--appliance-ip', topo.applianceIp,
    '--endpoints', ENIS.join(','), '--families', '4,6', '--protos', 'tcp,udp,icmp', '--flows', '4',
    '--rate', '3000', '--packets', String(SECONDS * 3000), '--duration', String(SECONDS),
    '--size', '400', '--progress-ms', '2000', '--ttl-decrement', '1',
  ]);
  const emu = spawn(e.file, e.args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(emu);
  let buf = '';
  let report: { totals: { sent: number; verified: number; lost: number }; endpoints: EpProgress[] } | undefined;
  emu.stdout.on('data', (b: Buffer) => {
    buf += b.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      const msg = JSON.parse(line) as { type: string; elapsedMs?: number; endpoints?: EpProgress[] };
      if (msg.type === 'progress') table(msg.endpoints, metrics(), (msg.elapsedMs ?? 0) / 1000);
      else if (msg.type === 'report') report = msg as unknown as typeof report;
    }
  });
  await new Promise<void>((r) => emu.on('exit', () => r()));
  table(report?.endpoints.map((x) => ({ ...x, bad: Object.values(x.bad as unknown as Record<string, number>).reduce((a, b) => a + b, 0) })), metrics(), (Date.now() - t0) / 1000);
  console.log('demo: "in"/"out" are gwlbtun\'s own per-endpoint counters; its "drops" are the IPv6 link-local messages\n' +
    '      (router solicitations, MLD) the kernel sends out of new interfaces, counted as link_local.');
  if (report !== undefined) {
    console.log(`demo: emulator sent ${report.totals.sent} packets; ${report.totals.verified} came back verified byte for byte; ${report.totals.lost} lost`);
  }
  console.log('demo: stopping gwlbtun with SIGTERM (runs the DESTROY hooks, removes the interfaces)');
  daemon.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => daemon.on('exit', (c) => r(c)));
  console.log(`demo: gwlbtun exited with ${code}`);
  cleanup();
  console.log('demo: namespaces removed; done');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`demo: ${err.message}`);
    cleanup();
    process.exit(1);
  },
);
