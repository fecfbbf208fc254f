// Every command-line entry point (issue 25): --help prints its options on stdout and exits 0;
// an unknown or bad option is one line on stderr, exit 2, never a Node stack trace. Each is
// spawned as the compiled file npm runs; none of these invocations builds anything (the options
// are checked before root is asked for or a namespace is made).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const ENTRY_POINTS: { name: string; file: string; pre: string[]; bad: string[][] }[] = [
  { name: 'gwlbtun', file: path.join(ROOT, 'bin', 'gwlbtun'), pre: [], bad: [['--bogus'], ['-p'], ['doctor', '--bogus'], ['doctor', '--format', 'xml'], ['doctor', '--imds'], ['doctor', '-p', 'x']] },
  { name: 'gwlbtun doctor', file: path.join(ROOT, 'bin', 'gwlbtun'), pre: ['doctor'], bad: [] },
  { name: 'bench', file: path.join(ROOT, 'dist', 'bench', 'main.js'), pre: [], bad: [['--bogus'], ['--rounds'], ['--rx-gro', 'sometimes']] },
  { name: 'lab', file: path.join(ROOT, 'dist', 'src', 'lab', 'main.js'), pre: [], bad: [['--bogus'], ['--hook', 'no-such-hook'], ['-p', 'x'], ['--check', '-p', '1']] },
  { name: 'emulator', file: path.join(ROOT, 'dist', 'src', 'sim', 'cli.js'), pre: [], bad: [['--bogus'], ['emulate', '--bogus'], ['reflect', '--bogus']] },
  { name: 'emulator emulate', file: path.join(ROOT, 'dist', 'src', 'sim', 'cli.js'), pre: ['emulate'], bad: [] },
  { name: 'demo', file: path.join(ROOT, 'dist', 'src', 'demo', 'main.js'), pre: [], bad: [['--bogus'], ['--seconds', 'x']] },
];

const run = (file: string, args: string[]) => spawnSync(process.execPath, [file, ...args], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL', env: { ...process.env, GWLBTUN_LAB_STATE: '/nonexistent/gwlbtun-lab.json' } });

for (const ep of ENTRY_POINTS) {
  test(`${ep.name} --help: its options on stdout, exit 0`, () => {
    const r = run(ep.file, [...ep.pre, '--help']);
    assert.equal(r.status, 0, `exit ${r.status ?? r.signal}; stderr: ${r.stderr}`);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /usage/i);
    assert.match(r.stdout, /--\w/, 'names its options');
  });
  for (const bad of ep.bad) {
    test(`${ep.name} ${bad.join(' ')}: one line on stderr, exit 2, no stack trace`, () => {
      const r = run(ep.file, bad);
      assert.equal(r.status, 2, `exit ${r.status ?? r.signal}; stderr: ${r.stderr}`);
      assert.equal(r.stdout, '');
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `one line: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /^\s+at /m);
      assert.match(lines[0], /\S+: .*(--help|-h\b)/, 'says where the options are');
    });
  }
}
