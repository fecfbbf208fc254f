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
// is made from that tree (the tarball holds it, the .deb puts it under /opt/gwlbtun; another package
// format should reuse it the same way, through this module's exports). It ships what the daemon runs
// and nothing else: of dist/src, the product folders of docs/architecture.md ("Layers"); the tools
// (TOOL_DIRS: the emulator, the lab, the demo, the test kit) stay in the repository and in the npm
// scripts, and bench/ and test/ never ship. test/unit/layers.test.ts checks that no product file
// imports a tool, so the daemon never misses one (test/e2e/package.test.ts runs it from the tarball).
//
// Usage: node scripts/package.js [--out DIR] [--arch x64,arm64]   (default DIR: build/release)
'use strict';
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { nodeApiInclude, addonSources, addonArgs, compileAddon } = require('./build-native');

const root = path.resolve(__dirname, '..');
const TRIPLES = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };
const DEB_ARCH = { x64: 'amd64', arm64: 'arm64' };
const ELF_MACHINE = { x64: 62, arm64: 183 };

function die(msg) {
  console.error(`package: ${msg}`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = { out: path.join(root, 'build', 'release'), arches: ['x64', 'arm64'] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out' && i + 1 < argv.length) o.out = path.resolve(argv[++i]);
    else if (a === '--arch' && i + 1 < argv.length) o.arches = argv[++i].split(',').filter(Boolean);
    else die(`unknown argument '${a}' (usage: node scripts/package.js [--out DIR] [--arch x64,arm64])`);
  }
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

const POSTINST = `#!/bin/sh
# gwlbtun postinst: the system user; systemd is only told about the unit when it is the init
# (the service is neither enabled nor started: choose the hook first, docs/operations.md).
set -e
if [ "$1" = configure ]; then
  if ! getent passwd gwlbtun >/dev/null; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
      systemd-sysusers /usr/lib/sysusers.d/gwlbtun.conf
    else
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gwlbtun
    fi
  fi
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
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

function main() {
  const o = parseArgs(process.argv.slice(2));
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  if (!fs.existsSync(path.join(root, 'dist', 'src', 'cli.js'))) die("dist/src/cli.js is missing: run 'npm run build' first");
  if (onPath('dpkg-deb') === undefined) die('dpkg-deb is not on PATH (Debian: apt-get install dpkg)');
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
    for (const f of [tarball, debFile]) {
      sums.push(`${crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex')}  ${path.basename(f)}`);
      console.log(`package: ${path.relative(process.cwd(), f)}`);
    }
  }
  fs.writeFileSync(path.join(o.out, 'SHA256SUMS'), sums.join('\n') + '\n');
  fs.rmSync(work, { recursive: true, force: true });
}

module.exports = { TOOL_DIRS, stageTree, setModes, addonFor };

if (require.main === module) main();
