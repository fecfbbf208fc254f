import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { HELP, parseCidr, parseCli, parseCpuList, TUN_MAX_QUEUES, UsageError } from '../../src/cli';
import { MAX_FLOWS_LIMIT } from '../../src/flow/table';
import { LEVEL } from '../../src/base/log';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'gwlbtun');
const HOOK = path.resolve(__dirname, '..', '..', '..', 'examples', 'hooks', 'one-arm.sh');

test('defaults follow GWLB and the original', () => {
  const c = parseCli([]);
  assert.equal(c.help, false);
  assert.equal(c.daemon.endpointTimeoutS, 0);
  assert.equal(c.daemon.tcpIdleS, 350);
  assert.equal(c.daemon.otherIdleS, 120);
  assert.equal(c.daemon.hookTimeoutS, 30);
  assert.equal(c.daemon.maxEndpoints, 128);
  assert.equal(c.daemon.maxFlows, 1_000_000);
  assert.equal(c.daemon.noReturn, false);
  assert.equal(c.daemon.udpPort, 6081);
  assert.equal(c.healthPort, null);
  assert.equal(c.healthStyle, 'html');
  assert.equal(c.drainS, 0, 'no drain: a signal shuts down at once, as before');
  assert.equal(c.log.levels.core, LEVEL.important);
});

test('short and long forms of the original flags', () => {
  const a = parseCli(['-c', HOOK, '-r', HOOK, '-t', '30', '-i', '60', '-p', '8080', '-j', '-d']);
  const b = parseCli(['--cmdnew', HOOK, '--cmddel', HOOK, '--timeout', '30', '--idle', '60', '--port', '8080', '--json', '--debug']);
  for (const c of [a, b]) {
    assert.equal(c.daemon.createHook, HOOK);
    assert.equal(c.daemon.destroyHook, HOOK);
    assert.equal(c.daemon.endpointTimeoutS, 30);
    assert.equal(c.daemon.tcpIdleS, 60);
    assert.equal(c.daemon.otherIdleS, 60, '-i sets the other timeout too when --idle-other is absent');
    assert.equal(c.healthPort, 8080);
    assert.equal(c.healthStyle, 'json');
    assert.equal(c.log.levels.udp, LEVEL.debug);
  }
  assert.equal(parseCli(['-s']).healthStyle, 'simple');
  assert.equal(parseCli(['-x']).daemon.hexDump, true);
  assert.equal(parseCli(['-i', '60', '--idle-other', '30']).daemon.otherIdleS, 30);
  assert.equal(parseCli([]).daemon.manageSysctls, true, 'interface sysctls are kept by default');
  assert.equal(parseCli(['--no-sysctl']).daemon.manageSysctls, false);
  assert.equal(parseCli([]).daemon.offload, false, 'offloads are off by default');
  assert.equal(parseCli(['--offload', 'on']).daemon.offload, true);
  assert.equal(parseCli(['--offload', 'off']).daemon.offload, false);
  assert.throws(() => parseCli(['--offload', 'yes']), (e: unknown) => e instanceof UsageError && (e as Error).message === "--offload: 'yes' is not on or off");
});

test('threads and affinity map onto workers', () => {
  assert.equal(parseCli(['--udpthreads', '3']).daemon.workers, 3);
  assert.equal(parseCli(['--udpthreads', '2', '--tunthreads', '4']).daemon.workers, 4);
  const c = parseCli(['--udpaffinity', '1-2,4']);
  assert.equal(c.daemon.workers, 3);
  assert.deepEqual(c.daemon.cpus, [[1], [2], [4]]);
  assert.deepEqual(parseCli(['--tunaffinity', '0']).daemon.cpus, [[0]]);
  assert.deepEqual(parseCpuList('x', '1-2,4,7-8'), [1, 2, 4, 7, 8]);
});

