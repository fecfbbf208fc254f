// `gwlbtun doctor`, the decisions (docs/operations.md, "Checking the host"): one pure function per
// check, fed by what src/ops/doctor/readers.ts read from /proc, /sys, the addon's ioctls, nft and
// IMDS, so that every rule is unit-tested table-style (test/unit/doctor.test.ts) and the readers
// end to end (test/e2e/doctor.test.ts). Nothing here touches the system.
//
// Each check gives one result: ok, warn (works, but fragile or slower: look at it), fail (gwlbtun
// does not start, or traffic is lost, silently or not) or skip (could not be checked here, and
// why). The exit status follows the worst (worstStatus, exitCode): 0 ok (skips included), 1 warn,
// 2 fail -- the convention of monitoring plugins (OK, WARNING, CRITICAL), so that doctor can run as
// one. A usage error exits 2 as well, with one line on stderr and nothing on stdout.
//
// Why these checks: appliance deployments mostly fail on the host, not in the program (the
// original's issues: no tunnels from user data, rp_filter), and those failures are silent: GWLB's
// health check still passes while every packet is dropped by the kernel.

import { tierSafety, type SendTier } from '../../control/egress';
import type { LinkOffloads } from '../../io/native';

export type Status = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  /** Short stable name (the JSON form's key, the first column of the text form). */
  id: string;
  status: Status;
  /** What was found. */
  reason: string;
  /** What to do about it ('' when there is nothing to do). */
  action: string;
}

const RANK: Record<Status, number> = { skip: 0, ok: 0, warn: 1, fail: 2 };

/** The worst status of the results (skip counts as ok). */
export function worstStatus(results: readonly CheckResult[]): Status {
  let worst: Status = 'ok';
  for (const r of results) if (RANK[r.status] > RANK[worst]) worst = r.status;
  return worst;
}

/** 0 ok, 1 warn, 2 fail. */
export function exitCode(results: readonly CheckResult[]): number {
  return RANK[worstStatus(results)];
}

const ok = (id: string, reason: string): CheckResult => ({ id, status: 'ok', reason, action: '' });
const res = (id: string, status: Status, reason: string, action: string): CheckResult => ({ id, status, reason, action });

/** GWLB's inner MTU (fixed) plus the outer headers it adds: IPv4 20, UDP 8, Geneve 8 + 32 of
 * options (docs/protocol.md). */
export const GWLB_INNER_MTU = 8500;
export const GENEVE_OVERHEAD = 68;
export const GWLB_MIN_MTU = GWLB_INNER_MTU + GENEVE_OVERHEAD;

/** gwlbtun's send device of --offload on (src/io/txtap.ts TX_TAP_NAME). */
export const SEND_DEVICE = 'gwlbtx0';

export interface TunDeviceInfo {
  /** Opening /dev/net/tun read-write: null when it worked, else the error code (ENOENT, EACCES...). */
  openError: string | null;
  /** A character device (false also when it does not exist). */
  charDevice: boolean;
}

export function checkTunDevice(t: TunDeviceInfo): CheckResult {
  const id = 'tun-device';
  if (t.openError === 'ENOENT') return res(id, 'fail', '/dev/net/tun does not exist: gwlbtun cannot create gwi-/gwo- interfaces', 'load the tun module (modprobe tun); in a container, pass the device in (--device /dev/net/tun)');
  if (!t.charDevice) return res(id, 'fail', '/dev/net/tun is not a character device', 'recreate it: mknod /dev/net/tun c 10 200');
  if (t.openError !== null) return res(id, 'fail', `/dev/net/tun cannot be opened (${t.openError})`, 'run as root or as the service does (systemd: DeviceAllow=/dev/net/tun rw)');
  return ok(id, '/dev/net/tun opens read-write');
}

export const CAP_NET_ADMIN = 12n;
export const CAP_NET_RAW = 13n;

/** capEff: the effective capability mask (/proc/self/status CapEff), null when unreadable. */
export function checkCapabilities(capEff: bigint | null): CheckResult {
  const id = 'capabilities';
  if (capEff === null) return res(id, 'skip', 'cannot read the effective capabilities (/proc/self/status)', '');
  const missing: string[] = [];
  if ((capEff & (1n << CAP_NET_ADMIN)) === 0n) missing.push('CAP_NET_ADMIN');
  if ((capEff & (1n << CAP_NET_RAW)) === 0n) missing.push('CAP_NET_RAW');
  if (missing.length > 0) return res(id, 'fail', `missing ${missing.join(', ')}: gwlbtun refuses to start without them`, 'run as root, or with AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW (examples/systemd/gwlbtun.service); run doctor the same way');
  return ok(id, 'CAP_NET_ADMIN and CAP_NET_RAW');
}

