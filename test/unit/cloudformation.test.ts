// deploy/cloudformation/gwlbtun.yaml: cfn-lint (AWS's CloudFormation linter: resource types,
// property names and types, required properties, references) must pass with no error or warning;
// then what cfn-lint cannot know: the target group's health check goes to the -p port the user
// data gives gwlbtun, the drain settings agree with each other and with the systemd unit, the
// user data is valid bash whose paths exist in the release tree and whose ExecStart line our CLI
// accepts. cfn-lint is a Python program (pip's cfn-lint; Debian has no package): when it is missing
// this test fails, it does not skip.
//
// Access: only the GWLB subnets' CIDRs (GwlbSubnetCidrs, one per subnet) reach UDP 6081 and the
// health port, and gwlbtun gets one --gwlb-cidr per CIDR. Plain CloudFormation has no loops, so
// the template spells out 6 slots guarded by conditions; evaluate() below resolves the intrinsic
// functions the template uses (Ref, Fn::Join/Split/Select/If/Not/Equals/Sub, conditions) for given
// parameter values, the way CloudFormation would, failing on a Fn::Select past the end of its list,
// and the tests check the security group and the user data that come out for 1 to 6 subnets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseCidr, parseCli } from '../../src/cli';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TEMPLATE = path.join(ROOT, 'deploy', 'cloudformation', 'gwlbtun.yaml');
const UNIT = path.join(ROOT, 'examples', 'systemd', 'gwlbtun.service');
const CFN_LINT_MISSING = "cfn-lint is not installed: 'pip install cfn-lint' (CloudFormation's linter, from PyPI; the CI machines have it)";

type J = Record<string, unknown>;
const obj = (v: unknown): J => {
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `an object: ${JSON.stringify(v)}`);
  return v as J;
};

