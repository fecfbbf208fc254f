// deploy/terraform/: the Terraform module, checked here without an AWS account or checkov (a
// Python program; no PyPI here), and with terraform itself only where it is installed (it is no
// npm or Debian package). Four layers:
//
// 1. Syntax: every .tf is parsed by HashiCorp's own HCL parser (the Go hcl library built to
//    WebAssembly, npm's @cdktf/hcl2json, a devDependency), which fails on what terraform would
//    refuse to read. Expressions come back as source text; helpers/hcl-eval.ts evaluates them
//    (validation blocks, preconditions, locals, dynamic blocks, the user data template) for given
//    variable values, with data.aws_subnet answered by the test.
// 2. The checkov rules that concern these resources, implemented below (RULES) with checkov's IDs:
//    CKV_AWS_79 (IMDSv1 disabled), CKV_AWS_341 (metadata hop limit 1), CKV_AWS_8 (EBS encrypted,
//    applied to the launch template), CKV_AWS_88 (no public IP), CKV_AWS_46 (no AWS keys in user
//    data), CKV_AWS_23 (every security group and rule described), CKV_AWS_24/25/260/277 (no ingress
//    from 0.0.0.0/0 to 22, 3389, 80 or all ports), CKV_AWS_382 (no egress to 0.0.0.0/0 on all
//    ports), CKV_AWS_60/61/274 (the role: assumed by ec2.amazonaws.com only, no admin policy),
//    CKV_AWS_91/150/152 (GWLB: access logs, deletion protection, cross-zone), CKV_AWS_2/103
//    (listener protocol, TLS), CKV_AWS_261 (target group health check), CKV2_AWS_15 (ELB health
//    checks), CKV_AWS_315 (launch template), CKV_AWS_153 (group tags), CKV_AWS_123 (endpoint
//    service acceptance). A rule a resource fails must be skipped in the file with
//    `#checkov:skip=ID:reason` (how checkov reads skips), with a reason.
// 3. Parity with deploy/cloudformation/gwlbtun.yaml (read with PyYAML, which cfn-lint brings):
//    every parameter has a variable with the same default that accepts and refuses the same
//    values; the same resources with the same ports, health check, attributes, lifecycle hook and
//    drain timing; the same systemd drop-in in the user data, whose ExecStart our CLI accepts.
// 4. Where terraform and a local copy of the hashicorp/aws provider are there (this project's
//    machines have both): terraform validate (the provider's schema), fmt -check, and terraform
//    test (deploy/terraform/tests/: plans against a mock provider). Skipped, saying so, elsewhere.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseCidr, parseCli } from '../../src/cli';
import { evaluate, type Scope } from './helpers/hcl-eval';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const MODULE = path.join(ROOT, 'deploy', 'terraform');
const TEMPLATE = path.join(ROOT, 'deploy', 'cloudformation', 'gwlbtun.yaml');

// Loaded with require() and a type of our own: the package's .d.ts pulls the DOM library into the
// whole compilation.
const hcl = require('@cdktf/hcl2json') as { parse(file: string, text: string): Promise<Record<string, unknown>> };

type J = Record<string, any>;

interface Module {
  resource: Record<string, Record<string, J>>;
  data: Record<string, Record<string, J>>;
  variable: Record<string, J>;
  output: Record<string, J>;
  locals: J;
  terraform: J[];
  /** `#checkov:skip=` lines by "type.name". */
  skips: Map<string, Map<string, string>>;
  files: string[];
}

let loaded: Promise<Module> | undefined;

function load(): Promise<Module> {
  loaded ??= (async () => {
    const files = fs.readdirSync(MODULE).filter((f) => f.endsWith('.tf')).sort();
    const m: Module = { resource: {}, data: {}, variable: {}, output: {}, locals: {}, terraform: [], skips: new Map(), files };
    for (const f of files) {
      const text = fs.readFileSync(path.join(MODULE, f), 'utf8');
      const j = await hcl.parse(f, text);
      for (const kind of ['resource', 'data'] as const) {
        for (const [type, byName] of Object.entries((j[kind] ?? {}) as J)) {
          for (const [name, blocks] of Object.entries(byName as J)) {
            assert.equal((blocks as J[]).length, 1, `${kind} ${type}.${name} is declared once`);
            (m[kind][type] ??= {})[name] = (blocks as J[])[0]!;
          }
        }
      }
      for (const kind of ['variable', 'output'] as const) {
        for (const [name, blocks] of Object.entries((j[kind] ?? {}) as J)) {
          assert.ok(!(name in m[kind]), `${kind} ${name} is declared once`);
          m[kind][name] = (blocks as J[])[0]!;
        }
      }
      for (const l of (j.locals ?? []) as J[]) Object.assign(m.locals, l);
      m.terraform.push(...((j.terraform ?? []) as J[]));
      // checkov reads `#checkov:skip=ID:reason` inside the resource's block.
      let current: string | undefined;
      for (const line of text.split('\n')) {
        const r = /^resource "([^"]+)" "([^"]+)"/.exec(line);
        if (r !== null) current = `${r[1]}.${r[2]}`;
        else if (/^\S/.test(line) && !line.startsWith('}') && !line.startsWith('#')) current = undefined;
        const s = /^\s*#\s*checkov:skip=([A-Z0-9_]+):?(.*)$/.exec(line);
        if (s !== null) {
          assert.ok(current !== undefined, `${f}: a checkov skip outside a resource: ${line}`);
          if (!m.skips.has(current)) m.skips.set(current, new Map());
          m.skips.get(current)!.set(s[1]!, s[2]!.trim());
        }
      }
    }
    return m;
  })();
  return loaded;
}

// ---- The CloudFormation template, as JSON -------------------------------------------------------

function loadTemplate(): J {
  const code = [
    'import json, sys, yaml',
    'class L(yaml.SafeLoader): pass',
    'def tag(loader, suffix, node):',
    '    v = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node, deep=True)',
    "    return {'Ref': v} if suffix == 'Ref' else {'Fn::GetAtt': v.split('.', 1) if isinstance(v, str) else v} if suffix == 'GetAtt' else {'Fn::' + suffix: v}",
    "L.add_multi_constructor('!', tag)",
    'print(json.dumps(yaml.load(open(sys.argv[1]), Loader=L)))',
  ].join('\n');
  const r = spawnSync('python3', ['-c', code, TEMPLATE], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `reading the CloudFormation template with PyYAML (python3-yaml; cfn-lint brings it) failed:\n${r.stderr}${r.error ?? ''}`);
  return JSON.parse(r.stdout) as J;
}

