// gwlbtun doctor's readers, end to end (src/ops/doctor/, docs/operations.md "Checking the host"):
// doctor runs in the appliance namespace of a fresh test topology, first on a host set up right
// (every check ok), then with each check broken on purpose, one at a time, and put right again.
//
// IMDS: a stub in the GWLB namespace on 198.18.0.1 answers IMDSv2 (token, instance type, MAC,
// ENI, region) and every doctor run is pointed at it (--imds) or has it off: no run ever asks
// 169.254.169.254. The AWS CLI is a stub script that prints a fixed answer (--aws-cli).
// /dev/net/tun is hidden by a tmpfs over /dev/net in a mount namespace of doctor's own;
// capabilities are dropped with setpriv; the receive-buffer limit bites in a user namespace, where
// CAP_NET_ADMIN cannot exceed net.core.rmem_max (which a network namespace cannot lower).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BIN, nsRun, requireRoot, sleep, startDaemon, stopDaemon, tmpDir, waitFor } from './lib';
import { createTopology, destroyTopology, nsSpawnArgs, type Topology } from '../../src/sim/topology';
import type { CheckResult, Status } from '../../src/ops/doctor/checks';

const IMDS_PORT = 18080;
const HEALTH_PORT = 18081;
const ENI = 'eni-0a1b2c3d4e5f60718';
const OFF = ['tx', 'off', 'tx-udp_tnl-segmentation', 'off', 'tx-udp_tnl-csum-segmentation', 'off', 'tx-udp-segmentation', 'off'];
const ON = ['tx', 'on', 'tx-udp_tnl-segmentation', 'on', 'tx-udp_tnl-csum-segmentation', 'on', 'tx-udp-segmentation', 'on'];

const IMDS_STUB = `
const http = require('node:http');
const fs = require('node:fs');
const [host, port, typeFile] = process.argv.slice(1);
http.createServer((req, res) => {
  const say = (code, body) => { res.writeHead(code); res.end(body); };
  if (req.method === 'PUT' && req.url === '/latest/api/token') return say(req.headers['x-aws-ec2-metadata-token-ttl-seconds'] ? 200 : 400, 'tok');
  if (req.headers['x-aws-ec2-metadata-token'] !== 'tok') return say(401, '');
  const md = { 'instance-type': fs.readFileSync(typeFile, 'utf8').trim(), mac: '02:00:00:00:00:01',
    'network/interfaces/macs/02:00:00:00:00:01/interface-id': '${ENI}', 'placement/region': 'eu-west-1' };
  const v = md[req.url.replace('/latest/meta-data/', '')];
  return v === undefined ? say(404, '') : say(200, v);
}).listen(Number(port), host, () => console.log('listening'));
`;

interface Run {
  code: number | null;
  checks: Map<string, CheckResult>;
  raw: string;
}