/** Values of net.ipv4.ip_forward and net.ipv6.conf.all.forwarding; null: absent (IPv6 off). */
export function checkForwarding(ipv4: string | null, ipv6: string | null): CheckResult {
  const id = 'forwarding';
  if (ipv4 !== '1') return res(id, 'fail', `net.ipv4.ip_forward is ${ipv4 ?? 'absent'}: packets from gwi- are not routed (only hooks that move them without routing, such as passthrough.sh's tc mirred, work)`, 'sysctl -w net.ipv4.ip_forward=1, and make it permanent (examples/sysctl/99-gwlbtun.conf)');
  if (ipv6 !== null && ipv6 !== '1') return res(id, 'warn', `net.ipv6.conf.all.forwarding is ${ipv6}: inner IPv6 traffic is not routed`, 'sysctl -w net.ipv6.conf.all.forwarding=1 (examples/sysctl/99-gwlbtun.conf)');
  return ok(id, `net.ipv4.ip_forward=1, net.ipv6.conf.all.forwarding=${ipv6 ?? 'absent (IPv6 off)'}`);
}

export interface RpFilterInfo {
  /** conf/all/rp_filter and conf/default/rp_filter. */
  all: number;
  default: number;
  /** The GWLB-facing device's own value; null when the device is not known. */
  gwlb: { dev: string; value: number } | null;
  /** Every gwi-/gwo- interface there is now (gwlbtun running), and the send device when it exists. */
  tunnels: { dev: string; value: number }[];
  sendDevice: { dev: string; value: number } | null;
  /** Not --no-sysctl: gwlbtun writes 0 on its own interfaces when it creates them. */
  manageSysctls: boolean;
}

/** The kernel filters by the larger of conf/all and the interface's value. */
export function effectiveRpFilter(all: number, dev: number): number {
  return Math.max(all, dev);
}

export function checkRpFilter(r: RpFilterInfo): CheckResult {
  const id = 'rp-filter';
  const set0 = 'sysctl -w net.ipv4.conf.all.rp_filter=0 and install examples/sysctl/99-gwlbtun.conf';
  const bad = [...r.tunnels, ...(r.sendDevice === null ? [] : [r.sendDevice])].filter((d) => effectiveRpFilter(r.all, d.value) !== 0);
  if (bad.length > 0) {
    return res(id, 'fail', `reverse-path filtering on ${bad.map((d) => `${d.dev} (${effectiveRpFilter(r.all, d.value)})`).join(', ')}: the kernel drops every packet there, silently (conf.all is ${r.all})`, `${set0}; gwlbtun keeps 0 on its interfaces unless --no-sysctl`);
  }
  if (r.all !== 0) return res(id, 'fail', `net.ipv4.conf.all.rp_filter is ${r.all}: the kernel uses the larger of it and each interface's 0, so every gwi- packet is dropped`, set0);
  if (r.default !== 0 && !r.manageSysctls) return res(id, 'warn', `net.ipv4.conf.default.rp_filter is ${r.default} and --no-sysctl: new gwi-/gwo- interfaces get it and drop all traffic`, 'install examples/sysctl/99-gwlbtun.conf (gwi-*, gwo-* rp_filter 0), or set 0 in your CREATE hook');
  if (r.gwlb !== null && effectiveRpFilter(r.all, r.gwlb.value) === 1) {
    return res(id, 'warn', `strict reverse-path filtering (1) on the GWLB-facing device ${r.gwlb.dev}: Geneve from GWLB is dropped as soon as the route back to a GWLB address leaves through another device (several ENIs, policy routing)`, `sysctl -w net.ipv4.conf.${r.gwlb.dev}.rp_filter=2 (loose) or 0`);
  }
  const seen = [r.gwlb === null ? null : `${r.gwlb.dev}=${r.gwlb.value}`, ...r.tunnels.map((d) => `${d.dev}=${d.value}`), r.sendDevice === null ? null : `${r.sendDevice.dev}=${r.sendDevice.value}`].filter((s) => s !== null);
  return ok(id, `all=0, default=${r.default}${seen.length > 0 ? ', ' + seen.join(', ') : ''}`);
}

