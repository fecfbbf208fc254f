// The daemon's own gwlbtun_udp_rcvbuf_errors_total against the namespace's UDP RcvbufErrors
// (/proc/<pid>/net/snmp), read right after the last round's runs: they must agree.

import { metricsOf } from '../lib/appliance';
import type { Bg } from '../lib/bg';
import { rcvbufErrors } from '../lib/system';
import type { BenchContext } from './context';

export function rcvbufMetric(c: BenchContext, daemon: Bg): void {
  const m = metricsOf(c.t);
  c.res.rcvbufMetric = { metric: m.get('gwlbtun_udp_rcvbuf_errors_total') ?? NaN, proc: rcvbufErrors(daemon.pid) };
}
