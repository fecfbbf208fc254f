// One running lab (docs/lab.md): the namespaces (topology.ts), the GWLB process (gwlb-main.ts),
// the servers (server.ts) and gwlbtun with a hook in the appliance namespace. start() builds it
// all, stop() removes it all; stop() is safe to call at any point and more than once.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { endpointNames } from '../wire/eni';
import { metricsInNs } from '../sim/nshttp';
import { createLabTopology, destroyLabTopology, LAB, routeIntoTun, type LabTopology } from './topology';
import type { ClientOp, ClientResult } from './client';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'gwlbtun');
const HOOKS = path.join(ROOT, 'examples', 'hooks');
const JS = (name: string): string => path.join(ROOT, 'dist', 'src', 'lab', `${name}.js`);

/** The lab's one GWLB endpoint. */
export const LAB_ENI = 0x0123456789abcdefn;
export const LAB_ATTACHMENT = 0x00000000fedcba98n;
export const LAB_PORTS = { http: 80, blocked: 8081, echo: 7 } as const;
const DEFAULT_HEALTH_PORT = 8080;

export const EXAMPLE_HOOKS = ['one-arm', 'two-arm-nat', 'passthrough', 'overlapping-cidrs'];

/** A hook given as a file path, or as the name of an example hook (one-arm, passthrough, ...). */
export function resolveHook(h: string): string {
  if (fs.existsSync(h) && fs.statSync(h).isFile()) return path.resolve(h);
  const ex = path.join(HOOKS, h.endsWith('.sh') ? h : `${h}.sh`);
  if (fs.existsSync(ex)) return ex;
  throw new Error(`no hook '${h}': give a file or one of ${EXAMPLE_HOOKS.join(', ')}`);
}

/** A child process in a namespace speaking JSON lines on stdout. In its own process group, so a
 * Ctrl-C at the terminal reaches only the lab, which stops everything in order. */
class Child {
  readonly lines: Array<Record<string, unknown>> = [];
  private buf = '';
  private err = '';
  private waiters: Array<() => void> = [];
  readonly proc: ChildProcess;

