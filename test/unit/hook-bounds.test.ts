// The bounds on what a hook can cost the daemon (src/control/hooks.ts): captured output at most
// 16 KiB whatever the hook prints, a hook (and everything it started) killed after its timeout
// even when it ignores SIGTERM, and arguments never interpreted by a shell.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runHook } from '../../src/control/hooks';

let dir = '';

function script(name: string, body: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return f;
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-hookbounds-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('output is captured up to 16 KiB, however much the hook prints (3 MB on stdout and stderr)', async () => {
  const f = script('loud.sh', 'head -c 3000000 /dev/zero | tr "\\000" x\nhead -c 3000000 /dev/zero | tr "\\000" y >&2\nexit 0');
  const r = await runHook(f, ['CREATE', 'gwi-1', 'gwo-1', '00000000000000001'], 10_000);
  assert.equal(r.code, 0);
  assert.equal(r.timedOut, false);
  assert.equal(r.output.length, 16 * 1024);
  assert.match(r.output, /^x+$/);
});

test('a hook ignoring SIGTERM, with a child holding its output open, is killed (group, SIGKILL) shortly after its timeout', async () => {
  const marker = path.join(dir, 'grandchild-alive');
  const f = script('stubborn.sh', `trap '' TERM\n(trap '' TERM; sleep 30; touch ${marker}) &\nwhile :; do sleep 1; done`);
  const t0 = Date.now();
  const r = await runHook(f, ['CREATE', 'gwi-1', 'gwo-1', '00000000000000001'], 500);
  const ms = Date.now() - t0;
  assert.equal(r.timedOut, true);
  assert.equal(r.signal, 'SIGKILL');
  assert.ok(ms >= 1400 && ms < 4000, `took ${ms} ms (timeout 500 ms + 1 s to SIGKILL)`);
});

test('arguments reach the hook verbatim: no shell ever sees them', async () => {
  const marker = path.join(dir, 'injected');
  const f = script('echo.sh', 'for a in "$@"; do printf "[%s]" "$a"; done');
  const evil = `$(touch ${marker})`;
  const r = await runHook(f, ['CREATE', evil, '; touch x', '`id`'], 5000);
  assert.equal(r.code, 0);
  assert.equal(r.output, `[CREATE][${evil}][; touch x][\`id\`]`);
  assert.equal(fs.existsSync(marker), false);
});
