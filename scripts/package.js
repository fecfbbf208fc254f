#!/usr/bin/env node
// `npm run package`: release artefacts that install without a compiler, Node headers or npm.
//
//   gwlbtun-<version>-linux-<arch>.tar.gz   for x64 and arm64: one directory gwlbtun-<version>-linux-<arch>/
//                                           holding bin/, dist/src/ (the daemon's compiled JavaScript,
//                                           without the tools), the prebuilt addon
//                                           prebuilds/linux-<arch>/gwlbtun.node, examples/ (hooks,
//                                           systemd unit, sysctl drop-in), docs/, README.md, LICENSE
//   gwlbtun_<version>_<amd64|arm64>.deb     the same tree under /opt/gwlbtun, the unit in
//                                           /lib/systemd/system, the sysusers file, /usr/bin/gwlbtun;
//                                           Depends: nodejs (>= 20)
//   gwlbtun-<version>-<release>.<x86_64|aarch64>.rpm
//                                           the same for Amazon Linux 2023 (and other rpm
//                                           distributions), the unit in /usr/lib/systemd/system;
//                                           writeRpm() below says what it requires and why
//   SHA256SUMS
//
// The addon of the machine's own CPU is build/gwlbtun.node (npm run build); the other one is
// cross-compiled with <triple>-gcc (Debian: gcc-aarch64-linux-gnu, gcc-x86-64-linux-gnu) against
// the installed Node's node_api.h, which is the same for every CPU. Cross-compiled addons are cached
// in build/cross/, keyed by the sources, the compiler's version and the flags.
//
// Modes and owners in the artefacts do not depend on the packager: every directory is 0755, every
// file 0644, or 0755 when its source is executable (bin/gwlbtun, the hooks, the addon, the
// maintainer scripts), all owned by 0:0. Under a umask such as 027 or 077, mkdir and writeFile would
// otherwise leave 0750/0700 directories in the tarball (the gwlbtun user cannot read /opt/gwlbtun
// after the CloudFormation user data's `tar -x` as root, so the service cannot start) and dpkg-deb
// refuses a DEBIAN directory that is not 0755..0775. setModes() sets them on the staging trees
// before tar and dpkg-deb read them (test/e2e/package-modes.test.ts builds under umask 027 and 077).
//
// What ships is decided in one place, stageTree(): it writes the installed tree, and every artefact
// is made from that tree (the tarball holds it; the .deb and the RPM put it under /opt/gwlbtun).
// It ships what the daemon runs and nothing else: of dist/src, the product folders of
// docs/architecture.md ("Layers"); the tools (TOOL_DIRS: the emulator, the lab, the demo, the test
// kit) stay in the repository and in the npm scripts, and bench/ and test/ never ship.
// test/unit/layers.test.ts checks that no product file imports a tool, so the daemon never misses
// one (test/e2e/package.test.ts runs it from the tarball).
//
// Usage: node scripts/package.js [--out DIR] [--arch x64,arm64] [--rpm-release N]
//        (default DIR: build/release; N: the RPM's Release, default 1, raised for a rebuild of the
//        same version so that `rpm -U` takes it as an upgrade)
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { nodeApiInclude, addonSources, addonArgs, compileAddon } = require('./build-native');

const root = path.resolve(__dirname, '..');
const TRIPLES = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };
const DEB_ARCH = { x64: 'amd64', arm64: 'arm64' };
const ELF_MACHINE = { x64: 62, arm64: 183 };
const RPM_ARCH = { x64: 'x86_64', arm64: 'aarch64' };

