#!/usr/bin/env node
// Builds build/gwlbtun.node from src/native/*.c with the system C compiler and the
// headers of the Node.js that runs this script. No network, no node-gyp: a Node-API
// addon needs only node_api.h at compile time (symbols resolve at load time), so a
// single compiler call is all there is to it, and it works offline by construction.
// scripts/package.js reuses compileAddon() with a cross compiler (node_api.h is the same
// for every CPU).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

/** The directory holding node_api.h, or exit(1) with what to install. */
function nodeApiInclude() {
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
  return inc;
}

function addonSources() {
  const srcDir = path.join(root, 'src', 'native');
  return fs.readdirSync(srcDir).filter((f) => f.endsWith('.c')).sort().map((f) => path.join(srcDir, f));
}

/** The compiler arguments that turn src/native/*.c into `out`. */
function addonArgs(inc, out) {
  return ['-std=gnu11', '-O2', '-g', '-fPIC', '-shared', '-Wall', '-Wextra', '-Werror=implicit-function-declaration',
    '-fvisibility=hidden', '-DNAPI_VERSION=8', '-I', inc, ...addonSources(), '-o', out];
}

/** Compile the addon with compiler `cc` into `out`. */
function compileAddon(cc, out) {
  const inc = nodeApiInclude();
  fs.mkdirSync(path.dirname(out), { recursive: true });
  console.log(`build-native: ${cc} ... -I ${inc} -> ${path.relative(root, out)}`);
  execFileSync(cc, addonArgs(inc, out), { stdio: 'inherit' });
}

module.exports = { nodeApiInclude, addonSources, addonArgs, compileAddon };

if (require.main === module) compileAddon(process.env.CC || 'cc', path.join(root, 'build', 'gwlbtun.node'));