test('workers: at most 256 (TUN queues); explicit values above are refused, the CPU-count default is capped with a note', () => {
  assert.equal(TUN_MAX_QUEUES, 256);
  assert.equal(parseCli(['--udpthreads', '256']).daemon.workers, 256);
  assert.equal(parseCli(['--tunthreads', '256']).daemon.cpus.length, 256);
  for (const argv of [['--udpthreads', '257'], ['--tunthreads', '1024'], ['--udpaffinity', '0-256'], ['--tunaffinity', '0-299']]) {
    assert.throws(() => parseCli(argv), (e: unknown) => e instanceof UsageError && e.message.startsWith(argv[0]) && /256/.test(e.message), argv.join(' '));
  }
  assert.equal(parseCli(['--udpaffinity', '0-255']).daemon.workers, 256);
  // The default follows the CPU count: 1 up to 2 CPUs, one per CPU above, capped at 256.
  assert.equal(parseCli([], 2).daemon.workers, 1);
  assert.deepEqual(parseCli([], 2).notes, []);
  assert.equal(parseCli([], 256).daemon.workers, 256);
  assert.deepEqual(parseCli([], 256).notes, []);
  const big = parseCli([], 384);
  assert.equal(big.daemon.workers, 256);
  assert.equal(big.daemon.cpus.length, 256);
  assert.equal(big.notes.length, 1);
  assert.match(big.notes[0], /^384 CPUs: using 256 workers/);
  assert.equal(parseCli(['--udpthreads', '8'], 384).daemon.workers, 8, 'an explicit value wins over the CPU count');
  assert.deepEqual(parseCli(['--udpthreads', '8'], 384).notes, []);
});

test('--max-flows: at most what the flow table can hold', () => {
  assert.equal(MAX_FLOWS_LIMIT, 16_777_216);
  assert.equal(parseCli(['--max-flows', String(MAX_FLOWS_LIMIT)]).daemon.maxFlows, MAX_FLOWS_LIMIT);
  for (const v of ['16777217', '20000000', '100000000']) {
    assert.throws(() => parseCli(['--max-flows', v]), (e: unknown) => e instanceof UsageError && e.message === `--max-flows: ${v} is out of range (16 to 16777216)`, v);
  }
});

test('logging sections and levels, case-insensitive', () => {
  const c = parseCli(['--logging', 'UDP=Debug,core=critical']);
  assert.equal(c.log.levels.udp, LEVEL.debug);
  assert.equal(c.log.levels.core, LEVEL.critical);
  assert.equal(c.log.levels.geneve, LEVEL.important);
  assert.equal(parseCli(['--logging', 'all=debugdetail']).log.levels.healthcheck, LEVEL.debugdetail);
  assert.equal(parseCli(['--log-format', 'json']).log.format, 'json');
});

test('new flags', () => {
  const c = parseCli(['--no-return', '--hook-timeout', '5', '--gwlb-cidr', '198.18.0.0/15', '--gwlb-cidr', '198.51.100.7/32', '--max-endpoints', '4', '--max-flows', '5000']);
  assert.equal(c.daemon.noReturn, true);
  assert.equal(c.daemon.hookTimeoutS, 5);
  assert.deepEqual(c.daemon.allow, [0xc6120000, 0xfffe0000, 0xc6336407, 0xffffffff]);
  assert.equal(c.daemon.maxEndpoints, 4);
  assert.equal(c.daemon.maxFlows, 5000);
  assert.deepEqual(parseCidr('x', '0.0.0.0/0'), [0, 0]);
});

test('--drain SECS: 0 to 3600 seconds', () => {
  assert.equal(parseCli(['--drain', '30']).drainS, 30);
  assert.equal(parseCli(['--drain', '0']).drainS, 0);
  assert.equal(parseCli(['--drain', '3600']).drainS, 3600);
  assert.equal(parseCli(['--drain=45', '-p', '8080']).drainS, 45);
  for (const [argv, re] of [
    [['--drain', '3601'], /^--drain: 3601 is out of range \(0 to 3600\)$/],
    [['--drain', '-1'], /--drain/],
    [['--drain', '1.5'], /^--drain: '1\.5' is not a whole number$/],
    [['--drain', 'abc'], /^--drain: 'abc' is not a whole number$/],
    [['--drain'], /--drain/],
  ] as [string[], RegExp][]) {
    assert.throws(() => parseCli(argv), (e: unknown) => e instanceof UsageError && re.test((e as Error).message), argv.join(' '));
  }
});

