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
// /proc/sys/net shows the network namespace of the reading process: the daemon's, which is the
// namespace its interfaces live in. `--no-sysctl` turns all of this off.

import * as fs from 'node:fs';
import { LEVEL, type Logger } from '../ops/log';

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
  /** Writes that failed (no permission, read-only /proc/sys). */
  errors = 0;
  private cursor = 0;
  private allWarned = false;

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

  /** One watcher tick over the endpoint slots (round robin, bounded): checks ready endpoints,
   * and conf/all/rp_filter when at least one was checked. `count`: endpoints that exist. */
  tick(slots: readonly (SysctlTarget | undefined)[], count: number): void {
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
