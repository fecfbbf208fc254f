// The per-interface kernel settings every GWLB appliance needs on gwlbtun's own interfaces
// (docs/operations.md, "Kernel settings"): gwlbtun writes them when it creates gwi-<X>/gwo-<X>
// (before the links go up and before the CREATE hook), and keeps them.
//
// Why keep them: on distributions whose udev runs systemd-sysctl for every new interface (Amazon
// Linux 2023, Ubuntu), the sysctl.d defaults (net.ipv4.conf.*.rp_filter = 2) land on a new
// interface tens of milliseconds after it appears, possibly after the CREATE hook wrote 0. GWLB's
// inner sources are not routable on the appliance, so reverse-path filtering then discards every
// packet of the endpoint, silently and for good. A watcher (every WATCH_MS, over ready endpoints)
// reads the watched settings back and restores any that changed, logs the first restoration of
// each endpoint and setting, and counts every one (gwlbtun_sysctl_restored_total).
//
// The send device of --offload on (`gwlbtx0`: the UDP tunnel GSO TAP or the USO TUN,
// src/io/txtap.ts) is kept the same way: the kernel routes what gwlbtun writes to it as if
// received there, so rp_filter 1 or 2 on it (udev again) drops every return in the kernel
// (IPReversePathFilter) after gwlbtun counted it as sent. Its settings (SEND_DEVICE_SETTINGS) are
// written when it is opened, and the watcher reads them back on every tick, endpoints or not.
//
// /proc/sys/net shows the network namespace of the reading process: the daemon's, which is the
// namespace its interfaces live in. `--no-sysctl` turns all of this off but the send device's
// first write (without which its tier does not work at all: src/io/txtap.ts).

import * as fs from 'node:fs';
import { LEVEL, type Logger } from '../base/log';

export interface IfSetting {
  /** Metric label and log name, e.g. "ipv4.rp_filter". */
  name: string;
  /** Directory under /proc/sys/net: ipv4 or ipv6. */
  family: 'ipv4' | 'ipv6';
  key: string;
  value: string;
  /** Read back and restored by the watcher. Settings that only matter when the link comes up
   * (nothing happens when they change later) are written once and not watched. */
  watch: boolean;
}

/** What gwlbtun owns on every gwi-/gwo- interface. */
export const IF_SETTINGS: readonly IfSetting[] = [
  // Inner sources are not routed through gwi-: strict (1) or loose (2) reverse-path filtering
  // drops all of them. The kernel applies the larger of conf/all and conf/<if>: see ALL_RP_FILTER.
  { name: 'ipv4.rp_filter', family: 'ipv4', key: 'rp_filter', value: '0', watch: true },
  // No IPv6 link-local address (written before the link goes up, when it is generated): a TUN
  // device gets a random one, and with it router solicitations and MLD reports for its
  // solicited-node group that the kernel sends out of the interface and gwlbtun must drop
  // (`link_local`). IPv6 forwarding through the interface needs no address of its own. Measured
  // (two endpoints, IPv4 and IPv6 traffic, all returned): 16 `link_local` drops in 10 s without,
  // 8 with (what is left: MLD reports for the all-routers groups, from ::).
  { name: 'ipv6.addr_gen_mode', family: 'ipv6', key: 'addr_gen_mode', value: '1', watch: false },
  // Never take a router advertisement arriving on gwi-: anyone who can send Geneve to the
  // appliance could otherwise inject one (source fe80::, to ff02::1) and give the appliance a
  // default route or addresses through gwi- (the kernel honours RAs with accept_ra 1 whenever
  // forwarding is off). Hardening; the drops above are the same with or without it.
  { name: 'ipv6.accept_ra', family: 'ipv6', key: 'accept_ra', value: '0', watch: false },
];

/** What gwlbtun owns on its send device (`gwlbtx0`): what it writes there is routed as if received
 * on it, from the appliance's own address, towards GWLB. */
export const SEND_DEVICE_SETTINGS: readonly IfSetting[] = [
  // The source is the appliance's own address: accepted only with accept_local.
  { name: 'ipv4.accept_local', family: 'ipv4', key: 'accept_local', value: '1', watch: true },
  // The source is not routed via gwlbtx0: reverse-path filtering (1 or 2) drops every return.
  { name: 'ipv4.rp_filter', family: 'ipv4', key: 'rp_filter', value: '0', watch: true },
  { name: 'ipv4.forwarding', family: 'ipv4', key: 'forwarding', value: '1', watch: true },
  // No IPv6 on it at all (no link-local address, no router solicitations): it stays quiet.
  { name: 'ipv6.disable_ipv6', family: 'ipv6', key: 'disable_ipv6', value: '1', watch: false },
];

