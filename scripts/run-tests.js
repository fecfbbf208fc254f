#!/usr/bin/env node
// Runs the node:test suites on the compiled output (dist/test). `npm test` runs all;
// `npm test -- unit` or `-- e2e` one group. Files run one at a time: the end-to-end
// tests build network namespaces and start daemons, and CI has two cores.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const groups = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const wanted = groups.length ? groups : ['unit', 'e2e'];
const files = [];
for (const g of wanted) {
  const dir = path.join(root, 'dist', 'test', g);
  if (!fs.existsSync(dir)) {
    console.error(`run-tests: ${dir} does not exist; run 'npm run build' first`);
    process.exit(1);
  }
  for (const f of fs.readdirSync(dir).sort()) if (f.endsWith('.test.js')) files.push(path.join(dir, f));
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=tap', ...files], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(r.status === null ? 1 : r.status);
