// `gwlbtun doctor [doctor options] [the service's options]`: checks the host before and while
// gwlbtun runs and prints one line per check, or JSON (docs/operations.md, "Checking the host").
// It takes the daemon's own flags (parsed by src/cli.ts, handed in as parseService so that this
// module does not import the CLI), so an operator runs it with the service's ExecStart arguments:
// -p, --rcvbuf, --offload, -c/-r, --gwlb-cidr, --no-sysctl, --no-return and -x change what is
// checked; hooks that are not executable are reported here, where the daemon would refuse them.
//
// Its own options are taken out of the argument list first; everything else is the service's.
// Exit status: 0 all ok (or skipped), 1 a warning, 2 a failure or a usage error
// (src/ops/doctor/checks.ts says why).

import * as os from 'node:os';
import type { DaemonOptions } from '../../control/daemon';
import { native } from '../../io/native';
import {
  checkCapabilities, checkEgressOffloads, checkHealthPort, checkForwarding, checkForwardPolicy, checkGwlbMtu, checkHooks, checkInstanceType,
  checkRcvbuf, checkRpFilter, checkSourceDestCheck, checkTunDevice, checkUdpPort, CAP_NET_ADMIN, exitCode, expectedTier,
  SEND_DEVICE, worstStatus, type CheckResult,
} from './checks';
import {
  findGwlbDevice, readCapEff, readInitUserNs, readForwardChains, readHookFile, readImds, readLinkAttr, readLinkOffloads, readLinks,
  readHealthAnswer, readPortHolders, readRpFilter, readSourceDestCheck, readSysctl, readTunDevice,
} from './readers';

export const DOCTOR_HELP = `gwlbtun doctor: checks the host for gwlbtun, before and while it runs
Usage: gwlbtun doctor [doctor options] [gwlbtun's own options, as the service runs it]
Example: gwlbtun doctor --gwlb-cidr 10.0.0.0/24 --offload on -c /etc/gwlbtun/create.sh -p 80

Prints one line per check: ok, warn, fail or skip, what was found and what to do.
Checks: /dev/net/tun, capabilities, IPv4/IPv6 forwarding, rp_filter (all, default, the
GWLB-facing device, gwi-/gwo- and ${SEND_DEVICE} when they exist), the GWLB-facing MTU (8500 + 68),
UDP 6081 and the -p port free or gwlbtun's (answering 200), net.core.rmem_max against --rcvbuf, the FORWARD policy against the
--offload tier, the GWLB-facing device's offloads, the hooks, and on EC2 (IMDSv2) the instance
type and the source/destination check (through the AWS CLI).

Doctor options:
  -h, --help          Print this help and exit.
  --format text|json  Output: one line per check (default), or one JSON object.
  --gwlb-dev DEV      The GWLB-facing device (default: the route to the first --gwlb-cidr
                      address, else the default route's device).
  --imds URL|off      Instance metadata (IMDSv2) base URL (default http://169.254.169.254);
                      off skips the EC2 checks. Asked with a 1 s timeout.
  --aws-cli FILE|off  AWS CLI for the source/destination check (default aws; run only when
                      IMDS answered).

Exit status: 0 every check ok (or skipped), 1 a warning, 2 a failure (also a usage error).
Run it as the service runs (root, or its capabilities) and in its network namespace.
`;

/** What of the service's options the checks need. */
export type DoctorServiceOptions = Pick<DaemonOptions, 'createHook' | 'destroyHook' | 'rcvbuf' | 'offload' | 'noReturn' | 'hexDump' | 'manageSysctls' | 'allow' | 'udpPort'>;

/** The service's options as src/cli.ts parses them: the daemon's and -p. */
export interface DoctorService {
  daemon: DoctorServiceOptions;
  healthPort: number | null;
}

export interface DoctorOptions {
  help: boolean;
  format: 'text' | 'json';
  gwlbDev: string | null;
  imds: string | null;
  awsCli: string | null;
  /** The rest: the service's arguments. */
  rest: string[];
}

/** Takes doctor's own options out of argv; throws (the message) on a bad one. */
export function parseDoctorArgs(argv: readonly string[]): DoctorOptions {
  const o: DoctorOptions = { help: false, format: 'text', gwlbDev: null, imds: 'http://169.254.169.254', awsCli: 'aws', rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      o.help = true;
      continue;
    }
    const m = /^(--format|--gwlb-dev|--imds|--aws-cli)(?:=(.*))?$/.exec(a);
    if (m === null) {
      o.rest.push(a);
      continue;
    }
    const v = m[2] ?? argv[++i];
    if (v === undefined || v === '') throw new Error(`${m[1]} needs a value`);
    if (m[1] === '--format') {
      if (v !== 'text' && v !== 'json') throw new Error(`--format: '${v}' is not text or json`);
      o.format = v;
    } else if (m[1] === '--gwlb-dev') {
      o.gwlbDev = v;
    } else if (m[1] === '--imds') {
      if (v !== 'off' && !/^http:\/\/[^/]+\/?$/.test(v)) throw new Error(`--imds: '${v}' is not off or http://HOST[:PORT]`);
      o.imds = v === 'off' ? null : v;
    } else {
      o.awsCli = v === 'off' ? null : v;
    }
  }
  return o;
}

