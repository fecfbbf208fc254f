// Connection bounds of the health port (docs/security.md, "What the health port exposes").
//
// GWLB takes the appliance out of service when its health checks fail, so the health port must
// keep answering while someone holds connections open on it. Refusing new connections once a
// limit is reached (net.Server.maxConnections) does the opposite: whoever holds the places
// decides who is answered. Here the NEWEST connection always gets a place:
//
// - at most `perSource` connections from one source: a further one closes that source's oldest
//   (a single flooding host only ever evicts itself). A source is an IPv4 address, or an IPv6 /64:
//   one IPv6 host normally has a whole /64 to pick addresses from, so keying on its exact address
//   would give it 2^64 quotas. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack
//   listener reports for IPv4 clients) stay one source per IPv4 address (sourceKey below);
// - at most `max` in all: a further one closes the oldest that has not sent a whole request yet
//   (failing that, the oldest);
// - a connection that has not sent a whole request within `requestDeadlineMs` is closed (a
//   health check sends its request at once; checked every `requestDeadlineMs / 4`).
//
// A real health check, whose request follows its connection within milliseconds, is therefore
// only lost when `max` newer connections from other addresses arrive in those milliseconds.
// Memory: one small record per open connection, at most `max` of them.

import type * as http from 'node:http';
import { monoMs } from '../base/clock';
import type * as net from 'node:net';

export interface ConnLimits {
  max: number;
  perSource: number;
  requestDeadlineMs: number;
}

export const HEALTH_CONN_LIMITS: Readonly<ConnLimits> = Object.freeze({ max: 64, perSource: 8, requestDeadlineMs: 2000 });

/** Connections the guard closed, by cause (exported in /metrics). */
export interface ConnGuardStats {
  /** Closed to make room for a newer connection (the `max` bound). */
  evicted: number;
  /** Closed to make room for a newer connection from the same address (the `perSource` bound). */
  sourceLimit: number;
  /** Closed because no whole request arrived within the deadline. */
  deadline: number;
}

interface Conn {
  source: string;
  openedMs: number;
  requested: boolean;
}

export class ConnGuard {
  readonly stats: ConnGuardStats = { evicted: 0, sourceLimit: 0, deadline: 0 };
  /** Open connections, oldest first (a Map keeps insertion order). */
  private readonly conns = new Map<net.Socket, Conn>();
  private readonly perSource = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(server: http.Server, private readonly limits: ConnLimits = HEALTH_CONN_LIMITS) {
    server.on('connection', (s: net.Socket) => this.add(s));
    server.on('request', (req: http.IncomingMessage) => {
      const c = this.conns.get(req.socket);
      if (c !== undefined) c.requested = true;
    });
    this.timer = setInterval(() => this.expire(monoMs()), Math.max(50, limits.requestDeadlineMs / 4));
    this.timer.unref();
    server.on('close', () => clearInterval(this.timer));
  }

  /** Connections open now (never more than `max`). */
  get open(): number {
    return this.conns.size;
  }

  private add(s: net.Socket): void {
    const source = sourceKey(s.remoteAddress ?? '?');
    const n = this.perSource.get(source) ?? 0;
    if (n >= this.limits.perSource) {
      this.closeOldest((c) => c.source === source, 'sourceLimit');
    } else if (this.conns.size >= this.limits.max) {
      if (!this.closeOldest((c) => !c.requested, 'evicted')) this.closeOldest(() => true, 'evicted');
    }
    this.conns.set(s, { source, openedMs: monoMs(), requested: false });
    this.perSource.set(source, (this.perSource.get(source) ?? 0) + 1);
    s.once('close', () => this.forget(s));
  }

  private closeOldest(which: (c: Conn) => boolean, cause: keyof ConnGuardStats): boolean {
    for (const [s, c] of this.conns) {
      if (!which(c)) continue;
      this.close(s, cause);
      return true;
    }
    return false;
  }

  private close(s: net.Socket, cause: keyof ConnGuardStats): void {
    this.stats[cause]++;
    this.forget(s); // now, not at its 'close' event: the place is free at once
    s.destroy();
  }

  private forget(s: net.Socket): void {
    const c = this.conns.get(s);
    if (c === undefined) return;
    this.conns.delete(s);
    const n = (this.perSource.get(c.source) ?? 1) - 1;
    if (n <= 0) this.perSource.delete(c.source);
    else this.perSource.set(c.source, n);
  }

  private expire(now: number): void {
    for (const [s, c] of this.conns) {
      if (now - c.openedMs < this.limits.requestDeadlineMs) break; // oldest first: the rest are younger
      if (!c.requested) this.close(s, 'deadline');
    }
  }
}

/** The per-source key of a remote address as Node reports it: an IPv4 address as it is; an IPv6
 * address as its /64 prefix (`2001:db8:0:1::/64`, with its `%zone` if it has one); an
 * IPv4-mapped IPv6 address as the IPv4 address it maps. Anything unparseable is its own key. */
export function sourceKey(addr: string): string {
  if (!addr.includes(':')) return addr;
  const pct = addr.indexOf('%');
  const zone = pct >= 0 ? addr.slice(pct) : '';
  const g = ipv6Groups(pct >= 0 ? addr.slice(0, pct) : addr);
  if (g === null) return addr;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `${g[6] >> 8}.${g[6] & 0xff}.${g[7] >> 8}.${g[7] & 0xff}`;
  }
  return `${g[0].toString(16)}:${g[1].toString(16)}:${g[2].toString(16)}:${g[3].toString(16)}::/64${zone}`;
}

/** The eight 16-bit groups of a textual IPv6 address (RFC 4291 section 2.2 forms: `::`, a dotted
 * IPv4 tail), or null when it is not one. */
function ipv6Groups(a: string): number[] | null {
  const halves = a.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const words = part.split(':');
    for (let i = 0; i < words.length; i++) {
      const w = words[i];
      if (i === words.length - 1 && w.includes('.')) {
        const o = w.split('.');
        if (o.length !== 4 || !o.every((x) => /^\d{1,3}$/.test(x) && Number(x) <= 255)) return null;
        out.push((Number(o[0]) << 8) | Number(o[1]), (Number(o[2]) << 8) | Number(o[3]));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return null;
        out.push(parseInt(w, 16));
      }
    }
    return out;
  };
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  if (head === null || tail === null) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  if (head.length + tail.length > 7) return null;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}