function die(msg) {
  console.error(`package: ${msg}`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = { out: path.join(root, 'build', 'release'), arches: ['x64', 'arm64'], rpmRelease: '1' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out' && i + 1 < argv.length) o.out = path.resolve(argv[++i]);
    else if (a === '--arch' && i + 1 < argv.length) o.arches = argv[++i].split(',').filter(Boolean);
    else if (a === '--rpm-release' && i + 1 < argv.length) o.rpmRelease = argv[++i];
    else die(`unknown argument '${a}' (usage: node scripts/package.js [--out DIR] [--arch x64,arm64] [--rpm-release N])`);
  }
  if (!/^[1-9][0-9]*$/.test(o.rpmRelease)) die(`--rpm-release ${o.rpmRelease}: a positive whole number`);
  for (const a of o.arches) if (!(a in TRIPLES)) die(`--arch ${a}: only x64 and arm64 are packaged`);
  return o;
}

function elfMachine(file) {
  const b = fs.readFileSync(file).subarray(0, 20);
  return b.length === 20 && b[0] === 0x7f && b[1] === 0x45 ? b[18] | (b[19] << 8) : -1;
}

function onPath(cmd) {
  for (const d of (process.env.PATH || '').split(':')) {
    if (d !== '' && fs.existsSync(path.join(d, cmd))) return path.join(d, cmd);
  }
  return undefined;
}

/** The addon for `arch`: build/gwlbtun.node when it is for that CPU, else a (cached) cross build. */
function addonFor(arch) {
  const own = path.join(root, 'build', 'gwlbtun.node');
  if (fs.existsSync(own) && elfMachine(own) === ELF_MACHINE[arch]) return own;
  const cc = process.env[`CC_${arch.toUpperCase()}`] || `${TRIPLES[arch]}-gcc`;
  if (onPath(cc) === undefined && !path.isAbsolute(cc)) {
    die(`no C compiler for linux-${arch}: '${cc}' is not on PATH (Debian: apt-get install gcc-${TRIPLES[arch].replace(/_/g, '-')}, or set CC_${arch.toUpperCase()})`);
  }
  const version = execFileSync(cc, ['--version'], { encoding: 'utf8' }).split('\n')[0];
  const h = crypto.createHash('sha256');
  h.update(version + '\0' + JSON.stringify(addonArgs('INC', 'OUT')));
  for (const f of addonSources()) h.update(fs.readFileSync(f));
  h.update(fs.readFileSync(path.join(nodeApiInclude(), 'node_api.h')));
  const key = h.digest('hex');
  const dir = path.join(root, 'build', 'cross', `linux-${arch}`);
  const out = path.join(dir, 'gwlbtun.node');
  const keyFile = path.join(dir, 'key');
  if (fs.existsSync(out) && fs.existsSync(keyFile) && fs.readFileSync(keyFile, 'utf8') === key) {
    console.log(`package: linux-${arch} addon from the cache (${path.relative(root, out)})`);
    return out;
  }
  compileAddon(cc, out);
  if (elfMachine(out) !== ELF_MACHINE[arch]) die(`${cc} did not produce a linux-${arch} ELF file`);
  fs.writeFileSync(keyFile, key);
  return out;
}

/** Copy a file or directory tree, keeping the execute bits (directory modes: setModes). */
function copy(src, dst, filter = () => true) {
  const st = fs.statSync(src);
  if (st.isDirectory()) {
    fs.mkdirSync(dst, { recursive: true, mode: 0o755 });
    for (const e of fs.readdirSync(src).sort()) {
      if (filter(path.join(src, e))) copy(path.join(src, e), path.join(dst, e), filter);
    }
  } else {
    fs.mkdirSync(path.dirname(dst), { recursive: true, mode: 0o755 });
    fs.copyFileSync(src, dst);
    fs.chmodSync(dst, st.mode & 0o111 ? 0o755 : 0o644);
  }
}

/** Every directory under (and including) `dir` 0755, every file 0755 when any execute bit is set
 * (copy() keeps the source's), else 0644; symbolic links are left alone (their mode is not used).
 * Explicit chmod, because the modes given to mkdir and writeFile are filtered by the umask. */
function setModes(dir) {
  const st = fs.lstatSync(dir);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    fs.chmodSync(dir, 0o755);
    for (const e of fs.readdirSync(dir)) setModes(path.join(dir, e));
  } else {
    fs.chmodSync(dir, st.mode & 0o111 ? 0o755 : 0o644);
  }
}

/** Folders of dist/src/ that are tools, not the daemon (docs/architecture.md, "Layers"). */
const TOOL_DIRS = ['sim', 'lab', 'demo', 'testkit'];

/** Whether `file` (a path under dist/src/) ships: compiled JavaScript outside the tool folders. */
function shipsFromDist(file) {
  const rel = path.relative(path.join(root, 'dist', 'src'), file).split(path.sep);
  if (TOOL_DIRS.includes(rel[0])) return false;
  return fs.statSync(file).isDirectory() || file.endsWith('.js');
}

