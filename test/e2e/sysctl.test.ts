// Interface sysctls kept by gwlbtun (src/control/sysctl.ts, docs/operations.md "Kernel
// settings"): udev's sysctl.d defaults write rp_filter 2 on a new interface some time after it
// appears, possibly after the CREATE hook wrote 0; inner sources are not routable on the
// appliance (and gwi- has no IPv4 address), so reverse-path filtering then drops every packet of
// the endpoint. fixtures/udev-hook.sh imitates udev: 0.2 s after the one-arm hook returned it
// writes 2 to gwi-X's and gwo-X's rp_filter. By default gwlbtun restores 0 within a second and
// traffic flows again; with --no-sysctl it leaves the value alone and the endpoint's traffic is
// lost for good (which is also what the first test sees without the fix).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { endpointNames } from '../../src/wire/eni';
import { metrics, nsRun, RECORD_HOOK, ROOT, runEmulator, sleep, useEnv, waitFor, type EmuReport, type Env } from './lib';
import type { PhaseReport } from '../../src/sim/reports';

const UDEV_HOOK = path.join(path.dirname(RECORD_HOOK), 'udev-hook.sh');
const HEALTH_PORT = 8081;
const RATE = 400;
const RESTORED = 'gwlbtun_sysctl_restored_total{setting="ipv4.rp_filter"}';

type Phase = PhaseReport;

/** One UDP flow of endpoint `eni` at RATE packets/s for `seconds`, in phases of half a second.
 * Returns the report and, per phase, an estimate of its start (ms since the epoch) that is never
 * later than the real start (the emulator starts after this function took the time). */
async function traffic(env: Env, eni: string, seconds: number): Promise<{ r: EmuReport; phases: (Phase & { startMs: number })[] }> {
  const t0 = Date.now();
  const r = await runEmulator(env.t, [
    '--endpoints', eni, '--families', '4', '--protos', 'udp', '--flows', '1',
    '--packets', String(RATE * seconds), '--rate', String(RATE), '--duration', String(seconds),
    '--phases', String(seconds * 2), '--settle-ms', '300', '--ttl-decrement', '1', '--size', '200',
  ]);
  let at = t0;
  const phases = ((r as unknown as { phases: Phase[] }).phases).map((p) => {
    const startMs = at;
    at += p.sendMs + p.settleMs;
    return { ...p, startMs };
  });
  return { r, phases };
}

/** The time (ms since the epoch) fixtures/udev-hook.sh wrote rp_filter 2 for interface gwi. */
function udevWriteMs(env: Env, gwi: string): number {
  const f = env.hookLog + '.udev';
  const line = fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').find((l) => l.endsWith('\t' + gwi)) : undefined;
  assert.ok(line !== undefined, `the udev imitation wrote rp_filter 2 on ${gwi}`);
  return Number(line.split('\t')[0]);
}

