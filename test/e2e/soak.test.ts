// One minute of the soak (test/soak/main.ts; `npm run soak -- --minutes N` for longer runs): the
// daemon under steady traffic with churning flows and cookies over several endpoints must lose
// or misdirect nothing, and its memory must stay flat after the warm-up.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot } from './lib';
import { runSoak, summary, SOAK_DEFAULTS } from '../soak/main';

test('soak, 1 minute: every packet verified on every endpoint, RSS flat after the warm-up', { timeout: 85_000 }, async () => {
  requireRoot();
  const lines: string[] = [];
  const r = await runSoak({ ...SOAK_DEFAULTS, seconds: 60, warmupSeconds: 15, healthPort: 8282, log: (l) => lines.push(l) });
  const s = summary(r);
  console.log(s.split('\n').map((l) => `# ${l}`).join('\n'));
  assert.ok(r.rounds >= 8, `only ${r.rounds} rounds:\n${lines.join('\n')}`);
  assert.ok(r.endpoints.length >= 4);
  for (const e of r.endpoints) assert.equal(e.verified, e.sent, `endpoint ${e.eni}`);
  assert.ok(r.rssGrowth < 0.05, `RSS growth ${r.rssGrowth}`);
  assert.deepEqual(r.failures, [], `${s}\n${lines.join('\n')}`);
});
