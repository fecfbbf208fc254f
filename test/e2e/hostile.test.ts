// Hostile input against the real daemon (issue #5): the GWLB emulator (src/sim) in one namespace
// sends malformed Geneve, floods of new ENI IDs, packets from outside --gwlb-cidr and more flows
// than the table holds; the daemon (bin/gwlbtun) in the other must stay up, count every bad
// packet under its own reason, create nothing it should not, keep memory flat, and keep
// forwarding good traffic, verified byte for byte by the emulator.
//
// One topology for the file; each part starts its own daemon with the flags it tests.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTopology, destroyTopology, type Topology } from '../../src/sim/topology';
import { endpointNames } from '../../src/wire/eni';
import { DROP_NAMES, DROP_SLOTS } from '../../src/wire/reasons';
import { RECORD_HOOK, requireRoot, runEmulator, sleep, startDaemon, stopDaemon, tmpDir, type Daemon, type EmuReport } from './lib';
import { countedNonZero, drop, httpGetAsync, linkNamesAsync, metricsAsync, mv, nsRunAsync, rssKiB } from './probe';

interface ExtrasReport {
  every: number;
  sent: Record<string, number>;
  returned: Record<string, number>;
  reasons: Record<string, string>;
  enis: Record<string, string>;
}
type Report = EmuReport & { extras?: ExtrasReport };

const GOOD = ['1', '2b8ee1d4db0c51c4'];
const GOOD_HEX = GOOD.map((e) => endpointNames(BigInt('0x' + e)).hex);

function assertAllVerified(r: EmuReport, what: string): void {
  for (const ep of r.endpoints) {
    assert.ok(ep.sent > 0, `${what}: endpoint ${ep.eni} sent nothing`);
    assert.deepEqual(ep.bad, {}, `${what}: endpoint ${ep.eni} bad packets: ${JSON.stringify(ep.bad)}`);
    assert.equal(ep.verified, ep.sent, `${what}: endpoint ${ep.eni}: ${ep.verified} of ${ep.sent} verified (lost ${ep.lost})`);
  }
  assert.deepEqual(r.totals.bad, {}, `${what}: unattributed returns ${JSON.stringify(r.totals.bad)}`);
}

/** Interfaces the daemon made (gwi-/gwo-). */
function tunNames(names: string[]): string[] {
  return names.filter((n) => n.startsWith('gwi-') || n.startsWith('gwo-'));
}

/** Argument vectors the recording hook logged (its 'done' lines left out). */
function hookLines(file: string): string[][] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => /^\d+\t/.test(l)).map((l) => l.split('\t'));
}

/** Reasons that do not count datagrams received on 6081: packets read from gwi-/gwo- (the return
 * side). */
const NOT_RECEIVE_SIDE = new Set(['return_malformed', 'no_flow', 'return_too_big', 'raw_send_error', 'raw_send_busy', 'link_local', 'icmp_quote_malformed', 'icmp_quote_mismatch']);

/** The daemon's non-zero drop, hold and endpoint counters, to explain a lost packet. */
/** Receive-side accounting: every datagram received on 6081 is delivered to a gwi- device or
 * counted under exactly one receive-side drop reason. */
function receiveAccounted(m: Map<string, number>): number {
  let n = 0;
  for (let r = 1; r < DROP_SLOTS; r++) if (!NOT_RECEIVE_SIDE.has(DROP_NAMES[r])) n += drop(m, DROP_NAMES[r]);
  for (const [k, v] of m) if (k.startsWith('gwlbtun_endpoint_packets_from_gwlb_total{')) n += v;
  return n;
}

/** Packets delivered to the gwi- devices of these endpoints (hex ENI IDs without padding). */
function receivedBy(m: Map<string, number>, enis: string[]): number {
  let n = 0;
  for (const e of enis) {
    const names = endpointNames(BigInt('0x' + e));
    n += mv(m, `gwlbtun_endpoint_packets_from_gwlb_total{eni="${names.hex}",interface="${names.gwi}"}`);
  }
  return n;
}

