// gwlbtun doctor's decisions (src/ops/doctor/checks.ts), table by table, and the pure parsers of
// its readers (src/ops/doctor/readers.ts); the readers themselves run in test/e2e/doctor.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkCapabilities, checkEgressOffloads, checkHealthPort, checkForwarding, checkForwardPolicy, checkGwlbMtu, checkHooks, checkInstanceType,
  checkRcvbuf, checkRpFilter, checkSourceDestCheck, checkTunDevice, checkUdpPort, exitCode, expectedTier, worstStatus,
  type CheckResult, type HookFile, type RpFilterInfo, type Status, type TierInputs,
} from '../../src/ops/doctor/checks';
import { isGwlbtunCmd, parseDefaultRoute, parseNftForward, parseProcNet } from '../../src/ops/doctor/readers';
import { formatJson, formatText, parseDoctorArgs } from '../../src/ops/doctor/main';

function expect(r: CheckResult, status: Status, re: RegExp): void {
  assert.equal(r.status, status, `${r.id}: ${r.reason}`);
  assert.match(r.reason, re);
  if (status === 'warn' || status === 'fail') assert.notEqual(r.action, '', `${r.id} says what to do`);
}

test('tun-device: missing, not a device, not openable, fine', () => {
  expect(checkTunDevice({ openError: 'ENOENT', charDevice: false }), 'fail', /does not exist/);
  expect(checkTunDevice({ openError: null, charDevice: false }), 'fail', /not a character device/);
  expect(checkTunDevice({ openError: 'EACCES', charDevice: true }), 'fail', /EACCES/);
  expect(checkTunDevice({ openError: null, charDevice: true }), 'ok', /read-write/);
});

test('capabilities: both needed', () => {
  const admin = 1n << 12n;
  const raw = 1n << 13n;
  expect(checkCapabilities(admin | raw), 'ok', /CAP_NET_ADMIN and CAP_NET_RAW/);
  expect(checkCapabilities(admin), 'fail', /CAP_NET_RAW/);
  expect(checkCapabilities(raw), 'fail', /CAP_NET_ADMIN/);
  expect(checkCapabilities(0n), 'fail', /CAP_NET_ADMIN, CAP_NET_RAW/);
  expect(checkCapabilities(null), 'skip', /cannot read/);
});

test('forwarding: IPv4 off fails, IPv6 off warns, IPv6 absent is fine', () => {
  expect(checkForwarding('0', '1'), 'fail', /ip_forward is 0/);
  expect(checkForwarding(null, '1'), 'fail', /absent/);
  expect(checkForwarding('1', '0'), 'warn', /IPv6/);
  expect(checkForwarding('1', null), 'ok', /IPv6 off/);
  expect(checkForwarding('1', '1'), 'ok', /ip_forward=1/);
});

test('rp-filter: the larger of all and the device decides', () => {
  const base: RpFilterInfo = { all: 0, default: 0, gwlb: { dev: 'eth0', value: 0 }, tunnels: [], sendDevice: null, manageSysctls: true };
  const rows: [Partial<RpFilterInfo>, Status, RegExp][] = [
    [{}, 'ok', /all=0, default=0, eth0=0/],
    [{ all: 1 }, 'fail', /conf.all.rp_filter is 1/],
    [{ all: 2, tunnels: [{ dev: 'gwi-a', value: 0 }] }, 'fail', /gwi-a \(2\)/],
    [{ tunnels: [{ dev: 'gwi-a', value: 0 }, { dev: 'gwo-a', value: 2 }] }, 'fail', /gwo-a \(2\)/],
    [{ sendDevice: { dev: 'gwlbtx0', value: 1 } }, 'fail', /gwlbtx0 \(1\)/],
    [{ default: 2 }, 'ok', /default=2/],
    [{ default: 2, manageSysctls: false }, 'warn', /--no-sysctl/],
    [{ gwlb: { dev: 'eth0', value: 1 } }, 'warn', /strict .* eth0/],
    [{ gwlb: { dev: 'eth0', value: 2 } }, 'ok', /eth0=2/],
    [{ gwlb: null, tunnels: [{ dev: 'gwi-a', value: 0 }], sendDevice: { dev: 'gwlbtx0', value: 0 } }, 'ok', /gwi-a=0, gwlbtx0=0/],
  ];
  for (const [d, status, re] of rows) expect(checkRpFilter({ ...base, ...d }), status, re);
});

test('gwlb-mtu: 8,500 + 68 bytes', () => {
  expect(checkGwlbMtu({ name: 'eth0', mtu: 9001 }, ''), 'ok', /9001 on eth0/);
  expect(checkGwlbMtu({ name: 'eth0', mtu: 8568 }, ''), 'ok', /8568/);
  expect(checkGwlbMtu({ name: 'eth0', mtu: 8567 }, ''), 'fail', /MTU 8567/);
  expect(checkGwlbMtu({ name: 'eth0', mtu: 1500 }, ''), 'fail', /MTU 1500/);
  expect(checkGwlbMtu(null, 'no default route'), 'warn', /no default route/);
});

