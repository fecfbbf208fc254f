// src/io/addon.ts: which addon file native() loads (build/ when compiled here for this CPU, else
// the release's prebuilds/linux-<arch>/), and the one-line error when none fits. Last, the real
// daemon started from a tree without any addon exits 1 with that line, not a stack trace.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { addonCandidates, elfProblem, prebuiltArches, resolveAddon } from '../../src/io/addon';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** The first 20 bytes of an ELF file: class (1 = 32-bit, 2 = 64-bit), little-endian, type, machine. */
function elf(machine: number, elfClass = 2, type = 3): Uint8Array {
  const b = new Uint8Array(20);
  b.set([0x7f, 0x45, 0x4c, 0x46, elfClass, 1, 1]);
  b[16] = type & 255;
  b[17] = type >> 8;
  b[18] = machine & 255;
  b[19] = machine >> 8;
  return b;
}
const X64 = elf(62);
const ARM64 = elf(183);

function reader(files: Record<string, Uint8Array>): (f: string) => Uint8Array | undefined {
  return (f) => files[f];
}

const R = '/opt/gwlbtun';
const BUILD = `${R}/build/gwlbtun.node`;
const PRE = (arch: string): string => `${R}/prebuilds/linux-${arch}/gwlbtun.node`;

test('candidates: build/ first, then prebuilds/linux-<arch>/', () => {
  assert.deepEqual(addonCandidates(R, 'arm64'), [BUILD, PRE('arm64')]);
});

test('ELF checks: right CPU and class accepted; other CPU, class, type or no ELF refused with a reason', () => {
  assert.equal(elfProblem(X64, 'x64'), undefined);
  assert.equal(elfProblem(ARM64, 'arm64'), undefined);
  assert.match(elfProblem(X64, 'arm64')!, /built for x86-64, but this Node\.js is arm64/);
  assert.match(elfProblem(ARM64, 'x64')!, /built for AArch64, but this Node\.js is x64/);
  assert.match(elfProblem(elf(62, 1), 'x64')!, /32-bit ELF/);
  assert.match(elfProblem(elf(62, 2, 2), 'x64')!, /not a shared object/);
  assert.equal(elfProblem(new TextEncoder().encode('#!/bin/sh\necho not an addon\n'), 'x64'), 'not an ELF file');
  assert.equal(elfProblem(new Uint8Array(3), 'x64'), 'not an ELF file');
  assert.match(elfProblem(X64, 'mips')!, /no known ELF machine/);
});

test('a source build for this CPU wins; else the prebuild of the running arch', () => {
  const none = (): string[] => [];
  assert.equal(resolveAddon(R, 'linux', 'x64', reader({ [BUILD]: X64, [PRE('x64')]: X64 }), none), BUILD);
  assert.equal(resolveAddon(R, 'linux', 'x64', reader({ [PRE('x64')]: X64, [PRE('arm64')]: ARM64 }), none), PRE('x64'));
  // A tree built on x64 and run by an arm64 Node falls through to its arm64 prebuild.
  assert.equal(resolveAddon(R, 'linux', 'arm64', reader({ [BUILD]: X64, [PRE('arm64')]: ARM64 }), none), PRE('arm64'));
});

test('no fitting addon: one line naming every file tried, why, what the tree has, and what to do', () => {
  const files = { [BUILD]: X64, [PRE('x64')]: X64 };
  assert.throws(
    () => resolveAddon(R, 'linux', 'arm64', reader(files), () => ['linux-x64']),
    (e: Error) => {
      assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
      assert.match(e.message, /^no C addon for linux-arm64: /);
      assert.ok(e.message.includes(`${BUILD}: built for x86-64, but this Node.js is arm64`), e.message);
      assert.ok(e.message.includes(`${PRE('arm64')}: not found`), e.message);
      assert.ok(e.message.includes('prebuilt addons here: linux-x64'), e.message);
      assert.ok(e.message.includes('release for linux-arm64'), e.message);
      return true;
    },
  );
  // A prebuild for the right arch that is something else (a truncated download) is named too.
  assert.throws(() => resolveAddon(R, 'linux', 'x64', reader({ [PRE('x64')]: new Uint8Array(4) }), () => ['linux-x64']), /prebuilds\/linux-x64\/gwlbtun\.node: not an ELF file/);
  assert.throws(() => resolveAddon(R, 'darwin', 'arm64', reader({}), () => []), /runs on Linux only .*darwin-arm64/);
});

test('the real tree: build/gwlbtun.node is for this CPU and is what native() would load', () => {
  assert.equal(resolveAddon(ROOT), path.join(ROOT, 'build', 'gwlbtun.node'));
});

test('prebuiltArches lists prebuilds/<dir>/gwlbtun.node only', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-addon-'));
  try {
    assert.deepEqual(prebuiltArches(dir), []);
    fs.mkdirSync(path.join(dir, 'prebuilds', 'linux-arm64'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'prebuilds', 'linux-x64'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'prebuilds', 'linux-arm64', 'gwlbtun.node'), '');
    assert.deepEqual(prebuiltArches(dir), ['linux-arm64']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the daemon from a tree without an addon exits 1 with that one line, no stack trace', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-noaddon-'));
  try {
    fs.cpSync(path.join(ROOT, 'bin'), path.join(dir, 'bin'), { recursive: true });
    fs.cpSync(path.join(ROOT, 'dist', 'src'), path.join(dir, 'dist', 'src'), { recursive: true });
    const r = spawnSync(process.execPath, [path.join(dir, 'bin', 'gwlbtun'), '-p', '65000'], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 1, `exit status (stderr: ${r.stderr})`);
    const out = (r.stdout + r.stderr).trim();
    assert.match(out, new RegExp(`no C addon for linux-${process.arch}: `));
    assert.ok(out.includes(path.join(dir, 'build', 'gwlbtun.node') + ': not found'), out);
    assert.ok(!/\n\s+at /.test(out), `no stack trace:\n${out}`);
    assert.equal(out.split('\n').filter((l) => l.includes('no C addon')).length, 1, out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
