// bench/packet-path.ts in its quick mode (what CI can afford): it runs to the end, checks its own
// results (every parse valid, every lookup a hit, the returned headers GWLB's), and reports a
// finite positive cost for every stage. No timing is asserted: CI machines are shared.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const SCRIPT = path.resolve(__dirname, '..', '..', 'bench', 'packet-path.js');

test('packet-path micro-benchmark: --quick completes and reports sane figures', () => {
  const r = spawnSync(process.execPath, [SCRIPT, '--quick', '--json', '--flows', '1024'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `exit ${r.status} ${r.signal ?? ''}: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, r.stdout);
  const j = JSON.parse(lines[0]) as { flows: number; quick: boolean; nsPerOp: Record<string, number>; nsPerPacket: Record<string, number> };
  assert.equal(j.flows, 1024);
  assert.equal(j.quick, true);
  assert.deepEqual(Object.keys(j.nsPerOp).sort(), ['flowKeyIn', 'flowKeyOut', 'insert', 'lookupInto', 'parseGeneve', 'upsertRefresh', 'writeOuter']);
  assert.deepEqual(Object.keys(j.nsPerPacket).sort(), ['fromGwlb', 'roundTrip', 'toGwlb']);
  for (const [k, v] of [...Object.entries(j.nsPerOp), ...Object.entries(j.nsPerPacket)]) {
    assert.ok(Number.isFinite(v) && v > 0, `${k}: ${v}`);
  }
});

test('packet-path micro-benchmark: a bad option is one error line and exit 2', () => {
  const r = spawnSync(process.execPath, [SCRIPT, '--flows', '3'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /--flows must be an integer/);
});