const tpl = loadTemplate();
const cfnParams = tpl.Parameters as J;
const cfnRes = (name: string): J => (tpl.Resources as J)[name].Properties as J;

// ---- Evaluation ---------------------------------------------------------------------------------

const SHA = 'ab'.repeat(32);
const SUBNETS = ['subnet-0a0000000000000a1', 'subnet-0a0000000000000a2', 'subnet-0a0000000000000a3', 'subnet-0a0000000000000a4', 'subnet-0a0000000000000a5', 'subnet-0a0000000000000a6'];
const CIDRS = ['198.18.0.0/28', '198.18.1.0/28', '198.18.2.0/28', '198.18.3.0/28', '198.18.4.0/28', '198.18.5.0/28'];

/** Variable values: the defaults, samples for the required ones, and `over`. */
function varValues(m: Module, over: J = {}): J {
  const v: J = {
    vpc_id: 'vpc-0a00000000000000a',
    gwlb_subnet_ids: SUBNETS.slice(0, 2),
    appliance_subnet_ids: SUBNETS.slice(0, 2),
    release_url: 'https://example.com/gwlbtun-0.1.0-1.x86_64.rpm',
    release_sha256: SHA,
  };
  for (const [name, d] of Object.entries(m.variable)) if (!(name in v) && 'default' in d) v[name] = d.default;
  return { ...v, ...over };
}

/** The scope expressions see: var, local (evaluated when first read), data.aws_subnet.gwlb answering
 * each subnet of SUBNETS with the CIDR at the same place in CIDRS. */
function scopeFor(m: Module, over: J = {}): Scope {
  const scope: Scope = { var: varValues(m, over), path: { module: MODULE } };
  const subnets = Object.fromEntries(SUBNETS.map((s, i) => [s, { id: s, cidr_block: CIDRS[i] }]));
  scope.data = { aws_subnet: { gwlb: subnets }, aws_partition: { current: { partition: 'aws' } } };
  const local: J = {};
  for (const [k, x] of Object.entries(m.locals)) {
    let memo: { v: unknown } | undefined;
    Object.defineProperty(local, k, { enumerable: true, get: () => (memo ??= { v: evaluate(x, scope) }).v });
  }
  scope.local = local;
  // Other resources' attributes: placeholders ("aws_lb.gwlb.arn"), as unknown until apply.
  for (const [type, byName] of Object.entries(m.resource)) {
    scope[type] = Object.fromEntries(Object.keys(byName).map((n) => [n, new Proxy({}, { has: () => true, get: (_t, k) => `${type}.${n}.${String(k)}` })]));
  }
  return scope;
}

/** Whether variable `name`'s validation blocks all pass for `value` (Terraform checks each). */
function valid(m: Module, name: string, value: unknown): boolean {
  const scope = scopeFor(m, { [name]: value });
  return ((m.variable[name]!.validation ?? []) as J[]).every((b) => evaluate(b.condition, scope) === true);
}

/** The blocks named `kind` of a resource as Terraform expands them: static ones and dynamic ones
 * (for_each over the collection, the iterator named after the block), evaluated. */
function blocks(m: Module, r: J, kind: string, over: J = {}): J[] {
  const scope = scopeFor(m, over);
  const out = ((r[kind] ?? []) as J[]).map((b) => evaluate(b, scope) as J);
  for (const d of ((r.dynamic ?? {})[kind] ?? []) as J[]) {
    const coll = evaluate(d.for_each, scope);
    const entries = Array.isArray(coll) ? coll.map((v, i) => [i, v] as const) : Object.entries(coll as J);
    for (const [key, value] of entries) out.push(evaluate(d.content[0], { ...scope, [kind]: { key, value } }) as J);
  }
  return out;
}

