// The lab's suggested commands work on a fresh Debian machine (issue 25, src/lab/tools.ts): every
// tool the banner suggests has a known package, missing ones are installed with apt-get (as
// root), and what cannot be installed is named in one line with its package.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ensureTools, LAB_TOOLS, suggestedCommands, type ToolDeps } from '../../src/lab/tools';

function fake(present: string[], installs: boolean, root = true): ToolDeps & { installed: string[][] } {
  const have = new Set(present);
  const installed: string[][] = [];
  return {
    installed,
    root,
    have: (c) => have.has(c),
    install: (pkgs, cmds) => {
      installed.push(pkgs);
      if (installs) for (const c of cmds) have.add(c);
      return installs;
    },
  };
}

test("every command the lab's banner suggests is a tool with a known Debian package", () => {
  const cmds = suggestedCommands('198.51.100.10', '2001:db8:2::10', 'gwi-x', 8081);
  const tools = cmds.map(([, c]) => c.split(' ')[0]);
  assert.deepEqual([...new Set(tools)].sort(), ['curl', 'ping', 'tcpdump']);
  for (const t of tools) assert.ok(LAB_TOOLS[t], t);
  assert.equal(LAB_TOOLS.ping, 'iputils-ping');
  for (const [role] of cmds) assert.ok(['client', 'server', 'gwlb', 'appliance'].includes(role));
});

test('missing tools are installed in one apt-get (ping -> iputils-ping, tcpdump); present and unknown ones left alone', () => {
  const d = fake(['curl'], true);
  assert.deepEqual(ensureTools(['curl', 'ping', 'tcpdump', 'ping', 'my-own-script'], d), []);
  assert.deepEqual(d.installed, [['iputils-ping', 'tcpdump']]);
  const none = fake(['curl', 'ping', 'tcpdump'], true);
  assert.deepEqual(ensureTools(['curl', 'ping', 'tcpdump'], none), []);
  assert.deepEqual(none.installed, [], 'nothing installed when everything is there');
});

test('a tool that cannot be installed (apt-get failed, or not root) is one line naming its package', () => {
  const failed = fake([], false);
  assert.deepEqual(ensureTools(['ping'], failed), ['ping is not installed: apt-get install -y iputils-ping']);
  const user = fake([], true, false);
  assert.deepEqual(ensureTools(['tcpdump'], user), ['tcpdump is not installed: apt-get install -y tcpdump']);
  assert.deepEqual(user.installed, [], 'no apt-get without root');
});
