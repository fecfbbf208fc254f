// Replays the fuzzer's corpus (test/fuzz/corpus/*.hex, found by `npm run fuzz`): every case still
// satisfies every invariant of test/fuzz/check.ts and still gets the verdict and signature it had
// when it was saved (a change of behaviour shows up here as a named case).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Harness, caseFileName, parseCase } from '../fuzz/check';
import { DROP_NAMES, Drop } from '../../src/wire/reasons';

const DIR = path.resolve(__dirname, '..', '..', '..', 'test', 'fuzz', 'corpus');

test('fuzz corpus: every case passes the invariants with its recorded signature', () => {
  const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.hex')).sort();
  assert.ok(files.length >= 50, `corpus has ${files.length} cases`);
  assert.ok(files.length < 300, `corpus has ${files.length} cases: keep it under 300`);
  const h = new Harness();
  const verdicts = new Set<string>();
  for (const f of files) {
    const c = parseCase(fs.readFileSync(path.join(DIR, f), 'utf8'));
    assert.equal(caseFileName(c.signature), f, `${f}: file name matches its signature`);
    // Twice, with different bytes after the case and a table in a different state.
    for (const junk of [0x00, 0xff]) {
      const r = h.check(c.bytes, junk);
      assert.deepEqual(r.violations, [], `${f}`);
      assert.equal(r.signature, c.signature, `${f}: signature changed`);
    }
    verdicts.add(c.signature.split('|')[0]);
  }
  // Every Geneve/inner drop reason and delivery are represented.
  for (let r = Drop.GENEVE_TOO_SHORT; r <= Drop.INNER_TRUNCATED; r++) assert.ok(verdicts.has(DROP_NAMES[r]), DROP_NAMES[r]);
  assert.ok(verdicts.has('delivered'));
});
