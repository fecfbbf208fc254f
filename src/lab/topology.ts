// The lab's four network namespaces and their links (docs/lab.md has the picture):
//
//   client  eth0 ---- client  gwlb  appliance ---- eth0  appliance (gwlbtun)
//                             gwlb  server    ---- eth0  server
//                                                  eth1  server ---- eth1 appliance (egress arm)
//
// Every link is created directly inside its two namespaces, so nothing ever exists in the
// caller's namespace; deleting the namespaces removes everything. Synchronous (spawnSync of ip),
// like src/sim/topology.ts.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export const LAB = {
  client4: '192.0.2.10',
  client6: '2001:db8:1::10',
  gwlbClient4: '192.0.2.1',
  gwlbClient6: '2001:db8:1::1',
  server4: '198.51.100.10',
  server6: '2001:db8:2::10',
  gwlbServer4: '198.51.100.1',
  gwlbServer6: '2001:db8:2::1',
  /** Outer addresses, GWLB <-> appliance. */
  gwlbOuter: '198.18.0.1',
  applianceOuter: '198.18.0.2',
  /** The appliance's second arm (two-arm NAT egress) and the server's address on it. */
  egress4: '203.0.113.1',
  egress6: '2001:db8:3::1',
  serverEgress4: '203.0.113.10',
  serverEgress6: '2001:db8:3::10',
  /** The TUN device of the lab GWLB. */
  tun: 'gwlb0',
  /** Routing table in the gwlb namespace: traffic from the networks goes into the TUN device. */
  table: 100,
  egressIf: 'eth1',
} as const;

export interface LabTopology {
  id: string;
  client: string;
  server: string;
  gwlb: string;
  appliance: string;
}

export type LabRole = 'client' | 'server' | 'gwlb' | 'appliance';
export const LAB_ROLES: LabRole[] = ['client', 'server', 'gwlb', 'appliance'];

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000 });
  if (r.error) throw new Error(`ip ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${(r.stderr || r.stdout || '').trim()}`);
}

/** Write sysctls inside a namespace (keys as paths under /proc/sys). */
export function nsSysctl(ns: string, settings: Record<string, string>): void {
  const script = Object.entries(settings).map(([k, v]) => `echo ${v} > /proc/sys/${k}`).join(' && ');
  const r = spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', script], { encoding: 'utf8', timeout: 20000 });
  if (r.status !== 0) throw new Error(`sysctl in ${ns} failed: ${(r.stderr ?? '').trim()}`);
}

/** Build the namespaces, links, addresses and routes (all but the routes into the TUN device,
 * which needs the GWLB process: routeIntoTun). On failure removes what it made, then throws. */
export function createLabTopology(): LabTopology {
  const id = 'lab' + process.pid.toString(36) + randomBytes(2).toString('hex');
  const t: LabTopology = { id, client: `${id}-client`, server: `${id}-server`, gwlb: `${id}-gwlb`, appliance: `${id}-appl` };
  try {
    for (const ns of LAB_ROLES.map((r) => t[r])) {
      ip(['netns', 'add', ns]);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const veth = (a: string, aIf: string, b: string, bIf: string, mtu: number): void => {
      ip(['link', 'add', aIf, 'netns', a, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', bIf, 'netns', b, 'mtu', String(mtu)]);
      ip(['-n', a, 'link', 'set', aIf, 'up']);
      ip(['-n', b, 'link', 'set', bIf, 'up']);
    };
    const addr = (ns: string, dev: string, a4: string, a6?: string): void => {
      ip(['-n', ns, 'addr', 'add', a4, 'dev', dev]);
      if (a6 !== undefined) ip(['-n', ns, 'addr', 'add', a6, 'dev', dev, 'nodad']);
    };
    // Forwarding first: interfaces made afterwards inherit it.
    nsSysctl(t.gwlb, {
      'net/ipv4/ip_forward': '1',
      'net/ipv6/conf/all/forwarding': '1',
      'net/ipv4/conf/all/rp_filter': '0',
      'net/ipv4/conf/default/rp_filter': '0',
    });
    veth(t.client, 'eth0', t.gwlb, 'client', 1500);
    veth(t.server, 'eth0', t.gwlb, 'server', 1500);
    veth(t.gwlb, 'appliance', t.appliance, 'eth0', 9001);
    veth(t.appliance, LAB.egressIf, t.server, 'eth1', 1500);
    addr(t.client, 'eth0', `${LAB.client4}/24`, `${LAB.client6}/64`);
    addr(t.gwlb, 'client', `${LAB.gwlbClient4}/24`, `${LAB.gwlbClient6}/64`);
    addr(t.server, 'eth0', `${LAB.server4}/24`, `${LAB.server6}/64`);
    addr(t.gwlb, 'server', `${LAB.gwlbServer4}/24`, `${LAB.gwlbServer6}/64`);
    addr(t.gwlb, 'appliance', `${LAB.gwlbOuter}/24`);
    addr(t.appliance, 'eth0', `${LAB.applianceOuter}/24`);
    addr(t.appliance, LAB.egressIf, `${LAB.egress4}/24`, `${LAB.egress6}/64`);
    addr(t.server, 'eth1', `${LAB.serverEgress4}/24`, `${LAB.serverEgress6}/64`);
    ip(['-n', t.client, 'route', 'add', 'default', 'via', LAB.gwlbClient4]);
    ip(['-n', t.client, '-6', 'route', 'add', 'default', 'via', LAB.gwlbClient6]);
    ip(['-n', t.server, 'route', 'add', 'default', 'via', LAB.gwlbServer4]);
    ip(['-n', t.server, '-6', 'route', 'add', 'default', 'via', LAB.gwlbServer6]);
    // In the gwlb namespace, what arrives from either network is looked up in LAB.table (into the
    // TUN device); what the GWLB process writes into the TUN device uses the main table (the two
    // networks, directly connected).
    for (const fam of ['-4', '-6']) {
      for (const dev of ['client', 'server']) ip(['-n', t.gwlb, fam, 'rule', 'add', 'pref', '100', 'iif', dev, 'lookup', String(LAB.table)]);
    }
  } catch (e) {
    destroyLabTopology(t);
    throw e;
  }
  return t;
}

/** Once the GWLB process has made its TUN device: the routes into it. */
export function routeIntoTun(t: LabTopology): void {
  for (const fam of ['-4', '-6']) ip(['-n', t.gwlb, fam, 'route', 'add', 'default', 'dev', LAB.tun, 'table', String(LAB.table)]);
}

/** Idempotent, never throws: removes the four namespaces (their links go with them). */
export function destroyLabTopology(t: LabTopology): void {
  for (const ns of LAB_ROLES.map((r) => t[r])) {
    for (let i = 0; i < 2; i++) {
      const r = spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 20000 });
      if (r.status === 0 || !labNsExists(ns)) break;
    }
  }
}

export function labNsExists(ns: string): boolean {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return typeof r.stdout === 'string' && r.stdout.split('\n').some((l) => l.split(' ')[0] === ns);
}