/** Every check, in the order printed. */
export async function runChecks(o: DoctorOptions, svc: DoctorServiceOptions, healthPort: number | null): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  out.push(checkTunDevice(readTunDevice()));
  const caps = readCapEff();
  out.push(checkCapabilities(caps));
  out.push(checkForwarding(readSysctl('ipv4/ip_forward'), readSysctl('ipv6/conf/all/forwarding')));

  const gwlb = findGwlbDevice(o.gwlbDev, svc.allow, native);
  const links = readLinks();
  const tunnels = links.filter((l) => l.startsWith('gwi-') || l.startsWith('gwo-'));
  const hasSendDevice = links.includes(SEND_DEVICE);
  out.push(
    checkRpFilter({
      all: readRpFilter('all'),
      default: readRpFilter('default'),
      gwlb: gwlb.dev === null || !links.includes(gwlb.dev) ? null : { dev: gwlb.dev, value: readRpFilter(gwlb.dev) },
      tunnels: tunnels.map((dev) => ({ dev, value: readRpFilter(dev) })),
      sendDevice: hasSendDevice ? { dev: SEND_DEVICE, value: readRpFilter(SEND_DEVICE) } : null,
      manageSysctls: svc.manageSysctls,
    }),
  );
  const mtu = gwlb.dev === null ? null : readLinkAttr(gwlb.dev, 'mtu');
  out.push(checkGwlbMtu(gwlb.dev === null || mtu === null ? null : { name: gwlb.dev, mtu }, gwlb.dev === null ? gwlb.why : `${gwlb.dev}: no such device`));
  out.push(checkUdpPort(svc.udpPort, readPortHolders('udp', svc.udpPort)));
  const tcp = healthPort === null ? [] : readPortHolders('tcp', healthPort);
  const ours = tcp.length > 0 && tcp.every((h) => h.ours);
  out.push(checkHealthPort(healthPort, tcp, healthPort !== null && ours ? await readHealthAnswer(healthPort) : null));
  const rmem = readSysctl('core/rmem_max');
  const netAdmin = caps !== null && (caps & (1n << CAP_NET_ADMIN)) !== 0n;
  const initNs = readInitUserNs();
  const force = { ok: netAdmin && initNs, why: !netAdmin ? 'there is no CAP_NET_ADMIN' : 'this is not the initial user namespace (its CAP_NET_ADMIN cannot exceed the limit)' };
  out.push(checkRcvbuf(rmem === null ? null : Number(rmem), svc.rcvbuf, force));

  const tier = expectedTier({
    offload: svc.offload,
    noReturn: svc.noReturn,
    hexDump: svc.hexDump,
    release: os.release(),
    noTunnel: process.env.GWLBTUN_NO_UDP_TUNNEL_GSO === '1',
    noUso: process.env.GWLBTUN_NO_USO === '1',
    sendDeviceType: hasSendDevice ? readLinkAttr(SEND_DEVICE, 'type') : null,
  });
  const fw = readForwardChains();
  out.push(checkForwardPolicy(tier, fw.chains, fw.why));
  const lo = readLinkOffloads(gwlb.dev, native);
  out.push(checkEgressOffloads(tier, gwlb.dev, lo.link, lo.why));

  const hooks = [];
  if (svc.createHook !== null) hooks.push(readHookFile('-c', svc.createHook));
  if (svc.destroyHook !== null) hooks.push(readHookFile('-r', svc.destroyHook));
  out.push(checkHooks(hooks));

  const md = o.imds === null ? { imds: null, why: '--imds off' } : await readImds(o.imds);
  out.push(checkInstanceType(md.imds, md.why));
  const sdc = md.imds === null ? { sdc: null, why: '' } : o.awsCli === null ? { sdc: null, why: '--aws-cli off' } : readSourceDestCheck(o.awsCli, md.imds);
  out.push(checkSourceDestCheck(md.imds, sdc.sdc, sdc.why));
  return out;
}

/** The text form: one line per check, then the verdict. */
export function formatText(results: readonly CheckResult[]): string {
  const w = Math.max(...results.map((r) => r.id.length));
  const lines = results.map((r) => `${(r.status === 'ok' || r.status === 'skip' ? r.status : r.status.toUpperCase()).padEnd(5)} ${r.id.padEnd(w)}  ${r.reason}${r.action === '' ? '' : ` -> ${r.action}`}`);
  const worst = worstStatus(results);
  lines.push(`doctor: ${worst === 'ok' ? 'all ok' : worst === 'warn' ? 'warnings' : 'failures'} (exit ${exitCode(results)})`);
  return lines.join('\n') + '\n';
}

export function formatJson(results: readonly CheckResult[]): string {
  return JSON.stringify({ checks: results, worst: worstStatus(results), exit: exitCode(results) }) + '\n';
}

/** Runs doctor; returns the exit status. parseService: the daemon's parser (src/cli.ts), which
 * returns a usage message as a string. */
export async function doctorMain(argv: readonly string[], parseService: (argv: string[]) => DoctorService | string): Promise<number> {
  let o: DoctorOptions;
  let svc: DoctorService | string;
  try {
    o = parseDoctorArgs(argv);
    svc = o.help ? '' : parseService(o.rest);
  } catch (e) {
    svc = (e as Error).message;
    o = { help: false } as DoctorOptions;
  }
  if (o.help) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  if (typeof svc === 'string') {
    process.stderr.write(`gwlbtun doctor: ${svc} (see gwlbtun doctor -h)\n`);
    return 2;
  }
  const results = await runChecks(o, svc.daemon, svc.healthPort);
  process.stdout.write(o.format === 'json' ? formatJson(results) : formatText(results));
  return exitCode(results);
}
