// What the health body (src/ops/health.ts) and the status page's data (src/ops/status.ts) both
// report, computed in one place: drops by reason, and an endpoint's identity and totals.

import type { Daemon, Endpoint } from '../control/daemon';
import { endpointName } from '../control/endpoints';
import { EP, type CounterReader } from '../dataplane/counters';
import { DROP_NAMES, DROP_SLOTS } from '../wire/reasons';

/** Every drop reason (the unused slot 0 left out) with its count over all workers. */
export function dropsByReason(c: CounterReader): Record<string, number> {
  const drops: Record<string, number> = {};
  for (let r = 1; r < DROP_SLOTS; r++) drops[DROP_NAMES[r]] = c.sum(r);
  return drops;
}

/** An endpoint's names (its name from the endpoints file, or null), state and totals over all workers; seconds since its last packet either
 * way (null: none yet), `now` in monotonic ms. */
export function endpointTotals(d: Daemon, e: Endpoint, now: number) {
  const c = d.counters;
  const last = Math.max(c.epMax(e.slot, EP.LAST_RX_MS), c.epMax(e.slot, EP.LAST_TX_MS));
  return {
    eni: e.hex,
    name: endpointName(e),
    gwi: e.gwi,
    gwo: d.opts.noReturn ? null : e.gwo,
    state: e.state,
    packetsFromGwlb: c.epSum(e.slot, EP.RX_PACKETS),
    bytesFromGwlb: c.epSum(e.slot, EP.RX_BYTES),
    packetsToGwlb: c.epSum(e.slot, EP.TX_PACKETS),
    bytesToGwlb: c.epSum(e.slot, EP.TX_BYTES),
    drops: c.epSum(e.slot, EP.DROPS),
    secondsSinceLastPacket: last === 0 ? null : Math.round((now - last) / 100) / 10,
  };
}