/** The installed tree (what /opt/gwlbtun holds) for `arch`, written to `dst`: all that ships. */
function stageTree(dst, arch, addon, pkg) {
  fs.rmSync(dst, { recursive: true, force: true });
  copy(path.join(root, 'bin'), path.join(dst, 'bin'));
  copy(path.join(root, 'dist', 'src'), path.join(dst, 'dist', 'src'), shipsFromDist);
  copy(path.join(root, 'examples'), path.join(dst, 'examples'));
  copy(path.join(root, 'docs'), path.join(dst, 'docs'), (f) => fs.statSync(f).isDirectory() || f.endsWith('.md'));
  for (const f of ['README.md', 'LICENSE']) copy(path.join(root, f), path.join(dst, f));
  copy(addon, path.join(dst, 'prebuilds', `linux-${arch}`, 'gwlbtun.node'));
  const meta = {
    name: pkg.name, version: pkg.version, description: pkg.description, license: pkg.license,
    private: true, engines: pkg.engines, bin: pkg.bin, os: ['linux'], cpu: [arch],
  };
  fs.writeFileSync(path.join(dst, 'package.json'), JSON.stringify(meta, null, 2) + '\n', { mode: 0o644 });
  setModes(dst);
}

function sourceDateEpoch() {
  if (process.env.SOURCE_DATE_EPOCH) return process.env.SOURCE_DATE_EPOCH;
  try {
    return execFileSync('git', ['-C', root, 'log', '-1', '--format=%ct'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return String(Math.floor(Date.now() / 1000));
  }
}

const TAR_FLAGS = (epoch) => ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', `--mtime=@${epoch}`];

function writeTarball(stageDir, name, outFile, epoch) {
  execFileSync('tar', ['-C', stageDir, ...TAR_FLAGS(epoch), '-I', 'gzip -n', '-cf', outFile, name], { stdio: 'inherit' });
}

function duKiB(dir) {
  let bytes = 0;
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) bytes += fs.statSync(p).size;
    }
  };
  walk(dir);
  return Math.ceil(bytes / 1024);
}

// An upgrade while the service runs hands it over to the new version in place (SIGUSR2 through
// `gwlbtun handover`, src/ops/handover-cmd.ts; docs/operations.md "Upgrading in place"): no flow
// lost, no hook run, no interface re-created. By then dpkg and rpm have replaced /opt/gwlbtun in
// place (bin/gwlbtun and dist/ at the same paths), and the running process starts the new one from
// the path it was started from, so the new process runs the new version; it is the unit's main
// process once the old one has sent MAINPID= (Type=notify), which the command waits for. When the
// hand-over is refused or fails (exit 1), or no gwlbtun is found (3), the service is restarted as
// before (try-restart: it drains, DESTROY and CREATE hooks run); on a fallback (2: the new version
// reads another hand-over version) the old process is already shutting down and the new one
// starts afresh, so nothing more is done. Shared by the .deb's postinst and the RPM's %postun
// (whose $1 >= 1 is an upgrade); the text is checked by test/unit/package-scriptlets.test.ts and
// run against a real daemon by test/e2e/handover-cmd.test.ts.
const HANDOVER_ON_UPGRADE = `if systemctl is-active --quiet gwlbtun.service; then
  if /opt/gwlbtun/bin/gwlbtun handover --timeout 60; then
    :
  else
    rc=$?
    if [ "$rc" -eq 2 ]; then
      echo 'gwlbtun: the new version restarts the service instead of taking over in place (see above)'
    else
      echo "gwlbtun: no hand-over in place (gwlbtun handover: exit $rc): restarting the service instead" >&2
      systemctl try-restart gwlbtun.service || true
    fi
  fi
fi`;

/** `text` with every line but empty ones indented by `n` spaces. */
const indent = (text, n) => text.split('\n').map((l) => (l === '' ? l : ' '.repeat(n) + l)).join('\n');

const POSTINST = `#!/bin/sh
# gwlbtun postinst: the system user; systemd is only told about the unit when it is the init
# (the service is neither enabled nor started: choose the hook first, docs/operations.md). On an
# upgrade ($2: the version configured before) a running service is handed over to the new version
# in place, or else restarted.
set -e
if [ "$1" = configure ]; then
  if ! getent passwd gwlbtun >/dev/null; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
      systemd-sysusers /usr/lib/sysusers.d/gwlbtun.conf
    else
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gwlbtun
    fi
  fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    if [ -n "$2" ]; then
${indent(HANDOVER_ON_UPGRADE, 6)}
    fi
  fi
fi
exit 0
`;

const PRERM = `#!/bin/sh
# gwlbtun prerm: stop and disable the service on removal (only when systemd is the init).
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop gwlbtun.service || true
  systemctl disable gwlbtun.service || true
fi
exit 0
`;

