// `gwlbtun doctor`, the readers: what the decisions of src/ops/doctor/checks.ts are fed, read from
// /proc, /sys, the addon's ioctls (route and link features, as gwlbtun itself asks them:
// src/control/egress.ts), `nft -j list ruleset`, the hook files and IMDSv2. Each reader returns
// what it found or why it could not; none writes anything, creates a device or binds a port. The
// text parsers are pure and exported for the unit tests; the readers run end to end in
// test/e2e/doctor.test.ts, inside test namespaces.
//
// /proc/sys/net, /proc/net and /sys/class/net show the network namespace of the reading process:
// run doctor where gwlbtun runs (ip netns exec ..., or the host).
//
// IMDS (instance type, the ENI's ID and region): only at the address given (--imds, default
// http://169.254.169.254), with a short timeout, and never when --imds off. The source/destination
// check is not in the instance metadata; it is asked through the AWS CLI (--aws-cli) only when
// IMDS answered, i.e. on an instance.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { LinkOffloads, NativeAddon } from '../../io/native';
import type { ForwardChain, HookFile, ImdsInfo, PortHolder, TunDeviceInfo } from './checks';
import { SEND_DEVICE } from './checks';

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

export function readTunDevice(file = '/dev/net/tun'): TunDeviceInfo {
  let charDevice = false;
  try {
    charDevice = fs.statSync(file).isCharacterDevice();
    fs.closeSync(fs.openSync(file, 'r+'));
    return { openError: null, charDevice };
  } catch (e) {
    return { openError: errCode(e), charDevice };
  }
}

/** CapEff of this process; null when unreadable. */
export function readCapEff(status = '/proc/self/status'): bigint | null {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(status, 'utf8'));
    return m === null ? null : BigInt('0x' + m[1]);
  } catch {
    return null;
  }
}

/** Whether this process is in the initial user namespace (its uid_map maps every ID). */
export function readInitUserNs(): boolean {
  try {
    return fs.readFileSync('/proc/self/uid_map', 'latin1').trim().split(/\s+/).join(' ') === '0 0 4294967295';
  } catch {
    return true; // no user namespaces in this kernel
  }
}

/** A file under /proc/sys/net, trimmed; null when absent or unreadable. */
export function readSysctl(rel: string, root = '/proc/sys/net'): string | null {
  try {
    return fs.readFileSync(`${root}/${rel}`, 'latin1').trim();
  } catch {
    return null;
  }
}

export function readRpFilter(dev: string): number {
  return Number(readSysctl(`ipv4/conf/${dev}/rp_filter`) ?? '0');
}

/** Interface names under /sys/class/net. */
export function readLinks(): string[] {
  try {
    return fs.readdirSync('/sys/class/net');
  } catch {
    return [];
  }
}

export function readLinkAttr(dev: string, attr: string): number | null {
  try {
    return Number(fs.readFileSync(`/sys/class/net/${dev}/${attr}`, 'latin1').trim());
  } catch {
    return null;
  }
}

/** The device of the IPv4 default route in /proc/net/route (the main table), or null. */
export function parseDefaultRoute(text: string): string | null {
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[1] === '00000000' && f[7] === '00000000') return f[0];
  }
  return null;
}

/** The GWLB-facing device: --gwlb-dev; else the route to the first address of the first
 * --gwlb-cidr (the addon's RTM_GETROUTE, a lookup: nothing is sent); else the default route's. */
export function findGwlbDevice(given: string | null, allow: readonly number[], nat: () => Pick<NativeAddon, 'routeDev'>): { dev: string | null; why: string } {
  if (given !== null) return { dev: given, why: '--gwlb-dev' };
  if (allow.length >= 2) {
    const first = ((allow[0] & allow[1]) + 1) >>> 0;
    try {
      const dev = nat().routeDev(first);
      if (dev !== '') return { dev, why: 'route to --gwlb-cidr' };
      return { dev: null, why: 'no route to the --gwlb-cidr network' };
    } catch (e) {
      return { dev: null, why: `route lookup: ${(e as Error).message}` };
    }
  }
  let text = '';
  try {
    text = fs.readFileSync('/proc/net/route', 'latin1');
  } catch {
    // no IPv4 routes at all
  }
  const dev = parseDefaultRoute(text);
  return dev === null ? { dev: null, why: 'no --gwlb-cidr and no default route' } : { dev, why: 'default route' };
}

/** Socket inodes bound to local `port` in /proc/net/{udp,udp6,tcp,tcp6} text; listenOnly: TCP
 * sockets in state LISTEN (0A) only. */
