// `npm run screenshot`: docs/status-page.png, the status page of a daemon carrying emulator
// traffic (three endpoints, IPv4 and IPv6, TCP and UDP, at two rates), taken by headless
// chromium 1,280 pixels wide. Needs root;
// builds its own namespaces and removes them.

import * as path from 'node:path';
import { createTopology, destroyTopology } from '../../src/sim/topology';
import { requireRoot, ROOT, runEmulator, sleep, startDaemon, stopDaemon, type Daemon } from './lib';
import { chromium, ensureChromium } from './browser';

const PORT = 8087;

async function main(): Promise<void> {
  requireRoot();
  ensureChromium();
  const out = path.join(ROOT, 'docs', 'status-page.png');
  const t = createTopology('shot');
  let d: Daemon | undefined;
  try {
    const hook = path.relative(process.cwd(), path.join(ROOT, 'examples', 'hooks', 'one-arm.sh'));
    d = await startDaemon(t, ['-p', String(PORT), '-c', hook, '-r', hook, '--udpthreads', '2']);
    // Bounded: 20 s of traffic at most, in two steps of different rates so the graphs (one point
    // every 2 s) have a shape; the picture is taken while the second step flows, at the width the
    // page must fit (1,280 pixels) and tall enough for the appliance and the endpoints.
    const args = ['--endpoints', '2b8ee1d4db0c51c,vpce-0e1f2a3b4c5d6e7f8,7', '--families', '4,6', '--protos', 'tcp,udp', '--flows', '4', '--packets', '1000000'];
    await runEmulator(t, [...args, '--rate', '1500', '--duration', '10']);
    const traffic = runEmulator(t, [...args, '--rate', '4000', '--duration', '10', '--flow-offset', '100']);
    await sleep(7000);
    chromium(t.applianceNs, `http://127.0.0.1:${PORT}/status`, ['--hide-scrollbars', '--window-size=1280,1450', `--screenshot=${out}`], 500);
    const r = await traffic;
    process.stdout.write(`wrote ${out} (${r.totals.sent} packets sent, ${r.totals.verified} verified)\n`);
  } finally {
    if (d !== undefined) await stopDaemon(d);
    destroyTopology(t);
  }
}

main().catch((e: Error) => {
  process.stderr.write(`screenshot: ${e.message}\n`);
  process.exit(1);
});
