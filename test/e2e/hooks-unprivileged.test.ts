// The way examples/systemd/gwlbtun.service runs gwlbtun: as an unprivileged user whose only
// capabilities are CAP_NET_ADMIN and CAP_NET_RAW (ambient, so that the hooks inherit them; the
// bounding set holds nothing else). The daemon must start, the overlapping-cidrs hook (the one
// with the most moving parts: sysctls, ip rules and routes, nftables or iptables) must do its
// work at CREATE and undo it at DESTROY, and traffic must flow.
//
// setpriv stands in for systemd's User=/AmbientCapabilities=/CapabilityBoundingSet=. /dev/net/tun
// is 0666 on normal distributions (a non-root user needs to open it; CAP_NET_ADMIN then allows
// creating the device); this machine may have it 0600, so the test bind-mounts a 0666 node of the
// same device over it in a private mount namespace (unshare -m), which nothing else sees.
// /proc/<pid>/status of the running daemon shows the uid and the capability sets.
//
// The clone may live where uid 65534 cannot go (root's home is mode 700), and so may the node
// binary (scripts/test-nodes.js keeps the pinned ones in the clone). In the same private mount
// namespace, the clone is bind-mounted on <tmpfs>/app and the node binary on <tmpfs>/node, and the
// daemon and its hook are started from there; what nobody still cannot read (a clone made with
// umask 077) is reported in one line before anything starts.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BIN, requireRoot, ROOT, runEmulator, sleep, stopDaemon, useEnv, type Daemon } from './lib';
import { assertAllVerified, createEndpointsFirst, firewallBackends, netfilterState, onlyDefaultRules, OVERLAPPING_HOOK } from './fixtures/hooks-lib';

const NOBODY = 65534;
const CAPS = '-all,+net_admin,+net_raw';
const ENIS = ['3a5', '4b6'];

/** The files of the clone the unprivileged daemon reads, as the daemon sees them: under mnt/app. */
function staged(mnt: string, file: string): string {
  return path.join(mnt, 'app', path.relative(ROOT, file));
}

/** Throws one clear line when uid 65534 could not read what it runs even through the bind mounts:
 * every file needs read permission for others, every directory below the clone search permission. */
function assertReadableByOthers(): void {
  const files = [BIN, path.join(ROOT, 'dist', 'src', 'cli.js'), path.join(ROOT, 'dist', 'src', 'dataplane', 'worker.js'),
    path.join(ROOT, 'build', 'gwlbtun.node'), OVERLAPPING_HOOK, path.join(path.dirname(OVERLAPPING_HOOK), 'hooks-common.sh')];
  const bad: string[] = [];
  const check = (p: string, bits: number): void => {
    const mode = fs.statSync(p).mode & 0o777;
    if ((mode & bits) !== bits) bad.push(`${p} (mode 0${mode.toString(8)})`);
  };
  check(process.execPath, 0o005);
  for (const f of files) {
    for (let d = path.dirname(f); d.startsWith(ROOT); d = path.dirname(d)) {
      check(d, 0o001);
      if (d === ROOT) break;
    }
    check(f, f === BIN || f === OVERLAPPING_HOOK ? 0o005 : 0o004);
  }
  if (bad.length > 0) {
    throw new Error(`uid ${NOBODY} cannot read ${[...new Set(bad)].join(', ')}: this test needs a clone readable by others (made with umask 022)`);
  }
}

/** bin/gwlbtun as uid/gid 65534 with exactly CAP_NET_ADMIN + CAP_NET_RAW, in namespace ns. The
 * whole chain execs (unshare, sh, ip netns exec, setpriv, node), so the PID is the daemon's. */