/** The user data as an instance gets it (templatefile() with local.user_data_vars). */
function renderUserData(m: Module, over: J = {}): string {
  const text = fs.readFileSync(path.join(MODULE, 'user-data.sh.tftpl'), 'utf8');
  assert.ok(!/(^|[^%])%\{/.test(text), 'the user data template uses no template directives (%%{ is a literal %{)');
  const vars = scopeFor(m, over).local as J;
  return evaluate(text, vars.user_data_vars as J) as string;
}

const CFN_TO_TF: Record<string, string> = {
  VpcId: 'vpc_id',
  GwlbSubnetIds: 'gwlb_subnet_ids',
  ApplianceSubnetIds: 'appliance_subnet_ids',
  CrossZone: 'cross_zone',
  Architecture: 'architecture',
  InstanceType: 'instance_type',
  NodeMajor: 'node_major',
  ReleaseUrl: 'release_url',
  ReleaseSha256: 'release_sha256',
  Hook: 'hook',
  HealthPort: 'health_port',
  TcpIdleTimeout: 'tcp_idle_timeout',
  MinSize: 'min_size',
  MaxSize: 'max_size',
  DesiredCapacity: 'desired_capacity',
  CpuTargetPercent: 'cpu_target_percent',
  DeregistrationDelaySeconds: 'deregistration_delay_seconds',
  TerminationWaitSeconds: 'termination_wait_seconds',
  DrainSeconds: 'drain_seconds',
  FlowRebalance: 'flow_rebalance',
  AcceptanceRequired: 'acceptance_required',
  AllowedPrincipals: 'allowed_principals',
};

/** The template's parameter `p` as the module's variable would hold it. */
function asTf(m: Module, tfName: string, v: unknown): unknown {
  const type = String(m.variable[tfName]!.type);
  if (type === '${bool}') return v === 'true' || v === true;
  if (type === '${number}') return Number(v);
  if (type.startsWith('${list(')) return typeof v === 'string' ? (v === '' ? [] : v.split(',')) : v;
  return v;
}

// ---- Tests --------------------------------------------------------------------------------------

test('the HCL evaluator: Terraform\'s results for the constructs the module uses; what it does not know throws', () => {
  const s: Scope = { var: { n: 5, l: ['a', 'b'], u: 'https://x/y.rpm', m: { k: 'v' } }, local: { arch: { x64: 'x86_64' } } };
  const cases: [string, unknown][] = [
    ['${var.n >= 1 && var.n <= 10 && floor(var.n) == var.n}', true],
    ['${!(var.n > 4) || var.n - 1 == 4 * 1}', true],
    ['${contains(["a", "b"], var.l[1])}', true],
    ['${can(regex("^https://\\\\S+\\\\.rpm(\\\\?\\\\S*)?$", var.u))}', true],
    ['${can(regex("^http://", var.u))}', false],
    ['${alltrue([for x in var.l : length(x) == 1])}', true],
    ['${join(" ", [for c in var.l : "--f ${c}"])}', '--f a --f b'],
    ['${[for i, x in var.l : i]}', [0, 1]],
    ['${local.arch["x64"]}-${var.m.k}', 'x86_64-v'],
    ['${var.n > 9 ? "big" : "small"}', 'small'],
    ['$${literal} %%{x}', '${literal} %{x}'],
    ['${merge(var.m, { Name = "n" })}', { k: 'v', Name: 'n' }],
    ['${{ for k, v in merge(var.m, { Name = "n" }) : k => v if k != "Name" }}', { k: 'v' }],
    ['${[for x in var.l : x if x != "a"]}', ['b']],
  ];
  for (const [e, want] of cases) assert.deepEqual(evaluate(e, s), want, e);
  for (const bad of ['${var.missing}', '${upper("a")}', '${var.l[2]}', '${var.n +}', '${var.u > 1}', '%{ if true }x%{ endif }']) assert.throws(() => evaluate(bad, s), bad);
});

test('every .tf parses with HashiCorp\'s HCL parser (which refuses a broken file); the module is complete', async () => {
  const m = await load();
  assert.deepEqual(m.files, ['main.tf', 'outputs.tf', 'variables.tf', 'versions.tf']);
  await assert.rejects(hcl.parse('broken.tf', 'resource "aws_lb" "x" {\n  subnets = \n}\n'), /Invalid expression/, 'the parser rejects a broken file');
  const req = m.terraform[0]!.required_providers[0].aws;
  assert.equal(req.source, 'hashicorp/aws');
  assert.match(req.version, /^>= 5\.9[1-9]\./, 'provider 5.91 or later (listener tcp_idle_timeout_seconds)');
  assert.ok(fs.existsSync(path.join(MODULE, 'README.md')), 'deploy/terraform/README.md');
  // Every resource's type is one of the AWS resources this module means to use.
  assert.deepEqual(Object.keys(m.resource).sort(), [
    'aws_autoscaling_group', 'aws_autoscaling_policy', 'aws_iam_instance_profile', 'aws_iam_role', 'aws_iam_role_policy_attachment',
    'aws_launch_template', 'aws_lb', 'aws_lb_listener', 'aws_lb_target_group', 'aws_security_group', 'aws_vpc_endpoint_service',
  ]);
});

test('variables: each documented; each template parameter has one with the same default, accepting and refusing the same values', async () => {
  const m = await load();
  for (const [name, v] of Object.entries(m.variable)) {
    assert.ok(typeof v.description === 'string' && v.description.length > 20, `variable ${name} has a description`);
    assert.ok(typeof v.type === 'string', `variable ${name} has a type`);
    for (const b of (v.validation ?? []) as J[]) assert.ok(String(b.error_message).startsWith(`${name}: `) || String(b.error_message).length > 10, `${name}: an error message`);
  }
  for (const [cfn, tf] of Object.entries(CFN_TO_TF)) {
    const p = cfnParams[cfn] as J;
    assert.ok(p !== undefined, `the template still has ${cfn}`);
    const v = m.variable[tf];
    assert.ok(v !== undefined, `${cfn} -> variable ${tf}`);
    assert.equal('default' in v, 'Default' in p, `${tf} is required exactly when ${cfn} is`);
    if ('Default' in p) {
      assert.deepEqual(v.default, asTf(m, tf, p.Default), `${tf}'s default is ${cfn}'s`);
      assert.ok(valid(m, tf, v.default), `${tf}'s default passes its own validation`);
    }
    if (Array.isArray(p.AllowedValues)) {
      for (const a of p.AllowedValues as string[]) assert.ok(valid(m, tf, asTf(m, tf, a)), `${tf} accepts ${a}`);
      if (!String(v.type).includes('bool')) for (const bad of ['', 'x86_64', 'other', '18']) assert.equal(valid(m, tf, bad), false, `${tf} refuses '${bad}'`);
    }
    if ('MinValue' in p) {
      assert.ok(valid(m, tf, Number(p.MinValue)), `${tf} accepts ${cfn}'s MinValue`);
      assert.equal(valid(m, tf, Number(p.MinValue) - 1), false, `${tf} refuses below ${cfn}'s MinValue`);
      // Counts and seconds are whole numbers (CloudFormation's Number would take 2.5 instances);
      // a CPU percentage may be fractional.
      if (tf !== 'cpu_target_percent') assert.equal(valid(m, tf, Number(p.MinValue) + 0.5), false, `${tf} refuses ${Number(p.MinValue) + 0.5}`);
    }
    if ('MaxValue' in p) {
      assert.ok(valid(m, tf, Number(p.MaxValue)), `${tf} accepts ${cfn}'s MaxValue`);
      assert.equal(valid(m, tf, Number(p.MaxValue) + 1), false, `${tf} refuses above ${cfn}'s MaxValue`);
    }
  }
  // Patterns: the template's own examples, against both.
  const re = (cfn: string) => new RegExp(String(cfnParams[cfn].AllowedPattern));
  for (const s of [SHA, '', 'ab'.repeat(31) + 'a', 'ab'.repeat(33), 'g'.repeat(64), ` ${SHA}`, SHA.toUpperCase()]) {
    assert.equal(valid(m, 'release_sha256', s), re('ReleaseSha256').test(s), `release_sha256 '${s}' as ReleaseSha256`);
  }
  // release_url: an https:// URL of the RPM, as the template's ReleaseUrl.
  for (const u of ['https://example.com/gwlbtun-0.1.0-1.x86_64.rpm', 'https://b.s3.amazonaws.com/gwlbtun-0.1.0-1.aarch64.rpm?X-Amz-Signature=ab', 'http://example.com/gwlbtun-0.1.0-1.x86_64.rpm', 'https://example.com/gwlbtun-0.1.0-linux-x64.tar.gz', 'https://example.com/a.rpm x', '']) {
    assert.equal(valid(m, 'release_url', u), re('ReleaseUrl').test(u), `release_url '${u}' as ReleaseUrl`);
  }
  assert.ok(valid(m, 'release_url', 'https://example.com/gwlbtun-0.1.0-1.x86_64.rpm') && !valid(m, 'release_url', 'http://example.com/gwlbtun-0.1.0-1.x86_64.rpm'));
  // What CloudFormation types check, validation does here.
  assert.equal(valid(m, 'vpc_id', 'vpc-0123456789abcdef0'), true);
  for (const [n, bad] of [['vpc_id', 'subnet-0123456789abcdef0'], ['gwlb_subnet_ids', []], ['gwlb_subnet_ids', [...SUBNETS, 'subnet-0a0000000000000a7']], ['gwlb_subnet_ids', ['vpc-0123456789abcdef0']], ['appliance_subnet_ids', []], ['allowed_principals', ['*']], ['name', 'a'.repeat(21)]] as const) {
    assert.equal(valid(m, n, bad), false, `${n} refuses ${JSON.stringify(bad)}`);
  }
  assert.ok(valid(m, 'gwlb_subnet_ids', SUBNETS) && valid(m, 'allowed_principals', ['arn:aws:iam::123456789012:root']));
  // No CIDR variable: the GWLB subnets' CIDRs are looked up (below).
  assert.ok(!Object.keys(m.variable).some((n) => /cidr/.test(n)), 'no variable for the GWLB subnets\' CIDRs');
});

test('GWLB, listener and GENEVE 6081 target group as in the template: HTTP health check on the -p port, path /; attributes', async () => {
  const m = await load();
  const s = scopeFor(m, { health_port: 9090, tcp_idle_timeout: 600, deregistration_delay_seconds: 120, flow_rebalance: 'rebalance', cross_zone: true });
  const lb = evaluate(m.resource.aws_lb!.gwlb, s) as J;
  assert.equal(lb.load_balancer_type, 'gateway');
  assert.deepEqual(lb.subnets, SUBNETS.slice(0, 2));
  assert.equal(lb.enable_cross_zone_load_balancing, true);
  const tgRaw = m.resource.aws_lb_target_group!.gwlbtun!;
  const tg = evaluate(tgRaw, s) as J;
  const ctg = cfnRes('TargetGroup');
  assert.equal(tg.protocol, ctg.Protocol);
  assert.equal(tg.port, ctg.Port);
  assert.equal(tg.target_type, ctg.TargetType);
  assert.equal(tg.deregistration_delay, 120);
  const hc = tg.health_check[0] as J;
  assert.deepEqual(
    [hc.enabled, hc.protocol, hc.port, hc.path, hc.interval, hc.timeout, hc.healthy_threshold, hc.unhealthy_threshold],
    [ctg.HealthCheckEnabled, ctg.HealthCheckProtocol, 9090, ctg.HealthCheckPath, ctg.HealthCheckIntervalSeconds, ctg.HealthCheckTimeoutSeconds, ctg.HealthyThresholdCount, ctg.UnhealthyThresholdCount],
  );
  assert.deepEqual(ctg.HealthCheckPort, { Ref: 'HealthPort' });
  assert.deepEqual(tg.target_failover, [{ on_deregistration: 'rebalance', on_unhealthy: 'rebalance' }], 'GWLB wants both failover attributes set alike');
  const attrs = new Map((ctg.TargetGroupAttributes as J[]).map((a) => [a.Key, a.Value]));
  assert.deepEqual(attrs.get('target_failover.on_deregistration'), { Ref: 'FlowRebalance' });
  // GWLB's TCP idle timeout: a listener attribute (AWS's documentation lists it there).
  const l = evaluate(m.resource.aws_lb_listener!.gwlb, s) as J;
  assert.equal(l.tcp_idle_timeout_seconds, 600);
  assert.equal(m.resource.aws_lb_listener!.gwlb!.load_balancer_arn, '${aws_lb.gwlb.arn}');
  assert.deepEqual(m.resource.aws_lb_listener!.gwlb!.default_action, [{ type: 'forward', target_group_arn: '${aws_lb_target_group.gwlbtun.arn}' }]);
  // The endpoint service on the GWLB; its name is an output, as in the template.
  const svc = m.resource.aws_vpc_endpoint_service!.gwlb!;
  assert.deepEqual(svc.gateway_load_balancer_arns, ['${aws_lb.gwlb.arn}']);
  assert.equal(evaluate(svc.acceptance_required, scopeFor(m)), true);
  assert.deepEqual(evaluate(svc.allowed_principals, scopeFor(m, { allowed_principals: ['arn:aws:iam::123456789012:root'] })), ['arn:aws:iam::123456789012:root']);
});

test('only the GWLB subnets reach Geneve and the health port: two described rules per looked-up subnet CIDR, 1 to 6 subnets', async () => {
  const m = await load();
  assert.equal(m.data.aws_subnet!.gwlb!.for_each, '${toset(var.gwlb_subnet_ids)}');
  const sg = m.resource.aws_security_group!.appliance!;
  const cfnIngress = cfnRes('ApplianceSecurityGroup').SecurityGroupIngress as J[];
  for (let n = 1; n <= 6; n++) {
    const over = { gwlb_subnet_ids: SUBNETS.slice(0, n), health_port: 8080 };
    const ingress = blocks(m, sg, 'ingress', over);
    const rules = ingress.map((r) => [r.protocol, r.from_port, r.to_port, r.cidr_blocks].join(' ')).sort();
    const want = CIDRS.slice(0, n).flatMap((c) => [`udp 6081 6081 ${c}`, `tcp 8080 8080 ${c}`]).sort();
    assert.deepEqual(rules, want, `${n} GWLB subnets`);
    // The template's wording, subnet by subnet.
    for (let i = 1; i <= n; i++) {
      assert.ok(ingress.some((r) => r.description === `Geneve from GWLB subnet ${i}`));
      assert.ok(ingress.some((r) => r.description === `GWLB health checks from GWLB subnet ${i} (gwlbtun -p)`));
    }
    const egress = blocks(m, sg, 'egress', over);
    assert.deepEqual(egress.filter((r) => r.protocol === 'udp').map((r) => r.cidr_blocks[0]), CIDRS.slice(0, n), 'Geneve back to each GWLB subnet');
  }
  assert.equal(cfnIngress[0]!.Description, 'Geneve from GWLB subnet 1');
  assert.equal(cfnIngress[1]!.Description, 'GWLB health checks from GWLB subnet 1 (gwlbtun -p)');
  // gwlbtun's --gwlb-cidr flags come from the same lookup (user data test below).
});

test('Auto Scaling group: launch template (latest), target group, ELB health checks, the termination lifecycle hook; CPU target tracking', async () => {
  const m = await load();
  const asgRaw = m.resource.aws_autoscaling_group!.appliance!;
  // (lifecycle and the dynamic tags name things that are no values: not evaluated here)
  const asg = evaluate({ ...asgRaw, lifecycle: undefined, dynamic: undefined }, scopeFor(m, { termination_wait_seconds: 400 })) as J;
  const casg = cfnRes('AutoScalingGroup');
  assert.deepEqual(asgRaw.vpc_zone_identifier, '${var.appliance_subnet_ids}');
  assert.deepEqual(asgRaw.target_group_arns, ['${aws_lb_target_group.gwlbtun.arn}']);
  assert.equal(asg.health_check_type, casg.HealthCheckType);
  assert.equal(asg.health_check_grace_period, casg.HealthCheckGracePeriod);
  assert.deepEqual(asgRaw.launch_template, [{ id: '${aws_launch_template.appliance.id}', version: '${aws_launch_template.appliance.latest_version}' }]);
  const hook = asg.initial_lifecycle_hook as J[];
  const chook = (casg.LifecycleHookSpecificationList as J[])[0]!;
  assert.equal(hook.length, 1);
  assert.deepEqual(
    [hook[0]!.name, hook[0]!.lifecycle_transition, hook[0]!.default_result, hook[0]!.heartbeat_timeout],
    [chook.LifecycleHookName, chook.LifecycleTransition, chook.DefaultResult, 400],
  );
  assert.deepEqual(asgRaw.lifecycle[0].ignore_changes, ['${desired_capacity}'], 'target tracking owns desired_capacity after creation');
  // Each tag key once (AWS refuses a group with two Name tags), var.tags included.
  const tags = blocks(m, asgRaw, 'tag', { tags: { Name: 'mine', team: 'net' } });
  assert.deepEqual(tags.map((x) => [x.key, x.value]).sort(), [['Name', 'gwlbtun-gwlbtun'], ['team', 'net']]);
  // Preconditions: the drain only works when the instance outlives the deregistration delay.
  const pre = (over: J) => (asgRaw.lifecycle[0].precondition as J[]).every((p) => evaluate(p.condition, scopeFor(m, over)) === true);
  assert.ok(pre({}));
  assert.equal(pre({ termination_wait_seconds: 300, deregistration_delay_seconds: 300 }), false);
  assert.equal(pre({ min_size: 3, desired_capacity: 2 }), false);
  assert.equal(pre({ desired_capacity: 7 }), false);
  const pol = evaluate(m.resource.aws_autoscaling_policy!.cpu, scopeFor(m)) as J;
  const cpol = cfnRes('CpuScalingPolicy');
  assert.equal(pol.policy_type, cpol.PolicyType);
  assert.equal(pol.estimated_instance_warmup, cpol.EstimatedInstanceWarmup);
  assert.equal(pol.target_tracking_configuration[0].predefined_metric_specification[0].predefined_metric_type, 'ASGAverageCPUUtilization');
  assert.equal(pol.target_tracking_configuration[0].target_value, 50);
  // Amazon Linux 2023 for the chosen CPU, from AWS's public SSM parameter (the template's ArchMap).
  for (const [arch, ami] of Object.entries((tpl.Mappings as J).ArchMap as J)) {
    const name = evaluate(m.data.aws_ssm_parameter!.al2023!.name, scopeFor(m, { architecture: arch }));
    assert.equal(name, `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${(ami as J).Ami}`);
  }
  // The launch template refuses, at plan time, the RPM of the other CPU.
  const lt = m.resource.aws_launch_template!.appliance!;
  const ltPre = (over: J) => (lt.lifecycle[0].precondition as J[]).every((p) => evaluate(p.condition, scopeFor(m, over)) === true);
  assert.ok(ltPre({ architecture: 'x64', release_url: 'https://e.com/gwlbtun-0.1.0-1.x86_64.rpm' }));
  assert.ok(ltPre({ architecture: 'arm64', release_url: 'https://e.com/gwlbtun-0.1.0-1.aarch64.rpm?X-Amz-Expires=60' }));
  assert.equal(ltPre({ architecture: 'arm64', release_url: 'https://e.com/gwlbtun-0.1.0-1.x86_64.rpm' }), false);
  assert.equal(ltPre({ architecture: 'x64', release_url: 'https://e.com/gwlbtun-0.1.0-1.aarch64.rpm' }), false);
});

// ---- checkov's rules ----------------------------------------------------------------------------

type Rule = { id: string; type: string; what: string; passes: (r: J, m: Module) => boolean };

const anywhere = (rule: J) => ((rule.cidr_blocks ?? []) as string[]).includes('0.0.0.0/0') || ((rule.ipv6_cidr_blocks ?? []) as string[]).includes('::/0');
const covers = (rule: J, port: number) => rule.protocol === '-1' || (Number(rule.from_port) <= port && port <= Number(rule.to_port));
const sgRules = (m: Module, r: J, kind: string) => [1, 6].flatMap((n) => blocks(m, r, kind, { gwlb_subnet_ids: SUBNETS.slice(0, n) }));

const RULES: Rule[] = [
  { id: 'CKV_AWS_79', type: 'aws_launch_template', what: 'IMDSv1 disabled (http_tokens required)', passes: (r) => r.metadata_options?.[0]?.http_tokens === 'required' },
  { id: 'CKV_AWS_341', type: 'aws_launch_template', what: 'metadata hop limit at most 1', passes: (r) => Number(r.metadata_options?.[0]?.http_put_response_hop_limit ?? 1) <= 1 },
  { id: 'CKV_AWS_8', type: 'aws_launch_template', what: 'EBS volumes encrypted', passes: (r) => ((r.block_device_mappings ?? []) as J[]).length > 0 && (r.block_device_mappings as J[]).every((b) => b.ebs?.[0]?.encrypted === true) },
  { id: 'CKV_AWS_88', type: 'aws_launch_template', what: 'no public IP address', passes: (r) => !((r.network_interfaces ?? []) as J[]).some((n) => n.associate_public_ip_address === true) },
  { id: 'CKV_AWS_46', type: 'aws_launch_template', what: 'no AWS access keys in the user data', passes: () => !/AKIA[0-9A-Z]{16}|aws_secret_access_key/i.test(fs.readFileSync(path.join(MODULE, 'user-data.sh.tftpl'), 'utf8')) },
  { id: 'CKV_AWS_23', type: 'aws_security_group', what: 'the group and every rule described', passes: (r, m) => typeof r.description === 'string' && r.description.length > 0 && [...sgRules(m, r, 'ingress'), ...sgRules(m, r, 'egress')].every((x) => typeof x.description === 'string' && x.description.length > 0) },
  { id: 'CKV_AWS_24', type: 'aws_security_group', what: 'no ingress from 0.0.0.0/0 to port 22', passes: (r, m) => !sgRules(m, r, 'ingress').some((x) => anywhere(x) && covers(x, 22)) },
  { id: 'CKV_AWS_25', type: 'aws_security_group', what: 'no ingress from 0.0.0.0/0 to port 3389', passes: (r, m) => !sgRules(m, r, 'ingress').some((x) => anywhere(x) && covers(x, 3389)) },
  { id: 'CKV_AWS_260', type: 'aws_security_group', what: 'no ingress from 0.0.0.0/0 to port 80', passes: (r, m) => !sgRules(m, r, 'ingress').some((x) => anywhere(x) && covers(x, 80)) },
  { id: 'CKV_AWS_277', type: 'aws_security_group', what: 'no ingress from 0.0.0.0/0 at all (stricter than checkov: any port)', passes: (r, m) => !sgRules(m, r, 'ingress').some((x) => anywhere(x)) },
  { id: 'CKV_AWS_382', type: 'aws_security_group', what: 'no egress to 0.0.0.0/0 on all ports', passes: (r, m) => !sgRules(m, r, 'egress').some((x) => anywhere(x) && (x.protocol === '-1' || (Number(x.from_port) === 0 && Number(x.to_port) >= 65535))) },
  { id: 'CKV_AWS_60', type: 'aws_iam_role', what: 'assumed by named services only (ec2.amazonaws.com)', passes: (_r, m) => JSON.stringify(m.data.aws_iam_policy_document!.assume_ec2!.statement) === JSON.stringify([{ actions: ['sts:AssumeRole'], effect: 'Allow', principals: [{ identifiers: ['ec2.amazonaws.com'], type: 'Service' }] }]) },
  { id: 'CKV_AWS_61', type: 'aws_iam_role', what: 'no inline policies (least privilege: one AWS managed policy, below)', passes: (r) => !('inline_policy' in r) && !('managed_policy_arns' in r) },
  { id: 'CKV_AWS_274', type: 'aws_iam_role_policy_attachment', what: 'no AdministratorAccess: exactly AmazonSSMManagedInstanceCore', passes: (r) => /:iam::aws:policy\/AmazonSSMManagedInstanceCore"?$/.test(String(r.policy_arn)) },
  { id: 'CKV_AWS_91', type: 'aws_lb', what: 'access logging', passes: (r) => r.access_logs?.[0]?.enabled === true },
  { id: 'CKV_AWS_150', type: 'aws_lb', what: 'deletion protection', passes: (r, m) => evaluate(r.enable_deletion_protection, scopeFor(m)) === true },
  { id: 'CKV_AWS_152', type: 'aws_lb', what: 'cross-zone load balancing', passes: (r, m) => evaluate(r.enable_cross_zone_load_balancing, scopeFor(m)) === true },
  { id: 'CKV_AWS_2', type: 'aws_lb_listener', what: 'HTTPS/TLS listener', passes: (r) => ['HTTPS', 'TLS'].includes(String(r.protocol)) },
  { id: 'CKV_AWS_103', type: 'aws_lb_listener', what: 'TLS 1.2 policy', passes: (r) => /TLS.*1-2|TLS13/.test(String(r.ssl_policy)) },
  { id: 'CKV_AWS_261', type: 'aws_lb_target_group', what: 'a health check defined', passes: (r) => r.health_check?.[0]?.enabled === true && typeof r.health_check[0].path === 'string' },
  { id: 'CKV2_AWS_15', type: 'aws_autoscaling_group', what: 'ELB health checks when attached to a load balancer', passes: (r) => r.health_check_type === 'ELB' },
  { id: 'CKV_AWS_315', type: 'aws_autoscaling_group', what: 'a launch template', passes: (r) => Array.isArray(r.launch_template) && r.launch_template.length === 1 },
  { id: 'CKV_AWS_153', type: 'aws_autoscaling_group', what: 'tags', passes: (r) => Array.isArray(r.tag) && r.tag.length > 0 },
  { id: 'CKV_AWS_123', type: 'aws_vpc_endpoint_service', what: 'manual acceptance', passes: (r, m) => evaluate(r.acceptance_required, scopeFor(m)) === true },
];

test('checkov\'s rules for these resources pass, or are skipped in the file with checkov:skip and a reason', async () => {
  const m = await load();
  const skipped = new Set<string>();
  for (const rule of RULES) {
    const byName = m.resource[rule.type];
    assert.ok(byName !== undefined, `${rule.id}: the module has an ${rule.type}`);
    for (const [name, r] of Object.entries(byName)) {
      const skip = m.skips.get(`${rule.type}.${name}`)?.get(rule.id);
      if (rule.passes(r, m)) {
        assert.equal(skip, undefined, `${rule.id} passes on ${rule.type}.${name}: no skip needed`);
      } else {
        assert.ok(skip !== undefined, `${rule.id} (${rule.what}) fails on ${rule.type}.${name}: fix it or add #checkov:skip=${rule.id}:reason`);
        assert.ok(skip.length >= 30, `the skip of ${rule.id} on ${rule.type}.${name} gives a reason`);
        skipped.add(`${rule.id} ${rule.type}.${name}`);
      }
    }
  }
  // Every skip in the files is one of the rules above, which fails without it.
  for (const [res, ids] of m.skips) for (const id of ids.keys()) assert.ok(skipped.has(`${id} ${res}`), `#checkov:skip=${id} on ${res} skips a rule that fails`);
  assert.deepEqual([...skipped].sort(), [
    'CKV_AWS_103 aws_lb_listener.gwlb', 'CKV_AWS_150 aws_lb.gwlb', 'CKV_AWS_152 aws_lb.gwlb', 'CKV_AWS_2 aws_lb_listener.gwlb', 'CKV_AWS_91 aws_lb.gwlb',
  ]);
  // The rules must notice a bad resource, or they prove nothing.
  const lt = m.resource.aws_launch_template!.appliance!;
  const rule = (id: string) => RULES.find((x) => x.id === id)!;
  assert.equal(rule('CKV_AWS_79').passes({ ...lt, metadata_options: [{ http_tokens: 'optional' }] }, m), false);
  assert.equal(rule('CKV_AWS_8').passes({ ...lt, block_device_mappings: [{ ebs: [{ encrypted: false }] }] }, m), false);
  const sg = m.resource.aws_security_group!.appliance!;
  const open = { description: 'x', protocol: '-1', from_port: 0, to_port: 0, cidr_blocks: ['0.0.0.0/0'] };
  assert.equal(rule('CKV_AWS_277').passes({ ...sg, ingress: [open] }, m), false);
  assert.equal(rule('CKV_AWS_382').passes({ ...sg, egress: [open] }, m), false);
  assert.equal(rule('CKV_AWS_23').passes({ ...sg, egress: [{ ...open, description: undefined }] }, m), false);
  // The one egress rule to 0.0.0.0/0 is TCP 443 (packages, the release, SSM).
  assert.deepEqual(sgRules(m, sg, 'egress').filter(anywhere).map((x) => [x.protocol, x.from_port, x.to_port]), [['tcp', 443, 443], ['tcp', 443, 443]]);
});

test('user data: line for line the template\'s; the RPM\'s sha256 and CPU checked before it is installed; valid bash; ExecStart gwlbtun accepts', async () => {
  const m = await load();
  const ud = renderUserData(m);
  assert.match(ud, /^set -euo pipefail$/m);
  const lines = ud.split('\n');
  assert.deepEqual(lines.filter((l) => l.includes('sha256sum')), [`echo '${SHA}  /root/gwlbtun.rpm' | sha256sum -c -`], 'one unconditional check of the downloaded RPM');
  const check = lines.findIndex((l) => l.includes('sha256sum'));
  const arch = lines.findIndex((l) => l.startsWith(`test "$(rpm -qp --qf '%{ARCH}' /root/gwlbtun.rpm)" = x86_64 || `));
  const install = lines.indexOf('dnf install -y /root/gwlbtun.rpm');
  assert.ok(check > 0 && arch > check && install > arch, 'the RPM is installed after its checksum and its CPU passed (set -e)');
  assert.match(renderUserData(m, { architecture: 'arm64' }), /^test "\$\(rpm -qp --qf '%\{ARCH\}' \/root\/gwlbtun\.rpm\)" = aarch64 \|\| /m);
  const node = lines.findIndex((l) => l.startsWith('dnf install -y nodejs22 '));
  assert.ok(node >= 0 && node < install, 'Node.js (the RPM\'s Requires) from Amazon Linux first');
  const bashN = spawnSync('bash', ['-n'], { input: ud, encoding: 'utf8' });
  assert.equal(bashN.status, 0, `bash -n:\n${bashN.stderr}`);
  for (const p of ud.matchAll(/\/opt\/gwlbtun\/((?:examples|bin)\/[A-Za-z0-9_./-]+)/g)) assert.ok(fs.existsSync(path.join(ROOT, p[1]!)), `${p[1]} is in the release`);
  // Line for line the template's script, so that the two can be compared (and stay so): its
  // ${Names} are our ${names}, its parameter names in messages our variables', `%{` is written
  // `%%{` here (templatefile's escape); only the first comment, naming the file, differs.
  const lt = (tpl.Resources as J).LaunchTemplate.Properties.LaunchTemplateData;
  const cfnScript = String(lt.UserData['Fn::Base64']['Fn::Sub'][0]);
  const names: Record<string, string> = { ...CFN_TO_TF, GwlbCidrFlags: 'gwlb_cidr_flags', RpmArch: 'rpm_arch' };
  const renamed = cfnScript
    .replace(/\$\{([A-Za-z0-9]+)\}/g, (_, n: string) => `\${${names[n] ?? `UNMAPPED:${n}`}}`)
    .replace(/\b(ReleaseUrl|ReleaseSha256|Architecture)\b/g, (n) => names[n]!);
  const ours = fs.readFileSync(path.join(MODULE, 'user-data.sh.tftpl'), 'utf8').replaceAll('%%{', '%{');
  const body = (text: string) => text.trimEnd().split('\n').filter((_, i) => i !== 1);
  assert.deepEqual(body(ours), body(renamed), 'user-data.sh.tftpl is the template\'s user data');
  assert.match(ours.split('\n')[1]!, /^# gwlbtun appliance bootstrap \(deploy\/terraform\/user-data\.sh\.tftpl\)/);
  const unitStop = Number(/^TimeoutStopSec=(\d+)$/m.exec(fs.readFileSync(path.join(ROOT, 'examples', 'systemd', 'gwlbtun.service'), 'utf8'))?.[1]);
  const dropStop = Number(/^TimeoutStopSec=(\d+)$/m.exec(ud)?.[1]);
  assert.ok(valid(m, 'drain_seconds', 60) && !valid(m, 'drain_seconds', 61));
  assert.ok(dropStop >= unitStop + 60, `drop-in TimeoutStopSec ${dropStop} >= the unit's ${unitStop} + the longest --drain`);
  // ExecStart parses with the release's paths mapped to this checkout; one --gwlb-cidr per GWLB
  // subnet, as many as there are, from the looked-up CIDRs.
  for (let n = 1; n <= 6; n++) {
    const text = renderUserData(m, { gwlb_subnet_ids: SUBNETS.slice(0, n), health_port: 9090, tcp_idle_timeout: 600, drain_seconds: 20, hook: 'passthrough' });
    const exec = text.split('\n').filter((l) => l.startsWith('ExecStart=/opt/gwlbtun/bin/gwlbtun '));
    assert.equal(exec.length, 1);
    const cli = parseCli(exec[0]!.split(' ').slice(1).map((a) => a.replace(/^\/opt\/gwlbtun\//, ROOT + '/')), 2);
    assert.equal(cli.healthPort, 9090);
    assert.equal(cli.daemon.tcpIdleS, 600);
    assert.equal(cli.daemon.createHook, path.join(ROOT, 'examples', 'hooks', 'passthrough.sh'));
    assert.deepEqual(cli.daemon.allow, CIDRS.slice(0, n).flatMap((c) => parseCidr('--gwlb-cidr', c)), `${n} GWLB subnets`);
    assert.match(exec[0]!, / --drain 20$/);
  }
  for (const h of ['one-arm', 'passthrough', 'overlapping-cidrs']) fs.accessSync(path.join(ROOT, 'examples', 'hooks', `${h}.sh`), fs.constants.X_OK);
  // IMDSv2 only, as the template.
  assert.equal((lt.MetadataOptions as J).HttpTokens, 'required');
  assert.equal(m.resource.aws_launch_template!.appliance!.metadata_options[0].http_tokens, 'required');
  assert.equal(m.resource.aws_launch_template!.appliance!.user_data, '${base64encode(templatefile("${path.module}/user-data.sh.tftpl", local.user_data_vars))}');
});

// Terraform itself, where it is installed (it is no npm or Debian package, so the suite cannot
// install it) with a local copy of the hashicorp/aws provider: a filesystem mirror at
// GWLBTUN_TF_MIRROR, else /opt/tf-plugins. Nothing is fetched (the network is not asked: `direct`
// excludes the provider). `terraform validate` checks every argument against the provider's schema,
// `fmt -check` the layout, and `terraform test` runs deploy/terraform/tests/*.tftest.hcl: plans
// against a mock of the provider, with the validations and preconditions refusing bad input.
test('terraform validate, fmt -check and terraform test (plans against a mock provider), when terraform is installed', (t) => {
  const version = spawnSync('terraform', ['version'], { encoding: 'utf8', env: { ...process.env, CHECKPOINT_DISABLE: '1' } });
  if (version.error !== undefined || version.status !== 0) {
    t.skip('terraform is not installed: the module was only parsed and evaluated above (no validate, no plan)');
    return;
  }
  const mirror = [process.env.GWLBTUN_TF_MIRROR, '/opt/tf-plugins'].find((d) => d !== undefined && fs.existsSync(path.join(d, 'registry.terraform.io', 'hashicorp', 'aws')));
  if (mirror === undefined) {
    t.skip('no local copy of the hashicorp/aws provider (GWLBTUN_TF_MIRROR: a filesystem mirror): not validated against its schema');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-tf-'));
  try {
    fs.cpSync(MODULE, path.join(dir, 'module'), { recursive: true, filter: (src) => !/\.terraform|tfstate|\.auto\.tfvars$/.test(path.basename(src)) });
    const rc = path.join(dir, 'terraformrc');
    fs.writeFileSync(rc, `provider_installation {\n  filesystem_mirror {\n    path    = ${JSON.stringify(mirror)}\n    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n  direct {\n    exclude = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n`);
    const env = { ...process.env, TF_CLI_CONFIG_FILE: rc, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1', TF_DATA_DIR: path.join(dir, 'data') };
    for (const args of [['init', '-backend=false', '-input=false'], ['validate'], ['fmt', '-check', '-recursive', '-diff'], ['test']]) {
      const r = spawnSync('terraform', [...args, '-no-color'], { cwd: path.join(dir, 'module'), env, encoding: 'utf8', timeout: 300000 });
      assert.equal(r.status, 0, `terraform ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
      if (args[0] === 'test') assert.match(r.stdout, /Success! [1-9][0-9]* passed, 0 failed/);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('outputs: each documented; the template\'s outputs under snake_case names', async () => {
  const m = await load();
  for (const [name, o] of Object.entries(m.output)) assert.ok(typeof o.description === 'string' && o.description.length > 10, `output ${name} is described`);
  const want: Record<string, [string, string]> = {
    ServiceName: ['service_name', '${aws_vpc_endpoint_service.gwlb.service_name}'],
    ServiceId: ['service_id', '${aws_vpc_endpoint_service.gwlb.id}'],
    GatewayLoadBalancerArn: ['gateway_load_balancer_arn', '${aws_lb.gwlb.arn}'],
    TargetGroupArn: ['target_group_arn', '${aws_lb_target_group.gwlbtun.arn}'],
    AutoScalingGroupName: ['autoscaling_group_name', '${aws_autoscaling_group.appliance.name}'],
  };
  for (const cfn of Object.keys(tpl.Outputs as J)) {
    assert.ok(cfn in want, `the template's output ${cfn} has a counterpart`);
    const [tf, value] = want[cfn]!;
    assert.equal(m.output[tf]?.value, value, `${cfn} -> output ${tf}`);
  }
});
