// The interface sysctl keeper (src/control/sysctl.ts) over a directory that stands in for
// /proc/sys/net: what it writes, what it restores, what it logs (once per endpoint, interface and
// setting) and counts, how it handles unwritable settings, and the bounded round robin of its
// watcher. The real /proc/sys/net is exercised by test/e2e/sysctl.test.ts.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IF_SETTINGS, InterfaceSysctls, newSysctlMarks, SEND_DEVICE_SETTINGS, settingPath, WATCH_MIN_PER_TICK, writeSendDeviceSettings, type SysctlTarget } from '../../src/control/sysctl';
import { defaultLogConfig, Logger } from '../../src/base/log';

let root = '';
const RP = IF_SETTINGS.find((s) => s.name === 'ipv4.rp_filter')!;

/** Make the conf directories of these interfaces, every setting at `value`. */
function mkIf(ifname: string, value = '2'): void {
  for (const s of IF_SETTINGS) {
    fs.mkdirSync(path.dirname(settingPath(s, ifname, root)), { recursive: true });
    fs.writeFileSync(settingPath(s, ifname, root), value + '\n');
  }
}
function read(ifname: string, s = RP): string {
  return fs.readFileSync(settingPath(s, ifname, root), 'utf8').trim();
}
function endpoint(n: number): SysctlTarget {
  const e = { hex: n.toString(16).padStart(17, '0'), gwi: `gwi-${n}`, gwo: `gwo-${n}`, state: 'ready', sysctl: newSysctlMarks() };
  mkIf(e.gwi);
  mkIf(e.gwo);
  return e;
}
function keeper(noReturn = false): { k: InterfaceSysctls; lines: string[] } {
  const lines: string[] = [];
  return { k: new InterfaceSysctls(new Logger(defaultLogConfig(), (l) => lines.push(l)), noReturn, root), lines };
}

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-sysctl-'));
  fs.mkdirSync(path.join(root, 'ipv4', 'conf', 'all'), { recursive: true });
  fs.writeFileSync(path.join(root, 'ipv4', 'conf', 'all', 'rp_filter'), '0\n');
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

test('apply writes every setting on gwi- and gwo- (only gwi- with --no-return), silently', () => {
  const { k, lines } = keeper();
  const e = endpoint(1);
  k.apply(e);
  for (const ifname of [e.gwi, e.gwo]) for (const s of IF_SETTINGS) assert.equal(read(ifname, s), s.value, `${ifname} ${s.name}`);
  assert.deepEqual(lines, []);
  assert.equal(k.restored.get('ipv4.rp_filter'), 0, 'applying is not restoring');
  const nr = keeper(true);
  const e2 = endpoint(2);
  nr.k.apply(e2);
  assert.equal(read(e2.gwi), '0');
  assert.equal(read(e2.gwo), '2', 'no gwo- with --no-return');
});

test('check restores a changed watched setting, counts each time, logs once per endpoint and interface', () => {
  const { k, lines } = keeper();
  const e = endpoint(3);
  k.apply(e);
  assert.equal(k.check(e), 0, 'nothing changed');
  fs.writeFileSync(settingPath(RP, e.gwi, root), '2\n');
  fs.writeFileSync(settingPath(RP, e.gwo, root), '1\n');
  assert.equal(k.check(e), 2);
  assert.equal(read(e.gwi), '0');
  assert.equal(read(e.gwo), '0');
  assert.equal(lines.length, 2);
  assert.match(lines[0], /endpoint 00000000000000003: net\.ipv4\.conf\.gwi-3\.rp_filter was changed to 2 by someone else; restored 0/);
  assert.match(lines[1], /gwo-3\.rp_filter was changed to 1/);
  fs.writeFileSync(settingPath(RP, e.gwi, root), '2\n');
  assert.equal(k.check(e), 1);
  assert.equal(lines.length, 2, 'not logged again');
  assert.equal(k.restored.get('ipv4.rp_filter'), 3);
  // Unwatched settings (effective only when the link comes up) are left alone after apply.
  const unwatched = IF_SETTINGS.filter((s) => !s.watch);
  for (const s of unwatched) fs.writeFileSync(settingPath(s, e.gwi, root), '7\n');
  assert.equal(k.check(e), 0);
  for (const s of unwatched) assert.equal(read(e.gwi, s), '7');
  // A new endpoint is logged again.
  const e2 = endpoint(4);
  assert.equal(k.check(e2), 2);
  assert.equal(lines.length, 4);
});

