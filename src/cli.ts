// Command line: the original gwlbtun's flags with the same meanings (docs/protocol.md section 3),
// plus our own. Everything is validated before the system is touched: a bad flag prints one
// line naming the flag and the problem and exits 2.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Daemon, type Adopted } from './control/daemon';
import type { DaemonOptions } from './control/options';
import { defaultLogConfig, LEVELS, Logger, parseLogging, SECTIONS, type LogConfig } from './base/log';
import { startHealthServer, type HealthServer, type HealthStyle } from './ops/health';
import { flowTableBytes, MAX_FLOWS_LIMIT } from './flow/table';
import { GENEVE_PORT } from './wire/geneve';
import { ip4FromString, native } from './io/native';
import { scheduleMain } from './io/sched';
import { installClockStepFromEnv } from './base/clock-failpoint';
import { monoMs } from './base/clock';
import { StopSequence } from './control/stop';
import { startOrphanReaper } from './control/reaper';
import { doctorMain } from './ops/doctor/main';
import { EndpointsFileError, loadEndpointsFile } from './control/endpoints-file';
import { HandOverSource, HandOverTarget, notifySystemd } from './control/handover';
import { defaultStateDir } from './control/state';
import { HandOverStatus } from './control/handover-status';
import { handOverMain } from './ops/handover-cmd';

/** Queues a multi-queue TUN device can have (the kernel's MAX_TAP_QUEUES): every worker owns one
 * queue of every gwi-/gwo- device, so this is also the most workers there can be. */
export const TUN_MAX_QUEUES = 256;

