// scripts/run-tests.js (what `npm test` runs) must make every failure visible in its final line and
// exit code, including a suite whose before() hook fails: node's own TAP summary counts that suite's
// tests as "cancelled" and can end with `# fail 0` (issue #12).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const RUNNER = path.join(ROOT, 'scripts', 'run-tests.js');

interface TapResult {
  passed: number;
  failed: number;
  skipped: number;
  failedNames: string[];
  node: Record<string, number>;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createTapCounter } = require(path.join(ROOT, 'scripts', 'tap-summary.js')) as {
  createTapCounter: () => { line: (l: string) => void; result: TapResult };
};

const HOOK_FAILS = `const { describe, before, test } = require('node:test');
test('fine', () => {});
describe('set-up fails', () => {
  before(() => { throw new Error('no firewall here'); });
  test('never runs', () => {});
});
`;
const LOAD_FAILS = `throw new Error('cannot load');\n`;
const PASSES = `const { test } = require('node:test');\ntest('passes', () => {});\ntest('skipped', { skip: true }, () => {});\n`;

/** This file runs under node:test, whose marker in the environment would change a child's output. */
const ENV = { ...process.env };
delete ENV.NODE_TEST_CONTEXT;

function fixtures(): { dir: string; hook: string; load: string; pass: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-runtests-'));
  const write = (name: string, text: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  return { dir, hook: write('hook.test.js', HOOK_FAILS), load: write('load.test.js', LOAD_FAILS), pass: write('pass.test.js', PASSES) };
}

test('a suite whose before() fails: node says "# fail 0", the counter says 1 failed', () => {
  const f = fixtures();
  try {
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', f.hook], { encoding: 'utf8', timeout: 60000, env: ENV });
    assert.notEqual(r.status, 0);
    const c = createTapCounter();
    for (const l of r.stdout.split('\n')) c.line(l);
    assert.equal(c.result.node.fail, 0, 'node counts the hook failure as cancelled only');
    assert.equal(c.result.node.cancelled, 1);
    assert.equal(c.result.passed, 1);
    assert.equal(c.result.failed, 1);
    assert.deepEqual(c.result.failedNames, ['set-up fails']);
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true });
  }
});

test('run-tests.js: a final "N passed, N failed" line that counts hook and load failures, and exit 1', () => {
  const f = fixtures();
  try {
    const r = spawnSync(process.execPath, [RUNNER, '--nodes=current', f.hook, f.load, f.pass], { encoding: 'utf8', timeout: 120000, env: ENV });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    // hook.test.js: 'fine' passes, 'set-up fails' fails; load.test.js fails; pass.test.js: 1 passed, 1 skipped.
    assert.match(lines[lines.length - 1], /^2 passed, 2 failed\b.*FAILED$/);
    assert.ok(lines.some((l) => /^run-tests: {3}failed: set-up fails$/.test(l)), r.stdout);
    assert.ok(lines.some((l) => /: 2 passed, 2 failed, 1 skipped \(/.test(l)), r.stdout);

    const ok = spawnSync(process.execPath, [RUNNER, '--nodes=current', f.pass], { encoding: 'utf8', timeout: 120000, env: ENV });
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout.trimEnd().split('\n').pop()!, /^1 passed, 0 failed$/);
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true });
  }
});

test('run-tests.js: an end-to-end file that fails once and passes when run again alone is reported as flaky; one that fails again stands', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-runtests-'));
  try {
    const e2e = path.join(dir, 'e2e');
    fs.mkdirSync(e2e);
    const marker = path.join(dir, 'ran-once');
    const flaky = path.join(e2e, 'flaky.test.js');
    fs.writeFileSync(flaky, `const { test } = require('node:test');
const fs = require('node:fs');
test('timing-sensitive', () => {
  if (!fs.existsSync(${JSON.stringify(marker)})) { fs.writeFileSync(${JSON.stringify(marker)}, '1'); throw new Error('first run fails'); }
});
`);
    const r = spawnSync(process.execPath, [RUNNER, '--nodes=current', flaky], { encoding: 'utf8', timeout: 120000, env: ENV });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /running again, alone: .*flaky\.test\.js/);
    assert.match(r.stdout, /flaky \(failed, then passed when run again alone\): timing-sensitive/);
    assert.match(r.stdout.trimEnd().split('\n').pop()!, /^1 passed, 0 failed$/);

    const broken = path.join(e2e, 'broken.test.js');
    fs.writeFileSync(broken, `require('node:test').test('always fails', () => { throw new Error('no'); });\n`);
    const b = spawnSync(process.execPath, [RUNNER, '--nodes=current', broken], { encoding: 'utf8', timeout: 120000, env: ENV });
    assert.equal(b.status, 1, b.stdout + b.stderr);
    assert.match(b.stdout.trimEnd().split('\n').pop()!, /^0 passed, 1 failed\b.*FAILED$/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