describe('gwlbtun doctor in a test namespace', () => {
  let t: Topology;
  let dir: string;
  let hook: string;
  let awsStub: string;
  let typeFile: string;
  let imds: ChildProcess | undefined;

  const ns = (cmd: string, args: string[]): void => {
    const r = nsRun(t.applianceNs, cmd, args);
    assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  };
  const sysctl = (kv: string): void => ns('sysctl', ['-qw', kv]);
  /** doctor with the service's arguments of the all-ok set-up plus `extra`, as JSON; `wrap`: a
   * command in front of node (unshare, setpriv). */
  const doctor = (extra: string[] = [], wrap: string[] = []): Run => {
    const argv = [...wrap, process.execPath, BIN, 'doctor', '--format', 'json', '--imds', `http://${t.gwlbIp}:${IMDS_PORT}`, '--aws-cli', awsStub,
      '--gwlb-cidr', '198.18.0.0/24', '--offload', 'on', '-c', hook, '-r', hook, ...extra];
    const r = nsRun(t.applianceNs, argv[0], argv.slice(1), 20_000);
    let parsed: { checks: CheckResult[]; exit: number };
    try {
      parsed = JSON.parse(r.stdout) as { checks: CheckResult[]; exit: number };
    } catch {
      throw new Error(`doctor printed no JSON (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
    assert.equal(parsed.exit, r.status, 'the exit status is the one the JSON states');
    return { code: r.status, checks: new Map(parsed.checks.map((c) => [c.id, c])), raw: r.stdout };
  };
  const expect = (r: Run, id: string, status: Status, re: RegExp): void => {
    const c = r.checks.get(id);
    assert.ok(c !== undefined, `${id} reported: ${r.raw}`);
    assert.equal(c.status, status, `${id}: ${c.reason} (${c.action})`);
    assert.match(c.reason, re);
  };
  /** Every check but `id` (and those listed in `also`) is still ok. */
  const onlyBroken = (r: Run, ...ids: string[]): void => {
    for (const c of r.checks.values()) if (!ids.includes(c.id)) assert.equal(c.status, 'ok', `${c.id} stays ok: ${c.reason}`);
  };

  before(async () => {
    requireRoot();
    dir = tmpDir('doctor');
    t = createTopology('doc');
    hook = path.join(dir, 'hook.sh');
    fs.writeFileSync(hook, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    awsStub = path.join(dir, 'aws');
    fs.writeFileSync(awsStub, `#!/bin/sh\necho "$@" > ${dir}/aws-args\necho '{"SourceDestCheck": {"Value": true}}'\n`, { mode: 0o755 });
    typeFile = path.join(dir, 'instance-type');
    fs.writeFileSync(typeFile, 'c6gn.large\n');
    const a = nsSpawnArgs(t.gwlbNs, process.execPath, ['-e', IMDS_STUB, t.gwlbIp, String(IMDS_PORT), typeFile]);
    imds = spawn(a.file, a.args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    imds.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    await waitFor('the IMDS stub', () => out.includes('listening'), 10_000, 50);
    // The all-ok host: forwarding on (a new namespace has it off), the veth's offloads off so that
    // --offload on's send tier may use it.
    sysctl('net.ipv4.ip_forward=1');
    sysctl('net.ipv6.conf.all.forwarding=1');
    ns('ethtool', ['-K', t.applianceIf, ...OFF]);
  });
  after(() => {
    if (imds !== undefined && imds.exitCode === null) imds.kill('SIGKILL');
    if (t !== undefined) destroyTopology(t);
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a host set up right: every check ok, exit 0, the EC2 checks through the stubs', () => {
    const r = doctor();
    onlyBroken(r);
    assert.equal(r.code, 0);
    assert.equal(r.checks.size, 13);
    expect(r, 'gwlb-mtu', 'ok', new RegExp(`9001 on ${t.applianceIf}`));
    expect(r, 'egress-offloads', 'ok', /veth/);
    expect(r, 'instance-type', 'ok', /c6gn\.large/);
    expect(r, 'source-dest-check', 'ok', new RegExp(`on for ${ENI}`));
    assert.match(fs.readFileSync(path.join(dir, 'aws-args'), 'utf8'), new RegExp(`--region eu-west-1 --network-interface-id ${ENI} --attribute sourceDestCheck`));
    // The text form: one line per check and the verdict.
    const text = nsRun(t.applianceNs, process.execPath, [BIN, 'doctor', '--imds', 'off', '--gwlb-cidr', '198.18.0.0/24']);
    assert.equal(text.status, 0, text.stdout);
    assert.equal(text.stdout.trimEnd().split('\n').length, 14);
    assert.match(text.stdout, /^skip +instance-type +instance metadata not reachable \(--imds off\)$/m);
  });

  test('IPv4 forwarding off: fail, exit 2; IPv6 off: warn, exit 1', () => {
    sysctl('net.ipv4.ip_forward=0');
    try {
      const r = doctor();
      expect(r, 'forwarding', 'fail', /ip_forward is 0/);
      onlyBroken(r, 'forwarding');
      assert.equal(r.code, 2);
    } finally {
      sysctl('net.ipv4.ip_forward=1');
    }
    sysctl('net.ipv6.conf.all.forwarding=0');
    try {
      const r = doctor();
      expect(r, 'forwarding', 'warn', /IPv6/);
      assert.equal(r.code, 1);
    } finally {
      sysctl('net.ipv6.conf.all.forwarding=1');
    }
  });

  test('rp_filter: strict on the GWLB-facing veth warns; conf.all, a gwi- and gwlbtx0 fail', () => {
    sysctl(`net.ipv4.conf.${t.applianceIf}.rp_filter=1`);
    try {
      const r = doctor();
      expect(r, 'rp-filter', 'warn', new RegExp(`strict .* ${t.applianceIf}`));
      onlyBroken(r, 'rp-filter');
    } finally {
      sysctl(`net.ipv4.conf.${t.applianceIf}.rp_filter=0`);
    }
    sysctl('net.ipv4.conf.all.rp_filter=2');
    try {
      expect(doctor(), 'rp-filter', 'fail', /conf.all.rp_filter is 2/);
    } finally {
      sysctl('net.ipv4.conf.all.rp_filter=0');
    }
    // As while gwlbtun runs: an endpoint's interface and the send device exist.
    ns('ip', ['tuntap', 'add', 'dev', 'gwi-doctor', 'mode', 'tun']);
    ns('ip', ['tuntap', 'add', 'dev', 'gwlbtx0', 'mode', 'tap']);
    try {
      sysctl('net.ipv4.conf.gwi-doctor.rp_filter=2');
      sysctl('net.ipv4.conf.gwlbtx0.rp_filter=1');
      const r = doctor();
      expect(r, 'rp-filter', 'fail', /gwi-doctor \(2\), gwlbtx0 \(1\)/);
      expect(r, 'forward-policy', 'ok', /accepts/);
      sysctl('net.ipv4.conf.gwi-doctor.rp_filter=0');
      sysctl('net.ipv4.conf.gwlbtx0.rp_filter=0');
      expect(doctor(), 'rp-filter', 'ok', /gwi-doctor=0, gwlbtx0=0/);
    } finally {
      nsRun(t.applianceNs, 'ip', ['link', 'del', 'gwi-doctor']);
      nsRun(t.applianceNs, 'ip', ['link', 'del', 'gwlbtx0']);
    }
  });

  test('MTU 1500 on the GWLB-facing veth: fail', () => {
    ns('ip', ['link', 'set', t.applianceIf, 'mtu', '1500']);
    try {
      const r = doctor();
      expect(r, 'gwlb-mtu', 'fail', new RegExp(`MTU 1500 on ${t.applianceIf}`));
      onlyBroken(r, 'gwlb-mtu');
      // Without --gwlb-cidr the default route's device is looked at; the test namespace has none.
      const n = doctor(['--gwlb-dev', 'no-such-dev']);
      expect(n, 'gwlb-mtu', 'warn', /no-such-dev: no such device/);
    } finally {
      ns('ip', ['link', 'set', t.applianceIf, 'mtu', '9001']);
    }
  });

  test('UDP 6081 and the -p port held by another program: fail naming it; held by gwlbtun: ok, answering 200', async () => {
    const hold = "require('node:dgram').createSocket('udp4').bind(6081, () => require('node:net').createServer().listen(HEALTH_PORT, () => console.log('bound')))";
    const a = nsSpawnArgs(t.applianceNs, process.execPath, ['-e', hold.replace('HEALTH_PORT', String(HEALTH_PORT))]);
    const holder = spawn(a.file, a.args, { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      holder.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      await waitFor('the port holder', () => out.includes('bound'), 10_000, 50);
      const r = doctor(['-p', String(HEALTH_PORT)]);
      expect(r, 'udp-port', 'fail', new RegExp(`UDP 6081 is bound by PID ${holder.pid} \\(.*node`));
      expect(r, 'health-port', 'fail', new RegExp(`TCP ${HEALTH_PORT} is bound by PID ${holder.pid}`));
      onlyBroken(r, 'udp-port', 'health-port');
    } finally {
      holder.kill('SIGKILL');
    }
    await sleep(100);
    expect(doctor(['-p', String(HEALTH_PORT)]), 'health-port', 'ok', /is free/);
    const d = await startDaemon(t, ['--gwlb-cidr', '198.18.0.0/24', '--offload', 'on', '--udpthreads', '2', '-p', String(HEALTH_PORT), '--drain', '30']);
    try {
      const r = doctor(['-p', String(HEALTH_PORT)]);
      expect(r, 'udp-port', 'ok', new RegExp(`gwlbtun's \\(PID ${d.pid}: running\\)`));
      expect(r, 'health-port', 'ok', new RegExp(`answers 200 on TCP ${HEALTH_PORT}`));
      expect(r, 'forward-policy', 'ok', /accepts/);
      expect(r, 'rp-filter', 'ok', /gwlbtx0=0/);
      // Draining (the first SIGTERM with --drain): health 503, GWLB takes the target out.
      d.proc.kill('SIGTERM');
      await waitFor('the drain', () => d.output().includes('draining for'), 5000, 50);
      expect(doctor(['-p', String(HEALTH_PORT)]), 'health-port', 'warn', new RegExp(`answers 503 on TCP ${HEALTH_PORT}`));
    } finally {
      await stopDaemon(d);
    }
  });

  test('--rcvbuf over net.core.rmem_max where CAP_NET_ADMIN cannot exceed it (user namespace): warn', () => {
    const rmem = Number(fs.readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
    const r = doctor(['--rcvbuf', String(rmem * 2)], ['unshare', '--user', '--map-root-user']);
    expect(r, 'rcvbuf', 'warn', new RegExp(`rmem_max ${rmem} is under --rcvbuf ${rmem * 2} and this is not the initial user namespace`));
    // As root in the initial user namespace SO_RCVBUFFORCE takes it.
    expect(doctor(['--rcvbuf', String(rmem * 2)]), 'rcvbuf', 'ok', /SO_RCVBUFFORCE/);
  });

  test('FORWARD policy drop with the send tier through gwlbtx0: fail; allowing gwlbtx0 or --offload off: ok', () => {
    ns('iptables', ['-P', 'FORWARD', 'DROP']);
    try {
      const r = doctor();
      expect(r, 'forward-policy', 'fail', /ip filter FORWARD: policy drop and no rule for gwlbtx0/);
      onlyBroken(r, 'forward-policy');
      expect(doctor(['--offload', 'off']), 'forward-policy', 'ok', /raw socket .* drop by default/);
      ns('iptables', ['-A', 'FORWARD', '-i', 'gwlbtx0', '-j', 'ACCEPT']);
      expect(doctor(), 'forward-policy', 'ok', /name gwlbtx0/);
    } finally {
      nsRun(t.applianceNs, 'iptables', ['-P', 'FORWARD', 'ACCEPT']);
      nsRun(t.applianceNs, 'iptables', ['-F', 'FORWARD']);
    }
  });

  test("the veth's offloads on with --offload on: warn (the raw socket is used instead)", () => {
    ns('ethtool', ['-K', t.applianceIf, ...ON]);
    try {
      const r = doctor();
      expect(r, 'egress-offloads', 'warn', new RegExp(`${t.applianceIf}: driver veth passes`));
      onlyBroken(r, 'egress-offloads');
    } finally {
      ns('ethtool', ['-K', t.applianceIf, ...OFF]);
    }
  });

  test('hooks: not executable, no #! line, missing: fail', () => {
    const bad = path.join(dir, 'bad-hook.sh');
    fs.writeFileSync(bad, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    let r = doctor(['-r', bad]);
    expect(r, 'hooks', 'fail', /-r .*bad-hook.sh is not executable/);
    onlyBroken(r, 'hooks');
    fs.writeFileSync(bad, 'exit 0\n', { mode: 0o755 });
    fs.chmodSync(bad, 0o755);
    expect(doctor(['-r', bad]), 'hooks', 'fail', /no #! line/);
    r = doctor(['-c', path.join(dir, 'missing.sh')]);
    expect(r, 'hooks', 'fail', /missing.sh: ENOENT/);
  });

  test('/dev/net/tun missing (a tmpfs over /dev/net in a mount namespace): fail', () => {
    const r = doctor([], ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs tmpfs /dev/net && exec "$@"', 'sh']);
    expect(r, 'tun-device', 'fail', /does not exist/);
    onlyBroken(r, 'tun-device');
  });

  test('CAP_NET_ADMIN and CAP_NET_RAW dropped: fail', () => {
    const r = doctor([], ['setpriv', '--bounding-set', '-net_admin,-net_raw', '--inh-caps', '-net_admin,-net_raw']);
    expect(r, 'capabilities', 'fail', /missing CAP_NET_ADMIN, CAP_NET_RAW/);
  });

  test('a burstable instance type: warn; IMDS unreachable: skipped with a note, exit 0', () => {
    fs.writeFileSync(typeFile, 't3.micro\n');
    try {
      const r = doctor();
      expect(r, 'instance-type', 'warn', /t3\.micro is burstable/);
      onlyBroken(r, 'instance-type');
    } finally {
      fs.writeFileSync(typeFile, 'c6gn.large\n');
    }
    const r = doctor(['--imds', `http://${t.gwlbIp}:${IMDS_PORT + 1}`]);
    expect(r, 'instance-type', 'skip', /ECONNREFUSED/);
    expect(r, 'source-dest-check', 'skip', /not reachable/);
    assert.equal(r.code, 0);
  });
});