export const HELP = `gwlbtun: tunnel handler for AWS Gateway Load Balancer (TypeScript edition)
Usage: gwlbtun [options]
       gwlbtun doctor [options]   check the host first (gwlbtun doctor -h)
       gwlbtun handover [options] upgrade the running one in place, and wait (gwlbtun handover -h)
Example: gwlbtun -c /etc/gwlbtun/create.sh -r /etc/gwlbtun/destroy.sh -p 80

Options of the original gwlbtun (same meaning):
  -h, --help            Print this help and exit.
  -c, --cmdnew FILE     Run FILE when an endpoint's interfaces have been created (arguments below).
  -r, --cmddel FILE     Run FILE when an endpoint is about to be destroyed (arguments below).
  -t, --timeout SECS    Destroy an endpoint after SECS without a packet in either direction
                        (0, the default, never does).
  -i, --idle SECS       Flow idle timeout for TCP flows (default 350, as GWLB); also the timeout for
                        other flows unless --idle-other is given.
  -p, --port PORT       Serve the health check (and /metrics) on TCP port PORT.
  -j, --json            Health check body in JSON instead of HTML.
  -s                    Health check answers with the status code only (empty body).
  -d, --debug           Debug logging (same as --logging all=debug).
  -x                    Hex dumps of packets, carried and dropped (at most 10 a second per
                        worker; the number left out is reported).
  --udpthreads N        Number of data-plane workers, at most ${TUN_MAX_QUEUES} (see "Threads" below).
  --udpaffinity LIST    Pin workers to these CPUs, one worker per CPU; LIST like 1-2,4,7-8.
  --tunthreads N        Same as --udpthreads (each worker serves both directions).
  --tunaffinity LIST    Same as --udpaffinity; used when --udpaffinity is not given.
  --logging CONFIG      Comma-separated section=level list, case-insensitive.
                        Sections: ${SECTIONS.join(' ')} all
                        Levels:   ${LEVELS.join(' ')}
                        Default: all=important.

Options of this edition:
  --idle-other SECS     Flow idle timeout for non-TCP flows (default: 120, GWLB's own; or the
                        value of -i when -i is given).
  --no-return           Decapsulate only: no gwo- interfaces, no flow table, nothing is sent back
                        to GWLB. Hooks get 'none' as their third argument.
  --offload on|off      TUN offloads (default off): bulk TCP from GWLB goes to gwi- as super-packets
                        and super-packets the kernel hands back are cut into segments here, as
                        Linux GRO/GSO would (docs/operations.md). Counts stay in packets.
                        Off by default: returns then leave through gwlbtx0 and cross FORWARD.
  --hook-timeout SECS   Kill a hook that runs longer than SECS (default 30).
  --drain SECS          On SIGTERM/SIGINT, first answer health checks with 503 and keep carrying
                        traffic for SECS (0 to 3600, default 0), then shut down; a second signal
                        ends the drain early.
  --log-format FORMAT   text (default; stderr, millisecond timestamps) or json (one object a line).
  --gwlb-cidr CIDR      Accept Geneve only from this IPv4 network (repeatable). Default: any
                        source, with a warning at start-up.
  --max-endpoints N     At most N endpoints (default 128); traffic of further ENI IDs is dropped
                        and counted.
  --max-flows N         Flow table size (default 1000000, at most ${MAX_FLOWS_LIMIT}: 2.4 GB); when
                        full, the flow idle longest is evicted.
  --rcvbuf BYTES        UDP receive buffer per worker (default 8388608).
  --sndbuf BYTES        Raw socket send buffer per worker (default 4194304).
  --endpoints FILE      Endpoints known in advance, one a line: ID, name, optionally own hooks and
                        a network namespace (docs/operations.md, "The endpoints file"). Created at
                        start-up before health answers 200, never removed by -t; SIGHUP re-reads
                        the file (added ones created, removed ones destroyed, others untouched).
  --endpoints-only      Drop traffic of ENI IDs not in the endpoints file (endpoint_unlisted).
  --netns-per-endpoint  Every endpoint in a network namespace of its own (created if missing;
                        gwlbtun-NAME, NAME its name or base-60 ID) unless the file names one: its
                        gwi-/gwo- are moved there and its hooks run there.
  --no-sysctl           Leave the interface sysctls to me. By default gwlbtun sets rp_filter 0,
                        accept_ra 0 and no IPv6 link-local address on every gwi-/gwo- interface
                        before the CREATE hook, and restores rp_filter within a second when anyone
                        (udev applying sysctl.d defaults) changes it; with --offload on, also
                        rp_filter 0, accept_local 1 and forwarding 1 on its send device gwlbtx0
                        (written at start even with --no-sysctl, but then not kept).

  --no-adopt            Do not survive a crash: no persistent interfaces, no state file, nothing
                        adopted at start (the original's behaviour). By default a crashed
                        gwlbtun's interfaces outlive it and the next one takes them over, with
                        their flows, without hooks (docs/operations.md, "Crashes and restarts").
  --snapshot-interval SECS
                        Write the state file (endpoints and flows) every SECS (default 5; 0: never,
                        which turns crash survival off as --no-adopt does).
  --state-dir DIR       Where the state file is kept (default: $RUNTIME_DIRECTORY, else
                        /run/gwlbtun).

Threads: each data-plane worker receives Geneve on its own SO_REUSEPORT socket, owns one queue of
every gwi-/gwo- device, and sends back on its own raw socket. Workers = the length of the affinity
list if one is given, else the larger of --udpthreads and --tunthreads, else 1 on machines with up
to 2 CPUs and one per CPU above that. At most ${TUN_MAX_QUEUES} workers: a TUN device has at most
${TUN_MAX_QUEUES} queues (the kernel's limit) and every worker needs one of each device; more are
refused, and the one-per-CPU default is capped at ${TUN_MAX_QUEUES} (with a line in the log).

Hook arguments (the hook is executed directly, without a shell):
  1: CREATE or DESTROY
  2: the ingress interface, gwi-<X>
  3: the egress interface, gwo-<X> ('none' with --no-return)
  4: the GWLB endpoint ENI ID in hexadecimal, 17 digits (so 'vpce-<ID>' is the endpoint ID)
<X> is the ENI ID in base 60, so that the names fit the 15-character interface name limit.

Health: 200 when every worker is alive and its UDP socket bound, 503 otherwise and while shutting
down. GET /metrics on the same port answers in the Prometheus text format.
Signals: SIGINT or SIGTERM destroy every endpoint (DESTROY hooks run) and exit 0; a second signal
exits at once (code 1). With --drain SECS the signal first starts the drain (health 503, traffic
still carried) and the shutdown follows after SECS or at a second signal; a third exits at once.
SIGHUP re-reads the --endpoints file; without one it is logged and ignored.
A crash (SIGKILL, the OOM killer, an abort) leaves the interfaces (made persistent) and the state
file; the next gwlbtun adopts them: no hook runs, the flows come back. A stop by signal is always
clean, so 'systemctl restart' runs DESTROY and CREATE; SIGUSR2 is the restart that keeps flows.
SIGUSR2 hands over to a new gwlbtun started from the same path with the same arguments (an
upgrade in place): it takes the sockets, interfaces and flows over, no hook runs, nothing queued
is lost, and this process exits 0 (docs/operations.md, "Upgrading in place"); with --offload on
its send device gwlbtx0 is passed too. 'gwlbtun handover' sends it and waits for the outcome.
`;