export function parseProcNet(text: string, port: number, listenOnly = false): number[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const out: number[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    if (f[1].split(':')[1] === hex && (!listenOnly || f[3] === '0A')) out.push(Number(f[9]));
  }
  return out.filter((i) => i > 0);
}

/** A gwlbtun daemon's command line: bin/gwlbtun (or /usr/bin/gwlbtun) or dist/src/cli.js, not doctor. */
export function isGwlbtunCmd(argv: readonly string[]): boolean {
  if (argv.includes('doctor')) return false;
  return argv.slice(0, 3).some((a) => path.basename(a) === 'gwlbtun' || a.endsWith('dist/src/cli.js'));
}

/** Who holds `port` in this network namespace (UDP bound, or TCP listening): inodes from
 * /proc/net/<proto>{,6}, owners by the socket links in /proc/<pid>/fd (all processes, needs root
 * for others'). */
export function readPortHolders(proto: 'udp' | 'tcp', port: number): PortHolder[] {
  const inodes = new Set<number>();
  for (const f of [`/proc/net/${proto}`, `/proc/net/${proto}6`]) {
    try {
      for (const i of parseProcNet(fs.readFileSync(f, 'latin1'), port, proto === 'tcp')) inodes.add(i);
    } catch {
      // no IPv6
    }
  }
  if (inodes.size === 0) return [];
  const found = new Map<number, number>(); // inode -> pid
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m !== null && inodes.has(Number(m[1]))) found.set(Number(m[1]), Number(pid));
    }
  }
  const holders: PortHolder[] = [];
  for (const inode of inodes) {
    const pid = found.get(inode);
    if (pid === undefined) {
      holders.push({ pid: null, cmd: '', ours: false });
      continue;
    }
    let argv: string[] = [];
    try {
      argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter((a) => a !== '');
    } catch {
      // exited meanwhile
    }
    holders.push({ pid, cmd: argv.join(' ').slice(0, 120), ours: isGwlbtunCmd(argv) });
  }
  return holders;
}

interface NftItem {
  chain?: { family: string; table: string; name: string; hook?: string; policy?: string };
  rule?: { family: string; table: string; chain: string; expr?: unknown[] };
}

/** Whether an nft rule expression names the send device as input interface (iifname "gwlbtx0",
 * or a wildcard such as "gwlbtx*", or a set holding it). */
function namesSendDevice(expr: unknown[]): boolean {
  for (const e of expr) {
    const m = (e as { match?: { left?: { meta?: { key?: string } }; right?: unknown } }).match;
    if (m === undefined || m.left?.meta?.key !== 'iifname') continue;
    const rights = typeof m.right === 'string' ? [m.right] : ((m.right as { set?: unknown[] } | undefined)?.set ?? []).filter((r): r is string => typeof r === 'string');
    for (const r of rights) {
      if (r === SEND_DEVICE || (r.endsWith('*') && SEND_DEVICE.startsWith(r.slice(0, -1)))) return true;
    }
  }
  return false;
}

/** The base chains on the forward hook in `nft -j list ruleset` output (IPv4: ip and inet). */
export function parseNftForward(json: string): ForwardChain[] {
  const items = (JSON.parse(json) as { nftables?: NftItem[] }).nftables ?? [];
  const chains: ForwardChain[] = [];
  const keys: string[] = [];
  for (const it of items) {
    const c = it.chain;
    if (c === undefined || c.hook !== 'forward' || (c.family !== 'ip' && c.family !== 'inet')) continue;
    chains.push({ name: `${c.family} ${c.table} ${c.name}`, policy: c.policy ?? 'accept', namesSendDevice: false });
    keys.push(`${c.family} ${c.table} ${c.name}`);
  }
  for (const it of items) {
    const r = it.rule;
    if (r === undefined) continue;
    const i = keys.indexOf(`${r.family} ${r.table} ${r.chain}`);
    if (i >= 0 && namesSendDevice(r.expr ?? [])) chains[i].namesSendDevice = true;
  }
  return chains;
}

/** The forward chains from `nft` (also those iptables-nft made); null and why when nft is absent or fails. */
export function readForwardChains(nft = 'nft'): { chains: ForwardChain[] | null; why: string } {
  const r = spawnSync(nft, ['-j', 'list', 'ruleset'], { encoding: 'utf8', timeout: 5000 });
  if (r.error !== undefined) return { chains: null, why: `${nft}: ${errCode(r.error)}` };
  if (r.status !== 0) return { chains: null, why: `${nft} -j list ruleset: ${(r.stderr ?? '').trim().split('\n')[0]}` };
  try {
    return { chains: r.stdout.trim() === '' ? [] : parseNftForward(r.stdout), why: '' };
  } catch (e) {
    return { chains: null, why: `unreadable nft output (${(e as Error).message})` };
  }
}

