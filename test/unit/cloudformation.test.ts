// deploy/cloudformation/gwlbtun.yaml: cfn-lint (AWS's CloudFormation linter: resource types,
// property names and types, required properties, references) must pass with no error or warning;
// then what cfn-lint cannot know: the target group's health check goes to the -p port the user
// data gives gwlbtun, the drain settings agree with each other and with the systemd unit, the
// user data is valid bash whose paths exist in the release tree and whose ExecStart line our CLI
// accepts. cfn-lint is a Python program (pip's cfn-lint; Debian has no package): when it is missing
// this test fails, it does not skip.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseCli } from '../../src/cli';

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

/** The user data script, as written in the template (before substitution). */
function userDataSource(): string {
  const lt = obj(resource('LaunchTemplate', 'AWS::EC2::LaunchTemplate').LaunchTemplateData);
  const b64 = obj(lt.UserData);
  const sub = b64['Fn::Base64'] as J;
  const s = sub['Fn::Sub'];
  assert.equal(typeof s, 'string', 'user data is one Fn::Sub string');
  return s as string;
}

/** The user data with every ${Param} replaced by its default (and sample values where there is none). */
function renderUserData(): string {
  const samples: Record<string, string> = {
    ReleaseUrl: 'https://example.com/gwlbtun-0.1.0-linux-x64.tar.gz',
    GwlbCidr: '198.18.0.0/15',
    'AWS::Region': 'us-east-1',
    'AWS::StackName': 'test',
  };
  return userDataSource().replace(/\$\{([A-Za-z0-9:]+)\}/g, (_, name: string) => {
    if (name in samples) return samples[name]!;
    assert.ok(name in params, `user data refers to \${${name}}, which is no parameter`);
    return paramDefault(name);
  });
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
  assert.deepEqual(a.get('tcp.idle_timeout.seconds'), { Ref: 'TcpIdleTimeout' });
  // The security group lets the GWLB range reach exactly Geneve and the health port.
  const sg = resource('ApplianceSecurityGroup', 'AWS::EC2::SecurityGroup');
  const ingress = sg.SecurityGroupIngress as J[];
  assert.deepEqual(ingress.map((r) => [r.IpProtocol, r.FromPort, r.ToPort, r.CidrIp]), [
    ['udp', 6081, 6081, { Ref: 'GwlbCidr' }],
    ['tcp', { Ref: 'HealthPort' }, { Ref: 'HealthPort' }, { Ref: 'GwlbCidr' }],
  ]);
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
  assert.deepEqual(arch.AllowedValues, ['x64', 'arm64'], 'the release tarballs scripts/package.js makes');
  assert.deepEqual(Object.fromEntries(Object.entries(map).map(([k, v]) => [k, obj(v).Ami])), { x64: 'x86_64', arm64: 'arm64' });
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
  for (const f of ['-p ${HealthPort}', '-i ${TcpIdleTimeout}', '--gwlb-cidr ${GwlbCidr}', '--drain ${DrainSeconds}']) assert.ok(src.includes(f), `ExecStart has ${f}`);
  // It must parse as is (--drain included), with the release's paths mapped to this checkout.
  const rest = argv.map((a) => a.replace(/^\/opt\/gwlbtun\//, ROOT + '/'));
  const cli = parseCli(rest, 2);
  assert.equal(cli.healthPort, Number(paramDefault('HealthPort')));
  assert.equal(cli.daemon.tcpIdleS, Number(paramDefault('TcpIdleTimeout')));
  assert.ok(cli.daemon.allow.length > 0, '--gwlb-cidr is in effect');
  assert.equal(cli.daemon.createHook, path.join(ROOT, 'examples', 'hooks', `${paramDefault('Hook')}.sh`));
});
