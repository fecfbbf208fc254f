// What the test suite needs from the machine, installed when missing (Debian, as root), so that
// `npm test` is all a newcomer types after `npm ci`. Nothing is installed when everything is there.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');

/** Command the suite runs -> the Debian package that provides it. */
const COMMANDS = [
  ['ip', 'iproute2'], // namespaces, veths, routes (src/sim/topology.ts, the hooks)
  ['tc', 'iproute2'], // examples/hooks/passthrough.sh
  ['nft', 'nftables'], // every example hook is tested with nftables ...
  ['iptables', 'iptables'], // ... and with iptables (test/e2e/hooks-*.test.ts)
  ['ip6tables', 'iptables'],
  ['iptables-save', 'iptables'],
  ['setpriv', 'util-linux'], // test/e2e/hooks-unprivileged.test.ts
  ['unshare', 'util-linux'],
  ['tar', 'tar'], // unpacking the pinned Node.js packages (scripts/test-nodes.js)
  ['gzip', 'gzip'], // ... and the release tarballs (test/e2e/package-modes.test.ts)
  ['dpkg-deb', 'dpkg'], // building and listing the .deb (test/e2e/package-modes.test.ts)
  ['rpmbuild', 'rpm'], // building, querying and installing the RPMs (test/e2e/package-rpm.test.ts, package-modes.test.ts)
  ['systemd-analyze', 'systemd'], // the unit's checks and its system call groups (test/*/systemd-*.test.ts)
  ['ethtool', 'ethtool'], // test/e2e/offload.test.ts, offload-mss.test.ts: the veth's tunnel offloads off (as on a NIC without them)
];
/** Only needed when the suite has to build first (dist/ or the addon missing). */
const BUILD_COMMANDS = [['cc', 'gcc libc6-dev']];

function have(cmd) {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' }).status === 0;
}

/** apt-get update and install `pkgs` (as root, non-interactive), one line saying why first and
 * one line when it failed; true when apt-get succeeded. Also used by the lab (src/lab/tools.ts). */
function aptInstall(pkgs, forCmds, tag) {
  console.log(`${tag}: installing ${pkgs.join(' ')} (for ${forCmds.join(', ')})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const up = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const inst = up.status === 0 && spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env });
  if (!inst || inst.status !== 0) {
    console.error(`${tag}: apt-get could not install ${pkgs.join(' ')}`);
    return false;
  }
  return true;
}

/** Installs what is missing; returns false (after one clear line) when it could not. */
function ensurePrereqs({ build }) {
  const list = build ? [...COMMANDS, ...BUILD_COMMANDS] : COMMANDS;
  const missing = list.filter(([cmd]) => !have(cmd));
  let ok = true;
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.flatMap(([, p]) => p.split(' ')))];
    const what = `${missing.map(([c]) => c).join(', ')} (Debian: ${pkgs.join(' ')})`;
    if (process.getuid?.() !== 0) {
      console.error(`run-tests: missing ${what}; run as root to have them installed, or: apt-get install -y ${pkgs.join(' ')}`);
      ok = false;
    } else if (!have('apt-get')) {
      console.error(`run-tests: missing ${what} and there is no apt-get here; install them, then rerun`);
      ok = false;
    } else if (!aptInstall(pkgs, missing.map(([c]) => c), 'run-tests') || list.some(([cmd]) => !have(cmd))) {
      const still = list.filter(([cmd]) => !have(cmd)).map(([c]) => c);
      if (still.length > 0) console.error(`run-tests: still missing: ${still.join(', ')}`);
      ok = false;
    }
  }
  // The TUN device node: present on normal distributions, absent in some minimal containers.
  if (!fs.existsSync('/dev/net/tun') && process.getuid?.() === 0) {
    fs.mkdirSync('/dev/net', { recursive: true });
    const r = spawnSync('mknod', ['/dev/net/tun', 'c', '10', '200'], { stdio: 'inherit' });
    if (r.status === 0) fs.chmodSync('/dev/net/tun', 0o666);
    else {
      console.error('run-tests: /dev/net/tun is missing and could not be created');
      ok = false;
    }
  }
  return ok;
}

module.exports = { ensurePrereqs, aptInstall, have };