export class UsageError extends Error {}

export interface CliResult {
  help: boolean;
  daemon: DaemonOptions;
  healthPort: number | null;
  healthStyle: HealthStyle;
  /** --drain: seconds of draining on the first signal (0: none). */
  drainS: number;
  log: LogConfig;
  /** Lines for the log once it exists (e.g. the worker count was capped). */
  notes: string[];
}

function int(flag: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`${flag}: '${v}' is not a whole number`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`${flag}: ${v} is out of range (${min} to ${max})`);
  return n;
}

/** "1-2,4,7-8" -> [1,2,4,7,8] */
export function parseCpuList(flag: string, s: string): number[] {
  const cpus: number[] = [];
  for (const part of s.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (m === null) throw new UsageError(`${flag}: '${s}' is not a CPU list like 1-2,4,7-8`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b > 4095) throw new UsageError(`${flag}: bad CPU range '${part}'`);
    for (let c = a; c <= b; c++) if (!cpus.includes(c)) cpus.push(c);
  }
  return cpus;
}

/** "198.18.0.0/15" -> [network, mask] */
export function parseCidr(flag: string, s: string): [number, number] {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(s);
  if (m === null) throw new UsageError(`${flag}: '${s}' is not an IPv4 CIDR like 198.18.0.0/15`);
  let ip: number;
  try {
    ip = ip4FromString(m[1]);
  } catch {
    throw new UsageError(`${flag}: '${s}' is not an IPv4 CIDR`);
  }
  const bits = Number(m[2]);
  if (bits > 32) throw new UsageError(`${flag}: prefix length ${bits} is over 32`);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return [(ip & mask) >>> 0, mask];
}

function onOff(flag: string, v: string | undefined, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (v === 'on' || v === 'off') return v === 'on';
  throw new UsageError(`${flag}: '${v}' is not on or off`);
}

