// `npm run fuzz -- --minutes N`: a coverage-less but structure-aware fuzzer of the receive and
// return path code (parseGeneve, flowKeyFromIp, FlowTable upsert/lookup), in process, no network.
// The oracle is check.ts. New signatures (verdict + branch-ish features) are saved to the corpus
// (test/fuzz/corpus/*.hex, replayed by test/unit/fuzz-corpus.test.ts); a violated invariant is
// saved to test/fuzz/failures/ and makes the run exit 1.
//
//   node dist/test/fuzz/main.js [--minutes N | --seconds N] [--seed S] [--corpus DIR] [--no-save]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Harness, caseFileName, formatCase, parseCase } from './check';
import { Rng, genDatagram, mutate } from './gen';

const ROOT = path.resolve(__dirname, '..', '..', '..');
/** The corpus is kept in the repository: stay well below this. */
export const CORPUS_MAX = 300;

function main(): number {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      minutes: { type: 'string' },
      seconds: { type: 'string' },
      seed: { type: 'string' },
      corpus: { type: 'string' },
      'no-save': { type: 'boolean' },
    },
  });
  const seconds = values.seconds !== undefined ? Number(values.seconds) : Number(values.minutes ?? '1') * 60;
  if (!(seconds > 0 && seconds <= 7 * 86400)) {
    process.stderr.write('usage: fuzz [--minutes N | --seconds N] [--seed S] [--corpus DIR] [--no-save]\n');
    return 2;
  }
  const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
  const corpusDir = values.corpus ?? path.join(ROOT, 'test', 'fuzz', 'corpus');
  const failDir = path.join(ROOT, 'test', 'fuzz', 'failures');
  const save = values['no-save'] !== true;
  const rng = new Rng(seed);
  const h = new Harness();

  // Known signatures and a mutation pool from the corpus.
  const known = new Set<string>();
  const pool: Uint8Array[] = [];
  if (fs.existsSync(corpusDir)) {
    for (const f of fs.readdirSync(corpusDir).filter((x) => x.endsWith('.hex')).sort()) {
      const c = parseCase(fs.readFileSync(path.join(corpusDir, f), 'utf8'));
      known.add(c.signature);
      pool.push(c.bytes);
    }
  }
  let corpusFiles = pool.length;
  const startKnown = known.size;
  console.log(`fuzz: seed ${seed}, ${seconds} s, corpus ${corpusDir} (${corpusFiles} cases)`);

  const t0 = Date.now();
  const end = t0 + seconds * 1000;
  let cases = 0;
  let failures = 0;
  let nextReport = t0 + 10_000;
  const verdicts = new Map<string, number>();
  for (;;) {
    // Check the clock every 256 cases (Date.now per case would cost more than some cases).
    if ((cases & 255) === 0) {
      const now = Date.now();
      if (now >= end) break;
      if (now >= nextReport) {
        nextReport = now + 10_000;
        console.log(`fuzz: ${Math.round((now - t0) / 1000)} s, ${cases} cases (${Math.round(cases / ((now - t0) / 1000))}/s), ${known.size} signatures, ${failures} failures`);
      }
    }
    let bytes: Uint8Array;
    const k = rng.int(100);
    if (k < 50) bytes = genDatagram(rng);
    else if (k < 90) {
      const base = pool.length > 0 && rng.chance(0.5) ? rng.pick(pool) : genDatagram(rng);
      bytes = mutate(rng, base, pool.length > 0 ? rng.pick(pool) : undefined);
    } else bytes = rng.bytes(rng.int(rng.chance(0.5) ? 16 : 400));
    cases++;
    const r = h.check(bytes, rng.int(256));
    verdicts.set(r.signature.split('|')[0], (verdicts.get(r.signature.split('|')[0]) ?? 0) + 1);
    if (r.violations.length > 0) {
      failures++;
      console.log(`fuzz: FAILURE (${r.signature}): ${r.violations.join('; ')}\n  ${Buffer.from(bytes).toString('hex')}`);
      if (save) {
        fs.mkdirSync(failDir, { recursive: true });
        fs.writeFileSync(path.join(failDir, `failure-${seed}-${cases}.hex`), formatCase(bytes, r));
      }
      if (failures >= 20) break;
      continue;
    }
    if (!known.has(r.signature)) {
      known.add(r.signature);
      pool.push(bytes);
      if (save && corpusFiles < CORPUS_MAX) {
        fs.mkdirSync(corpusDir, { recursive: true });
        const file = path.join(corpusDir, caseFileName(r.signature));
        if (!fs.existsSync(file)) {
          fs.writeFileSync(file, formatCase(bytes, r));
          corpusFiles++;
        }
      }
    }
  }
  const secs = (Date.now() - t0) / 1000;
  console.log(`fuzz: done: ${cases} cases in ${secs.toFixed(0)} s (${Math.round(cases / secs)}/s), seed ${seed}`);
  console.log(`fuzz: signatures ${known.size} (${known.size - startKnown} new), corpus files ${corpusFiles}, failures ${failures}`);
  console.log(`fuzz: table ${JSON.stringify(h.stats)}`);
  console.log(`fuzz: verdicts ${JSON.stringify(Object.fromEntries([...verdicts].sort((a, b) => b[1] - a[1])))}`);
  return failures > 0 ? 1 : 0;
}

process.exitCode = main();
