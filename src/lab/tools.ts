// The tools the lab's banner suggests (curl, ping, tcpdump) and the Debian package of each: a
// fresh Debian machine has none of iputils-ping and tcpdump, and `ip netns exec` then answers
// "exec of "ping" failed". The lab installs what is missing with apt-get (the same apt-get logic
// as the test prerequisites, scripts/test-prereqs.js) when it starts and when `exec` is asked for
// one of them; when that is not possible it names the package in one line.

import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

/** Command -> the Debian package that provides it. */
export const LAB_TOOLS: Readonly<Record<string, string>> = {
  curl: 'curl',
  ping: 'iputils-ping',
  tcpdump: 'tcpdump',
  nft: 'nftables',
  ip: 'iproute2',
  ss: 'iproute2',
};

/** The commands the banner suggests ([namespace role, command line]), `healthPort` and `gwi`
 * filled in. */
export function suggestedCommands(server4: string, server6: string, gwi: string, healthPort: number): [string, string][] {
  return [
    ['client', `curl http://${server4}/`],
    ['client', `curl -g 'http://[${server6}]/bytes/1000000' -o /dev/null`],
    ['client', `ping -c 3 ${server4}`],
    ['appliance', `tcpdump -ni ${gwi}`],
    ['appliance', `curl -s localhost:${healthPort}/metrics`],
  ];
}

export interface ToolDeps {
  have: (cmd: string) => boolean;
  /** apt-get install: true when it succeeded. */
  install: (pkgs: string[], forCmds: string[]) => boolean;
  root: boolean;
}

function haveCmd(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' }).status === 0;
}

function aptInstall(pkgs: string[], forCmds: string[]): boolean {
  if (!haveCmd('apt-get')) return false;
  try {
    const prereqs = require(path.join(__dirname, '..', '..', '..', 'scripts', 'test-prereqs.js')) as { aptInstall: (p: string[], c: string[], tag: string) => boolean };
    return prereqs.aptInstall(pkgs, forCmds, 'lab');
  } catch {
    return false;
  }
}

export const SYSTEM: ToolDeps = { have: haveCmd, install: aptInstall, root: process.getuid?.() === 0 };

/** Makes the known tools among `cmds` present: installs the missing ones (as root, with apt-get).
 * Returns one line per tool still missing, naming its package; unknown commands are left alone. */
export function ensureTools(cmds: string[], deps: ToolDeps = SYSTEM): string[] {
  const missing = [...new Set(cmds)].filter((c) => LAB_TOOLS[c] !== undefined && !deps.have(c));
  if (missing.length === 0) return [];
  const pkgs = [...new Set(missing.map((c) => LAB_TOOLS[c]))];
  if (deps.root) deps.install(pkgs, missing);
  return missing.filter((c) => !deps.have(c)).map((c) => `${c} is not installed: apt-get install -y ${LAB_TOOLS[c]}`);
}