/** The template as JSON, read by cfn-lint's own YAML reader (it knows the !Ref/!Sub short forms). */
function loadTemplate(): J {
  const code = 'import json,sys\nfrom cfnlint.decode import decode\nt,m=decode(sys.argv[1])\nif m: sys.exit("\\n".join(str(x) for x in m))\nprint(json.dumps(t))';
  const r = spawnSync('python3', ['-c', code, TEMPLATE], { encoding: 'utf8', timeout: 60000 });
  if (r.error !== undefined || /No module named/.test(r.stderr ?? '')) assert.fail(`${CFN_LINT_MISSING}\n${r.stderr ?? r.error}`);
  assert.equal(r.status, 0, `reading the template failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as J;
}

const tpl = loadTemplate();
const resources = obj(tpl.Resources);
const params = obj(tpl.Parameters);

function resource(name: string, type: string): J {
  const r = obj(resources[name]);
  assert.equal(r.Type, type, `${name} is a ${type}`);
  return obj(r.Properties);
}

function attrs(list: unknown): Map<string, unknown> {
  return new Map((list as { Key: string; Value: unknown }[]).map((a) => [a.Key, a.Value]));
}

function paramDefault(name: string): string {
  const p = obj(params[name]);
  assert.ok('Default' in p, `parameter ${name} has a default`);
  return String(p.Default);
}

/** The user data's Fn::Sub: the script as written in the template (before substitution) and its
 * variables (intrinsic functions, unevaluated). */
function userDataSub(): { script: string; vars: J } {
  const lt = obj(resource('LaunchTemplate', 'AWS::EC2::LaunchTemplate').LaunchTemplateData);
  const b64 = obj(lt.UserData);
  const sub = (b64['Fn::Base64'] as J)['Fn::Sub'];
  if (typeof sub === 'string') return { script: sub, vars: {} };
  const [script, vars] = sub as [unknown, unknown];
  assert.equal(typeof script, 'string', 'user data is one Fn::Sub string');
  return { script: script as string, vars: obj(vars) };
}

function userDataSource(): string {
  return userDataSub().script;
}

const SHA = 'ab'.repeat(32);
const SAMPLE_CIDRS = ['198.18.0.0/28', '198.18.1.0/28', '198.18.2.0/28', '198.18.3.0/28', '198.18.4.0/28', '198.18.5.0/28'];

/** Parameter values: the defaults, sample values for those without one, and `over`. */
function paramValues(over: Record<string, string | string[]> = {}): Record<string, string | string[]> {
  const v: Record<string, string | string[]> = {
    ReleaseUrl: 'https://example.com/gwlbtun-0.1.0-1.x86_64.rpm',
    ReleaseSha256: SHA,
    GwlbSubnetCidrs: SAMPLE_CIDRS.slice(0, 2),
    'AWS::Region': 'us-east-1',
    'AWS::StackName': 'test',
  };
  for (const [name, p] of Object.entries(params)) {
    if (!(name in v) && 'Default' in obj(p)) v[name] = obj(p).Type === 'CommaDelimitedList' ? String(obj(p).Default).split(',') : String(obj(p).Default);
  }
  return { ...v, ...over };
}

const NO_VALUE = Symbol('AWS::NoValue');

/** The value of `v` with CloudFormation's intrinsic functions resolved for the parameter values
 * `pv` (the subset this template uses; anything else fails the test). */
function evaluate(v: unknown, pv: Record<string, string | string[]>): unknown {
  if (Array.isArray(v)) return v.map((x) => evaluate(x, pv)).filter((x) => x !== NO_VALUE);
  if (v === null || typeof v !== 'object') return v;
  const o = v as J;
  const keys = Object.keys(o);
  const str = (x: unknown): string => {
    const e = evaluate(x, pv);
    assert.ok(typeof e === 'string' || typeof e === 'number', `a string: ${JSON.stringify(x)}`);
    return String(e);
  };
  const list = (x: unknown): unknown[] => {
    const e = evaluate(x, pv);
    assert.ok(Array.isArray(e), `a list: ${JSON.stringify(x)}`);
    return e;
  };
  if (keys.length === 1 && (keys[0] === 'Ref' || keys[0] === 'Condition' || keys[0]!.startsWith('Fn::'))) {
    const a = o[keys[0]!];
    const args = a as unknown[];
    switch (keys[0]) {
      case 'Ref':
        if (a === 'AWS::NoValue') return NO_VALUE;
        assert.ok(typeof a === 'string' && a in pv, `Ref ${String(a)}: a parameter with a value`);
        return pv[a];
      case 'Condition':
        return evaluate(obj(tpl.Conditions)[a as string], pv);
      case 'Fn::Join':
        return list(args[1]).map((x) => String(x)).join(args[0] as string);
      case 'Fn::Split':
        return str(args[1]).split(args[0] as string);
      case 'Fn::Select': {
        const l = list(args[1]);
        const i = Number(evaluate(args[0], pv));
        assert.ok(Number.isInteger(i) && i >= 0 && i < l.length, `Fn::Select ${i} of a list of ${l.length}: CloudFormation fails the stack`);
        return l[i];
      }
      case 'Fn::If': {
        assert.ok(typeof args[0] === 'string' && args[0] in obj(tpl.Conditions), `Fn::If on a condition: ${String(args[0])}`);
        return evaluate(obj(tpl.Conditions)[args[0]], pv) === true ? evaluate(args[1], pv) : evaluate(args[2], pv);
      }
      case 'Fn::FindInMap': {
        const v = obj(obj(obj(tpl.Mappings)[str(args[0])])[str(args[1])])[str(args[2])];
        assert.ok(v !== undefined, `Fn::FindInMap ${JSON.stringify(args)}: no such entry`);
        return v;
      }
      case 'Fn::Not':
        return evaluate(args[0], pv) !== true;
      case 'Fn::Equals':
        return str(args[0]) === str(args[1]);
      case 'Fn::Sub': {
        const [text, vars] = typeof a === 'string' ? [a, {}] : (a as [string, J]);
        return text.replace(/\$\{([A-Za-z0-9:]+)\}/g, (_, name: string) => {
          if (name in vars) return str(vars[name]);
          assert.ok(name in pv, `Fn::Sub refers to \${${name}}, which is no parameter`);
          const p = pv[name]!;
          assert.equal(typeof p, 'string', `\${${name}} in Fn::Sub is a string`);
          return p as string;
        });
      }
      default:
        assert.fail(`evaluate(): ${keys[0]} is not handled`);
    }
  }
  const out: J = {};
  for (const [k, x] of Object.entries(o)) {
    const e = evaluate(x, pv);
    if (e !== NO_VALUE) out[k] = e;
  }
  return out;
}

/** The user data as an instance gets it, for parameter values `over` (else defaults and samples). */
function renderUserData(over: Record<string, string | string[]> = {}): string {
  const lt = obj(resource('LaunchTemplate', 'AWS::EC2::LaunchTemplate').LaunchTemplateData);
  return evaluate((obj(lt.UserData)['Fn::Base64'] as J), paramValues(over)) as string;
}

/** Whether `value` passes parameter `name`'s AllowedPattern (for a CommaDelimitedList: every item,
 * as CloudFormation checks it). */
function allowed(name: string, value: string): boolean {
  const p = obj(params[name]);
  const re = new RegExp(String(p.AllowedPattern));
  return (p.Type === 'CommaDelimitedList' ? value.split(',').map((x) => x.trim()) : [value]).every((x) => re.test(x));
}

test('cfn-lint passes with no error or warning', () => {
  const r = spawnSync('cfn-lint', ['--format', 'parseable', TEMPLATE], { encoding: 'utf8', timeout: 120000 });
  if (r.error !== undefined) assert.fail(`${CFN_LINT_MISSING} (${r.error.message})`);
  assert.equal(r.status, 0, `cfn-lint:\n${r.stdout}${r.stderr}`);
  assert.equal(r.stdout.trim(), '', r.stdout);
});

test('GWLB with a listener forwarding to a GENEVE 6081 target group; HTTP health check on the -p port, path /', () => {
  const lb = resource('GatewayLoadBalancer', 'AWS::ElasticLoadBalancingV2::LoadBalancer');
  assert.equal(lb.Type, 'gateway');
  assert.deepEqual(lb.Subnets, { Ref: 'GwlbSubnetIds' });
  const tg = resource('TargetGroup', 'AWS::ElasticLoadBalancingV2::TargetGroup');
  assert.equal(tg.Protocol, 'GENEVE');
  assert.equal(tg.Port, 6081);
  assert.equal(tg.HealthCheckProtocol, 'HTTP');
  assert.equal(tg.HealthCheckPath, '/');
  assert.deepEqual(tg.HealthCheckPort, { Ref: 'HealthPort' });
  const l = resource('Listener', 'AWS::ElasticLoadBalancingV2::Listener');
  assert.deepEqual(l.LoadBalancerArn, { Ref: 'GatewayLoadBalancer' });
  assert.deepEqual(l.DefaultActions, [{ Type: 'forward', TargetGroupArn: { Ref: 'TargetGroup' } }]);
  const a = attrs(tg.TargetGroupAttributes);
  assert.deepEqual(a.get('deregistration_delay.timeout_seconds'), { Ref: 'DeregistrationDelaySeconds' });
  assert.deepEqual(a.get('target_failover.on_deregistration'), { Ref: 'FlowRebalance' });
  assert.deepEqual(a.get('target_failover.on_unhealthy'), { Ref: 'FlowRebalance' }, 'GWLB wants both failover attributes set alike');
  assert.equal(a.get('tcp.idle_timeout.seconds'), undefined, 'not a target group attribute for GWLB');
  assert.deepEqual(attrs(l.ListenerAttributes).get('tcp.idle_timeout.seconds'), { Ref: 'TcpIdleTimeout' }, 'a listener attribute');
});

test('only the GWLB subnets reach Geneve and the health port: one rule pair per GwlbSubnetCidrs item, 1 to 6 subnets', () => {
  // A list of the subnets' CIDRs, required (no default), each item an IPv4 CIDR; no parameter
  // offers one CIDR for everything (the VPC CIDR let every host of the VPC forge Geneve and read
  // /status).
  const p = obj(params.GwlbSubnetCidrs);
  assert.equal(p.Type, 'CommaDelimitedList');
  assert.ok(!('Default' in p), 'GwlbSubnetCidrs has no default');
  assert.ok(!('GwlbCidr' in params), 'no single GwlbCidr parameter');
  assert.ok(allowed('GwlbSubnetCidrs', '198.18.0.0/28,198.18.1.0/28'));
  for (const bad of ['', '198.18.0.0', '198.18.0.0/28,', 'vpc', '198.18.0.0/28,2001:db8::/64']) assert.ok(!allowed('GwlbSubnetCidrs', bad), `'${bad}' refused`);
  const groups = obj(obj(tpl.Metadata)['AWS::CloudFormation::Interface']).ParameterGroups as J[];
  assert.ok(groups.some((g) => (g.Parameters as string[]).includes('GwlbSubnetCidrs')), 'GwlbSubnetCidrs is in a parameter group');
  const sg = resource('ApplianceSecurityGroup', 'AWS::EC2::SecurityGroup');
  for (let n = 1; n <= 6; n++) {
    const cidrs = SAMPLE_CIDRS.slice(0, n);
    const ingress = evaluate(sg.SecurityGroupIngress, paramValues({ GwlbSubnetCidrs: cidrs, HealthPort: '8080' })) as J[];
    assert.deepEqual(ingress.map((r) => [r.IpProtocol, r.FromPort, r.ToPort, r.CidrIp]), cidrs.flatMap((c) => [['udp', 6081, 6081, c], ['tcp', '8080', '8080', c]]), `${n} GWLB subnets`);
    for (const r of ingress) assert.ok(typeof r.Description === 'string' && r.Description.length > 0);
  }
});

test('the release checksum is required: 64 hex digits, checked unconditionally by the user data', () => {
  const p = obj(params.ReleaseSha256);
  assert.ok(!('Default' in p), 'ReleaseSha256 has no default');
  assert.ok(allowed('ReleaseSha256', SHA));
  for (const bad of ['', 'ab'.repeat(31) + 'a', 'ab'.repeat(33), 'g'.repeat(64), ` ${SHA}`]) assert.ok(!allowed('ReleaseSha256', bad), `'${bad}' refused`);
  const ud = renderUserData();
  const check = ud.split('\n').filter((l) => l.includes('sha256sum'));
  assert.deepEqual(check, [`echo '${SHA}  /root/gwlbtun.rpm' | sha256sum -c -`], 'one unconditional sha256sum -c of the downloaded RPM');
  // set -e: a mismatch ends the script before anything is installed.
  assert.ok(ud.indexOf('sha256sum') < ud.indexOf('dnf install -y /root/gwlbtun.rpm'), 'checked before it is installed');
  assert.match(ud, /^set -euo pipefail$/m);
});

test('Auto Scaling group: the launch template, the target group, a termination lifecycle hook, CPU target tracking', () => {
  const asg = resource('AutoScalingGroup', 'AWS::AutoScaling::AutoScalingGroup');
  assert.deepEqual(asg.VPCZoneIdentifier, { Ref: 'ApplianceSubnetIds' });
  assert.deepEqual(asg.TargetGroupARNs, [{ Ref: 'TargetGroup' }]);
  assert.equal(asg.HealthCheckType, 'ELB');
  assert.deepEqual(obj(asg.LaunchTemplate).LaunchTemplateId, { Ref: 'LaunchTemplate' });
  const hooks = asg.LifecycleHookSpecificationList as J[];
  assert.equal(hooks.length, 1);
  assert.equal(hooks[0]!.LifecycleTransition, 'autoscaling:EC2_INSTANCE_TERMINATING');
  assert.equal(hooks[0]!.DefaultResult, 'CONTINUE', 'an instance nobody completes the hook for still terminates');
  assert.deepEqual(hooks[0]!.HeartbeatTimeout, { Ref: 'TerminationWaitSeconds' });
  const pol = resource('CpuScalingPolicy', 'AWS::AutoScaling::ScalingPolicy');
  assert.equal(pol.PolicyType, 'TargetTrackingScaling');
  assert.deepEqual(pol.AutoScalingGroupName, { Ref: 'AutoScalingGroup' });
  // Amazon Linux 2023 for the chosen CPU, from AWS's public SSM parameter.
  const img = obj(obj(resource('LaunchTemplate', 'AWS::EC2::LaunchTemplate').LaunchTemplateData).ImageId)['Fn::Sub'] as [string, J];
  assert.match(img[0], /^\{\{resolve:ssm:\/aws\/service\/ami-amazon-linux-latest\/al2023-ami-kernel-default-\$\{AmiArch\}\}\}$/);
  const arch = obj(params.Architecture);
  const map = obj(obj(tpl.Mappings).ArchMap);
  assert.deepEqual(arch.AllowedValues, ['x64', 'arm64'], 'the release RPMs scripts/package.js makes');
  assert.deepEqual(Object.fromEntries(Object.entries(map).map(([k, v]) => [k, obj(v).Ami])), { x64: 'x86_64', arm64: 'arm64' });
});

test('user data installs the release RPM of the instance\'s CPU with dnf; the RPM brings the unit and the user', () => {
  // ReleaseUrl names an RPM (npm run package: gwlbtun-<version>-<release>.<x86_64|aarch64>.rpm).
  assert.ok(allowed('ReleaseUrl', 'https://example.com/gwlbtun-0.1.0-1.aarch64.rpm?X-Amz-Signature=ab'));
  for (const bad of ['https://example.com/gwlbtun-0.1.0-linux-x64.tar.gz', 'http://example.com/gwlbtun-0.1.0-1.x86_64.rpm', 'https://example.com/gwlbtun.deb']) assert.ok(!allowed('ReleaseUrl', bad), `'${bad}' refused`);
  // The RPM's architecture (what rpm calls the CPUs, as in its file name) is checked before dnf
  // installs it, with its own message; Node.js comes first, from nodejs<NodeMajor>, which
  // satisfies the RPM's Requires.
  for (const [arch, rpmArch] of [['x64', 'x86_64'], ['arm64', 'aarch64']] as const) {
    const ud = renderUserData({ Architecture: arch, NodeMajor: '24' });
    const lines = ud.split('\n');
    const at = (prefix: string): number => {
      const i = lines.findIndex((l) => l.startsWith(prefix));
      assert.ok(i >= 0, `${arch}: a line starting '${prefix}'`);
      return i;
    };
    assert.match(ud, new RegExp(`^test "\\$\\(rpm -qp --qf '%\\{ARCH\\}' /root/gwlbtun\\.rpm\\)" = ${rpmArch} \\|\\| `, 'm'), `${arch}: the RPM must be ${rpmArch}`);
    assert.ok(at('dnf install -y nodejs24 ') < at('dnf install -y /root/gwlbtun.rpm'), `${arch}: Node.js before the RPM`);
    assert.ok(at('echo ') < at('test "$(rpm -qp') && at('test "$(rpm -qp') < at('dnf install -y /root/gwlbtun.rpm'), `${arch}: checksum, then architecture, then install`);
    assert.ok(at('dnf install -y /root/gwlbtun.rpm') < at('systemctl enable --now gwlbtun.service'));
    // No tarball any more; the unit (/usr/lib/systemd/system) and the system user (%post) come
    // from the RPM, the user data adds only its drop-in and the sysctl settings.
    assert.doesNotMatch(ud, /tar -x|\.tar\.gz|systemd-sysusers|\/etc\/systemd\/system\/gwlbtun\.service(?!\.d)/);
    assert.match(ud, /^cat >\/etc\/systemd\/system\/gwlbtun\.service\.d\/deploy\.conf <<'EOF'$/m);
  }
});

test('VPC endpoint service on the GWLB; its service name is an output', () => {
  const svc = resource('EndpointService', 'AWS::EC2::VPCEndpointService');
  assert.deepEqual(svc.GatewayLoadBalancerArns, [{ Ref: 'GatewayLoadBalancer' }]);
  const out = obj(obj(tpl.Outputs).ServiceName);
  assert.deepEqual(out.Value, { 'Fn::Sub': 'com.amazonaws.vpce.${AWS::Region}.${EndpointService}' });
});

test('drain settings agree: the instance outlives the deregistration delay; systemd outwaits --drain', () => {
  const dereg = obj(params.DeregistrationDelaySeconds);
  const wait = obj(params.TerminationWaitSeconds);
  assert.ok(Number(wait.Default) > Number(dereg.Default), 'TerminationWaitSeconds default above the deregistration delay default');
  const ud = userDataSource();
  const dropInStop = Number(/^TimeoutStopSec=(\d+)$/m.exec(ud)?.[1]);
  const unitStop = Number(/^TimeoutStopSec=(\d+)$/m.exec(fs.readFileSync(UNIT, 'utf8'))?.[1]);
  assert.ok(unitStop > 0 && dropInStop > 0, 'both set TimeoutStopSec');
  const maxDrain = Number(obj(params.DrainSeconds).MaxValue);
  assert.ok(dropInStop >= unitStop + maxDrain, `drop-in TimeoutStopSec ${dropInStop} >= the unit's ${unitStop} + the longest --drain ${maxDrain}`);
  assert.ok(Number(obj(params.HealthPort).MinValue) >= 1024, 'the unit has no CAP_NET_BIND_SERVICE');
});