describe('hostile input', () => {
  let t: Topology | undefined;
  let dir = '';
  const daemons: Daemon[] = [];

  before(() => {
    requireRoot();
    dir = tmpDir('hostile');
    t = createTopology('hos');
  });

  after(async () => {
    try {
      for (const d of daemons) await stopDaemon(d);
    } finally {
      if (t !== undefined) destroyTopology(t);
      if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  /** Run body with a daemon started with args; the daemon is stopped whatever happens, and (when
   * the body passed) must exit 0 and leave no interface behind. */
  async function withDaemon(args: string[], hookLog: string, body: (d: Daemon) => Promise<void>, env: Record<string, string> = {}): Promise<void> {
    const d = await startDaemon(t!, args, { GWLBTUN_TEST_HOOK_LOG: hookLog, ...env });
    daemons.push(d);
    let ok = false;
    try {
      await body(d);
      ok = true;
    } finally {
      const r = await stopDaemon(d);
      daemons.splice(daemons.indexOf(d), 1);
      if (ok) {
        assert.equal(r.code, 0, `daemon exit ${r.code} ${r.signal}\n${d.output().slice(-3000)}`);
        // Its interfaces go with it (non-persistent TUN devices).
        assert.deepEqual(tunNames(await linkNamesAsync(t!.applianceNs)), []);
      }
    }
  }

  test('(a) the malformed catalogue interleaved with good traffic: each kind counted under its reason, nothing created, every good packet verified', async () => {
    const port = 8181;
    const hookLog = path.join(dir, 'a-hooks.log');
    // -x: every dropped packet is a candidate for a log line with a hex dump; the worker lets at
    // most 10 a second through, so a flood of bad packets cannot flood the log.
    await withDaemon(['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(port), '-x'], hookLog, async (d) => {
      const started = Date.now();
      const r = (await runEmulator(t!, [
        '--endpoints', GOOD.join(','), '--families', '4,6', '--protos', 'tcp,udp,icmp', '--flows', '2', '--packets', '40',
        '--rate', '3000', '--size', '200', '--settle-ms', '2000', '--progress-ms', '0',
        '--malformed', 'all', '--malformed-every', '3',
      ])) as Report;
      if (r.totals.verified !== r.totals.sent) console.error(`hostile (a): what the daemon counted:\n${await countedNonZero(t!.applianceNs, port)}`);
      assertAllVerified(r, 'good traffic among malformed');
      const x = r.extras!;
      assert.ok(x !== undefined, 'report lists the extras');
      const kinds = Object.keys(x.sent);
      assert.ok(kinds.length >= 16, `catalogue kinds sent: ${kinds.join(' ')}`);
      const extraSent = kinds.reduce((a, k) => a + x.sent[k], 0);
      for (const k of kinds) {
        assert.ok(x.sent[k] >= 10, `${k}: only ${x.sent[k]} sent`);
        assert.equal(x.returned[k], 0, `${k}: ${x.returned[k]} came back`);
      }

      // Every datagram has been received (no loss in the kernel, which would make counts inexact).
      const total = r.totals.sent + extraSent;
      let m = await metricsAsync(t!.applianceNs, port);
      for (let i = 0; i < 30 && mv(m, 'gwlbtun_udp_packets_total') < total; i++) {
        await sleep(100);
        m = await metricsAsync(t!.applianceNs, port);
      }
      assert.equal(mv(m, 'gwlbtun_udp_packets_total'), total, 'datagrams received = sent (good + malformed)');

      // Exact counts: each reason = the packets of the kinds that declare it; no other receive drop.
      const expected = new Map<string, number>();
      for (const k of kinds) expected.set(x.reasons[k], (expected.get(x.reasons[k]) ?? 0) + x.sent[k]);
      for (let reason = 1; reason < DROP_SLOTS; reason++) {
        const name = DROP_NAMES[reason];
        if (NOT_RECEIVE_SIDE.has(name)) continue;
        assert.equal(drop(m, name), expected.get(name) ?? 0, `gwlbtun_drops_total{reason="${name}"}`);
      }
      assert.equal(receiveAccounted(m), total, 'every received datagram delivered or counted once');
      for (const ep of r.endpoints) {
        const key = `gwlbtun_endpoint_packets_from_gwlb_total{eni="${ep.eni}",interface="${ep.name}"}`;
        assert.equal(mv(m, key), ep.sent, key);
      }

      // Nothing created for any malformed ENI ID: only the good endpoints' interfaces and hooks.
      const want = GOOD.flatMap((e) => [endpointNames(BigInt('0x' + e)).gwi, endpointNames(BigInt('0x' + e)).gwo]).sort();
      assert.deepEqual(tunNames(await linkNamesAsync(t!.applianceNs)).sort(), want);
      for (const hex of Object.values(x.enis)) {
        const n = endpointNames(BigInt('0x' + hex));
        assert.ok(!want.includes(n.gwi), `malformed ENI ${hex} is not a good one`);
      }
      const creates = hookLines(hookLog).filter((a) => a[1] === 'CREATE');
      assert.deepEqual(creates.map((a) => a[4]).sort(), [...GOOD_HEX].sort(), 'CREATE hook ran for the good endpoints only');
      assert.equal(mv(m, 'gwlbtun_endpoints'), GOOD.length);

      // Still up and healthy.
      assert.equal(d.proc.exitCode, null);
      assert.equal((await httpGetAsync(t!.applianceNs, port, '/')).status, 200);
      assert.equal(mv(m, 'gwlbtun_worker_restarts_total{worker="0"}'), 0);

      // Log lines: rate-limited (10 a second per worker), with a hex dump.
      const secs = Math.ceil((Date.now() - started) / 1000) + 1;
      const logged = d.output().split('\n').filter((l) => / dropped \d+-byte packet: /.test(l));
      assert.ok(logged.length > 0, 'dropped packets are logged with -x');
      assert.ok(logged.length <= 10 * secs, `${logged.length} drop lines in ${secs} s`);
      assert.match(d.output(), /\n {2}0000 {2}[0-9a-f]{2} /, 'hex dump');
      console.log(`# (a) good ${r.totals.sent} verified ${r.totals.verified}; malformed ${extraSent} in ${kinds.length} kinds: ${JSON.stringify(x.sent)}; ${logged.length} drop log lines in ${secs} s`);
    });
  });

  test(
    '(a2) a packet whose inner TCP header ends before its ports creates no endpoint',
    async () => {
      const port = 8182;
      const hookLog = path.join(dir, 'a2-hooks.log');
      await withDaemon(['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(port)], hookLog, async () => {
          const r = (await runEmulator(t!, ['--endpoints', '1', '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '20',
            '--rate', '1000', '--settle-ms', '1000', '--progress-ms', '0', '--malformed', 'inner_ports_truncated', '--malformed-every', '2'])) as Report;
          assertAllVerified(r, 'good traffic');
          await sleep(300);
          const m = await metricsAsync(t!.applianceNs, port);
          assert.equal(drop(m, 'inner_truncated'), r.extras!.sent.inner_ports_truncated);
          const bad = endpointNames(BigInt('0x' + r.extras!.enis.inner_ports_truncated));
          assert.ok(!(await linkNamesAsync(t!.applianceNs)).includes(bad.gwi), `${bad.gwi} must not exist`);
          assert.equal(hookLines(hookLog).filter((a) => a[4] === bad.hex).length, 0, 'no hook for it');
      });
    },
  );

  test('(b) 10,000 random ENI IDs at full speed with --max-endpoints 16: bounded interfaces, drops counted, memory flat, good traffic still verified', async () => {
    const port = 8183;
    const max = 16;
    const hookLog = path.join(dir, 'b-hooks.log');
    await withDaemon(['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(port), '--max-endpoints', String(max)], hookLog, async (d) => {
      const goodArgs = ['--endpoints', GOOD[0], '--families', '4,6', '--protos', 'tcp,udp,icmp', '--flows', '4', '--packets', '50',
        '--rate', '4000', '--settle-ms', '2000', '--progress-ms', '0'];
      // Warm-up: the good endpoint exists, the code paths have run, the heap has settled. One
      // packet per flow first creates the endpoint: the 1,200 packets of a full run arrive in
      // 300 ms, and a CREATE hook slower than that (a loaded machine) would see more than the
      // 1,024 a worker holds for an endpoint being created (hold_full), which is not under test here.
      assertAllVerified(await runEmulator(t!, goodArgs.map((a, i) => (goodArgs[i - 1] === '--packets' ? '1' : a))), 'endpoint creation');
      assertAllVerified(await runEmulator(t!, goodArgs), 'warm-up');
      await sleep(500);
      const m0 = await metricsAsync(t!.applianceNs, port);
      const rssWarm = rssKiB(d.pid);

      // The flood, polled while it runs and while the endpoints it caused are being created.
      const flood = runEmulator(t!, ['--endpoints', GOOD[0], '--families', '4', '--protos', 'udp', '--flows', '1', '--packets', '1',
        '--rate', '0', '--random-enis', '10000', '--settle-ms', '500', '--progress-ms', '0']) as Promise<Report>;
      let done = false;
      void flood.finally(() => (done = true)).catch(() => undefined);
      const rssSamples: number[] = [];
      let maxTun = 0;
      let polls = 0;
      let quietSince = 0;
      let last = -1;
      const deadline = Date.now() + 20000;
      while (Date.now() < deadline) {
        const names = tunNames(await linkNamesAsync(t!.applianceNs));
        polls++;
        maxTun = Math.max(maxTun, names.length);
        assert.ok(names.length <= 2 * max, `${names.length} interfaces > ${2 * max}`);
        rssSamples.push(rssKiB(d.pid));
        if (names.length !== last) {
          last = names.length;
          quietSince = Date.now();
        }
        // Until the flood is over and the interface count has been stable for 1.5 s.
        if (done && Date.now() - quietSince > 1500) break;
        await sleep(50);
      }
      const fr = await flood;
      const randomSent = fr.extras!.sent.random_eni;
      assert.equal(randomSent, 10000, 'flood sent in full');

      const m1 = await metricsAsync(t!.applianceNs, port);
      const endpoints = mv(m1, 'gwlbtun_endpoints');
      assert.equal(endpoints, max, 'the endpoint limit is reached, not passed');
      const limited = drop(m1, 'endpoint_limit') - drop(m0, 'endpoint_limit');
      const pendingFull = drop(m1, 'pending_table_full') - drop(m0, 'pending_table_full');
      assert.ok(limited > 0, 'endpoint_limit drops counted');
      assert.ok(pendingFull > 0, 'pending_table_full drops counted');
      const received = mv(m1, 'gwlbtun_udp_packets_total') - mv(m0, 'gwlbtun_udp_packets_total');
      assert.equal(receiveAccounted(m1) - receiveAccounted(m0), received, 'every flood datagram delivered or counted once');
      const creates = hookLines(hookLog).filter((a) => a[1] === 'CREATE').length;
      assert.equal(creates, max, 'one CREATE per endpoint, no more');
      // One log line per refused ENI ID would be 1,000 lines: the logger lets 5 a second through.
      const limitLines = d.output().split('\n').filter((l) => l.includes('endpoint limit')).length;
      const floodSecs = Math.ceil(fr.elapsedMs / 1000) + 2;
      assert.ok(limitLines >= 1 && limitLines <= 5 * floodSecs, `${limitLines} endpoint-limit log lines`);

      // Good traffic to the existing endpoint afterwards, and memory.
      assertAllVerified(await runEmulator(t!, goodArgs), 'after the flood');
      await sleep(500);
      const rssEnd = rssKiB(d.pid);
      const rssMax = Math.max(...rssSamples.filter((v) => !Number.isNaN(v)));
      console.log(`# (b) flood: sent ${randomSent}, received ${received}, endpoint_limit ${limited}, pending_table_full ${pendingFull}, endpoints ${endpoints}, ` +
        `max interfaces ${maxTun} over ${polls} polls, ${limitLines} endpoint-limit log lines; RSS KiB warm ${rssWarm}, max during ${rssMax}, end ${rssEnd} (${(((rssEnd - rssWarm) / rssWarm) * 100).toFixed(1)}%)`);
      assert.ok(rssEnd < rssWarm * 1.2, `RSS grew from ${rssWarm} to ${rssEnd} KiB`);
      assert.equal(d.proc.exitCode, null);
    });
  });

  test('(c) --gwlb-cidr: a source outside the allowed network is dropped as source_not_allowed and creates nothing; inside, it is accepted', async () => {
    const port = 8184;
    const hookLog = path.join(dir, 'c-hooks.log');
    const args = ['--endpoints', GOOD.join(','), '--families', '4,6', '--protos', 'udp,icmp', '--flows', '2', '--packets', '20',
      '--rate', '2000', '--settle-ms', '1000', '--progress-ms', '0'];
    // The emulator sends from 198.18.0.1, outside 198.19.0.0/16.
    let outside = 0;
    await withDaemon(['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(port), '--gwlb-cidr', '198.19.0.0/16'], hookLog, async () => {
      const r1 = await runEmulator(t!, args);
      outside = r1.totals.sent;
      assert.equal(r1.totals.verified, 0);
      await sleep(300);
      const m = await metricsAsync(t!.applianceNs, port);
      assert.equal(mv(m, 'gwlbtun_udp_packets_total'), r1.totals.sent);
      assert.equal(drop(m, 'source_not_allowed'), r1.totals.sent, 'every packet dropped as source_not_allowed');
      assert.equal(receiveAccounted(m), r1.totals.sent);
      assert.deepEqual(tunNames(await linkNamesAsync(t!.applianceNs)), [], 'no interface');
      assert.equal(mv(m, 'gwlbtun_endpoints'), 0);
      assert.deepEqual(hookLines(hookLog), [], 'no hook ran');
    });

    await withDaemon(['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(port), '--gwlb-cidr', '198.19.0.0/16', '--gwlb-cidr', '198.18.0.0/24'], hookLog, async () => {
      assertAllVerified(await runEmulator(t!, args), 'allowed source');
      const m2 = await metricsAsync(t!.applianceNs, port);
      assert.equal(drop(m2, 'source_not_allowed'), 0);
      assert.equal(mv(m2, 'gwlbtun_endpoints'), GOOD.length);
      console.log(`# (c) outside: ${outside} sent and dropped as source_not_allowed, nothing created; inside: all verified`);
    });
  });

  test('(d) --max-flows 1000 with 3000 flows: the table stays within capacity, evictions counted, recent flows verified', async () => {
    const port = 8185;
    const hookLog = path.join(dir, 'd-hooks.log');
    await withDaemon(['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(port), '--max-flows', '1000'], hookLog, async () => {
      const base = ['--endpoints', GOOD[0], '--families', '4', '--protos', 'udp', '--progress-ms', '0', '--settle-ms', '2000'];
      // The endpoint first, so no packet of the big run waits in the hold queue.
      assertAllVerified(await runEmulator(t!, [...base, '--flows', '10', '--packets', '5', '--rate', '1000']), 'endpoint creation');
      const m0 = await metricsAsync(t!.applianceNs, port);
      const capacity = mv(m0, 'gwlbtun_flows_capacity');
      assert.ok(capacity >= 1000 && capacity < 1200, `capacity ${capacity}`);

      const big = runEmulator(t!, [...base, '--flows', '3000', '--packets', '4', '--rate', '4000']);
      let done = false;
      void big.finally(() => (done = true)).catch(() => undefined);
      let maxFlows = 0;
      let polls = 0;
      while (!done) {
        const m = await metricsAsync(t!.applianceNs, port);
        polls++;
        const f = mv(m, 'gwlbtun_flows');
        maxFlows = Math.max(maxFlows, f);
        assert.ok(f <= capacity, `gwlbtun_flows ${f} > capacity ${capacity}`);
        await sleep(100);
      }
      const r = await big;
      const m1 = await metricsAsync(t!.applianceNs, port);
      const evictions = mv(m1, 'gwlbtun_flow_evictions_total') - mv(m0, 'gwlbtun_flow_evictions_total');
      const noFlow = drop(m1, 'no_flow') - drop(m0, 'no_flow');
      assert.ok(mv(m1, 'gwlbtun_flows') <= capacity);
      assert.ok(evictions >= 3000 - capacity, `evictions ${evictions}`);
      // Every inbound packet re-inserts its flow, and its return follows within a millisecond or so:
      // a return is lost only when its flow is evicted in that window (by a new flow landing in one
      // of its two buckets, 16 entries, all about equally idle). Each such loss is a no_flow drop.
      assert.deepEqual(r.totals.bad, {});
      assert.ok(r.totals.lost <= noFlow, `lost ${r.totals.lost} but only ${noFlow} no_flow drops`);
      assert.ok(r.totals.lost <= r.totals.sent * 0.02, `lost ${r.totals.lost} of ${r.totals.sent}`);

      // The flows seen last are in the table: a set that fits is verified completely.
      assertAllVerified(await runEmulator(t!, [...base, '--flows', '500', '--packets', '4', '--rate', '4000']), 'recent flows');
      console.log(`# (d) capacity ${capacity}, max flows gauge ${maxFlows} over ${polls} polls, evictions ${evictions}, ` +
        `sent ${r.totals.sent}, verified ${r.totals.verified}, lost ${r.totals.lost}, no_flow ${noFlow}`);
    });
  });

  test('(f) the hold queue while endpoints are being created: 1,024 packets per endpoint, 4,096 packets and 8 MiB per worker, held at most the hold time; the rest counted', async () => {
    const port = 8187;
    // CREATE takes 4 s, longer than the hold time (2.5 s) plus the sending time (0.8 s): every
    // held packet expires, none is delivered, and the counts are exact.
    await withDaemon(['-c', RECORD_HOOK, '-r', RECORD_HOOK, '-p', String(port)], path.join(dir, 'f-hooks.log'), async () => {
      /** Send `count` packets to `enis` new endpoints within a second; wait until each is
       * accounted for; return the counter deltas. */
      const run = async (enis: string[], perEndpoint: number, size: number): Promise<Record<string, number>> => {
        const m0 = await metricsAsync(t!.applianceNs, port);
        const r = await runEmulator(t!, ['--endpoints', enis.join(','), '--families', '4', '--protos', 'udp', '--flows', '1',
          '--packets', String(perEndpoint), '--size', String(size), '--rate', String(Math.ceil((enis.length * perEndpoint) / 0.8)),
          '--settle-ms', '200', '--progress-ms', '0']);
        assert.equal(r.totals.sent, enis.length * perEndpoint);
        let m = m0;
        const delta = (k: string): number => mv(m, k) - mv(m0, k);
        const dd = (reason: string): number => drop(m, reason) - drop(m0, reason);
        for (let i = 0; i < 80; i++) {
          m = await metricsAsync(t!.applianceNs, port);
          if (dd('hold_full') + dd('hold_timeout') + dd('endpoint_limit') + receivedBy(m, enis) - receivedBy(m0, enis) === r.totals.sent && mv(m, 'gwlbtun_endpoints') >= enis.length) break;
          await sleep(100);
        }
        return {
          sent: r.totals.sent, received: delta('gwlbtun_udp_packets_total'), held: delta('gwlbtun_hold_packets_total'),
          holdFull: dd('hold_full'), holdTimeout: dd('hold_timeout'), delivered: receivedBy(m, enis) - receivedBy(m0, enis), verified: r.totals.verified,
        };
      };
      // Per endpoint: 3 endpoints x 1,500 small packets; 1,024 of each are held, then expire.
      const a = await run(['a0000000000001', 'a0000000000002', 'a0000000000003'], 1500, 200);
      assert.equal(a.received, a.sent);
      assert.deepEqual({ held: a.held, holdFull: a.holdFull, holdTimeout: a.holdTimeout, delivered: a.delivered },
        { held: 3 * 1024, holdFull: 3 * (1500 - 1024), holdTimeout: 3 * 1024, delivered: 0 }, JSON.stringify(a));
      // Per worker, bytes: 6 endpoints x 600 packets of 4,000 bytes (4,040 with the Geneve header):
      // 8 MiB hold 2,076 of them.
      const b = await run(['b0000000000001', 'b0000000000002', 'b0000000000003', 'b0000000000004', 'b0000000000005', 'b0000000000006'], 600, 4000);
      assert.equal(b.received, b.sent);
      const fit = Math.floor((8 * 1024 * 1024) / (4000 + 40));
      assert.deepEqual({ held: b.held, holdFull: b.holdFull, holdTimeout: b.holdTimeout, delivered: b.delivered },
        { held: fit, holdFull: b.sent - fit, holdTimeout: fit, delivered: 0 }, JSON.stringify(b));
      // Per worker, packets: 6 endpoints x 1,000 small packets: 4,096 held.
      const c = await run(['c0000000000001', 'c0000000000002', 'c0000000000003', 'c0000000000004', 'c0000000000005', 'c0000000000006'], 1000, 200);
      assert.equal(c.received, c.sent);
      assert.deepEqual({ held: c.held, holdFull: c.holdFull, holdTimeout: c.holdTimeout, delivered: c.delivered },
        { held: 4096, holdFull: c.sent - 4096, holdTimeout: 4096, delivered: 0 }, JSON.stringify(c));
      console.log(`# (f) hold queue: per endpoint ${JSON.stringify(a)}; 8 MiB ${JSON.stringify(b)}; 4,096 packets ${JSON.stringify(c)}`);
    }, { GWLBTUN_TEST_HOOK_SLEEP: '4' });
  });

  test(
    '(e) health port: 100 idle or half-sent connections are cut after 5 s, and health checks answer again',
    async () => {
      const port = 8186;
      await withDaemon(['-p', String(port)], path.join(dir, 'e-hooks.log'), async (d) => {
        // One client in the appliance namespace opens 100 connections, half of them sending an
        // unfinished request line, and holds them for 9 s.
        const holder = `
          const net = require('node:net'); const t0 = Date.now(); const closedAt = [];
          for (let i = 0; i < 100; i++) {
            const s = net.connect(${port}, '127.0.0.1'); s.on('error', () => {});
            s.on('close', () => closedAt.push(Date.now() - t0));
            if (i % 2) s.write('GET / HTTP/1.1\\r\\n');
          }
          setTimeout(() => { process.stdout.write(JSON.stringify(closedAt)); process.exit(0); }, 9000);`;
        const held = nsRunAsync(t!.applianceNs, process.execPath, ['-e', holder], 20000);
        await sleep(7000);
        const h = await httpGetAsync(t!.applianceNs, port, '/');
        const closedAt = JSON.parse((await held).stdout || '[]') as number[];
        console.log(`# (e) health after 7 s of 100 idle connections: ${h.status}; ${closedAt.length} connections closed by 9 s, RSS ${rssKiB(d.pid)} KiB`);
        assert.equal(closedAt.length, 100, 'every connection was closed by the server within 9 s');
        assert.equal(h.status, 200, `health check answered ${h.status}: ${h.body}`);
      });
    },
  );
});
