// The endpoints file (src/control/endpoints-file.ts): what it accepts, and that every error names
// the file, the line and the field; and --endpoints / --endpoints-only on the command line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EndpointsFileError, loadEndpointsFile, parseEndpoints } from '../../src/control/endpoints-file';
import { parseCli, UsageError } from '../../src/cli';
import { netnsSysctls } from '../../src/control/netns';

const HOOK = path.resolve(__dirname, '..', '..', '..', 'examples', 'hooks', 'one-arm.sh');

test('IDs, names, options, comments and blank lines', () => {
  const text = [
    '# consumer VPCs',
    '',
    'vpce-0123456789abcdef0  consumer-a   # the first',
    'a0a consumer_b create=/etc/gwlbtun/b-up.sh destroy=/etc/gwlbtun/b-down.sh netns=cons-b',
    '\tvpce-1f  c.3 netns=c3\r',
  ].join('\n');
  const e = parseEndpoints(text, 'eps.conf');
  assert.equal(e.length, 3);
  assert.equal(e[0].hex, '0123456789abcdef0');
  assert.equal(e[0].eni, 0x123456789abcdef0n);
  assert.equal(e[0].name, 'consumer-a');
  assert.equal(e[0].createHook, null);
  assert.equal(e[0].netns, null);
  assert.equal(e[0].where, 'eps.conf line 3');
  assert.deepEqual([e[1].hex, e[1].name, e[1].createHook, e[1].destroyHook, e[1].netns], ['00000000000000a0a', 'consumer_b', '/etc/gwlbtun/b-up.sh', '/etc/gwlbtun/b-down.sh', 'cons-b']);
  assert.deepEqual([e[2].hex, e[2].name, e[2].netns], ['0000000000000001f', 'c.3', 'c3']);
  assert.deepEqual(parseEndpoints('# nothing\n\n', 'f'), []);
});

test('every error names the line and the field', () => {
  const cases: [string, RegExp][] = [
    ['ok a\n', /^f line 1, field id: 'ok' is not a VPC endpoint ID/],
    ['a0a x\nvpce-0xyz y\n', /^f line 2, field id: /],
    ['1ffffffffffffffff big\n', /^f line 1, field id: '1ffffffffffffffff' is over 64 bits/],
    ['a0a one\n\nvpce-00a0a two\n', /^f line 3, field id: vpce-00a0a is already listed on line 1/],
    ['a0a\n', /^f line 1, field name: missing/],
    ['a0a netns=x\n', /^f line 1, field name: missing before 'netns=x'/],
    ['a0a -bad\n', /^f line 1, field name: '-bad' is not/],
    ['a0a ' + 'n'.repeat(49) + '\n', /^f line 1, field name: /],
    ['a0a x\nb0b x\n', /^f line 2, field name: 'x' is already used on line 1/],
    ['a0a x colour=red\n', /^f line 1, field colour: unknown option \(known: create= destroy= netns=\)/],
    ['a0a x netns\n', /^f line 1, field netns: has no value/],
    ['a0a x netns=\n', /^f line 1, field netns: has no value/],
    ['a0a x netns=a netns=b\n', /^f line 1, field netns: given twice/],
    ['a0a x netns=a/b\n', /^f line 1, field netns: 'a\/b' is not/],
    ['a0a x netns=n\nb0b y netns=n\n', /^f line 2, field netns: 'n' is already the namespace of the endpoint on line 1/],
    ['a0a x create=hook.sh\n', /^f line 1, field create: 'hook.sh' is not an absolute path/],
    ['a0a x destroy=./d\n', /^f line 1, field destroy: /],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseEndpoints(text, 'f'), (e: Error) => e instanceof EndpointsFileError && re.test(e.message), `${JSON.stringify(text)} -> ${re}`);
  }
});

test('loading checks the file and its hooks', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-epfile-'));
  try {
    const f = path.join(dir, 'eps');
    assert.throws(() => loadEndpointsFile(f), /eps: cannot read it \(ENOENT\)/);
    fs.writeFileSync(f, `a0a a create=${HOOK}\nb0b b destroy=${dir}/missing.sh\n`);
    assert.throws(() => loadEndpointsFile(f), (e: Error) => e.message === `${f} line 2, field destroy: ${dir}/missing.sh is not an executable file (ENOENT)`);
    fs.writeFileSync(f, `a0a a create=${HOOK}\nb0b b destroy=${HOOK}\n`);
    assert.equal(loadEndpointsFile(f).length, 2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--endpoints and --endpoints-only on the command line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-epcli-'));
  try {
    const f = path.join(dir, 'eps');
    fs.writeFileSync(f, 'a0a a\nb0b b\n');
    const c = parseCli(['--endpoints', f, '--endpoints-only']);
    assert.equal(c.daemon.endpointsFile, f);
    assert.equal(c.daemon.endpointsOnly, true);
    assert.deepEqual(c.daemon.endpoints.map((e) => e.name), ['a', 'b']);
    const none = parseCli([]);
    assert.equal(none.daemon.endpointsFile, null);
    assert.deepEqual(none.daemon.endpoints, []);
    assert.equal(none.daemon.endpointsOnly, false);
    assert.throws(() => parseCli(['--endpoints-only']), (e: Error) => e instanceof UsageError && /--endpoints-only: needs --endpoints FILE/.test(e.message));
    assert.throws(() => parseCli(['--endpoints', f, '--max-endpoints', '1']), /--endpoints: 2 endpoints listed, over --max-endpoints 1/);
    fs.writeFileSync(f, 'a0a a\nb0b\n');
    assert.throws(() => parseCli(['--endpoints', f]), (e: Error) => e instanceof UsageError && e.message === `--endpoints: ${f} line 2, field name: missing (every endpoint needs a name after its ID)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the sysctls written inside an endpoint namespace: conf/all only in one gwlbtun created', () => {
  const mine = netnsSysctls(['gwi-a', 'gwo-a'], true);
  assert.deepEqual(mine, [
    'net.ipv4.ip_forward=1',
    'net.ipv6.conf.all.forwarding=1',
    'net.ipv4.conf.all.rp_filter=0',
    'net.ipv4.conf.gwi-a.rp_filter=0',
    'net.ipv6.conf.gwi-a.addr_gen_mode=1',
    'net.ipv6.conf.gwi-a.accept_ra=0',
    'net.ipv4.conf.gwo-a.rp_filter=0',
    'net.ipv6.conf.gwo-a.addr_gen_mode=1',
    'net.ipv6.conf.gwo-a.accept_ra=0',
  ]);
  assert.ok(!netnsSysctls(['gwi-a'], false).some((k) => k.includes('conf.all.rp_filter')), "an existing namespace's conf/all is the operator's");
});