test('user data: valid bash; installs the release layout; ExecStart is a command line gwlbtun accepts', () => {
  const ud = renderUserData();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-cfn-'));
  try {
    fs.writeFileSync(path.join(dir, 'user-data.sh'), ud);
    const r = spawnSync('bash', ['-n', path.join(dir, 'user-data.sh')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `bash -n:\n${r.stderr}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // Every /opt/gwlbtun path it uses is in the release tree (scripts/package.js copies these).
  for (const m of ud.matchAll(/\/opt\/gwlbtun\/((?:examples|bin)\/[A-Za-z0-9_./-]+)/g)) {
    assert.ok(fs.existsSync(path.join(ROOT, m[1]!)), `${m[1]} exists in the repository (and so in the release)`);
  }
  for (const h of obj(params.Hook).AllowedValues as string[]) {
    fs.accessSync(path.join(ROOT, 'examples', 'hooks', `${h}.sh`), fs.constants.X_OK);
  }
  const exec = ud.split('\n').filter((l) => l.startsWith('ExecStart=/opt/gwlbtun/bin/gwlbtun '));
  assert.equal(exec.length, 1, 'one ExecStart command line');
  const argv = exec[0]!.split(' ').slice(1);
  const src = userDataSource();
  for (const f of ['-p ${HealthPort}', '-i ${TcpIdleTimeout}', '${GwlbCidrFlags}', '--drain ${DrainSeconds}']) assert.ok(src.includes(f), `ExecStart has ${f}`);
  // It must parse as is (--drain included), with the release's paths mapped to this checkout.
  const rest = argv.map((a) => a.replace(/^\/opt\/gwlbtun\//, ROOT + '/'));
  const cli = parseCli(rest, 2);
  assert.equal(cli.healthPort, Number(paramDefault('HealthPort')));
  assert.equal(cli.daemon.tcpIdleS, Number(paramDefault('TcpIdleTimeout')));
  assert.deepEqual(cli.daemon.allow, SAMPLE_CIDRS.slice(0, 2).flatMap((c) => parseCidr('--gwlb-cidr', c)), 'one --gwlb-cidr per GWLB subnet CIDR');
  assert.equal(cli.daemon.createHook, path.join(ROOT, 'examples', 'hooks', `${paramDefault('Hook')}.sh`));
  // Every GWLB subnet, as many as there are, and nothing wider.
  for (let n = 1; n <= 6; n++) {
    const line = renderUserData({ GwlbSubnetCidrs: SAMPLE_CIDRS.slice(0, n) }).split('\n').find((l) => l.startsWith('ExecStart=/opt/gwlbtun/bin/gwlbtun '))!;
    const c = parseCli(line.split(' ').slice(1).map((a) => a.replace(/^\/opt\/gwlbtun\//, ROOT + '/')), 2);
    assert.deepEqual(c.daemon.allow, SAMPLE_CIDRS.slice(0, n).flatMap((x) => parseCidr('--gwlb-cidr', x)), `${n} GWLB subnets`);
  }
});