async function startUnprivileged(ns: string, mnt: string, env: Record<string, string>, args: string[]): Promise<Daemon> {
  assertReadableByOthers();
  // In the private mount namespace: a tmpfs (allows device nodes wherever the test's temporary
  // directory lives), a 0666 node of the TUN device on it, bound over /dev/net/tun; the clone on
  // mnt/app and the node binary on mnt/node, both reachable by uid 65534 wherever they really are.
  const script = 'm=$1; root=$2; node=$3; shift 3; mount -t tmpfs -o mode=755 gwlbtun-test "$m" && mknod "$m/tun" c 10 200 && chmod 666 "$m/tun" && mount --bind "$m/tun" /dev/net/tun' +
    ' && mkdir "$m/app" && mount --bind "$root" "$m/app" && : > "$m/node" && mount --bind "$node" "$m/node" && exec "$@"';
  const argv = [
    '-m', 'sh', '-c', script, 'sh', mnt, ROOT, process.execPath,
    'ip', 'netns', 'exec', ns,
    'setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups',
    `--inh-caps=${CAPS}`, `--ambient-caps=${CAPS}`, `--bounding-set=${CAPS}`,
    path.join(mnt, 'node'), staged(mnt, BIN), ...args,
  ];
  const proc = spawn('unshare', argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const onData = (b: Buffer): void => {
    if (out.length < 1_000_000) out += b.toString();
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const d: Daemon = { proc, pid: proc.pid!, output: () => out, exited };
  const deadline = Date.now() + 10000;
  while (!out.includes('gwlbtun started')) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`gwlbtun exited during start-up:\n${out}`);
    if (Date.now() > deadline) {
      await stopDaemon(d);
      throw new Error(`gwlbtun did not start:\n${out}`);
    }
    await sleep(50);
  }
  return d;
}

const backends = firewallBackends();

test('both firewall front ends are installed (npm test installs them: scripts/test-prereqs.js)', () => {
  requireRoot();
  assert.deepEqual(backends.slice().sort(), ['iptables', 'nft']);
});

for (const fw of backends) {
  describe(`unprivileged user with CAP_NET_ADMIN and CAP_NET_RAW only, overlapping-cidrs hook (${fw})`, () => {
    const ctx = useEnv('hup'); // the daemon is started below, as another user

    before(async () => {
      const dir = ctx.dir;
      fs.chmodSync(dir, 0o755);
      const mnt = path.join(dir, 'dev');
      fs.mkdirSync(mnt);
      // What systemd's RuntimeDirectory= gives the service: a directory the user owns.
      const run = path.join(dir, 'run');
      fs.mkdirSync(run);
      fs.chownSync(run, NOBODY, NOBODY);
      ctx.d = await startUnprivileged(ctx.t.applianceNs, mnt, { GWLBTUN_FIREWALL: fw, RUNTIME_DIRECTORY: run }, [
        '-c', staged(mnt, OVERLAPPING_HOOK), '-r', staged(mnt, OVERLAPPING_HOOK), '-p', '8080', '--logging', 'core=info',
      ]);
    });

    test('the daemon runs as uid 65534 with exactly CAP_NET_ADMIN and CAP_NET_RAW', () => {
      const st = fs.readFileSync(`/proc/${ctx.d.pid}/status`, 'utf8');
      const field = (k: string): string => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(st)![1];
      assert.equal(field('Uid').split(/\s+/)[1], String(NOBODY), 'effective uid');
      // CAP_NET_ADMIN is bit 12, CAP_NET_RAW bit 13.
      for (const k of ['CapEff', 'CapPrm', 'CapAmb', 'CapBnd']) assert.equal(BigInt('0x' + field(k)), 0x3000n, `${k}: ${field(k)}`);
    });

    test('the hook sets the endpoints up with inherited capabilities, and traffic is verified', async () => {
      const args = ['--endpoints', ENIS.join(','), '--same-inner', '--families', '4,6', '--protos', 'tcp,udp,icmp', '--flows', '2', '--packets', '10', '--rate', '3000', '--ttl-decrement', '1', '--settle-ms', '1500'];
      await createEndpointsFirst(ctx.t, 8080, args, 2);
      const r = await runEmulator(ctx.t, args);
      assertAllVerified(r, `unprivileged ${fw}`);
      const out = ctx.d.output();
      assert.equal((out.match(/create hook done/g) ?? []).length, 2, out);
      assert.doesNotMatch(out, /hook failed|hook could not run|Permission denied|Operation not permitted/, out);
    });

    test('DESTROY, unprivileged too, removes everything', async () => {
      const r = await stopDaemon(ctx.d);
      const out = ctx.d.output();
      assert.equal(r.code, 0);
      assert.equal((out.match(/destroy hook done/g) ?? []).length, 2, out);
      const s = netfilterState(ctx.t.applianceNs);
      assert.ok(onlyDefaultRules(s.rules) && onlyDefaultRules(s.rules6), `rules left:\n${s.rules}${s.rules6}`);
      assert.ok(!s.nft.includes('gwlbtun') && !s.ipt.includes('gwlbtun'), `firewall left:\n${s.nft}${s.ipt}`);
    });
  });
}
