// The lab (src/lab/, docs/lab.md) end to end: `npm run lab -- --check` passes with every example
// hook (real HTTP, bulk TCP and UDP echo over IPv4 and IPv6 through the emulated GWLB and
// gwlbtun, no loss, no Geneve mismatch, a blocked port seen blocked) and removes its namespaces;
// an interactive lab answers `exec` and removes everything on SIGINT.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { interrupt, requireRoot, ROOT, sleep, tmpDir, waitFor } from './lib';

const MAIN = path.join(ROOT, 'dist', 'src', 'lab', 'main.js');

function namespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').map((l) => l.split(' ')[0]).filter((l) => l !== '');
}

test('npm run lab -- --check: every example hook passes, and no namespace is left', { timeout: 240_000 }, async () => {
  requireRoot();
  const p = spawn(process.execPath, [MAIN, '--check'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const timer = setTimeout(() => p.kill('SIGTERM'), 200_000);
  const code = await new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  clearTimeout(timer);
  assert.equal(code, 0, out);
  assert.match(out, /lab check: PASS \(4 hooks/);
  for (const h of ['one-arm', 'two-arm-nat', 'passthrough', 'overlapping-cidrs']) {
    const row = new RegExp(`^${h}\\s+40/40\\s+\\d+\\s+\\d+\\s+400/400\\s+yes\\s+\\d+/\\d+\\s+\\d+\\s+0\\s`, 'm');
    assert.match(out, row, `the ${h} row`);
  }
  const ids = [...out.matchAll(/lab check: namespaces (\S+)-\*/g)].map((m) => m[1]);
  assert.equal(ids.length, 4, out);
  const left = namespaces().filter((n) => ids.some((id) => n.startsWith(id + '-')));
  assert.deepEqual(left, [], 'namespaces left behind');
});

test('interactive lab: exec reaches the server through GWLB and gwlbtun; SIGINT removes everything', { timeout: 90_000 }, async () => {
  requireRoot();
  const dir = tmpDir('lab');
  const state = path.join(dir, 'state.json');
  const env = { ...process.env, GWLBTUN_LAB_STATE: state };
  const p = spawn(process.execPath, [MAIN, '--hook', 'one-arm'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  let ns: string[] = [];
  let stateLeft = true;
  try {
    await waitFor('the lab to be up', () => out.includes('Ctrl-C stops') || (p.exitCode !== null ? assert.fail(out) : false), 40_000);
    ns = Object.values((JSON.parse(fs.readFileSync(state, 'utf8')) as { namespaces: Record<string, string> }).namespaces);
    assert.equal(ns.length, 4);
    const get = `require('node:http').get('http://198.51.100.10/', (r) => { let b = ''; r.on('data', (c) => (b += c)); r.on('end', () => console.log(r.statusCode, b)); })`;
    const r = spawnSync(process.execPath, [MAIN, 'exec', 'client', process.execPath, '-e', get], { encoding: 'utf8', env, timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^200 hello from the lab server 198\.51\.100\.10 port 80; you are 192\.0\.2\.10 port \d+/);
    const addr = spawnSync(process.execPath, [MAIN, 'exec', 'server', 'ip', '-br', 'addr'], { encoding: 'utf8', env, timeout: 30_000 });
    assert.match(addr.stdout, /198\.51\.100\.10\/24/);
    const none = spawnSync(process.execPath, [MAIN, 'exec', 'router', 'true'], { encoding: 'utf8', env, timeout: 30_000 });
    assert.equal(none.status, 2);
    assert.match(none.stderr, /^lab: exec needs one of client, server, gwlb, appliance/);
  } finally {
    const code = await interrupt(p, exited);
    stateLeft = fs.existsSync(state);
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0, out);
  }
  await sleep(100);
  assert.match(out, /lab: everything removed/);
  assert.deepEqual(namespaces().filter((n) => ns.includes(n)), [], 'namespaces left behind');
  assert.ok(!stateLeft, 'state file removed');
});
