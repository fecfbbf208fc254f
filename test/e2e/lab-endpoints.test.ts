// The lab with an endpoints file (docs/lab.md, "With an endpoints file"): its one endpoint listed,
// named and in a network namespace of its own, behind examples/hooks/netns-firewall.sh; a client
// reaches the server through the emulated GWLB and gwlbtun, and SIGINT removes everything.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { interrupt, requireRoot, ROOT, sleep, tmpDir, waitFor } from './lib';

const MAIN = path.join(ROOT, 'dist', 'src', 'lab', 'main.js');

test('npm run lab -- --hook netns-firewall --endpoints FILE: the listed endpoint in its namespace carries HTTP', { timeout: 90_000 }, async () => {
  requireRoot();
  const dir = tmpDir('labep');
  const state = path.join(dir, 'state.json');
  const netns = `labep${process.pid.toString(36)}`;
  // The example file, with a namespace name unique to this run.
  const file = path.join(dir, 'endpoints.conf');
  const example = fs.readFileSync(path.join(ROOT, 'examples', 'endpoints', 'endpoints.conf'), 'utf8');
  assert.match(example, /^vpce-0123456789abcdef\s+lab-consumer\s+netns=lab-consumer$/m, 'the example lists the lab endpoint');
  fs.writeFileSync(file, example.replace('netns=lab-consumer', `netns=${netns}`));
  const env = { ...process.env, GWLBTUN_LAB_STATE: state };
  const p = spawn(process.execPath, [MAIN, '--hook', 'netns-firewall', '--endpoints', file, '--endpoints-only'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  try {
    await waitFor('the lab to be up', () => out.includes('Ctrl-C stops') || (p.exitCode !== null ? assert.fail(out) : false), 40_000);
    // Listed: created at start-up, named, in its namespace, before any traffic.
    assert.match(out, new RegExp(`endpoint 00123456789abcdef \\(lab-consumer\\): created gwi-\\S+ and gwo-\\S+ in network namespace ${netns} \\(created\\)`));
    const get = `require('node:http').get('http://198.51.100.10/', (r) => { let b = ''; r.on('data', (c) => (b += c)); r.on('end', () => console.log(r.statusCode, b)); })`;
    const r = spawnSync(process.execPath, [MAIN, 'exec', 'client', process.execPath, '-e', get], { encoding: 'utf8', env, timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^200 hello from the lab server 198\.51\.100\.10 port 80; you are 192\.0\.2\.10 port \d+/);
  } finally {
    const code = await interrupt(p, exited);
    if (fs.existsSync(`/run/netns/${netns}`)) spawnSync('ip', ['netns', 'del', netns]);
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0, out);
  }
  await sleep(100);
  assert.match(out, /lab: everything removed/);
  assert.ok(!fs.existsSync(`/run/netns/${netns}`), 'the namespace gwlbtun created is removed');
});
