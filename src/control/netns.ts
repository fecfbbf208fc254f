// Per-endpoint network namespaces (`netns=NAME` in the endpoints file, or --netns-per-endpoint):
// each consumer VPC gets its own routing table, firewall and conntrack, so two endpoints whose
// customers use identical inner 5-tuples need no zones or marks.
//
// How an endpoint enters its namespace (src/control/endpoints.ts, create()): its TUN queues are
// opened in gwlbtun's own namespace as for any endpoint (so every worker holds one queue of each
// device), MTU and queue length set there, then `ip link set DEV netns NS` moves gwi-/gwo-. The
// queues stay attached: a TUN device's file descriptors belong to the device, not to a namespace,
// and the kernel keeps them across the move (test/e2e/endpoints-netns.test.ts carries traffic
// through moved devices). A move takes a device down and gives it the namespace's default
// settings, so the sysctls (NETNS_SYSCTLS: rp_filter 0, no IPv6 link-local address, no router
// advertisements, forwarding on) are written inside the namespace, then the devices go up there.
// The sysctl keeper (src/control/sysctl.ts) reads gwlbtun's own namespace only: inside an
// endpoint's namespace the settings are written once, not kept (udev's sysctl.d pass runs in the
// initial namespace only, which is what the keeper guards against).
//
// The namespace is created when missing (and then its loopback brought up), and removed after
// DESTROY only when gwlbtun created it; one that existed before is left as it was found. Hooks run
// inside it (`ip netns exec NS HOOK ...`, which execs the hook: same PID, same process group).
// Everything here runs `ip`/`sysctl` asynchronously on the main thread, per endpoint event,
// never per packet.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';

const RUN_TIMEOUT_MS = 10_000;

/** Run a command; rejects with its stderr (or the spawn error) when it fails. */
export function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: RUN_TIMEOUT_MS, encoding: 'utf8' }, (err, _out, stderr) => {
      if (err === null) resolve();
      else reject(new Error(`${file} ${args.join(' ')}: ${(stderr || err.message).trim()}`));
    });
  });
}

/** `ip netns add` makes /run/netns/NAME; `ip netns list` reads that directory too. */
export function netnsExists(name: string): boolean {
  return fs.existsSync(`/run/netns/${name}`);
}

/** The namespace exists afterwards; true when it was created here. */
export async function ensureNetns(name: string): Promise<boolean> {
  if (netnsExists(name)) return false;
  await run('ip', ['netns', 'add', name]);
  await run('ip', ['-n', name, 'link', 'set', 'dev', 'lo', 'up']);
  return true;
}

export async function removeNetns(name: string): Promise<void> {
  await run('ip', ['netns', 'del', name]);
}

/** What gwlbtun writes inside an endpoint's namespace (sysctl keys; interface names of gwlbtun's
 * have no dots or slashes). In a namespace it created, also conf/all/rp_filter 0: a new namespace
 * inherits the initial namespace's IPv4 conf/all values (net.core.devconf_inherit_init_net 0, the
 * default), often 2 from sysctl.d, and the kernel applies the larger of it and the interface's.
 * A namespace that existed before is the operator's: its conf/all is left alone. */
export function netnsSysctls(ifnames: readonly string[], created: boolean): string[] {
  const out = ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'];
  if (created) out.push('net.ipv4.conf.all.rp_filter=0');
  for (const i of ifnames) {
    out.push(`net.ipv4.conf.${i}.rp_filter=0`, `net.ipv6.conf.${i}.addr_gen_mode=1`, `net.ipv6.conf.${i}.accept_ra=0`);
  }
  return out;
}

/** Move the interfaces (MTU and queue length already set) into the namespace, write its
 * sysctls there, and bring them up there. */
export async function moveIntoNetns(ns: string, ifnames: readonly string[], created: boolean): Promise<void> {
  // Three commands whatever the number of interfaces: this time counts against the packets held
  // for a new endpoint (at most 2.5 s, CREATE hook included).
  await runBatch([], ifnames.map((i) => `link set dev ${i} netns ${ns}`));
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-e', '-w', ...netnsSysctls(ifnames, created)]);
  await runBatch(['-n', ns], ifnames.map((i) => `link set dev ${i} up`));
}

/** `ip [opts] -batch -` with these lines on its standard input. */
function runBatch(opts: string[], lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = [...opts, '-batch', '-'];
    const child = execFile('ip', args, { timeout: RUN_TIMEOUT_MS, encoding: 'utf8' }, (err, _out, stderr) => {
      if (err === null) resolve();
      else reject(new Error(`ip ${args.join(' ')} (${lines.join('; ')}): ${(stderr || err.message).trim()}`));
    });
    child.stdin?.end(lines.join('\n') + '\n');
  });
}

/** The argument vector that runs `file args` inside the namespace. */
export function inNetns(ns: string, file: string, args: string[]): { file: string; args: string[] } {
  return { file: 'ip', args: ['netns', 'exec', ns, file, ...args] };
}
