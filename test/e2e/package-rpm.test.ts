// The RPMs of `npm run package` (scripts/package.js, writeRpm), checked as far as a Debian machine
// allows without an rpm distribution:
// - what rpm reads from them: name, version, release, architecture, Requires (the Node.js rich
//   dependency), Provides (nothing of /opt/gwlbtun offered), the configuration files, the
//   scriptlets (plain shell that `sh -n` accepts, no macro left unexpanded), the file list; `rpm -K`
//   (digests); the addon inside each is an ELF file for that CPU;
// - which Node.js packages satisfy the Requires: stand-in packages (empty, built here) named as
//   Amazon Linux 2023 and Fedora name theirs, in a transaction test (`rpm -i --test`) in a scratch
//   root: nodejs20/22/24 and nodejs 1:20 do, nodejs 1:18 and nothing do not;
// - install, upgrade and erase in a scratch root (`rpm --root DIR --nodeps`) whose /bin/sh is a
//   copy of this machine's, with stand-ins for systemctl, getent, systemd-sysusers and useradd that
//   record how they were called, and /run/systemd/system present (systemd "is the init"): install
//   creates the user and reloads systemd, enabling and starting nothing; an upgrade to a higher
//   Release keeps an edited hook (%config(noreplace)) but restores an edited README and hands the
//   running service over (`gwlbtun handover`, which cannot run in the scratch root: no Node.js),
//   so falls back to try-restart, saying so; erase disables and stops it, removes every file and keeps the edited
//   hook as .rpmsave.
// Needs rpm and rpmbuild (Debian: rpm; scripts/test-prereqs.js installs it) and root (chroot for
// the scriptlets). No network, no namespaces.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, requireRoot, tmpDir } from './lib';

const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const RPM_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };
const ELF_MACHINE: Record<string, number> = { x64: 62, arm64: 183 };
const HOST = RPM_ARCH[process.arch]!;
const NODE_REQ = '(nodejs20 or nodejs22 or nodejs24 or nodejs >= 1:20)';