export function readLinkOffloads(dev: string | null, nat: () => Pick<NativeAddon, 'linkOffloads'>): { link: LinkOffloads | null; why: string } {
  if (dev === null) return { link: null, why: 'GWLB-facing device unknown' };
  try {
    return { link: nat().linkOffloads(dev), why: '' };
  } catch (e) {
    return { link: null, why: `${dev}: ${(e as Error).message}` };
  }
}

export function readHookFile(flag: string, file: string): HookFile {
  const h: HookFile = { flag, path: file, error: null, isFile: false, executable: false, startsRunnable: false, worldWritable: false };
  try {
    const st = fs.statSync(file);
    h.isFile = st.isFile();
    const dir = fs.statSync(path.dirname(path.resolve(file)));
    h.worldWritable = (st.mode & 0o002) !== 0 || ((dir.mode & 0o002) !== 0 && (dir.mode & 0o1000) === 0);
  } catch (e) {
    h.error = errCode(e);
    return h;
  }
  if (!h.isFile) return h;
  try {
    fs.accessSync(file, fs.constants.X_OK);
    h.executable = true;
  } catch {
    return h;
  }
  try {
    const fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(4);
    const n = fs.readSync(fd, b, 0, 4, 0);
    fs.closeSync(fd);
    h.startsRunnable = (n >= 2 && b[0] === 0x23 && b[1] === 0x21) || (n === 4 && b.readUInt32BE(0) === 0x7f454c46);
  } catch (e) {
    h.error = errCode(e);
  }
  return h;
}

/** GET / on 127.0.0.1:port: the HTTP status, or why there was none. */
export function readHealthAnswer(port: number, timeoutMs = 2000): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 'no status');
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve(errCode(e)));
  });
}

function imdsRequest(base: string, method: 'GET' | 'PUT', p: string, headers: Record<string, string>, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(p, base), { method, headers, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 4096) body += c;
      });
      res.on('end', () => (res.statusCode === 200 ? resolve(body.trim()) : reject(new Error(`${method} ${p}: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** IMDSv2 at `base`: a session token (PUT), then the instance type, the primary ENI and the
 * region. null (why) when it does not answer within timeoutMs per request. */
export async function readImds(base: string, timeoutMs = 1000): Promise<{ imds: ImdsInfo | null; why: string }> {
  try {
    const token = await imdsRequest(base, 'PUT', '/latest/api/token', { 'X-aws-ec2-metadata-token-ttl-seconds': '60' }, timeoutMs);
    const get = (p: string): Promise<string> => imdsRequest(base, 'GET', `/latest/meta-data/${p}`, { 'X-aws-ec2-metadata-token': token }, timeoutMs);
    const instanceType = await get('instance-type');
    const mac = await get('mac');
    const interfaceId = await get(`network/interfaces/macs/${mac}/interface-id`);
    const region = await get('placement/region');
    return { imds: { instanceType, interfaceId, region }, why: '' };
  } catch (e) {
    return { imds: null, why: `${base}: ${(e as Error).message}` };
  }
}

/** The ENI's sourceDestCheck through the AWS CLI (`aws`, when installed: Amazon Linux has it),
 * which uses the instance role; null (why) when it is absent or not allowed. */
export function readSourceDestCheck(awsCli: string, imds: ImdsInfo): { sdc: boolean | null; why: string } {
  const r = spawnSync(awsCli, ['ec2', 'describe-network-interface-attribute', '--region', imds.region, '--network-interface-id', imds.interfaceId, '--attribute', 'sourceDestCheck', '--output', 'json'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined) return { sdc: null, why: `${awsCli}: ${errCode(r.error)}` };
  if (r.status !== 0) return { sdc: null, why: `${awsCli}: ${(r.stderr ?? '').trim().split('\n').pop() ?? `exit ${r.status}`}` };
  try {
    const v = (JSON.parse(r.stdout) as { SourceDestCheck?: { Value?: unknown } }).SourceDestCheck?.Value;
    return typeof v === 'boolean' ? { sdc: v, why: '' } : { sdc: null, why: `${awsCli}: no SourceDestCheck in its answer` };
  } catch {
    return { sdc: null, why: `${awsCli}: unreadable answer` };
  }
}