/** dev: the GWLB-facing device and its MTU; null when it is not known (why: the reason). */
export function checkGwlbMtu(dev: { name: string; mtu: number } | null, why: string): CheckResult {
  const id = 'gwlb-mtu';
  if (dev === null) return res(id, 'warn', `cannot tell the GWLB-facing device (${why})`, 'give --gwlb-cidr (as to the service) or --gwlb-dev');
  if (dev.mtu < GWLB_MIN_MTU) return res(id, 'fail', `MTU ${dev.mtu} on ${dev.name}, under ${GWLB_INNER_MTU} + ${GENEVE_OVERHEAD} bytes of Geneve: GWLB's larger packets never arrive`, `ip link set ${dev.name} mtu 9001 (AWS's jumbo MTU)`);
  return ok(id, `MTU ${dev.mtu} on ${dev.name} (at least ${GWLB_MIN_MTU})`);
}

export interface PortHolder {
  /** The process holding the socket; null when no visible process has it (another PID
   * namespace, or doctor lacks the right to look into /proc/<pid>/fd). */
  pid: number | null;
  /** Its command line, for the report. */
  cmd: string;
  /** A gwlbtun daemon. */
  ours: boolean;
}

export function checkUdpPort(port: number, holders: readonly PortHolder[]): CheckResult {
  const id = 'udp-port';
  if (holders.length === 0) return ok(id, `UDP ${port} is free`);
  const others = holders.filter((h) => !h.ours && h.pid !== null);
  if (others.length > 0) return res(id, 'fail', `UDP ${port} is bound by ${others.map((h) => `PID ${h.pid} (${h.cmd})`).join(', ')}: gwlbtun cannot bind it`, 'stop that program, or move it to another port');
  const unknown = holders.filter((h) => h.pid === null).length;
  if (unknown > 0) return res(id, 'warn', `UDP ${port} has ${unknown} socket(s) of a process doctor cannot see`, 'run doctor as root, in the PID namespace of the service');
  const pids = [...new Set(holders.map((h) => h.pid))];
  return ok(id, `UDP ${port} is gwlbtun's (PID ${pids.join(', ')}: running)`);
}

/** -p: the health port gwlbtun binds (TCP, all addresses). Before gwlbtun runs it must be free
 * (else gwlbtun exits at start-up); while it runs, gwlbtun's, and answering 200 -- what GWLB's
 * target group asks. answer: the HTTP status of GET / on 127.0.0.1, or why there was none; null
 * when not asked (not gwlbtun's). */
export function checkHealthPort(port: number | null, holders: readonly PortHolder[], answer: number | string | null): CheckResult {
  const id = 'health-port';
  if (port === null) return ok(id, 'no -p: no health check here (GWLB\'s target group needs one somewhere)');
  if (holders.length === 0) return ok(id, `TCP ${port} is free`);
  const others = holders.filter((h) => !h.ours && h.pid !== null);
  if (others.length > 0) return res(id, 'fail', `TCP ${port} is bound by ${others.map((h) => `PID ${h.pid} (${h.cmd})`).join(', ')}: gwlbtun cannot serve its health check there`, 'stop that program, or choose another -p (and the target group\'s health check port)');
  if (holders.some((h) => h.pid === null)) return res(id, 'warn', `TCP ${port} is held by a process doctor cannot see`, 'run doctor as root, in the PID namespace of the service');
  if (typeof answer === 'number' && answer === 200) return ok(id, `gwlbtun answers 200 on TCP ${port}`);
  if (typeof answer === 'number') return res(id, 'warn', `gwlbtun answers ${answer} on TCP ${port}: GWLB takes the target out (draining, or a worker is down)`, 'look at its log and /status');
  return res(id, 'fail', `gwlbtun holds TCP ${port} but does not answer (${answer ?? 'not asked'}): GWLB takes the target out`, 'look at its log; restart it');
}

/** rmemMax: net.core.rmem_max; rcvbuf: the --rcvbuf asked for; force: whether gwlbtun (run like
 * doctor) may exceed rmem_max with SO_RCVBUFFORCE, which takes CAP_NET_ADMIN in the initial user
 * namespace (the kernel's capable(), not the namespace's: a rootless container's CAP_NET_ADMIN
 * does not do). gwlbtun then runs, but each worker's buffer is rmem_max. */
export function checkRcvbuf(rmemMax: number | null, rcvbuf: number, force: { ok: boolean; why: string }): CheckResult {
  const id = 'rcvbuf';
  if (rmemMax === null) return res(id, 'skip', 'cannot read net.core.rmem_max', '');
  if (rcvbuf === 0 || rmemMax >= rcvbuf) return ok(id, `net.core.rmem_max ${rmemMax} allows --rcvbuf ${rcvbuf}`);
  if (force.ok) return ok(id, `--rcvbuf ${rcvbuf} over net.core.rmem_max ${rmemMax}, taken with SO_RCVBUFFORCE (CAP_NET_ADMIN)`);
  return res(id, 'warn', `net.core.rmem_max ${rmemMax} is under --rcvbuf ${rcvbuf} and ${force.why}: each worker gets ${rmemMax} and bursts overflow (gwlbtun_udp_rcvbuf_errors_total)`, `sysctl -w net.core.rmem_max=${rcvbuf} on the host, or a smaller --rcvbuf`);
}