const POSTRM = `#!/bin/sh
# gwlbtun postrm: forget the unit; on purge, remove the system user too.
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
if [ "$1" = purge ] && getent passwd gwlbtun >/dev/null; then userdel gwlbtun || true; fi
exit 0
`;

function writeDeb(stageTreeDir, arch, pkg, outFile, work, epoch) {
  const debRoot = path.join(work, `deb-${arch}`);
  fs.rmSync(debRoot, { recursive: true, force: true });
  copy(stageTreeDir, path.join(debRoot, 'opt', 'gwlbtun'));
  copy(path.join(root, 'examples', 'systemd', 'gwlbtun.service'), path.join(debRoot, 'lib', 'systemd', 'system', 'gwlbtun.service'));
  copy(path.join(root, 'examples', 'systemd', 'gwlbtun.sysusers'), path.join(debRoot, 'usr', 'lib', 'sysusers.d', 'gwlbtun.conf'));
  fs.mkdirSync(path.join(debRoot, 'usr', 'bin'), { recursive: true });
  fs.symlinkSync('/opt/gwlbtun/bin/gwlbtun', path.join(debRoot, 'usr', 'bin', 'gwlbtun'));
  const control = [
    'Package: gwlbtun',
    `Version: ${pkg.version}`,
    `Architecture: ${DEB_ARCH[arch]}`,
    'Maintainer: gwlbtun maintainers <gwlbtun@localhost>',
    `Installed-Size: ${duKiB(debRoot)}`,
    `Depends: nodejs (>= 20)`,
    'Section: net',
    'Priority: optional',
    'Description: AWS Gateway Load Balancer tunnel handler',
    ' Receives the Geneve traffic of an AWS Gateway Load Balancer, hands each endpoint\'s',
    ' traffic to Linux as TUN interfaces gwi-<X>/gwo-<X>, and returns what the kernel routes',
    ' back out. Installed in /opt/gwlbtun; unit gwlbtun.service (not enabled).',
    '',
  ].join('\n');
  const deb = path.join(debRoot, 'DEBIAN');
  fs.mkdirSync(deb, { mode: 0o755 });
  fs.writeFileSync(path.join(deb, 'control'), control, { mode: 0o644 });
  for (const [n, body] of [['postinst', POSTINST], ['prerm', PRERM], ['postrm', POSTRM]]) {
    fs.writeFileSync(path.join(deb, n), body, { mode: 0o755 });
  }
  setModes(debRoot);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', debRoot, outFile], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, SOURCE_DATE_EPOCH: epoch },
  });
}

// The RPM (Amazon Linux 2023 first: the distribution most GWLB appliances run). Built by rpmbuild
// (Debian: apt-get install rpm) from a spec written here, whose %install copies a tree staged like
// the .deb's; only the unit moves, to /usr/lib/systemd/system (AL2023 and Fedora merged /lib into
// /usr, and an RPM must not put files under the /lib symbolic link).
//
// Requires: (nodejs20 or nodejs22 or nodejs24 or nodejs >= 1:20). AL2023 ships each Node.js major
// as its own package, nodejs20, nodejs22, nodejs24 (its plain `nodejs` is Node.js 18, not enough);
// each installs /usr/bin/node-<N> and makes /usr/bin/node an `alternatives` link to the active
// one, and bin/gwlbtun starts through `#!/usr/bin/env node`, so any of them will do (openSUSE
// names its packages the same way). Fedora, RHEL and their rebuilds call it `nodejs`, with Epoch
// 1: the last alternative. The Epoch must be written: rpm compares it first and takes a missing one
// for 0, so `nodejs >= 20` was met by nodejs 1:18 (test/e2e/package-rpm.test.ts puts stand-in
// packages in a transaction to see which satisfy it); a `nodejs` without Epoch (0) does not, even
// a 22: install one of the above, or use --nodeps knowingly. With an older major installed beside
// a newer one, `alternatives --set node /usr/bin/node-22` picks the one /usr/bin/node runs.
// Dependencies found by rpm in the files (/bin/sh for the hooks, /usr/bin/env, the C library for
// the addon) are kept; nothing under /opt/gwlbtun is offered to other packages (the addon is no
// shared library for them: __provides_exclude_from).
//
// Configuration kept across upgrades: the hooks (examples/hooks/, which the unit runs from
// /opt/gwlbtun) and the sysctl drop-in are %config(noreplace): an edited one stays on `rpm -U`
// (the new version is written beside it as <name>.rpmnew when it changed) and is kept as
// <name>.rpmsave on erase. The command line lives in a systemd drop-in under /etc, which no
// package owns, so neither upgrade nor erase touch it.
//
// Scriptlets, plain shell (Debian's rpm has no systemd-rpm-macros; these do what %systemd_post,
// %systemd_preun and %systemd_postun_with_restart do, without enabling anything by preset, like
// the .deb), each doing nothing towards systemd when systemd is not the init (/run/systemd/system,
// which also keeps them quiet in an image build or an `rpm --root` installation):
//   %post    ($1 = 1 install, 2 upgrade): the system user (systemd-sysusers with the sysusers file,
//            else useradd), systemctl daemon-reload. Neither enabled nor started.
//   %preun   ($1 = 0 erase): systemctl --no-reload disable --now gwlbtun.service.
//   %postun  systemctl daemon-reload; on upgrade ($1 >= 1) a running daemon is handed over to the
//            new version in place (HANDOVER_ON_UPGRADE above), or else try-restart (it drains
//            first: --drain in the unit). rpm runs the %postun of the package being replaced,
//            so upgrades from this version on hand over; from an older one, its try-restart.
// The system user stays after erase (as with `dpkg -r`; rpm has no purge).
//
// Modes come from the staged tree (setModes); every entry is owned by root (%defattr). rpmbuild's
// post-install processing (strip, build-id links, debug packages) is off: the addon is built and
// stripped already, and the host's strip cannot handle the other CPU's.