function rpFilter(env: Env, ifname: string): string {
  const r = nsRun(env.t.applianceNs, 'cat', [`/proc/sys/net/ipv4/conf/${ifname}/rp_filter`]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

function restoredLines(env: Env): string[] {
  return env.d.output().split('\n').filter((l) => l.includes('by someone else; restored'));
}

describe('interface sysctls: gwlbtun restores rp_filter 0 when udev changes it', () => {
  const env = useEnv('sysctl', { args: ['-c', UDEV_HOOK, '-r', RECORD_HOOK, '-p', String(HEALTH_PORT)] });

  test('rp_filter 2 written after the create hook: traffic flows again within a second, restoration counted', async () => {
    const { r, phases } = await traffic(env, 'a1', 5);
    const ep = r.endpoints[0];
    const udevMs = udevWriteMs(env, ep.name);
    const later = phases.filter((p) => p.startMs >= udevMs + 1000);
    const summary = JSON.stringify(phases.map((p) => ({ start: p.startMs - udevMs, sent: p.sent, verified: p.verified })));
    assert.ok(later.length >= 2, `at least two phases began a second after the udev write: ${summary}`);
    for (const p of later) assert.equal(p.verified, p.sent, `phase ${p.phase}, ${p.startMs - udevMs} ms after the udev write, all verified: ${summary}`);
    assert.deepEqual(Object.values(ep.bad).filter((v) => v > 0), [], `no bad packets: ${JSON.stringify(ep.bad)}`);
    assert.ok(ep.lost <= RATE, `at most a second of traffic lost (${ep.lost} of ${ep.sent}): ${summary}`);
    for (const ifname of [ep.name, ep.name.replace('gwi-', 'gwo-')]) assert.equal(rpFilter(env, ifname), '0', `${ifname} rp_filter back to 0`);
    assert.ok((metrics(env.t, HEALTH_PORT).get(RESTORED) ?? 0) >= 2, 'gwi- and gwo- restorations counted');
    const lines = restoredLines(env);
    assert.equal(lines.length, 2, `logged once per interface:\n${lines.join('\n')}`);
    assert.match(lines.join('\n'), /net\.ipv4\.conf\.gwi-\S+\.rp_filter was changed to 2/);
  });

  test('a later change is restored within a second, counted, and not logged again', async () => {
    const gwi = endpointNames(0xa1n).gwi;
    const before = metrics(env.t, HEALTH_PORT).get(RESTORED) ?? 0;
    const linesBefore = restoredLines(env).length;
    // Inside the appliance namespace: write 2, then poll (bounded: 3 s) until it reads 0 again.
    const f = `/proc/sys/net/ipv4/conf/${gwi}/rp_filter`;
    const script = `s=$(date +%s%N); echo 2 > ${f}; i=0; while [ "$(cat ${f})" != 0 ]; do i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.01; done; echo $((($(date +%s%N) - s) / 1000000))`;
    const r = nsRun(env.t.applianceNs, 'sh', ['-c', script]);
    assert.equal(r.status, 0, `rp_filter of ${gwi} was not restored within 3 s: ${r.stderr}`);
    const ms = Number(r.stdout.trim());
    assert.ok(ms < 1000, `restored after ${ms} ms`);
    const after = await waitFor('the restoration counted', () => {
      const v = metrics(env.t, HEALTH_PORT).get(RESTORED) ?? 0;
      return v > before ? v : undefined;
    });
    assert.equal(after, before + 1);
    assert.equal(restoredLines(env).length, linesBefore, 'the same endpoint and setting is logged only once');
    const t = await traffic(env, 'a1', 1);
    assert.equal(t.r.endpoints[0].verified, t.r.endpoints[0].sent, 'traffic flows');
  });

  test('IPv6 on gwi-/gwo-: no link-local address, accept_ra 0, IPv6 still forwarded', async () => {
    const r = await runEmulator(env.t, ['--endpoints', 'c3', '--families', '6', '--protos', 'tcp,udp,icmp', '--flows', '1', '--packets', '20', '--rate', '1000', '--ttl-decrement', '1', '--settle-ms', '1500']);
    const ep = r.endpoints[0];
    assert.equal(ep.verified, ep.sent, `IPv6 round trips through interfaces without addresses: ${JSON.stringify(ep)}`);
    for (const ifname of [ep.name, ep.name.replace('gwi-', 'gwo-')]) {
      const a = nsRun(env.t.applianceNs, 'ip', ['-6', '-o', 'addr', 'show', 'dev', ifname]);
      assert.equal(a.status, 0, a.stderr);
      assert.equal(a.stdout.trim(), '', `${ifname} has no IPv6 address`);
      for (const [k, v] of [['addr_gen_mode', '1'], ['accept_ra', '0']]) {
        assert.equal(nsRun(env.t.applianceNs, 'cat', [`/proc/sys/net/ipv6/conf/${ifname}/${k}`]).stdout.trim(), v, `${ifname} ${k}`);
      }
    }
  });

  test('conf/all/rp_filter not 0: one warning (gwlbtun does not change it)', async () => {
    const all = '/proc/sys/net/ipv4/conf/all/rp_filter';
    const warning = 'net.ipv4.conf.all.rp_filter is 2';
    try {
      assert.equal(nsRun(env.t.applianceNs, 'sh', ['-c', `echo 2 > ${all}`]).status, 0);
      await waitFor('the warning', () => env.d.output().includes(warning), 5000, 50);
      await sleep(800); // a few more watcher ticks
      assert.equal(env.d.output().split(warning).length - 1, 1, 'warned once');
      assert.equal(nsRun(env.t.applianceNs, 'cat', [all]).stdout.trim(), '2', 'left alone');
    } finally {
      nsRun(env.t.applianceNs, 'sh', ['-c', `echo 0 > ${all}`]);
    }
  });
});

describe('interface sysctls: --no-sysctl leaves them alone', () => {
  const env = useEnv('nosysctl', { args: ['-c', UDEV_HOOK, '-r', RECORD_HOOK, '-p', String(HEALTH_PORT), '--no-sysctl'] });

  test("udev's rp_filter 2 stays, and the endpoint's traffic is lost from then on", async () => {
    const { r, phases } = await traffic(env, 'b2', 4);
    const ep = r.endpoints[0];
    const udevMs = udevWriteMs(env, ep.name);
    const later = phases.filter((p) => p.startMs >= udevMs + 1000);
    const summary = JSON.stringify(phases.map((p) => ({ start: p.startMs - udevMs, sent: p.sent, verified: p.verified })));
    assert.ok(later.length >= 1, `a phase began a second after the udev write: ${summary}`);
    for (const p of later) assert.equal(p.verified, 0, `phase ${p.phase}: nothing gets through: ${summary}`);
    assert.equal(rpFilter(env, ep.name), '2', 'left alone');
    assert.match(nsRun(env.t.applianceNs, 'ip', ['-6', '-o', 'addr', 'show', 'dev', ep.name]).stdout, /fe80::/, 'the kernel gave gwi- its link-local address');
    const m = metrics(env.t, HEALTH_PORT);
    assert.equal(m.get(RESTORED), undefined, 'no sysctl metrics with --no-sysctl');
    assert.equal(restoredLines(env).length, 0);
  });
});

describe('examples/sysctl/99-gwlbtun.conf under systemd-sysctl', () => {
  const env = useEnv('dropin');
  const SYSTEMD_SYSCTL = ['/usr/lib/systemd/systemd-sysctl', '/lib/systemd/systemd-sysctl'].find((f) => fs.existsSync(f));
  const DROPIN = path.join(ROOT, 'examples', 'sysctl', '99-gwlbtun.conf');

  test('after the distribution defaults (rp_filter 2): 0 on conf.all and on gwi-/gwo-/gwlbtx0 at boot and when udev applies it to a new interface; others keep 2', (t) => {
    // The drop-in's syntax: comments, blank lines and "key = value" only.
    for (const line of fs.readFileSync(DROPIN, 'utf8').split('\n')) {
      if (line.trim() === '' || line.startsWith('#')) continue;
      assert.match(line, /^[a-z0-9_.*-]+ = \S+$/, line);
    }
    if (SYSTEMD_SYSCTL === undefined) {
      t.diagnostic('systemd-sysctl is not installed: only the syntax was checked');
      return;
    }
    const ns = env.t.applianceNs;
    // What Ubuntu's and systemd's own files set (read before ours: lower names).
    const distro = path.join(env.dir, '50-distro.conf');
    fs.writeFileSync(distro, 'net.ipv4.conf.all.rp_filter = 2\nnet.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n');
    const run = (...args: string[]): void => {
      const r = nsRun(ns, SYSTEMD_SYSCTL, [...args, distro, DROPIN]);
      assert.equal(r.status, 0, r.stderr);
    };
    const rp = (ifname: string): string => nsRun(ns, 'cat', [`/proc/sys/net/ipv4/conf/${ifname}/rp_filter`]).stdout.trim();
    for (const ifname of ['gwi-t1', 'gwo-t1', 'oth-t1', 'gwlbtx0']) assert.equal(nsRun(ns, 'ip', ['tuntap', 'add', ifname, 'mode', 'tun']).status, 0);
    run(); // at boot
    assert.deepEqual(['all', 'gwi-t1', 'gwo-t1', 'oth-t1', 'gwlbtx0'].map(rp), ['0', '0', '0', '2', '0']);
    assert.equal(nsRun(ns, 'cat', ['/proc/sys/net/ipv4/conf/gwlbtx0/accept_local']).stdout.trim(), '1', 'the send device (--offload on)');
    assert.equal(nsRun(ns, 'cat', ['/proc/sys/net/ipv4/ip_forward']).stdout.trim(), '1');
    assert.equal(nsRun(ns, 'cat', ['/proc/sys/net/ipv6/conf/all/forwarding']).stdout.trim(), '1');
    // A new interface: it starts from conf.default (2); udev runs systemd-sysctl for it alone.
    for (const ifname of ['gwi-t2', 'oth-t2']) {
      assert.equal(nsRun(ns, 'ip', ['tuntap', 'add', ifname, 'mode', 'tun']).status, 0);
      assert.equal(rp(ifname), '2');
      run(`--prefix=/net/ipv4/conf/${ifname}`, `--prefix=/net/ipv6/conf/${ifname}`);
    }
    assert.deepEqual(['gwi-t2', 'oth-t2'].map(rp), ['0', '2']);
  });
});