/** The return path of super-packets (src/control/workers.ts): the gwlbtx0 TAP (tunnel), the USO
 * TUN (uso), or the raw socket (raw: offloads off, -x, --no-return, or a kernel without either). */
export type Tier = SendTier | 'raw';

export interface TierInputs {
  offload: boolean;
  noReturn: boolean;
  hexDump: boolean;
  /** uname -r. */
  release: string;
  /** GWLBTUN_NO_UDP_TUNNEL_GSO=1, GWLBTUN_NO_USO=1 in the environment. */
  noTunnel: boolean;
  noUso: boolean;
  /** /sys/class/net/gwlbtx0/type when it exists (gwlbtun running): 1 a TAP, 65534 a TUN. */
  sendDeviceType: number | null;
}

/** The tier gwlbtun uses (when gwlbtx0 exists) or will use (from the kernel release: UDP tunnel
 * GSO on TAP from 6.17, USO on TUN from 6.2), and how that is known. */
export function expectedTier(t: TierInputs): { tier: Tier; how: string } {
  if (!t.offload || t.noReturn || t.hexDump) return { tier: 'raw', how: !t.offload ? '--offload off' : t.noReturn ? '--no-return' : '-x' };
  if (t.sendDeviceType === 1) return { tier: 'tunnel', how: `${SEND_DEVICE} is a TAP (running)` };
  if (t.sendDeviceType === 65534) return { tier: 'uso', how: `${SEND_DEVICE} is a TUN (running)` };
  const m = /^(\d+)\.(\d+)/.exec(t.release);
  const v = m === null ? 0 : Number(m[1]) * 1000 + Number(m[2]);
  if (v >= 6017 && !t.noTunnel) return { tier: 'tunnel', how: `kernel ${t.release} (6.17 or later)` };
  if (v >= 6002 && !t.noUso) return { tier: 'uso', how: `kernel ${t.release} (6.2 or later)` };
  return { tier: 'raw', how: `kernel ${t.release}` };
}

export interface ForwardChain {
  /** e.g. "ip filter FORWARD". */
  name: string;
  /** Its policy ('accept', 'drop'). */
  policy: string;
  /** A rule of the chain names the send device (iifname gwlbtx0, or a pattern matching it). */
  namesSendDevice: boolean;
}

/** chains: the base chains on the forward hook (nft), null when they cannot be listed (why). */
export function checkForwardPolicy(tier: { tier: Tier; how: string }, chains: readonly ForwardChain[] | null, why: string): CheckResult {
  const id = 'forward-policy';
  const usesDevice = tier.tier !== 'raw';
  if (chains === null) return res(id, usesDevice ? 'warn' : 'skip', `cannot list the FORWARD chains (${why})${usesDevice ? `; returns (${tier.tier} tier) cross FORWARD through ${SEND_DEVICE}` : ''}`, usesDevice ? `make sure FORWARD accepts iif ${SEND_DEVICE}` : '');
  const dropping = chains.filter((c) => c.policy === 'drop');
  if (!usesDevice) return ok(id, `returns leave through the raw socket (${tier.how}), not through FORWARD${dropping.length > 0 ? `; ${dropping.map((c) => c.name).join(', ')} drop by default: allow iif ${SEND_DEVICE} before --offload on` : ''}`);
  const blind = dropping.filter((c) => !c.namesSendDevice);
  if (blind.length > 0) return res(id, 'fail', `${blind.map((c) => c.name).join(', ')}: policy drop and no rule for ${SEND_DEVICE}, and returns (${tier.tier} tier, ${tier.how}) cross FORWARD there: every return is dropped`, `allow it: iptables -I FORWARD -i ${SEND_DEVICE} -j ACCEPT (or nft ... iifname "${SEND_DEVICE}" accept), or --offload off`);
  return ok(id, dropping.length > 0 ? `${dropping.map((c) => c.name).join(', ')} drop by default but name ${SEND_DEVICE}` : 'FORWARD accepts by default');
}

