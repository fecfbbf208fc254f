#!/usr/bin/env node
// Builds build/gwlbtun.node from src/native/*.c with the system C compiler and the
// headers of the Node.js that runs this script. No network, no node-gyp: a Node-API
// addon needs only node_api.h at compile time (symbols resolve at load time), so a
// single compiler call is all there is to it, and it works offline by construction.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const candidates = [
  process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
  path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].filter(Boolean);
const inc = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
if (!inc) {
  console.error('build-native: cannot find node_api.h; looked in:\n  ' + candidates.join('\n  ') +
    '\nInstall the Node.js headers (Debian: apt-get install libnode-dev, or use the official Node.js tarball).');
  process.exit(1);
}
const srcDir = path.join(root, 'src', 'native');
const sources = fs.readdirSync(srcDir).filter((f) => f.endsWith('.c')).map((f) => path.join(srcDir, f));
const outDir = path.join(root, 'build');
fs.mkdirSync(outDir, { recursive: true });
const cc = process.env.CC || 'cc';
const args = ['-std=gnu11', '-O2', '-g', '-fPIC', '-shared', '-Wall', '-Wextra', '-Werror=implicit-function-declaration',
  '-fvisibility=hidden', '-DNAPI_VERSION=8', '-I', inc, ...sources, '-o', path.join(outDir, 'gwlbtun.node')];
console.log(`build-native: ${cc} ... -I ${inc} -> build/gwlbtun.node`);
execFileSync(cc, args, { stdio: 'inherit' });