test('bad flags and values are usage errors naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--bogus'], /bogus/],
    [['-q'], /-q/],
    [['-t', '-5'], /-t/],
    [['-t', 'abc'], /-t\/--timeout: 'abc'/],
    [['-p', '70000'], /-p\/--port: 70000 is out of range/],
    [['-p', '0'], /-p\/--port/],
    [['--udpaffinity', '1-x'], /--udpaffinity/],
    [['--udpaffinity', '3-1'], /--udpaffinity/],
    [['--logging', 'foo=debug'], /--logging: unknown logging section 'foo'/],
    [['--logging', 'all=loud'], /--logging: unknown logging level 'loud'/],
    [['--logging', 'all'], /--logging/],
    [['--log-format', 'xml'], /--log-format/],
    [['--gwlb-cidr', '198.18.0.0'], /--gwlb-cidr/],
    [['--gwlb-cidr', '198.18.0.0/33'], /--gwlb-cidr/],
    [['-c', '/nonexistent/hook'], /-c\/--cmdnew: \/nonexistent\/hook is not an executable file/],
    [['-c'], /-c/],
    [['extra'], /extra/],
  ];
  for (const [argv, re] of cases) {
    assert.throws(() => parseCli(argv), (e: unknown) => e instanceof UsageError && re.test((e as Error).message), argv.join(' '));
  }
});

test('gwlbtun doctor parses the service flags without refusing the hooks (it reports on them)', () => {
  const d = parseCli(['-c', '/nonexistent/hook', '-r', '/nonexistent/other'], 2, false).daemon;
  assert.equal(d.createHook, '/nonexistent/hook');
  assert.equal(d.destroyHook, '/nonexistent/other');
  assert.throws(() => parseCli(['-c', '/nonexistent/hook'], 2), UsageError, 'the daemon still refuses them');
  assert.match(HELP, /gwlbtun doctor/);
});

test('crash survival: on by default (state file every 5 s in $RUNTIME_DIRECTORY or /run/gwlbtun); --no-adopt, --snapshot-interval, --state-dir', () => {
  const d = parseCli([], 2).daemon;
  assert.equal(d.adopt, true);
  assert.equal(d.snapshotIntervalS, 5);
  assert.equal(d.stateDir, process.env.RUNTIME_DIRECTORY?.split(':')[0] || '/run/gwlbtun');
  const o = parseCli(['--no-adopt', '--snapshot-interval', '0', '--state-dir', '/var/tmp/gw'], 2).daemon;
  assert.deepEqual([o.adopt, o.snapshotIntervalS, o.stateDir], [false, 0, '/var/tmp/gw']);
  assert.equal(parseCli(['--snapshot-interval', '0'], 2).daemon.adopt, false, 'no state file: nothing to adopt');
  assert.throws(() => parseCli(['--state-dir', 'relative'], 2), /--state-dir: 'relative' is not an absolute path/);
  assert.throws(() => parseCli(['--snapshot-interval', '3601'], 2), /--snapshot-interval: 3601 is out of range/);
});

test('help lists every flag, the hook arguments, the logging sections and levels', () => {
  for (const f of ['-h', '-c', '-r', '-t', '-i', '-p', '-j', '-s', '-d', '-x', '--udpthreads', '--udpaffinity', '--tunthreads', '--tunaffinity', '--logging', '--idle-other', '--no-return', '--hook-timeout', '--log-format', '--gwlb-cidr', '--max-endpoints', '--max-flows', '--drain', '--no-adopt', '--snapshot-interval', '--state-dir']) {
    assert.ok(HELP.includes(f), f);
  }
  for (const w of ['CREATE', 'DESTROY', 'gwi-<X>', 'gwo-<X>', 'core udp geneve tunnel healthcheck', 'critical important info debug debugdetail']) {
    assert.ok(HELP.includes(w), w);
  }
});

test('bin/gwlbtun -h exits 0 and prints the help; a bad flag exits 2 with one line', () => {
  const h = spawnSync(process.execPath, [BIN, '-h'], { encoding: 'utf8', cwd: '/' });
  assert.equal(h.status, 0);
  assert.ok(h.stdout.includes('Usage: gwlbtun'));
  const long = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  assert.equal(long.status, 0);
  for (const argv of [['--bogus'], ['-p', '99999'], ['--logging', 'tunnel=chatty'], ['--udpaffinity', 'a-b'], ['--max-flows', '20000000'], ['--udpthreads', '257']]) {
    const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: 'utf8' });
    assert.equal(r.status, 2, argv.join(' '));
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr, /^gwlbtun: /);
  }
});
