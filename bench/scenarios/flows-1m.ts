// 1,000,000 distinct flows through the daemon (one packet each at 100 kpps; inner UDP from 254
// source addresses x 50,000 source ports, flow idle timeout 120 s so all stay active, default
// --max-flows 1000000): flows in the table, evictions, loss, and the daemon's resident memory
// idle (64 flows), after, and at its peak.

import type { Bg } from '../lib/bg';
import { metricsOf } from '../lib/appliance';
import { log, sleep } from '../lib/env';
import { genSend } from '../lib/gen';
import { procStatusKb, waitQuiet } from '../lib/system';
import type { Results } from '../results';
import type { BenchContext } from './context';

export async function flows1M(c: BenchContext, d: Bg): Promise<Results['flows1M']> {
  const t = c.t;
  const N = 1_000_000;
  await waitQuiet();
  const rssIdleMB = procStatusKb(d.pid, 'VmRSS') / 1024;
  const m0 = metricsOf(t);
  const t1 = Date.now();
  const g = await genSend(t, { size: 100, rate: 100_000, seconds: 15, count: N, flows: N, ttlDec: 1, settleMs: 1000 });
  await sleep(500);
  const m = metricsOf(t);
  const r = {
    flows: N,
    sent: g.sent,
    verified: g.verified,
    lost: g.lost,
    tableFlows: m.get('gwlbtun_flows') ?? NaN,
    evictions: (m.get('gwlbtun_flow_evictions_total') ?? NaN) - (m0.get('gwlbtun_flow_evictions_total') ?? 0),
    rssIdleMB,
    rssMB: procStatusKb(d.pid, 'VmRSS') / 1024,
    hwmMB: procStatusKb(d.pid, 'VmHWM') / 1024,
    seconds: (Date.now() - t1) / 1000,
  };
  log(`1M flows: ${r.tableFlows} in the table, evictions ${r.evictions}, lost ${r.lost}/${r.sent}, RSS ${r.rssMB.toFixed(0)} MB (idle ${r.rssIdleMB.toFixed(0)} MB, peak ${r.hwmMB.toFixed(0)} MB)`);
  return r;
}
