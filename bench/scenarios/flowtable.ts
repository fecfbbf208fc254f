// The flow-table micro-benchmark (bench/flowtable.ts, 1M flows) in a child process, outside the
// namespaces: its JSON line goes into the results as it is; a failure becomes a note in the
// document rather than ending the run.

import { spawnSync } from 'node:child_process';
import { FLOWTABLE, log } from '../lib/env';
import type { Results } from '../results';

export function flowtable(res: Results): void {
  log('flow table micro-benchmark (bench/flowtable.ts, 1M flows)');
  const r = spawnSync(process.execPath, [FLOWTABLE, '--json'], { encoding: 'utf8', timeout: 120_000 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('{'));
  if (r.status === 0 && line !== undefined) res.flowtable = JSON.parse(line) as Record<string, unknown>;
  else res.notes.push(`bench/flowtable.ts failed (exit ${r.status}): ${(r.stderr ?? '').slice(0, 500)}`);
}