  constructor(ns: string, args: string[], env?: NodeJS.ProcessEnv, onLine?: (l: string) => void) {
    this.proc = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: env ?? process.env });
    this.proc.stdin!.on('error', () => undefined);
    this.proc.stdout!.on('data', (b: Buffer) => {
      this.buf += b.toString();
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        onLine?.(line);
        if (line.startsWith('{')) {
          try {
            this.lines.push(JSON.parse(line) as Record<string, unknown>);
          } catch {
            // not ours
          }
        }
      }
      this.wake();
    });
    this.proc.stderr!.on('data', (b: Buffer) => {
      if (this.err.length < 1_000_000) this.err += b.toString();
      onLine?.(b.toString().trimEnd());
      this.wake();
    });
    this.proc.on('exit', () => this.wake());
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  stderr(): string {
    return this.err;
  }

  /** Wait (bounded) until pred holds over what arrived; throws with the child's stderr if not. */
  async until<T>(what: string, pred: () => T | undefined, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = pred();
      if (v !== undefined) return v;
      if (!this.alive) throw new Error(`${what}: the process exited (${this.proc.exitCode ?? this.proc.signalCode}): ${this.err.trim().slice(-2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: nothing within ${timeoutMs} ms. ${this.err.trim().slice(-2000)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(line: string): void {
    if (this.alive) this.proc.stdin!.write(line + '\n');
  }

  /** SIGTERM by PID, SIGKILL after timeoutMs. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin!.end();
    this.proc.kill('SIGTERM');
    let t: NodeJS.Timeout | undefined;
    const late = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (t = setTimeout(() => r(true), timeoutMs)))]);
    clearTimeout(t);
    if (late && this.alive) {
      this.proc.kill('SIGKILL');
      await exited;
    }
  }
}

export interface LabOptions {
  hook: string;
  /** More gwlbtun flags. */
  daemonArgs: string[];
  /** Each line gwlbtun (and its hooks) print. */
  onDaemonLine?: (line: string) => void;
  /** Another appliance program in place of `node bin/gwlbtun` (the benchmark runs the C++
   * original this way), given the same hook and flags, and the text it prints once started. */
  daemonCmd?: string[];
  readyText?: string;
  /** More environment for the appliance program (e.g. GWLBTUN_NO_UDP_TUNNEL_GSO=1). */
  daemonEnv?: Record<string, string>;
}

export type GwlbStats = Record<string, number>;

export class Lab {
  topo: LabTopology | undefined;
  readonly hook: string;
  readonly healthPort: number;
  readonly endpoint = endpointNames(LAB_ENI);
  private gwlb: Child | undefined;
  private server: Child | undefined;
  private daemon: Child | undefined;
  private dir = '';
  private stopped = false;

  constructor(private readonly o: LabOptions) {
    this.hook = resolveHook(o.hook);
    const p = o.daemonArgs.indexOf('-p');
    this.healthPort = p >= 0 ? Number(o.daemonArgs[p + 1]) : DEFAULT_HEALTH_PORT;
  }

  get hookName(): string {
    return path.basename(this.hook, '.sh');
  }

  /** Build everything; on failure removes what it made and throws. */
  async start(): Promise<void> {
    try {
      this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-lab-'));
      const t = createLabTopology();
      this.topo = t;
      this.gwlb = new Child(t.gwlb, [process.execPath, JS('gwlb-main'), JSON.stringify({
        tun: LAB.tun, gwlbIp: LAB.gwlbOuter, applianceIp: LAB.applianceOuter,
        eni: LAB_ENI.toString(16), attachment: LAB_ATTACHMENT.toString(16),
      })]);
      this.server = new Child(t.server, [process.execPath, JS('server'), String(LAB_PORTS.http), String(LAB_PORTS.blocked), String(LAB_PORTS.echo)]);
      await this.gwlb.until('the lab GWLB', () => this.gwlb!.lines.find((l) => l.type === 'ready'), 15000);
      routeIntoTun(t);
      await this.server.until('the lab server', () => this.server!.lines.find((l) => l.type === 'ready'), 15000);
      const args = [BIN, '-c', this.hook, '-r', this.hook, ...(this.o.daemonArgs.includes('-p') ? [] : ['-p', String(this.healthPort)]), ...this.o.daemonArgs];
      let out = '';
      this.daemon = new Child(t.appliance, this.o.daemonCmd !== undefined ? [...this.o.daemonCmd, ...args.slice(1)] : [process.execPath, ...args], {
        ...process.env,
        GWLBTUN_EGRESS_IF: LAB.egressIf,
        GWLBTUN_EGRESS_GW: LAB.serverEgress4,
        GWLBTUN_EGRESS_GW6: LAB.serverEgress6,
        RUNTIME_DIRECTORY: this.dir,
        ...this.o.daemonEnv,
      }, (l) => {
        if (out.length < 100_000) out += l + '\n';
        this.o.onDaemonLine?.(l);
      });
      const ready = this.o.readyText ?? 'gwlbtun started';
      await this.daemon.until('gwlbtun', () => (out.includes(ready) ? true : undefined), 20000);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Everything gwlbtun printed so far (stderr). */
  daemonOutput(): string {
    return this.daemon?.stderr() ?? '';
  }

  /** The appliance process's PID (for its CPU time), or -1 before start(). */
  get daemonPid(): number {
    return this.daemon?.proc.pid ?? -1;
  }

  /** gwlbtun's /metrics (empty when it does not answer). */
  metrics(): Map<string, number> {
    return this.topo === undefined ? new Map() : metricsInNs(this.topo.appliance, this.healthPort);
  }

  /** The lab GWLB's counters (gwlb.ts). */
  async gwlbStats(): Promise<GwlbStats> {
    const g = this.gwlb!;
    const before = g.lines.length;
    g.send('stats');
    const l = await g.until('GWLB stats', () => g.lines.slice(before).find((x) => x.type === 'stats'), 10000);
    return l as unknown as GwlbStats;
  }

  /** Run client operations (client.ts) in the client namespace; bounded. */
  async client(ops: ClientOp[], timeoutMs = 90000): Promise<ClientResult[]> {
    const c = new Child(this.topo!.client, [process.execPath, JS('client'), JSON.stringify(ops)]);
    try {
      await c.until('the lab client', () => (c.lines.length >= ops.length ? true : undefined), timeoutMs);
    } finally {
      await c.stop(2000);
    }
    return c.lines as unknown as ClientResult[];
  }

  /** Make the appliance drop TCP to `port`: an nftables forward rule. For passthrough, whose tc
   * redirect hands every packet to gwo- before IP and netfilter see it, the hook's tc filter is
   * put behind two that let TCP to `port` skip the redirect (into the IP stack, where the
   * forward rule drops it). Returns the commands, for the record. */
  blockTcpPort(port: number): string[] {
    const ns = this.topo!.appliance;
    const run = (cmd: string[], input?: string): void => {
      const r = spawnSync('ip', ['netns', 'exec', ns, ...cmd], { input, encoding: 'utf8', timeout: 20000 });
      if (r.status !== 0) throw new Error(`${cmd.join(' ')} in the appliance namespace: ${(r.stderr || String(r.error)).trim()}`);
    };
    const done: string[] = [];
    const nft = `table inet gwlbtun_lab_block {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n  tcp dport ${port} drop\n }\n}\n`;
    run(['nft', '-f', '-'], nft);
    done.push(`nft -f - <<< '${nft.replace(/\n\s*/g, ' ')}'`);
    if (this.hookName === 'passthrough') {
      const { gwi, gwo } = this.endpoint;
      const f = ['tc', 'filter', 'add', 'dev', gwi, 'parent', 'ffff:'];
      const cmds = [
        ['tc', 'filter', 'del', 'dev', gwi, 'parent', 'ffff:', 'prio', '1'],
        [...f, 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'protocol', '6', '0xff', 'match', 'ip', 'dport', String(port), '0xffff', 'flowid', 'ffff:1'],
        [...f, 'protocol', 'ipv6', 'prio', '2', 'u32', 'match', 'ip6', 'protocol', '6', '0xff', 'match', 'ip6', 'dport', String(port), '0xffff', 'flowid', 'ffff:1'],
        [...f, 'protocol', 'all', 'prio', '3', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', gwo],
      ];
      for (const c of cmds) {
        run(c);
        done.push(c.join(' '));
      }
    }
    return done;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // gwlbtun first, so that its DESTROY hook runs while the network is still there.
    try {
      if (this.daemon !== undefined) await this.daemon.stop(10000);
      await Promise.all([this.gwlb?.stop(), this.server?.stop()]);
    } finally {
      if (this.topo !== undefined) destroyLabTopology(this.topo);
      if (this.dir !== '') fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