/** Writes SEND_DEVICE_SETTINGS on device `name` (just created); throws when an IPv4 one cannot be
 * written (the send tier then is not used); IPv6 absent from the kernel is fine. */
export function writeSendDeviceSettings(name: string, root = PROC_SYS_NET): void {
  for (const s of SEND_DEVICE_SETTINGS) {
    try {
      fs.writeFileSync(settingPath(s, name, root), s.value);
    } catch (e) {
      if (s.family === 'ipv4') throw e;
    }
  }
}

/** conf/all/rp_filter: not gwlbtun's to change (it applies to every interface of the machine),
 * but a non-zero value defeats the per-interface 0; the watcher warns when it is not 0. */
export const ALL_RP_FILTER = 'ipv4/conf/all/rp_filter';
export const PROC_SYS_NET = '/proc/sys/net';

export const WATCH_MS = 250;
/** Endpoints examined per tick: all of them up to this many, else a quarter of them (so that
 * every endpoint is examined at least once a second, and a tick does bounded work). */
export const WATCH_MIN_PER_TICK = 64;

export function settingPath(s: IfSetting, ifname: string, root = PROC_SYS_NET): string {
  return `${root}/${s.family}/conf/${ifname}/${s.key}`;
}

/** The per-endpoint state the keeper needs (kept on the endpoint, so it goes with it). */
export interface SysctlMarks {
  /** Bit (setting index * 2 + interface index): that restoration was logged already. */
  logged: number;
  /** Same bits: writing failed (logged once); not tried again for this endpoint. */
  failed: number;
}

export function newSysctlMarks(): SysctlMarks {
  return { logged: 0, failed: 0 };
}

export interface SysctlTarget {
  hex: string;
  gwi: string;
  gwo: string;
  state: string;
  sysctl: SysctlMarks;
}

