// Network namespaces for the demo, the end-to-end tests and the benchmark: one namespace plays
// GWLB, the other the appliance, joined by a veth pair. Everything the emulator sends stays
// inside these two namespaces.
//
// Synchronous on purpose (spawnSync of `ip`): setup and teardown are a handful of commands,
// and a synchronous API cannot leave a half-made topology behind an unawaited promise.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface Topology {
  /** Unique suffix-bearing id; the namespace and veth names derive from it. */
  id: string;
  gwlbNs: string;
  applianceNs: string;
  /** 198.18.0.1 */
  gwlbIp: string;
  /** 198.18.0.2 */
  applianceIp: string;
  /** veth end in the GWLB namespace */
  gwlbIf: string;
  /** veth end in the appliance namespace */
  applianceIf: string;
}

export const TOPOLOGY_GWLB_IP = '198.18.0.1';
export const TOPOLOGY_APPLIANCE_IP = '198.18.0.2';
export const TOPOLOGY_PREFIX_LEN = 24;
/** Jumbo, as on AWS: the appliance path carries inner packets up to 8500 bytes plus 68 bytes of
 * outer headers. */
export const TOPOLOGY_MTU = 9001;

const IP = 'ip';

function run(args: string[]): void {
  const r = spawnSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000 });
  if (r.error) throw new Error(`${IP} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${IP} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || r.stdout || '').trim()}`);
  }
}

function runQuiet(args: string[]): boolean {
  const r = spawnSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'ignore'], timeout: 20000 });
  return !r.error && r.status === 0;
}

function nsExists(ns: string): boolean {
  const r = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  if (r.status !== 0 || typeof r.stdout !== 'string') return false;
  // Lines look like "name" or "name (id: 3)".
  return r.stdout.split('\n').some((l) => l.split(' ')[0] === ns);
}

/** Short id: prefix + pid (base 36) + 2 random bytes (hex). The veth names are the id plus one
 * letter and must fit IFNAMSIZ-1 = 15 characters, so the prefix is cut to make room. */
function makeId(prefix: string): string {
  const tail = process.pid.toString(36) + randomBytes(2).toString('hex');
  const room = Math.max(0, 14 - tail.length);
  const p = prefix.replace(/[^A-Za-z0-9]/g, '').slice(0, room);
  return p + tail;
}

/** Create two namespaces with unique names, lo up in both, a veth pair between them with MTU
 * 9001, 198.18.0.1/24 on the GWLB side and 198.18.0.2/24 on the appliance side, both up.
 * Throws with the failing command's stderr; on partial failure it removes what it made. */
export function createTopology(prefix = 'gwt'): Topology {
  const id = makeId(prefix);
  const t: Topology = {
    id,
    gwlbNs: `${id}-gwlb`,
    applianceNs: `${id}-appl`,
    gwlbIp: TOPOLOGY_GWLB_IP,
    applianceIp: TOPOLOGY_APPLIANCE_IP,
    gwlbIf: `${id}g`,
    applianceIf: `${id}a`,
  };
  try {
    run(['netns', 'add', t.gwlbNs]);
    run(['netns', 'add', t.applianceNs]);
    run(['-n', t.gwlbNs, 'link', 'set', 'lo', 'up']);
    run(['-n', t.applianceNs, 'link', 'set', 'lo', 'up']);
    // Create both ends directly inside their namespaces: the pair never exists in the caller's
    // namespace, so nothing leaks there even if we die half-way.
    run(['link', 'add', t.gwlbIf, 'netns', t.gwlbNs, 'mtu', String(TOPOLOGY_MTU), 'type', 'veth',
      'peer', 'name', t.applianceIf, 'netns', t.applianceNs, 'mtu', String(TOPOLOGY_MTU)]);
    run(['-n', t.gwlbNs, 'addr', 'add', `${t.gwlbIp}/${TOPOLOGY_PREFIX_LEN}`, 'dev', t.gwlbIf]);
    run(['-n', t.applianceNs, 'addr', 'add', `${t.applianceIp}/${TOPOLOGY_PREFIX_LEN}`, 'dev', t.applianceIf]);
    run(['-n', t.gwlbNs, 'link', 'set', t.gwlbIf, 'up']);
    run(['-n', t.applianceNs, 'link', 'set', t.applianceIf, 'up']);
  } catch (e) {
    destroyTopology(t);
    throw e;
  }
  return t;
}

/** Idempotent; removes both namespaces (the veth pair goes with them). Never throws. */
export function destroyTopology(t: Topology): void {
  for (const ns of [t.gwlbNs, t.applianceNs]) {
    try {
      if (!runQuiet(['netns', 'del', ns]) && nsExists(ns)) {
        // A process still inside can keep the mount busy for a moment; one retry.
        runQuiet(['netns', 'del', ns]);
      }
    } catch {
      // never throws
    }
  }
}

/** Arguments to spawn `cmd args...` inside namespace `ns`. */
export function nsSpawnArgs(ns: string, cmd: string, args: string[]): { file: string; args: string[] } {
  return { file: IP, args: ['netns', 'exec', ns, cmd, ...args] };
}

const registered = new Set<Topology>();
let hooked = false;

function cleanupAll(): void {
  for (const t of registered) destroyTopology(t);
  registered.clear();
}

/** Remove the topology when the process exits, or on SIGINT/SIGTERM (for the demo; tests use
 * try/finally or t.after). Installing a signal handler replaces Node's default exit-on-signal,
 * so the handler exits itself, with the conventional 128+signo status. */
export function destroyOnExit(t: Topology): void {
  registered.add(t);
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupAll);
  const onSignal = (code: number) => () => {
    cleanupAll();
    process.exit(code);
  };
  process.once('SIGINT', onSignal(130));
  process.once('SIGTERM', onSignal(143));
}

/** Stop tracking a topology registered with destroyOnExit (after destroying it yourself). */
export function forgetOnExit(t: Topology): void {
  registered.delete(t);
}