test('udp-port: free, ours, someone else, invisible', () => {
  const ours = { pid: 10, cmd: 'node /usr/bin/gwlbtun', ours: true };
  expect(checkUdpPort(6081, []), 'ok', /free/);
  expect(checkUdpPort(6081, [ours, ours]), 'ok', /gwlbtun's \(PID 10: running\)/);
  expect(checkUdpPort(6081, [ours, { pid: 20, cmd: 'socat', ours: false }]), 'fail', /PID 20 \(socat\)/);
  expect(checkUdpPort(6081, [{ pid: null, cmd: '', ours: false }]), 'warn', /cannot see/);
});

test("health-port: free before, gwlbtun's and 200 while it runs", () => {
  const ours = { pid: 10, cmd: 'node /usr/bin/gwlbtun', ours: true };
  expect(checkHealthPort(null, [], null), 'ok', /no -p/);
  expect(checkHealthPort(80, [], null), 'ok', /TCP 80 is free/);
  expect(checkHealthPort(80, [{ pid: 7, cmd: 'nginx', ours: false }], null), 'fail', /PID 7 \(nginx\)/);
  expect(checkHealthPort(80, [{ pid: null, cmd: '', ours: false }], null), 'warn', /cannot see/);
  expect(checkHealthPort(80, [ours], 200), 'ok', /answers 200/);
  expect(checkHealthPort(80, [ours], 503), 'warn', /answers 503/);
  expect(checkHealthPort(80, [ours], 'ETIMEDOUT'), 'fail', /ETIMEDOUT/);
});

test('rcvbuf: rmem_max only matters without SO_RCVBUFFORCE', () => {
  const yes = { ok: true, why: '' };
  const no = { ok: false, why: 'there is no CAP_NET_ADMIN' };
  expect(checkRcvbuf(16 << 20, 8 << 20, no), 'ok', /allows/);
  expect(checkRcvbuf(4 << 20, 8 << 20, yes), 'ok', /SO_RCVBUFFORCE/);
  expect(checkRcvbuf(4 << 20, 8 << 20, no), 'warn', /under --rcvbuf 8388608 and there is no CAP_NET_ADMIN/);
  expect(checkRcvbuf(4 << 20, 0, no), 'ok', /allows/);
  expect(checkRcvbuf(null, 8 << 20, no), 'skip', /rmem_max/);
});

test('expectedTier: the send device if running, else the kernel release', () => {
  const base: TierInputs = { offload: true, noReturn: false, hexDump: false, release: '6.18.0', noTunnel: false, noUso: false, sendDeviceType: null };
  const rows: [Partial<TierInputs>, string][] = [
    [{ offload: false }, 'raw'],
    [{ noReturn: true }, 'raw'],
    [{ hexDump: true }, 'raw'],
    [{}, 'tunnel'],
    [{ release: '6.17.1-aws' }, 'tunnel'],
    [{ release: '6.16.9' }, 'uso'],
    [{ release: '6.12.40-63.114.amzn2023.x86_64' }, 'uso'],
    [{ release: '6.2.0' }, 'uso'],
    [{ release: '6.1.147-172.266.amzn2023.x86_64' }, 'raw'],
    [{ noTunnel: true }, 'uso'],
    [{ noTunnel: true, noUso: true }, 'raw'],
    [{ release: '6.1.0', sendDeviceType: 1 }, 'tunnel'],
    [{ sendDeviceType: 65534 }, 'uso'],
  ];
  for (const [d, tier] of rows) assert.equal(expectedTier({ ...base, ...d }).tier, tier, JSON.stringify(d));
});

test('forward-policy: a drop policy matters only to the tiers through gwlbtx0', () => {
  const tunnel = { tier: 'tunnel' as const, how: 'kernel 6.18' };
  const raw = { tier: 'raw' as const, how: '--offload off' };
  const drop = { name: 'ip filter FORWARD', policy: 'drop', namesSendDevice: false };
  expect(checkForwardPolicy(tunnel, [drop], ''), 'fail', /ip filter FORWARD: policy drop and no rule for gwlbtx0/);
  expect(checkForwardPolicy({ tier: 'uso', how: '' }, [drop], ''), 'fail', /uso tier/);
  expect(checkForwardPolicy(tunnel, [{ ...drop, namesSendDevice: true }], ''), 'ok', /name gwlbtx0/);
  expect(checkForwardPolicy(tunnel, [{ ...drop, policy: 'accept' }], ''), 'ok', /accepts/);
  expect(checkForwardPolicy(tunnel, [], ''), 'ok', /accepts/);
  expect(checkForwardPolicy(raw, [drop], ''), 'ok', /raw socket.*before --offload on/);
  expect(checkForwardPolicy(tunnel, null, 'nft: ENOENT'), 'warn', /ENOENT/);
  expect(checkForwardPolicy(raw, null, 'nft: ENOENT'), 'skip', /ENOENT/);
});

test('egress-offloads: tierSafety on the GWLB-facing device', () => {
  const tunnel = { tier: 'tunnel' as const, how: '' };
  const vethOn = { driver: 'veth', features: ['tx-udp_tnl-segmentation', 'tx-checksum-ip-generic'] };
  expect(checkEgressOffloads(tunnel, 'veth0', vethOn, ''), 'warn', /veth0: driver veth passes/);
  expect(checkEgressOffloads(tunnel, 'veth0', { driver: 'veth', features: [] }, ''), 'ok', /veth0 \(veth\)/);
  expect(checkEgressOffloads(tunnel, 'eth0', { driver: 'ena', features: ['tx-udp_tnl-segmentation'] }, ''), 'ok', /ena/);
  expect(checkEgressOffloads({ tier: 'uso', how: '' }, 'veth0', { driver: 'veth', features: ['tx-udp-segmentation'] }, ''), 'warn', /UDP GSO/);
  expect(checkEgressOffloads({ tier: 'raw', how: '--offload off' }, 'veth0', vethOn, ''), 'ok', /not used/);
  expect(checkEgressOffloads(tunnel, null, null, 'GWLB-facing device unknown'), 'warn', /unknown/);
});

test('hooks: missing, not a file, not executable, no #!, world-writable, fine', () => {
  const good: HookFile = { flag: '-c', path: '/h.sh', error: null, isFile: true, executable: true, startsRunnable: true, worldWritable: false };
  expect(checkHooks([]), 'ok', /no -c\/-r/);
  expect(checkHooks([good, { ...good, flag: '-r' }]), 'ok', /-c \/h.sh, -r \/h.sh: executable/);
  expect(checkHooks([{ ...good, error: 'ENOENT' }]), 'fail', /ENOENT/);
  expect(checkHooks([{ ...good, isFile: false }]), 'fail', /not a file/);
  expect(checkHooks([good, { ...good, flag: '-r', executable: false }]), 'fail', /-r \/h.sh is not executable/);
  expect(checkHooks([{ ...good, startsRunnable: false }]), 'fail', /no #! line/);
  expect(checkHooks([{ ...good, worldWritable: true }]), 'warn', /writable by anyone/);
});

test('instance-type and source-dest-check: skipped without IMDS, burstable warned', () => {
  const md = { instanceType: 'c6gn.large', interfaceId: 'eni-0123', region: 'eu-west-1' };
  expect(checkInstanceType(null, '--imds off'), 'skip', /--imds off/);
  expect(checkInstanceType(md, ''), 'ok', /c6gn.large/);
  expect(checkInstanceType({ ...md, instanceType: 't3.micro' }, ''), 'warn', /burstable/);
  expect(checkInstanceType({ ...md, instanceType: 't4g.small' }, ''), 'warn', /burstable/);
  expect(checkSourceDestCheck(null, null, ''), 'skip', /not reachable/);
  const unknown = checkSourceDestCheck(md, null, 'aws: ENOENT');
  expect(unknown, 'skip', /aws: ENOENT/);
  assert.match(unknown.action, /--network-interface-id eni-0123 --attribute sourceDestCheck/);
  expect(checkSourceDestCheck(md, true, ''), 'ok', /on for eni-0123/);
  expect(checkSourceDestCheck(md, false, ''), 'ok', /off for eni-0123/);
});

test('exit status by the worst: 0 ok (skips too), 1 warn, 2 fail', () => {
  const r = (status: Status): CheckResult => ({ id: 'x', status, reason: '', action: '' });
  assert.equal(exitCode([r('ok'), r('skip')]), 0);
  assert.equal(exitCode([r('ok'), r('warn'), r('skip')]), 1);
  assert.equal(exitCode([r('warn'), r('fail'), r('ok')]), 2);
  assert.equal(worstStatus([]), 'ok');
  const text = formatText([r('ok'), { id: 'forwarding', status: 'fail', reason: 'off', action: 'turn it on' }]);
  assert.deepEqual(text.trimEnd().split('\n'), ['ok    x           ', 'FAIL  forwarding  off -> turn it on', 'doctor: failures (exit 2)']);
  const json = JSON.parse(formatJson([r('warn')])) as { checks: CheckResult[]; worst: string; exit: number };
  assert.equal(json.worst, 'warn');
  assert.equal(json.exit, 1);
  assert.equal(json.checks.length, 1);
});

test("doctor's own options come out; the rest is the service's", () => {
  const o = parseDoctorArgs(['--format', 'json', '-c', '/h', '--imds=off', '--gwlb-dev', 'eth1', '--rcvbuf', '1', '--aws-cli', '/bin/aws']);
  assert.equal(o.format, 'json');
  assert.equal(o.imds, null);
  assert.equal(o.gwlbDev, 'eth1');
  assert.equal(o.awsCli, '/bin/aws');
  assert.deepEqual(o.rest, ['-c', '/h', '--rcvbuf', '1']);
  assert.equal(parseDoctorArgs([]).imds, 'http://169.254.169.254');
  assert.equal(parseDoctorArgs(['--imds', 'http://198.18.0.1:8080']).imds, 'http://198.18.0.1:8080');
  assert.equal(parseDoctorArgs(['-h']).help, true);
  assert.throws(() => parseDoctorArgs(['--format', 'xml']), /not text or json/);
  assert.throws(() => parseDoctorArgs(['--imds', 'https://x/path']), /--imds/);
  assert.throws(() => parseDoctorArgs(['--gwlb-dev']), /needs a value/);
});

test('/proc/net/tcp: listening sockets only', () => {
  const text = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0',
    '   1: 0100007F:0050 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 556 1 0000000000000000 20 4 30 10 -1',
  ].join('\n');
  assert.deepEqual(parseProcNet(text, 80, true), [555]);
  assert.deepEqual(parseProcNet(text, 80), [555, 556]);
});

test('/proc/net/udp: the inodes bound to the port', () => {
  const text = [
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    ' 1: 00000000:17C1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0',
    ' 2: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0000000000000000 0',
    ' 3: 00000000:17C1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 0',
  ].join('\n');
  assert.deepEqual(parseProcNet(text, 6081), [4242, 4243]);
  assert.deepEqual(parseProcNet(text, 53), [99]);
  assert.deepEqual(parseProcNet(text, 80), []);
  assert.deepEqual(parseProcNet('', 6081), []);
});

test('gwlbtun command lines', () => {
  assert.equal(isGwlbtunCmd(['node', '/usr/bin/gwlbtun', '-p', '80']), true);
  assert.equal(isGwlbtunCmd(['/usr/bin/node', '/opt/gwlbtun/dist/src/cli.js']), true);
  assert.equal(isGwlbtunCmd(['node', '/usr/bin/gwlbtun', 'doctor']), false);
  assert.equal(isGwlbtunCmd(['socat', 'udp-recv:6081', '-']), false);
});

test('/proc/net/route: the default route device', () => {
  const head = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT';
  assert.equal(parseDefaultRoute(`${head}\neth1\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\neth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n`), 'eth0');
  assert.equal(parseDefaultRoute(`${head}\neth1\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n`), null);
});

test('nft: forward base chains, their policy and whether a rule names gwlbtx0', () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { chain: { family: 'ip', table: 'filter', name: 'FORWARD', hook: 'forward', prio: 0, policy: 'drop' } },
      { chain: { family: 'inet', table: 'fw', name: 'fwd', hook: 'forward', prio: 0, policy: 'drop' } },
      { chain: { family: 'inet', table: 'fw', name: 'in', hook: 'input', prio: 0, policy: 'drop' } },
      { chain: { family: 'ip6', table: 'f', name: 'FORWARD', hook: 'forward', prio: 0, policy: 'drop' } },
      { chain: { family: 'inet', table: 'fw', name: 'user' } },
      { rule: { family: 'ip', table: 'filter', chain: 'FORWARD', expr: [{ match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'gwlbtx0' } }, { accept: null }] } },
      { rule: { family: 'inet', table: 'fw', chain: 'fwd', expr: [{ match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'gwlbtx0' } }, { accept: null }] } },
    ],
  });
  assert.deepEqual(parseNftForward(json), [
    { name: 'ip filter FORWARD', policy: 'drop', namesSendDevice: true },
    { name: 'inet fw fwd', policy: 'drop', namesSendDevice: false },
  ]);
  const wild = (right: unknown) => parseNftForward(JSON.stringify({ nftables: [
    { chain: { family: 'inet', table: 't', name: 'f', hook: 'forward', policy: 'drop' } },
    { rule: { family: 'inet', table: 't', chain: 'f', expr: [{ match: { op: '==', left: { meta: { key: 'iifname' } }, right } }, { accept: null }] } },
  ] }))[0].namesSendDevice;
  assert.equal(wild('gwlbtx*'), true);
  assert.equal(wild('gw*'), true);
  assert.equal(wild({ set: ['eth0', 'gwlbtx0'] }), true);
  assert.equal(wild('gwi-*'), false);
});