/** Reads a sysctl file; null when it does not exist (interface gone, IPv6 disabled). */
function readSetting(path: string): string | null {
  try {
    return fs.readFileSync(path, 'latin1').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export class InterfaceSysctls {
  /** Restorations by setting name (a value changed by someone else and written back). */
  readonly restored = new Map<string, number>(IF_SETTINGS.map((s) => [s.name, 0]));
  /** Send device (gwlbtx0) settings changed by someone else and written back, by setting name. */
  readonly deviceRestored = new Map<string, number>();
  /** Writes that failed (no permission, read-only /proc/sys). */
  errors = 0;
  private cursor = 0;
  private allWarned = false;
  /** The send device watched (watchDevice), and its marks as for an endpoint. */
  private device: { name: string; marks: SysctlMarks } | null = null;

  constructor(
    private readonly log: Logger,
    /** --no-return: there is no gwo- interface. */
    private readonly noReturn: boolean,
    /** Where the tree lives (another directory in the unit tests). */
    private readonly root = PROC_SYS_NET,
  ) {}

  private ifnames(e: SysctlTarget): string[] {
    return this.noReturn ? [e.gwi] : [e.gwi, e.gwo];
  }

  /** Write every setting on the endpoint's interfaces (just created, not up yet). */
  apply(e: SysctlTarget): void {
    const names = this.ifnames(e);
    for (let si = 0; si < IF_SETTINGS.length; si++) {
      for (let ii = 0; ii < names.length; ii++) this.write(e, si, ii, names[ii], null);
    }
  }

  /** Read the watched settings of one endpoint back; restore those that changed. Returns the
   * number restored. */
  check(e: SysctlTarget): number {
    const names = this.ifnames(e);
    let n = 0;
    for (let si = 0; si < IF_SETTINGS.length; si++) {
      const s = IF_SETTINGS[si];
      if (!s.watch) continue;
      for (let ii = 0; ii < names.length; ii++) {
        if ((e.sysctl.failed & (1 << (si * 2 + ii))) !== 0) continue;
        let cur: string | null;
        try {
          cur = readSetting(settingPath(s, names[ii], this.root));
        } catch {
          continue; // unreadable: nothing to compare with; the write path reports permissions
        }
        if (cur === null || cur === s.value) continue;
        if (this.write(e, si, ii, names[ii], cur)) n++;
      }
    }
    return n;
  }

  /** Keep SEND_DEVICE_SETTINGS on the send device `name` from now on (written when it was opened). */
  watchDevice(name: string): void {
    this.device = { name, marks: newSysctlMarks() };
    for (const s of SEND_DEVICE_SETTINGS) if (s.watch) this.deviceRestored.set(s.name, 0);
  }

  /** Read the send device's watched settings back; restore those that changed. Returns the number
   * restored. */
  checkDevice(): number {
    const d = this.device;
    if (d === null) return 0;
    let n = 0;
    for (let si = 0; si < SEND_DEVICE_SETTINGS.length; si++) {
      const s = SEND_DEVICE_SETTINGS[si];
      const bit = 1 << si;
      if (!s.watch || (d.marks.failed & bit) !== 0) continue;
      const path = settingPath(s, d.name, this.root);
      let cur: string | null;
      try {
        cur = readSetting(path);
      } catch {
        continue;
      }
      if (cur === null || cur === s.value) continue;
      try {
        fs.writeFileSync(path, s.value);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue; // the device is gone
        this.errors++;
        d.marks.failed |= bit;
        this.log.limited('sysctl-error', 'tunnel', LEVEL.important, `cannot set net.${s.family}.conf.${d.name}.${s.key}=${s.value} (${code ?? (err as Error).message}); returns through ${d.name} may be dropped by the kernel`);
        continue;
      }
      n++;
      this.deviceRestored.set(s.name, (this.deviceRestored.get(s.name) ?? 0) + 1);
      if ((d.marks.logged & bit) === 0) {
        d.marks.logged |= bit;
        this.log.limited('sysctl-restored', 'tunnel', LEVEL.important, `send device: net.${s.family}.conf.${d.name}.${s.key} was changed to ${cur} by someone else; restored ${s.value} (logged once per setting)`);
      }
    }
    return n;
  }

  /** One watcher tick: the send device, then the endpoint slots (round robin, bounded): checks
   * ready endpoints, and conf/all/rp_filter when at least one was checked. `count`: endpoints
   * that exist. */
  tick(slots: readonly (SysctlTarget | undefined)[], count: number): void {
    this.checkDevice();
    if (count === 0) return;
    const budget = Math.max(WATCH_MIN_PER_TICK, Math.ceil(count / 4));
    let checked = 0;
    for (let walked = 0; walked < slots.length && checked < budget; walked++) {
      if (this.cursor >= slots.length) this.cursor = 0;
      const e = slots[this.cursor++];
      if (e === undefined || e.state !== 'ready') continue;
      checked++;
      this.check(e);
    }
    if (checked > 0) this.checkAll();
  }

  /** Warn (once until it is 0 again) when conf/all/rp_filter is not 0. */
  checkAll(): void {
    let v: string | null;
    try {
      v = readSetting(`${this.root}/${ALL_RP_FILTER}`);
    } catch {
      return;
    }
    if (v === null || v === '0') {
      this.allWarned = false;
      return;
    }
    if (this.allWarned) return;
    this.allWarned = true;
    this.log.important('tunnel', `net.ipv4.conf.all.rp_filter is ${v}: the kernel applies the larger of it and each interface's value, so reverse-path filtering still drops gwi- traffic; set it to 0 (see docs/operations.md)`);
  }

  /** Write setting si on interface ii; `was` is the value found (null: initial apply). */
  private write(e: SysctlTarget, si: number, ii: number, ifname: string, was: string | null): boolean {
    const s = IF_SETTINGS[si];
    const bit = 1 << (si * 2 + ii);
    try {
      fs.writeFileSync(settingPath(s, ifname, this.root), s.value);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return false; // interface gone, or the family is disabled
      this.errors++;
      e.sysctl.failed |= bit;
      this.log.limited('sysctl-error', 'tunnel', LEVEL.important, `cannot set net.${s.family}.conf.${ifname}.${s.key}=${s.value} (${code ?? (err as Error).message}); leaving it (--no-sysctl silences this)`);
      return false;
    }
    if (was === null) return false;
    this.restored.set(s.name, (this.restored.get(s.name) ?? 0) + 1);
    if ((e.sysctl.logged & bit) === 0) {
      e.sysctl.logged |= bit;
      this.log.limited('sysctl-restored', 'tunnel', LEVEL.important, `endpoint ${e.hex}: net.${s.family}.conf.${ifname}.${s.key} was changed to ${was} by someone else; restored ${s.value} (logged once per endpoint and setting)`);
    }
    return true;
  }
}