/** link: the GWLB-facing device's driver and features (null: unknown, why). */
export function checkEgressOffloads(tier: { tier: Tier; how: string }, dev: string | null, link: LinkOffloads | null, why: string): CheckResult {
  const id = 'egress-offloads';
  if (tier.tier === 'raw') return ok(id, `not used (${tier.how}): returns are complete datagrams from the raw socket`);
  if (dev === null || link === null) return res(id, 'warn', `cannot read the GWLB-facing device's features (${why})`, 'give --gwlb-cidr (as to the service) or --gwlb-dev');
  const unsafe = tierSafety(tier.tier, link);
  if (unsafe !== null) return res(id, 'warn', `${dev}: ${unsafe}: gwlbtun sends returns through the raw socket instead of ${SEND_DEVICE} (slower)`, `ethtool -K ${dev} tx off tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off tx-udp-segmentation off`);
  return ok(id, `${dev} (${link.driver || 'no driver name'}) finishes the ${tier.tier} tier's work`);
}

export interface HookFile {
  flag: string;
  path: string;
  /** stat error code, null when it exists. */
  error: string | null;
  isFile: boolean;
  executable: boolean;
  /** The first two bytes are "#!" (hooks are executed directly; ELF files are fine too). */
  startsRunnable: boolean;
  /** Writable by anyone (mode o+w) or its directory is. */
  worldWritable: boolean;
}

export function checkHooks(hooks: readonly HookFile[]): CheckResult {
  const id = 'hooks';
  if (hooks.length === 0) return ok(id, 'no -c/-r hooks');
  for (const h of hooks) {
    if (h.error !== null) return res(id, 'fail', `${h.flag} ${h.path}: ${h.error}`, 'fix the path');
    if (!h.isFile) return res(id, 'fail', `${h.flag} ${h.path} is not a file`, 'name the hook file itself');
    if (!h.executable) return res(id, 'fail', `${h.flag} ${h.path} is not executable: gwlbtun refuses to start`, `chmod +x ${h.path}`);
    if (!h.startsRunnable) return res(id, 'fail', `${h.flag} ${h.path} has no #! line: hooks are executed directly, without a shell (ENOEXEC)`, 'add a first line such as #!/bin/sh');
  }
  const open = hooks.filter((h) => h.worldWritable);
  if (open.length > 0) return res(id, 'warn', `${open.map((h) => h.path).join(', ')}: writable by anyone, and hooks run with gwlbtun's capabilities`, 'chmod o-w the file and its directory');
  return ok(id, hooks.map((h) => `${h.flag} ${h.path}`).join(', ') + ': executable');
}

/** What IMDSv2 told (null: not reachable, why says so). */
export interface ImdsInfo {
  instanceType: string;
  interfaceId: string;
  region: string;
}

/** Burstable families: CPU credits run out under steady packet load and throughput drops while
 * the health check stays green. */
export function checkInstanceType(imds: ImdsInfo | null, why: string): CheckResult {
  const id = 'instance-type';
  if (imds === null) return res(id, 'skip', `instance metadata not reachable (${why})`, '');
  if (/^t\d/.test(imds.instanceType)) return res(id, 'warn', `${imds.instanceType} is burstable: under steady load its CPU credits run out and throughput drops while targets stay healthy`, 'use a non-burstable type (c6gn, c7gn, c6in...) for production');
  return ok(id, imds.instanceType);
}

/** sdc: the ENI's sourceDestCheck attribute (through the AWS CLI), null when not known (why).
 * Reported, never a warning: GWLB sends Geneve to the appliance's own address and gwlbtun returns
 * it from there, and the NAT hook sends from its own address too, so the check is right left on
 * (a NAT instance, fck-nat's case, is different). Only hooks that route decapsulated traffic out
 * of this ENI with addresses not its own need it off: the line says so. */
export function checkSourceDestCheck(imds: ImdsInfo | null, sdc: boolean | null, why: string): CheckResult {
  const id = 'source-dest-check';
  if (imds === null) return res(id, 'skip', 'instance metadata not reachable', '');
  const cmd = `aws ec2 describe-network-interface-attribute --region ${imds.region} --network-interface-id ${imds.interfaceId} --attribute sourceDestCheck`;
  if (sdc === null) return res(id, 'skip', `not known (${why}); instance metadata does not say`, `see: ${cmd}`);
  if (sdc) return ok(id, `on for ${imds.interfaceId}: right for GWLB traffic and the NAT hook; off only if your hooks forward traffic with addresses not the appliance's out of this ENI`);
  return ok(id, `off for ${imds.interfaceId}: needed only if your hooks forward traffic with addresses not the appliance's out of this ENI`);
}
