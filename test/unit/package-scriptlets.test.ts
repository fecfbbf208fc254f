// The packages' upgrade scriptlets (scripts/package.js: the .deb's postinst, the RPM's %postun)
// hand a running service over in place (`gwlbtun handover`) instead of restarting it, and restart
// it only when the hand-over did not happen. Checked here as text (sh -n, the order of the steps,
// the paths the packages install to, the unit systemd must follow) and as behaviour: the scriptlet
// runs with stand-ins for systemctl and gwlbtun that record their calls, for each exit status of
// `gwlbtun handover`. test/e2e/handover-cmd.test.ts runs it against a real daemon.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pkg = require(path.join(ROOT, 'scripts', 'package.js')) as Record<'HANDOVER_ON_UPGRADE' | 'POSTINST' | 'RPM_POSTUN' | 'RPM_POST' | 'PRERM', string>;
const BIN = '/opt/gwlbtun/bin/gwlbtun';

test('the .deb postinst and the RPM %postun: daemon-reload, then the hand-over on upgrade, try-restart only as its fallback', () => {
  for (const [name, text] of [['postinst', pkg.POSTINST], ['%postun', pkg.RPM_POSTUN]] as const) {
    const r = spawnSync('sh', ['-n'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, `${name}: sh -n: ${r.stderr}`);
    const reload = text.indexOf('systemctl daemon-reload');
    const hand = text.indexOf(`${BIN} handover`);
    const restart = text.indexOf('systemctl try-restart gwlbtun.service');
    assert.ok(reload >= 0 && hand > reload && restart > hand, `${name}: daemon-reload, handover, then try-restart as the fallback:\n${text}`);
    assert.equal(text.split('try-restart').length, 2, `${name}: one try-restart, the fallback's`);
    assert.ok(text.includes('systemctl is-active --quiet gwlbtun.service'), `${name}: only a running service`);
  }
  assert.match(pkg.POSTINST, /if \[ -n "\$2" \]; then\n\s+if systemctl is-active/, 'postinst: on upgrade only (configure with the old version)');
  assert.match(pkg.RPM_POSTUN, /if \[ "\$1" -ge 1 \]; then\n\s+if systemctl is-active/, '%postun: on upgrade only');
  for (const t of [pkg.RPM_POST, pkg.PRERM]) assert.ok(!t.includes('handover'), 'install and removal hand nothing over');
});

test('the process that re-executes after an upgrade runs the new version, and systemd follows it', () => {
  // bin/gwlbtun finds dist/ from its own real path (the /usr/bin/gwlbtun link resolves to
  // /opt/gwlbtun/bin/gwlbtun), which the package replaced in place; the unit starts that path.
  const bin = fs.readFileSync(path.join(ROOT, 'bin', 'gwlbtun'), 'utf8');
  assert.match(bin, /fs\.realpathSync\(__filename\)/);
  const unit = fs.readFileSync(path.join(ROOT, 'examples', 'systemd', 'gwlbtun.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/opt\/gwlbtun\/bin\/gwlbtun /m, 'the unit starts the packaged path');
  assert.match(unit, /^Type=notify$/m, 'Type=notify: systemd takes MAINPID= from the old process');
  assert.doesNotMatch(unit, /^NotifyAccess=/m, 'the default NotifyAccess=main');
});

/** Runs the scriptlet's hand-over part with stand-ins: systemctl (is-active answers `active`) and
 * gwlbtun (exits `rc`); returns the calls and the output. */
function runSnippet(rc: number, active = 0): { calls: string[]; out: string; status: number | null } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-scriptlet-'));
  try {
    const log = path.join(dir, 'calls.log');
    const stub = (name: string, body: string): void => fs.writeFileSync(path.join(dir, name), `#!/bin/sh\necho "${name} $*" >>${log}\n${body}\n`, { mode: 0o755 });
    stub('systemctl', `[ "$1" = is-active ] && exit ${active}; exit 0`);
    stub('gwlbtun', `exit ${rc}`);
    const script = `set -e\n${pkg.HANDOVER_ON_UPGRADE.split(BIN).join(path.join(dir, 'gwlbtun'))}\nexit 0\n`;
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}` } });
    const calls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter((l) => l !== '') : [];
    return { calls, out: r.stdout + r.stderr, status: r.status };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the hand-over part as it runs: 0 done, 2 a restart under way (nothing more), 1 and 3 try-restart, not active: nothing', () => {
  const handover = 'gwlbtun handover --timeout 60';
  let r = runSnippet(0);
  assert.deepEqual(r.calls, ['systemctl is-active --quiet gwlbtun.service', handover]);
  assert.equal(r.status, 0);
  r = runSnippet(2);
  assert.deepEqual(r.calls, ['systemctl is-active --quiet gwlbtun.service', handover]);
  assert.match(r.out, /restarts the service instead of taking over in place/);
  for (const rc of [1, 3, 127]) {
    r = runSnippet(rc);
    assert.deepEqual(r.calls, ['systemctl is-active --quiet gwlbtun.service', handover, 'systemctl try-restart gwlbtun.service'], `exit ${rc}`);
    assert.match(r.out, new RegExp(`no hand-over in place \\(gwlbtun handover: exit ${rc}\\): restarting the service instead`));
    assert.equal(r.status, 0, 'set -e: the scriptlet goes on');
  }
  r = runSnippet(0, 3);
  assert.deepEqual(r.calls, ['systemctl is-active --quiet gwlbtun.service'], 'a stopped service stays stopped');
});