test('a vanished interface is skipped; an unwritable setting is logged once, counted, not retried', () => {
  const { k, lines } = keeper();
  const gone = { hex: '0'.repeat(16) + '5', gwi: 'gwi-gone', gwo: 'gwo-gone', state: 'ready', sysctl: newSysctlMarks() };
  k.apply(gone);
  assert.equal(k.check(gone), 0);
  assert.equal(k.errors, 0);
  assert.deepEqual(lines, []);
  // A directory where the value should be: writing fails (EISDIR), as a read-only /proc/sys would.
  const e = endpoint(6);
  fs.rmSync(settingPath(RP, e.gwi, root));
  fs.mkdirSync(settingPath(RP, e.gwi, root));
  k.apply(e);
  assert.equal(k.errors, 1);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /cannot set net\.ipv4\.conf\.gwi-6\.rp_filter=0 \(EISDIR\)/);
  assert.equal(read(e.gwo), '0', 'the other interface is still set');
  k.check(e);
  k.check(e);
  assert.equal(k.errors, 1, 'not tried again');
});

test('conf/all/rp_filter not 0: one warning while it stays so, another after it was 0 in between', () => {
  const { k, lines } = keeper();
  const e = endpoint(7);
  k.apply(e);
  const all = path.join(root, 'ipv4', 'conf', 'all', 'rp_filter');
  try {
    fs.writeFileSync(all, '2\n');
    for (let i = 0; i < 3; i++) k.tick([e], 1);
    fs.writeFileSync(all, '0\n');
    k.tick([e], 1);
    fs.writeFileSync(all, '1\n');
    k.tick([e], 1);
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0], /net\.ipv4\.conf\.all\.rp_filter is 2/);
    assert.match(lines[1], /net\.ipv4\.conf\.all\.rp_filter is 1/);
    k.tick([undefined], 0);
    assert.equal(lines.length, 2, 'no endpoint: nothing checked');
  } finally {
    fs.writeFileSync(all, '0\n');
  }
});

test('a tick checks ready endpoints only, at most max(64, a quarter) of them, round robin', () => {
  const { k } = keeper();
  const n = 300;
  const slots: (SysctlTarget | undefined)[] = [];
  for (let i = 0; i < n; i++) {
    const e = endpoint(100 + i);
    k.apply(e);
    fs.writeFileSync(settingPath(RP, e.gwi, root), '2\n');
    slots.push(e, undefined); // empty slots in between
  }
  const creating = endpoint(99);
  creating.state = 'creating';
  slots.push(creating);
  const perTick = Math.max(WATCH_MIN_PER_TICK, Math.ceil(n / 4));
  k.tick(slots, n);
  assert.equal(k.restored.get('ipv4.rp_filter'), perTick);
  for (let i = 0; i < 4; i++) k.tick(slots, n);
  assert.equal(k.restored.get('ipv4.rp_filter'), n, 'every ready endpoint within four ticks');
  assert.equal(read(creating.gwi), '2', 'an endpoint being created is left to its hook');
});

test('the send device (gwlbtx0): written at open, then kept on every tick even without endpoints; restorations counted apart, logged once per setting', () => {
  const dev = 'gwlbtx0';
  for (const st of SEND_DEVICE_SETTINGS) {
    fs.mkdirSync(path.dirname(settingPath(st, dev, root)), { recursive: true });
    fs.writeFileSync(settingPath(st, dev, root), '2\n');
  }
  writeSendDeviceSettings(dev, root);
  const val = (name: string): string => read(dev, SEND_DEVICE_SETTINGS.find((x) => x.name === name)!);
  assert.deepEqual(['ipv4.accept_local', 'ipv4.rp_filter', 'ipv4.forwarding', 'ipv6.disable_ipv6'].map(val), ['1', '0', '1', '1']);
  const { k, lines } = keeper();
  k.tick([], 0);
  assert.equal(k.deviceRestored.size, 0, 'nothing watched before watchDevice');
  k.watchDevice(dev);
  const rp = SEND_DEVICE_SETTINGS.find((x) => x.name === 'ipv4.rp_filter')!;
  for (let i = 0; i < 3; i++) {
    fs.writeFileSync(settingPath(rp, dev, root), String(1 + (i % 2)));
    k.tick([], 0); // no endpoints: the device is still checked
    assert.equal(val('ipv4.rp_filter'), '0');
  }
  fs.writeFileSync(settingPath(SEND_DEVICE_SETTINGS[0], dev, root), '0');
  k.tick([], 0);
  assert.equal(val('ipv4.accept_local'), '1');
  assert.equal(k.deviceRestored.get('ipv4.rp_filter'), 3);
  assert.equal(k.deviceRestored.get('ipv4.accept_local'), 1);
  assert.equal(k.restored.get('ipv4.rp_filter'), 0, 'the gwi-/gwo- count is apart');
  const logged = lines.filter((l) => l.includes('send device: net.ipv4.conf.gwlbtx0.'));
  assert.equal(logged.length, 2, logged.join('\n'));
  assert.match(logged[0], /rp_filter was changed to 1 by someone else; restored 0/);
  // Gone: skipped silently.
  fs.rmSync(path.join(root, 'ipv4', 'conf', dev), { recursive: true });
  k.tick([], 0);
  assert.equal(k.errors, 0);
});