const RPM_CONFIG = /^\/opt\/gwlbtun\/examples\/(hooks|sysctl)\//;

const RPM_POST = `if ! getent passwd gwlbtun >/dev/null; then
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers /usr/lib/sysusers.d/gwlbtun.conf || echo 'gwlbtun: systemd-sysusers could not create the user gwlbtun' >&2
  else
    useradd --system --no-create-home --home-dir /nonexistent --shell /sbin/nologin gwlbtun || echo 'gwlbtun: useradd could not create the user gwlbtun' >&2
  fi
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || :; fi
exit 0`;

const RPM_PREUN = `if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
  systemctl --no-reload disable --now gwlbtun.service || :
fi
exit 0`;

const RPM_POSTUN = `if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || :
  if [ "$1" -ge 1 ]; then
${indent(HANDOVER_ON_UPGRADE, 4)}
  fi
fi
exit 0`;

/** rpm's %files lines for the staged root `dir`: every directory of ours (/opt/gwlbtun and below;
 * /usr/bin and the like belong to the system), every file and link, configuration marked. */
function rpmFiles(dir) {
  const lines = [];
  const walk = (rel) => {
    const st = fs.lstatSync(path.join(dir, rel));
    if (st.isDirectory()) {
      if (rel === '/opt/gwlbtun' || rel.startsWith('/opt/gwlbtun/')) lines.push(`%dir "${rel}"`);
      for (const e of fs.readdirSync(path.join(dir, rel)).sort()) walk(path.posix.join(rel, e));
    } else {
      lines.push(RPM_CONFIG.test(rel) ? `%config(noreplace) "${rel}"` : `"${rel}"`);
    }
  };
  walk('/');
  return lines.filter((l) => l !== '%dir "/"');
}