function executable(flag: string, file: string): string {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new UsageError(`${flag}: ${file} is not a file`);
    fs.accessSync(file, fs.constants.X_OK);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${flag}: ${file} is not an executable file (${(e as NodeJS.ErrnoException).code})`);
  }
  return file;
}

/** --state-dir: an absolute path (default: $RUNTIME_DIRECTORY, else /run/gwlbtun). */
function stateDir(v: string | undefined): string {
  if (v === undefined) return defaultStateDir();
  if (!path.isAbsolute(v)) throw new UsageError(`--state-dir: '${v}' is not an absolute path`);
  return v;
}

/** cores: the CPU count the default number of workers follows (a parameter for the tests).
 * checkHooks false: -c/-r are taken as given (gwlbtun doctor reports on them itself). */
export function parseCli(argv: string[], cores: number = os.availableParallelism(), checkHooks = true): CliResult {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        cmdnew: { type: 'string', short: 'c' },
        cmddel: { type: 'string', short: 'r' },
        timeout: { type: 'string', short: 't' },
        idle: { type: 'string', short: 'i' },
        port: { type: 'string', short: 'p' },
        json: { type: 'boolean', short: 'j' },
        simple: { type: 'boolean', short: 's' },
        debug: { type: 'boolean', short: 'd' },
        hexdump: { type: 'boolean', short: 'x' },
        udpthreads: { type: 'string' },
        udpaffinity: { type: 'string' },
        tunthreads: { type: 'string' },
        tunaffinity: { type: 'string' },
        logging: { type: 'string' },
        'idle-other': { type: 'string' },
        'no-return': { type: 'boolean' },
        offload: { type: 'string' },
        'hook-timeout': { type: 'string' },
        drain: { type: 'string' },
        'log-format': { type: 'string' },
        'gwlb-cidr': { type: 'string', multiple: true },
        'max-endpoints': { type: 'string' },
        'max-flows': { type: 'string' },
        rcvbuf: { type: 'string' },
        sndbuf: { type: 'string' },
        'no-sysctl': { type: 'boolean' },
        endpoints: { type: 'string' },
        'endpoints-only': { type: 'boolean' },
        'netns-per-endpoint': { type: 'boolean' },
        'no-adopt': { type: 'boolean' },
        'snapshot-interval': { type: 'string' },
        'state-dir': { type: 'string' },
      },
    }));
  } catch (e) {
    // parseArgs' messages name the flag ("Unknown option '--foo'", "Option '-t' argument missing").
    throw new UsageError((e as Error).message.split('\n')[0].replace(/\. To specify.*$/, ''));
  }
  const s = (k: string): string | undefined => values[k] as string | undefined;
  const log = defaultLogConfig();
  if (values.debug === true) parseLogging('all=debug', log);
  if (s('logging') !== undefined) {
    try {
      parseLogging(s('logging') as string, log);
    } catch (e) {
      throw new UsageError(`--logging: ${(e as Error).message}`);
    }
  }
  const fmt = s('log-format');
  if (fmt !== undefined && fmt !== 'text' && fmt !== 'json') throw new UsageError(`--log-format: '${fmt}' is not text or json`);
  if (fmt !== undefined) log.format = fmt;

  const tcpIdle = int('-i/--idle', s('idle'), 1, 86_400 * 7) ?? 350;
  const otherIdle = int('--idle-other', s('idle-other'), 1, 86_400 * 7) ?? (s('idle') !== undefined ? tcpIdle : 120);
  const udpthreads = int('--udpthreads', s('udpthreads'), 1, TUN_MAX_QUEUES);
  const tunthreads = int('--tunthreads', s('tunthreads'), 1, TUN_MAX_QUEUES);
  const udpaff = s('udpaffinity') === undefined ? undefined : parseCpuList('--udpaffinity', s('udpaffinity') as string);
  const tunaff = s('tunaffinity') === undefined ? undefined : parseCpuList('--tunaffinity', s('tunaffinity') as string);
  const aff = udpaff ?? tunaff;
  if (aff !== undefined && aff.length > TUN_MAX_QUEUES) {
    const flag = udpaff !== undefined ? '--udpaffinity' : '--tunaffinity';
    throw new UsageError(`${flag}: ${aff.length} CPUs means ${aff.length} workers, over ${TUN_MAX_QUEUES} (a TUN device has at most ${TUN_MAX_QUEUES} queues)`);
  }
  const notes: string[] = [];
  let workers = aff !== undefined ? aff.length : Math.max(udpthreads ?? 0, tunthreads ?? 0) || (cores <= 2 ? 1 : cores);
  if (workers > TUN_MAX_QUEUES) {
    // Only the CPU-count default gets here: explicit values were checked above.
    notes.push(`${workers} CPUs: using ${TUN_MAX_QUEUES} workers, the most a TUN device has queues for (--udpthreads to choose)`);
    workers = TUN_MAX_QUEUES;
  }
  const allow: number[] = [];
  for (const c of (values['gwlb-cidr'] as string[] | undefined) ?? []) allow.push(...parseCidr('--gwlb-cidr', c));
  const port = int('-p/--port', s('port'), 1, 65535) ?? null;
  const endpointsFile = s('endpoints') ?? null;
  if (values['endpoints-only'] === true && endpointsFile === null) throw new UsageError('--endpoints-only: needs --endpoints FILE');
  let endpoints: DaemonOptions['endpoints'] = [];
  if (endpointsFile !== null) {
    try {
      endpoints = loadEndpointsFile(endpointsFile);
    } catch (e) {
      if (e instanceof EndpointsFileError) throw new UsageError(`--endpoints: ${e.message}`);
      throw e;
    }
  }
  const maxEndpoints = int('--max-endpoints', s('max-endpoints'), 1, 4096) ?? 128;
  if (endpoints.length > maxEndpoints) throw new UsageError(`--endpoints: ${endpoints.length} endpoints listed, over --max-endpoints ${maxEndpoints}`);
  const snapshotIntervalS = int('--snapshot-interval', s('snapshot-interval'), 0, 3600) ?? 5;
  const daemon: DaemonOptions = {
    createHook: s('cmdnew') === undefined ? null : checkHooks ? executable('-c/--cmdnew', s('cmdnew') as string) : (s('cmdnew') as string),
    destroyHook: s('cmddel') === undefined ? null : checkHooks ? executable('-r/--cmddel', s('cmddel') as string) : (s('cmddel') as string),
    endpointTimeoutS: int('-t/--timeout', s('timeout'), 0, 86_400 * 365) ?? 0,
    tcpIdleS: tcpIdle,
    otherIdleS: otherIdle,
    hookTimeoutS: int('--hook-timeout', s('hook-timeout'), 1, 3600) ?? 30,
    workers,
    cpus: Array.from({ length: workers }, (_, i) => (aff === undefined ? null : [aff[i]])),
    udpPort: GENEVE_PORT,
    noReturn: values['no-return'] === true,
    offload: onOff('--offload', s('offload'), false),
    maxEndpoints,
    maxFlows: int('--max-flows', s('max-flows'), 16, MAX_FLOWS_LIMIT) ?? 1_000_000,
    allow,
    // Packets of a new endpoint wait for its CREATE hook: at most 1,024 of them, each at most
    // 2 s plus the half second that creating the interfaces and delivering takes, so that a
    // hook of 2 s loses nothing.
    holdPackets: 1024,
    holdMs: 2500,
    rcvbuf: int('--rcvbuf', s('rcvbuf'), 0, 1 << 30) ?? 8 * 1024 * 1024,
    sndbuf: int('--sndbuf', s('sndbuf'), 0, 1 << 30) ?? 4 * 1024 * 1024,
    hexDump: values.hexdump === true,
    manageSysctls: values['no-sysctl'] !== true,
    endpointsFile,
    endpoints,
    endpointsOnly: values['endpoints-only'] === true,
    netnsPerEndpoint: values['netns-per-endpoint'] === true,
    // Without a state file nothing could be adopted: --snapshot-interval 0 is --no-adopt.
    adopt: values['no-adopt'] !== true && snapshotIntervalS > 0,
    snapshotIntervalS,
    stateDir: stateDir(s('state-dir')),
  };
  return {
    help: values.help === true,
    daemon,
    healthPort: port,
    healthStyle: values.simple === true ? 'simple' : values.json === true ? 'json' : 'html',
    drainS: int('--drain', s('drain'), 0, 3600) ?? 0,
    log,
    notes,
  };
}

/** CAP_NET_ADMIN (12) and CAP_NET_RAW (13) from /proc/self/status; null when unreadable. */
function missingCapabilities(): string[] | null {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m === null) return null;
    const caps = BigInt('0x' + m[1]);
    const missing: string[] = [];
    if ((caps & (1n << 12n)) === 0n) missing.push('CAP_NET_ADMIN');
    if ((caps & (1n << 13n)) === 0n) missing.push('CAP_NET_RAW');
    return missing;
  } catch {
    return null;
  }
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'doctor') {
    // src/ops/doctor/main.ts: the same flags as the daemon, usage errors as strings.
    const service = (a: string[]) => {
      try {
        const c = parseCli(a, os.availableParallelism(), false);
        return { daemon: c.daemon, healthPort: c.healthPort };
      } catch (e) {
        if (e instanceof UsageError) return e.message;
        throw e;
      }
    };
    process.exit(await doctorMain(argv.slice(1), service));
  }
  if (argv[0] === 'handover') process.exit(await handOverMain(argv.slice(1))); // src/ops/handover-cmd.ts
  try {
    installClockStepFromEnv(); // tests only (GWLBTUN_FAILPOINT_CLOCK_STEP)
  } catch (e) {
    process.stderr.write(`gwlbtun: ${(e as Error).message}\n`);
    process.exit(2);
  }
  let cli: CliResult;
  try {
    cli = parseCli(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`gwlbtun: ${e.message} (see gwlbtun -h)\n`);
      process.exit(2);
    }
    throw e;
  }
  if (cli.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const log = new Logger(cli.log);
  for (const n of cli.notes) log.important('core', n);
  // The PID file and what came of each SIGUSR2, for `gwlbtun handover` (none without a runtime dir).
  const status = new HandOverStatus(log);
  // Started by a hand-over (SIGUSR2 to the running gwlbtun: src/control/handover.ts)?
  const handIn = HandOverTarget.fromEnv(log);
  const fail = (msg: string): never => {
    if (handIn !== null && handIn.pending) handIn.fail(msg); // the running gwlbtun carries on
    log.critical('core', msg);
    process.exit(1);
  };
  try {
    native(); // the C addon for this CPU (src/io/addon.ts): one clear line when there is none
  } catch (e) {
    fail((e as Error).message);
  }
  // PID 1 of a container without an init: hooks' orphans are re-parented to us (src/control/reaper.ts).
  if (process.pid === 1) startOrphanReaper(native(), log);
  const missing = missingCapabilities();
  if (missing !== null && missing.length > 0) fail(`missing capabilities: ${missing.join(', ')} (run as root or grant them)`);
  if (cli.daemon.allow.length === 0) {
    log.important('core', 'no --gwlb-cidr given: accepting Geneve from any source address, as the original did');
  }
  let d: Daemon;
  try {
    d = new Daemon(cli.daemon, log); // allocates the flow table and the counters
  } catch (e) {
    return fail(`cannot allocate the shared memory (flow table of ${cli.daemon.maxFlows} flows: ${Math.ceil(flowTableBytes(cli.daemon.maxFlows) / 1e6)} MB): ${(e as Error).message}`);
  }
  // Every exit of a started daemon: after a hand-over systemd learns the new main PID first. An
  // exit that is no hand-over leaves nothing to adopt (a no-op after a complete shutdown): an exit
  // at once (a second signal, the shutdown's time limit) is no crash (Daemon.forgetCrashState).
  let handedOver = false;
  const exit = (code: number): never => {
    if (!handedOver) d.forgetCrashState();
    handOut.beforeExit();
    status.removePid();
    process.exit(code);
  };
  // The stop sequence (src/control/stop.ts): drain (--drain), shutdown, and their limits.
  const stop = new StopSequence(
    { drain: () => d.drain(), shutdown: () => d.shutdown() },
    { drainS: cli.drainS, hookTimeoutS: cli.daemon.hookTimeoutS, exit: (code) => exit(code) },
    log,
  );
  // While taking over from a running gwlbtun, a stop is this process's alone: it exits without
  // DESTROY (the endpoints are still the running one's), which then carries on.
  const onSignal = (sig: NodeJS.Signals): void => (handIn !== null && handIn.pending ? handIn.fail(sig) : stop.signal(sig));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // SIGUSR2: hand over to a new gwlbtun (src/control/handover.ts). Caught from here on (its default
  // action ends the process), acted on once started.
  let health: HealthServer | null = null;
  const startHealth = async (): Promise<void> => {
    if (cli.healthPort !== null) health = await startHealthServer(d, cli.healthPort, cli.healthStyle);
  };
  const handOut = new HandOverSource(d, log, {
    closeHealth: () => {
      health?.server.close();
      health?.server.closeAllConnections();
      health = null;
    },
    reopenHealth: startHealth,
    shutdown: () => stop.signal('hand-over fallback'),
    exit: (code) => {
      handedOver = true; // the new process holds the devices now
      return exit(code);
    },
    record: (phase, newPid, reason) => status.record(phase, newPid, reason),
  });
  process.on('SIGUSR2', () => {
    status.signalled();
    if (stop.started && stop.phase === 'running') handOut.signal();
    else {
      const why = stop.started ? 'stopping' : 'still starting';
      log.important('core', `SIGUSR2 ignored: ${why}`);
      status.record('refused', null, why);
    }
  });
  // SIGHUP re-reads the endpoints file (one reload at a time; one asked for meanwhile follows).
  // Without one it is logged and ignored: `systemctl reload` must never stop the daemon.
  if (cli.daemon.endpointsFile === null) process.on('SIGHUP', () => log.important('core', 'SIGHUP: nothing to reload (no --endpoints FILE)'));
  else {
    let reloading: Promise<unknown> | null = null;
    let again = false;
    const reload = (): void => {
      if (reloading !== null) {
        again = true;
        return;
      }
      reloading = d.reloadEndpoints().finally(() => {
        reloading = null;
        if (again) {
          again = false;
          reload();
        }
      });
    };
    process.on('SIGHUP', reload);
  }
  // A signal during start-up is a shutdown like any other: onSignal runs it and exits 0; what
  // start() then reports (workers stopped before they were up) is not a start-up failure.
  // A hand-over: the running gwlbtun's state, or null (none, or a fallback: it has shut down and
  // this process starts as on a restart). Whatever fails from here on ends this process alone.
  let adopted: Adopted | null = null;
  let stoppedAtMs = 0;
  let from = 0;
  if (handIn !== null) {
    try {
      const r = await handIn.accept(cli.daemon);
      if (r !== null) {
        adopted = r.adopted;
        stoppedAtMs = r.state.stoppedAtMs;
        from = r.state.pid;
      }
    } catch (e) {
      handIn.fail((e as Error).message);
    }
  }
  try {
    await d.start(adopted);
  } catch (e) {
    if (stop.phase !== 'running') return;
    if (adopted === null) await d.shutdown().catch(() => undefined);
    fail((e as Error).message);
  }
  const upMs = monoMs();
  if (stop.phase !== 'running') return;
  if (cli.healthPort !== null) {
    try {
      // After a hand-over the old process has just closed the port: wait for it a little.
      for (let i = 0; ; i++) {
        try {
          await startHealth();
          break;
        } catch (e) {
          if (adopted === null || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || i >= 100) throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    } catch (e) {
      if (adopted === null) await d.shutdown().catch(() => undefined);
      fail(`health check port ${cli.healthPort}: ${(e as Error).message}`);
    }
  }
  // The main thread's wake-ups stop preempting the workers (src/io/sched.ts).
  const schedNote = scheduleMain(native());
  if (schedNote !== null) log.important('core', schedNote);
  stop.started = true; // from now on a signal drains first (with --drain)
  status.writePid();
  log.important('core', `gwlbtun started: ${cli.daemon.workers} worker(s), UDP ${cli.daemon.udpPort}` + (cli.healthPort !== null ? `, health on TCP ${cli.healthPort}` : '') + (cli.drainS > 0 ? `, drain ${cli.drainS} s` : ''));
  if (adopted !== null && handIn !== null) {
    log.important('core', `hand-over: PID ${process.pid} took over from PID ${from}: ${adopted.endpoints.length} endpoint(s), ${d.restoredFlows} of ${adopted.flowCount} flow(s), no hook run; traffic paused ${Math.round(upMs - stoppedAtMs)} ms`);
    handIn.done(); // systemd's main process from now on; the old one exits
  } else notifySystemd(log, ['READY=1']);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`gwlbtun: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