function run(file: string, args: string[], opts: { input?: Buffer; env?: NodeJS.ProcessEnv } = {}): { status: number | null; out: string; stdout: Buffer } {
  const r = spawnSync(file, args, { timeout: 120000, input: opts.input, env: opts.env ?? process.env, maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, out: `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}${r.error ? String(r.error) : ''}`, stdout: r.stdout ?? Buffer.alloc(0) };
}

function must(file: string, args: string[], input?: Buffer): string {
  const r = run(file, args, { input });
  assert.equal(r.status, 0, `${file} ${args.join(' ')} failed:\n${r.out}`);
  return r.stdout.toString();
}

const rpmFile = (dir: string, arch: string, release = 1): string => path.join(dir, `gwlbtun-${VERSION}-${release}.${RPM_ARCH[arch]}.rpm`);

/** A scratch root for `rpm --root`: this machine's /bin/sh with the libraries it loads, /dev/null, root in
 * /etc/passwd, stand-in tools that append "<name> <args>" to /var/log/calls.log, and
 * /run/systemd/system (so the scriptlets take systemd for the init). */
function scratchRoot(dir: string): string {
  fs.mkdirSync(dir);
  for (const d of ['bin', 'dev', 'usr/bin', 'etc', 'var/log', 'run/systemd/system', 'tmp']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  const sh = fs.realpathSync('/bin/sh');
  fs.copyFileSync(sh, path.join(dir, 'bin', 'sh'));
  fs.chmodSync(path.join(dir, 'bin', 'sh'), 0o755);
  for (const m of must('ldd', [sh]).matchAll(/(\/\S+)\s+\(0x/g)) {
    const lib = m[1]!;
    fs.mkdirSync(path.join(dir, path.dirname(lib)), { recursive: true });
    fs.copyFileSync(fs.realpathSync(lib), path.join(dir, lib));
  }
  must('mknod', ['-m', '666', path.join(dir, 'dev', 'null'), 'c', '1', '3']); // the scriptlets write to it
  fs.writeFileSync(path.join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(path.join(dir, 'etc', 'group'), 'root:x:0:\n');
  const stub = (name: string, body = ''): void => {
    fs.writeFileSync(path.join(dir, 'usr', 'bin', name), `#!/bin/sh\necho "${name} $*" >>/var/log/calls.log\n${body}exit 0\n`, { mode: 0o755 });
  };
  stub('systemctl');
  // getent passwd NAME: the line from /etc/passwd, exit 2 when there is none (as getent does).
  fs.writeFileSync(path.join(dir, 'usr', 'bin', 'getent'), '#!/bin/sh\necho "getent $*" >>/var/log/calls.log\nwhile IFS=: read -r n rest; do [ "$n" = "$2" ] && { echo "$n:$rest"; exit 0; }; done </etc/$1\nexit 2\n', { mode: 0o755 });
  stub('systemd-sysusers', 'echo "gwlbtun:x:990:990:gwlbtun daemon:/:/sbin/nologin" >>/etc/passwd\n');
  stub('useradd', 'echo "gwlbtun:x:990:990::/nonexistent:/sbin/nologin" >>/etc/passwd\n');
  must('rpm', ['--root', dir, '--initdb']);
  return dir;
}

function calls(root: string): string[] {
  const f = path.join(root, 'var', 'log', 'calls.log');
  if (!fs.existsSync(f)) return [];
  const lines = fs.readFileSync(f, 'utf8').split('\n').filter((l) => l !== '');
  fs.rmSync(f);
  return lines;
}

function elfMachine(b: Buffer): number {
  return b.length >= 20 && b[0] === 0x7f && b[1] === 0x45 ? b.readUInt16LE(18) : -1;
}

/** An empty noarch package `name` = [epoch:]version, a stand-in for a distribution's Node.js. */
function standIn(work: string, name: string, version: string, epoch?: number): string {
  const top = path.join(work, `standin-${name}-${version}`);
  fs.mkdirSync(top, { recursive: true });
  const spec = path.join(top, 'p.spec');
  fs.writeFileSync(spec, [`Name: ${name}`, ...(epoch === undefined ? [] : [`Epoch: ${epoch}`]), `Version: ${version}`, 'Release: 1', 'Summary: stand-in', 'License: MIT', 'BuildArch: noarch', '%description', 'stand-in', '%files', ''].join('\n'));
  must('rpmbuild', ['-bb', '--quiet', '--define', `_topdir ${path.join(top, 'top')}`, '--define', `_rpmdir ${top}`, '--define', '_build_name_fmt p.rpm', spec]);
  return path.join(top, 'p.rpm');
}

describe('release RPMs: metadata, Node.js requirement, install/upgrade/erase with scriptlets', () => {
  let dir = '';
  let rel = '';
  let rel2 = '';

  before(() => {
    requireRoot();
    for (const c of ['rpm', 'rpmbuild', 'rpm2archive']) assert.equal(run('sh', ['-c', `command -v ${c}`]).status, 0, `${c} is missing (Debian: apt-get install rpm; npm test installs it)`);
    dir = tmpDir('rpm');
    rel = path.join(dir, 'release');
    rel2 = path.join(dir, 'release2');
    must(process.execPath, [path.join(ROOT, 'scripts', 'package.js'), '--out', rel]);
    // The same version again with Release 2: an upgrade for rpm -U.
    must(process.execPath, [path.join(ROOT, 'scripts', 'package.js'), '--out', rel2, '--arch', process.arch, '--rpm-release', '2']);
  });

  after(() => {
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  });

  test('an RPM for x86_64 and for aarch64, in SHA256SUMS; name, version, arch, Requires, Provides, config files, digests', () => {
    const sums = fs.readFileSync(path.join(rel, 'SHA256SUMS'), 'utf8');
    for (const arch of ['x64', 'arm64']) {
      const f = rpmFile(rel, arch);
      const base = path.basename(f);
      const sum = must('sha256sum', [f]).split(' ')[0]!;
      assert.ok(sums.split('\n').includes(`${sum}  ${base}`), `SHA256SUMS has ${base}`);
      assert.equal(must('rpm', ['-qp', '--qf', '%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}', f]), `gwlbtun ${VERSION} 1 ${RPM_ARCH[arch]} MIT`);
      const req = must('rpm', ['-qp', '--requires', f]).split('\n');
      assert.ok(req.includes(NODE_REQ), `Requires ${NODE_REQ}:\n${req.join('\n')}`);
      assert.ok(req.includes('/usr/bin/env') && req.includes('/bin/sh'), 'the interpreters of bin/gwlbtun and the hooks');
      assert.ok(req.some((r) => r.startsWith('libc.so.6(')), 'the C library the addon links');
      for (const r of req) assert.ok(!/nodejs/.test(r) || r === NODE_REQ, `no other Node.js requirement: ${r}`);
      const prov = must('rpm', ['-qp', '--provides', f]).split('\n').filter((l) => l !== '');
      assert.deepEqual(prov.filter((p) => !p.startsWith('config(') && !/^gwlbtun(\([^)]+\))? = /.test(p)), [], 'nothing but the package itself is provided (the addon is not a library for others)');
      assert.deepEqual(must('rpm', ['-qp', '--configfiles', f]).split('\n').filter((l) => l !== '').sort(), [
        // Every example hook, as the repository has them.
        ...fs.readdirSync(path.join(ROOT, 'examples', 'hooks')).filter((h) => h.endsWith('.sh')).sort().map((h) => `/opt/gwlbtun/examples/hooks/${h}`),
        '/opt/gwlbtun/examples/sysctl/99-gwlbtun.conf',
      ]);
      const noreplace = must('rpm', ['-qp', '--qf', '[%{FILENAMES} %{FILEFLAGS:fflags}\n]', f]).split('\n').filter((l) => l.includes('/examples/hooks/one-arm.sh'));
      assert.match(noreplace[0] ?? '', / cn$/, 'config(noreplace): c and n flags');
      const k = must('rpm', ['-K', f]);
      assert.match(k, /digests OK/, k);
      const files = must('rpm', ['-qp', '-l', f]).split('\n');
      for (const p of ['/opt/gwlbtun/bin/gwlbtun', '/opt/gwlbtun/dist/src/cli.js', `/opt/gwlbtun/prebuilds/linux-${arch}/gwlbtun.node`, '/usr/bin/gwlbtun', '/usr/lib/systemd/system/gwlbtun.service', '/usr/lib/sysusers.d/gwlbtun.conf', '/opt/gwlbtun/examples/systemd/gwlbtun.service']) {
        assert.ok(files.includes(p), `${base} holds ${p}`);
      }
      // Directories of the system are not claimed; none of the other CPU's addon.
      for (const p of ['/opt', '/usr/bin', '/usr/lib/systemd/system', '/usr/lib/sysusers.d', '/lib/systemd/system/gwlbtun.service']) assert.ok(!files.includes(p), `${base} does not own ${p}`);
      assert.ok(!files.some((p) => p.includes('/.build-id/') || p.includes(`linux-${arch === 'x64' ? 'arm64' : 'x64'}`)), 'no build-id links, no other CPU');
      // The addon inside: an ELF file for this RPM's CPU.
      const x = path.join(dir, `x-${arch}`);
      fs.mkdirSync(x);
      must('tar', ['-xzf', '-', '-C', x, `./opt/gwlbtun/prebuilds/linux-${arch}/gwlbtun.node`], run('rpm2archive', ['-'], { input: fs.readFileSync(f) }).stdout);
      assert.equal(elfMachine(fs.readFileSync(path.join(x, 'opt', 'gwlbtun', 'prebuilds', `linux-${arch}`, 'gwlbtun.node'))), ELF_MACHINE[arch], `${base}: the addon is linux-${arch}`);
    }
  });

  test('the scriptlets: %post, %preun, %postun in plain shell (sh -n), no unexpanded macro', () => {
    const s = must('rpm', ['-qp', '--scripts', rpmFile(rel, process.arch)]);
    const parts = s.split(/^(\w+) scriptlet \(using \/bin\/sh\):$/m).slice(1);
    const byName = new Map<string, string>();
    for (let i = 0; i + 1 < parts.length; i += 2) byName.set(parts[i]!, parts[i + 1]!);
    assert.deepEqual([...byName.keys()].sort(), ['postinstall', 'postuninstall', 'preuninstall'], s);
    for (const [n, body] of byName) {
      assert.ok(!/%\{|%\w/.test(body), `${n}: no rpm macro left: ${body}`);
      assert.equal(run('sh', ['-n'], { input: Buffer.from(body) }).status, 0, `${n}: sh -n`);
    }
    assert.match(byName.get('preuninstall')!, /disable --now gwlbtun\.service/);
    assert.match(byName.get('postuninstall')!, /\/opt\/gwlbtun\/bin\/gwlbtun handover [^\n]*\n[\s\S]*try-restart gwlbtun\.service/, 'upgrade: the hand-over, try-restart as its fallback');
    assert.doesNotMatch(byName.get('postinstall')!, /enable|start|preset/, 'installing enables and starts nothing');
  });

  test(`which Node.js packages satisfy Requires: ${NODE_REQ}`, () => {
    const f = rpmFile(rel, process.arch);
    const cases: [string, string | undefined, string, number | undefined, boolean][] = [
      ['nothing', undefined, '', undefined, false],
      ['nodejs 1:18 (AL2023 nodejs, Node.js 18)', 'nodejs', '18.20.8', 1, false],
      ['nodejs20 (AL2023)', 'nodejs20', '20.19.5', undefined, true],
      ['nodejs22 (AL2023)', 'nodejs22', '22.20.0', undefined, true],
      ['nodejs24 (AL2023)', 'nodejs24', '24.9.0', undefined, true],
      ['nodejs 1:20 (Fedora, RHEL)', 'nodejs', '20.19.5', 1, true],
      ['nodejs 1:22 (Fedora)', 'nodejs', '22.20.0', 1, true],
      // A `nodejs` without Epoch (0) is refused, whatever its version (package.js, writeRpm).
      ['nodejs 0:22 (no Epoch)', 'nodejs', '22.20.0', undefined, false],
    ];
    cases.forEach(([what, name, version, epoch, ok], i) => {
      const r = scratchRoot(path.join(dir, `deps-${i}`));
      const pkgs = name === undefined ? [f] : [f, standIn(dir, name, version, epoch)];
      const t = run('rpm', ['--root', r, '-i', '--test', ...pkgs]);
      // The transaction fails anyway (the scratch root has no /bin/sh package, no libc package):
      // only whether the Node.js requirement is among the failed ones matters.
      const unmet = t.out.split('\n').some((l) => l.trim().startsWith(`${NODE_REQ} is needed by gwlbtun`));
      assert.equal(!unmet, ok, `${what}: the Node.js requirement should be ${ok ? 'met' : 'unmet'}:\n${t.out}`);
      if (!ok) assert.notEqual(t.status, 0);
    });
  });

  test('install, upgrade and erase in a scratch root: user, no start, config kept, restart on upgrade, disable and stop on erase', () => {
    const r = scratchRoot(path.join(dir, 'root'));
    const rpmR = (args: string[]): string => must('rpm', ['--root', r, ...args]);
    const inRoot = (p: string): string => path.join(r, p);

    rpmR(['--nodeps', '-i', rpmFile(rel, process.arch)]);
    assert.equal(rpmR(['-q', 'gwlbtun']).trim(), `gwlbtun-${VERSION}-1.${HOST}`);
    let c = calls(r);
    assert.ok(c.includes('getent passwd gwlbtun') && c.includes('systemd-sysusers /usr/lib/sysusers.d/gwlbtun.conf'), `install creates the user: ${c.join(' | ')}`);
    assert.ok(c.includes('systemctl daemon-reload'), `install reloads systemd: ${c.join(' | ')}`);
    assert.ok(!c.some((l) => /enable|start|preset/.test(l)), `install enables and starts nothing: ${c.join(' | ')}`);
    assert.match(fs.readFileSync(inRoot('etc/passwd'), 'utf8'), /^gwlbtun:/m);
    assert.equal(fs.readlinkSync(inRoot('usr/bin/gwlbtun')), '/opt/gwlbtun/bin/gwlbtun');
    assert.ok(fs.existsSync(inRoot('usr/lib/systemd/system/gwlbtun.service')) && fs.existsSync(inRoot('usr/lib/sysusers.d/gwlbtun.conf')));
    assert.equal(elfMachine(fs.readFileSync(inRoot(`opt/gwlbtun/prebuilds/linux-${process.arch}/gwlbtun.node`))), ELF_MACHINE[process.arch]);
    const verify = run('rpm', ['--root', r, '-V', '--nodeps', 'gwlbtun']); // files only: the scratch root has no Node.js
    assert.equal(verify.status, 0, `rpm -V after install:\n${verify.out}`);
    assert.equal(fs.statSync(inRoot('opt/gwlbtun/examples/hooks/one-arm.sh')).mode & 0o777, 0o755);

    // The operator edits a hook (configuration) and the README (not configuration).
    const hook = inRoot('opt/gwlbtun/examples/hooks/one-arm.sh');
    const readme = inRoot('opt/gwlbtun/README.md');
    const marker = '\n# edited by the operator\n';
    fs.appendFileSync(hook, marker);
    fs.appendFileSync(readme, marker);

    const up = run('rpm', ['--root', r, '--nodeps', '-U', rpmFile(rel2, process.arch, 2)]);
    assert.equal(up.status, 0, up.out);
    assert.match(up.out, /gwlbtun: no hand-over in place \(gwlbtun handover: exit \d+\): restarting the service instead/, 'the hand-over tried, its fallback said');
    assert.equal(rpmR(['-q', 'gwlbtun']).trim(), `gwlbtun-${VERSION}-2.${HOST}`);
    assert.ok(fs.readFileSync(hook, 'utf8').endsWith(marker), 'the edited hook survives the upgrade');
    assert.ok(!fs.readFileSync(readme, 'utf8').includes(marker), 'the README is replaced');
    c = calls(r);
    assert.ok(c.indexOf('systemctl is-active --quiet gwlbtun.service') >= 0 && c.indexOf('systemctl try-restart gwlbtun.service') > c.indexOf('systemctl is-active --quiet gwlbtun.service'), `upgrade hands a running service over, else restarts it: ${c.join(' | ')}`);
    assert.ok(!c.some((l) => /disable|sysusers/.test(l)), `upgrade neither disables nor creates the user again: ${c.join(' | ')}`);

    rpmR(['-e', 'gwlbtun']);
    c = calls(r);
    assert.ok(c.includes('systemctl --no-reload disable --now gwlbtun.service'), `erase disables and stops the service: ${c.join(' | ')}`);
    assert.ok(c.includes('systemctl daemon-reload'), `erase reloads systemd: ${c.join(' | ')}`);
    assert.ok(!c.some((l) => /try-restart/.test(l)), `erase restarts nothing: ${c.join(' | ')}`);
    assert.notEqual(run('rpm', ['--root', r, '-q', 'gwlbtun']).status, 0, 'not installed any more');
    for (const p of ['usr/bin/gwlbtun', 'usr/lib/systemd/system/gwlbtun.service', 'usr/lib/sysusers.d/gwlbtun.conf', 'opt/gwlbtun/README.md', 'opt/gwlbtun/bin', 'opt/gwlbtun/prebuilds']) {
      assert.ok(!fs.existsSync(inRoot(p)), `${p} is gone`);
    }
    assert.ok(fs.readFileSync(`${hook}.rpmsave`, 'utf8').endsWith(marker), 'the edited hook is kept as .rpmsave');
    assert.deepEqual(fs.readdirSync(inRoot('opt/gwlbtun'), { recursive: true }).sort(), ['examples', 'examples/hooks', 'examples/hooks/one-arm.sh.rpmsave'], 'nothing else is left');
  });
});