function writeRpm(stageTreeDir, arch, pkg, release, outDir, work, epoch) {
  const top = path.join(work, `rpm-${arch}`);
  const rpmRoot = path.join(top, 'root');
  fs.rmSync(top, { recursive: true, force: true });
  copy(stageTreeDir, path.join(rpmRoot, 'opt', 'gwlbtun'));
  copy(path.join(root, 'examples', 'systemd', 'gwlbtun.service'), path.join(rpmRoot, 'usr', 'lib', 'systemd', 'system', 'gwlbtun.service'));
  copy(path.join(root, 'examples', 'systemd', 'gwlbtun.sysusers'), path.join(rpmRoot, 'usr', 'lib', 'sysusers.d', 'gwlbtun.conf'));
  fs.mkdirSync(path.join(rpmRoot, 'usr', 'bin'), { recursive: true });
  fs.symlinkSync('/opt/gwlbtun/bin/gwlbtun', path.join(rpmRoot, 'usr', 'bin', 'gwlbtun'));
  setModes(rpmRoot);
  // rpm's Version has no '-': a pre-release 1.2.0-rc.1 becomes 1.2.0~rc.1 (sorts before 1.2.0).
  const version = pkg.version.replace(/-/g, '~');
  const spec = [
    '# Written by scripts/package.js (writeRpm explains the choices); built with rpmbuild -bb.',
    '%global debug_package %{nil}',
    '%global __os_install_post %{nil}',
    '%global _build_id_links none',
    '%global __provides_exclude_from ^/opt/gwlbtun/.*$',
    '%global _binary_payload w9.gzdio',
    '%global _buildhost gwlbtun',
    '%global use_source_date_epoch_as_buildtime 1',
    '%global clamp_mtime_to_source_date_epoch 1',
    'Name: gwlbtun',
    `Version: ${version}`,
    `Release: ${release}`,
    'Summary: AWS Gateway Load Balancer tunnel handler',
    `License: ${pkg.license}`,
    'Requires: (nodejs20 or nodejs22 or nodejs24 or nodejs >= 1:20)',
    '',
    '%description',
    "Receives the Geneve traffic of an AWS Gateway Load Balancer, hands each endpoint's",
    'traffic to Linux as TUN interfaces gwi-<X>/gwo-<X>, and returns what the kernel routes',
    'back out. Installed in /opt/gwlbtun; unit gwlbtun.service (not enabled).',
    '',
    '%install',
    `cp -a "${rpmRoot}/." "%{buildroot}/"`,
    '',
    '%post', RPM_POST, '',
    '%preun', RPM_PREUN, '',
    '%postun', RPM_POSTUN, '',
    '%files',
    '%defattr(-,root,root,-)',
    ...rpmFiles(rpmRoot),
    '',
  ].join('\n');
  const specFile = path.join(top, 'gwlbtun.spec');
  fs.writeFileSync(specFile, spec, { mode: 0o644 });
  const r = spawnSync('rpmbuild', [
    '-bb', '--quiet', '--target', `${RPM_ARCH[arch]}-linux`,
    '--define', `_topdir ${path.join(top, 'top')}`,
    '--define', `_rpmdir ${outDir}`,
    '--define', '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm',
    specFile,
  ], { encoding: 'utf8', env: { ...process.env, SOURCE_DATE_EPOCH: epoch } });
  if (r.status !== 0) die(`rpmbuild failed for linux-${arch} (spec: ${specFile}):\n${r.stdout}${r.stderr}${r.error ?? ''}`);
  const out = path.join(outDir, `gwlbtun-${version}-${release}.${RPM_ARCH[arch]}.rpm`);
  if (!fs.existsSync(out)) die(`rpmbuild wrote no ${out}`);
  return out;
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  if (!fs.existsSync(path.join(root, 'dist', 'src', 'cli.js'))) die("dist/src/cli.js is missing: run 'npm run build' first");
  if (onPath('dpkg-deb') === undefined) die('dpkg-deb is not on PATH (Debian: apt-get install dpkg)');
  if (onPath('rpmbuild') === undefined) die('rpmbuild is not on PATH (Debian: apt-get install rpm)');
  const epoch = sourceDateEpoch();
  fs.mkdirSync(o.out, { recursive: true });
  const work = path.join(o.out, '.stage');
  fs.rmSync(work, { recursive: true, force: true });
  const sums = [];
  for (const arch of o.arches) {
    const addon = addonFor(arch);
    const name = `gwlbtun-${pkg.version}-linux-${arch}`;
    const tree = path.join(work, name);
    stageTree(tree, arch, addon, pkg);
    const tarball = path.join(o.out, `${name}.tar.gz`);
    writeTarball(work, name, tarball, epoch);
    const debFile = path.join(o.out, `gwlbtun_${pkg.version}_${DEB_ARCH[arch]}.deb`);
    writeDeb(tree, arch, pkg, debFile, work, epoch);
    const rpmFile = writeRpm(tree, arch, pkg, o.rpmRelease, o.out, work, epoch);
    for (const f of [tarball, debFile, rpmFile]) {
      sums.push(`${crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex')}  ${path.basename(f)}`);
      console.log(`package: ${path.relative(process.cwd(), f)}`);
    }
  }
  fs.writeFileSync(path.join(o.out, 'SHA256SUMS'), sums.join('\n') + '\n');
  fs.rmSync(work, { recursive: true, force: true });
}

if (require.main === module) main();
module.exports = { HANDOVER_ON_UPGRADE, POSTINST, POSTRM, PRERM, RPM_POST, RPM_POSTUN, RPM_PREUN };
