// The modes and owners inside the release artefacts do not depend on the packager's umask.
// scripts/package.js runs under umask 027 and under umask 077 (for this CPU only: no cross
// compiler, no qemu; test/e2e/package.test.ts covers the rest), and then:
// - it succeeds: dpkg-deb accepts the package (it refuses a DEBIAN directory or maintainer
//   scripts that are not 0755..0775);
// - every entry of the tarball (`tar -tvzf`) and of the .deb's data (`dpkg-deb -c`) and control
//   (`dpkg-deb --ctrl-tarfile`) archives is owned by 0/0 (root/root) and is a 0755 directory, a 0644
//   file, a 0755 executable or a symbolic link; the executables are exactly those that are
//   executable in the repository (bin/gwlbtun, the hooks), the addon and the maintainer scripts;
// - the same for the RPM's payload (rpm2archive), whose modes rpmbuild takes from the staged tree;
// - none of them ships a tool: no emulator, lab, demo or test kit under dist/src/
//   (docs/architecture.md, "Layers"), no bench/ or test/; every compiled file has its source in a
//   product folder.
// A 0750 directory in the tarball makes /opt/gwlbtun unreadable for the gwlbtun user after the
// CloudFormation user data's `tar -x` as root, and the service cannot start.
// Needs tar, gzip, dpkg-deb and rpmbuild (scripts/test-prereqs.js installs them); no root, no network.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from './lib';

const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const ARCH = process.arch;
const DEB_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };
const RPM_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

interface Entry {
  mode: string; // as tar -v prints it: drwxr-xr-x, -rw-r--r--, lrwxrwxrwx
  owner: string; // uid/gid or user/group
  name: string;
}

/** `tar -tv` listing (also what dpkg-deb -c prints): mode, owner/group, size, date, time, name. */
function listing(text: string): Entry[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => {
    const m = /^(\S{10})\s+(\S+)\s+\d+\s+\S+\s+\S+\s+(.+)$/.exec(l);
    assert.ok(m !== null, `unexpected listing line: ${l}`);
    return { mode: m[1]!, owner: m[2]!, name: m[3]!.replace(/ -> .*$/, '') };
  });
}

function must(file: string, args: string[], input?: Buffer): string {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 120000, input, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `${file} ${args.join(' ')} failed:\n${r.stdout}${r.stderr}${r.error ?? ''}`);
  return r.stdout;
}

/** Whether the installed path `rel` (relative to the release tree) must be executable: what is
 * executable in the repository, plus the addon (a shared object). */
function executableInTree(rel: string): boolean {
  if (rel.startsWith('prebuilds/')) return rel.endsWith('.node');
  if (rel === 'package.json' || rel.startsWith('dist/')) return false;
  return (fs.statSync(path.join(ROOT, rel)).mode & 0o111) !== 0;
}

/** The tools (docs/architecture.md, "Layers") that never ship. */
const TOOL_DIRS = ['sim', 'lab', 'demo', 'testkit'];

/** Of the paths of a release tree, those that are tools or test/bench code, or compiled files
 * without a product source (src/<path>.ts); [] for a tree that ships only the daemon. */
function toolFiles(paths: string[]): string[] {
  const bad: string[] = [];
  for (const p of paths.map((x) => x.replace(/\/$/, ''))) {
    if (/^dist\/(test|bench)(\/|$)/.test(p)) bad.push(p);
    const m = /^dist\/src\/(.+)$/.exec(p);
    if (m === null) continue;
    if (TOOL_DIRS.includes(m[1].split('/')[0])) bad.push(p);
    else if (m[1].endsWith('.js') && !fs.existsSync(path.join(ROOT, 'src', m[1].replace(/\.js$/, '.ts')))) bad.push(`${p} (no src/${m[1].replace(/\.js$/, '.ts')})`);
  }
  return bad;
}

/** Checks every entry; `treeOf` maps an entry's name to its path in the release tree (or undefined
 * for entries outside it), for the execute bit. */
function checkEntries(what: string, entries: Entry[], treeOf: (name: string) => string | undefined, extraExec: Set<string> = new Set()): void {
  assert.ok(entries.length > 0, `${what}: ${entries.length} entries`);
  const bad: string[] = [];
  for (const e of entries) {
    if (!['0/0', 'root/root'].includes(e.owner)) bad.push(`${e.name}: owner ${e.owner}`);
    if (e.mode.startsWith('l')) continue;
    if (e.mode.startsWith('d')) {
      if (e.mode !== 'drwxr-xr-x') bad.push(`${e.name}: ${e.mode}, want drwxr-xr-x`);
      continue;
    }
    const rel = treeOf(e.name);
    const exec = extraExec.has(e.name) || (rel !== undefined && executableInTree(rel));
    const want = exec ? '-rwxr-xr-x' : '-rw-r--r--';
    if (e.mode !== want) bad.push(`${e.name}: ${e.mode}, want ${want}`);
  }
  assert.deepEqual(bad, [], `${what}: entries with other modes or owners`);
}

/** For a package's payload (the .deb, the RPM: the same tree, the unit in `unitDir`): the path in
 * the release tree of an entry, or undefined for an entry outside it. */
function packagedTree(unitDir: string): (name: string) => string | undefined {
  return (n) => {
    if (n.startsWith('./opt/gwlbtun/')) return n.slice('./opt/gwlbtun/'.length).replace(/\/$/, '');
    if (n === `${unitDir}/gwlbtun.service`) return 'examples/systemd/gwlbtun.service';
    if (n === './usr/lib/sysusers.d/gwlbtun.conf') return 'examples/systemd/gwlbtun.sysusers';
    return undefined;
  };
}

for (const umask of ['027', '077']) {
  describe(`release artefacts built under umask ${umask}`, () => {
    let dir = '';
    let out = '';
    let packaged: { status: number | null; out: string } = { status: null, out: '' };

    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `gwlbtun-pkgmode-${umask}-`));
      out = path.join(dir, 'release');
      const r = spawnSync('sh', ['-c', `umask ${umask} && exec "$0" "$@"`, process.execPath, path.join(ROOT, 'scripts', 'package.js'), '--out', out, '--arch', ARCH], {
        encoding: 'utf8',
        timeout: 300000,
      });
      packaged = { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ?? ''}` };
    });

    after(() => {
      if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
    });

    test('the tarball: 0755 directories, 0644 files, 0755 executables, all 0/0', () => {
      const name = `gwlbtun-${VERSION}-linux-${ARCH}`;
      const tarball = path.join(out, `${name}.tar.gz`);
      assert.ok(fs.existsSync(tarball), `no tarball (package.js exit ${packaged.status}):\n${packaged.out}`);
      const entries = listing(must('tar', ['--numeric-owner', '-tvzf', tarball]));
      checkEntries('tarball', entries, (n) => (n.startsWith(`${name}/`) ? n.slice(name.length + 1).replace(/\/$/, '') : undefined));
      assert.ok(entries.some((e) => e.name === `${name}/bin/gwlbtun` && e.mode === '-rwxr-xr-x'), 'bin/gwlbtun is executable');
      assert.ok(entries.some((e) => e.name === `${name}/README.md` && e.mode === '-rw-r--r--'), 'README.md is not');
      assert.deepEqual(toolFiles(entries.map((e) => e.name.slice(name.length + 1))), [], 'the tarball ships no tool');
    });

    test('dpkg-deb builds the .deb; its data and control archives have the same modes, all root', () => {
      assert.equal(packaged.status, 0, `package.js failed:\n${packaged.out}`);
      const deb = path.join(out, `gwlbtun_${VERSION}_${DEB_ARCH[ARCH]}.deb`);
      const data = listing(must('dpkg-deb', ['-c', deb]));
      checkEntries('.deb data', data, packagedTree('./lib/systemd/system'));
      assert.ok(data.some((e) => e.name === './opt/gwlbtun/examples/hooks/one-arm.sh' && e.mode === '-rwxr-xr-x'), 'the hooks are executable');
      assert.deepEqual(toolFiles(data.filter((e) => e.name.startsWith('./opt/gwlbtun/')).map((e) => e.name.slice('./opt/gwlbtun/'.length))), [], 'the .deb ships no tool');
      const ctrlTar = spawnSync('dpkg-deb', ['--ctrl-tarfile', deb], { timeout: 60000, maxBuffer: 16 * 1024 * 1024 });
      assert.equal(ctrlTar.status, 0, String(ctrlTar.stderr));
      const ctrl = listing(must('tar', ['--numeric-owner', '-tvf', '-'], ctrlTar.stdout));
      assert.deepEqual(ctrl.map((e) => e.name).sort(), ['./', './control', './postinst', './postrm', './prerm']);
      checkEntries('.deb control', ctrl, () => undefined, new Set(['./postinst', './postrm', './prerm']));
    });

    test('rpmbuild builds the RPM; its payload has the same modes, all root', () => {
      assert.equal(packaged.status, 0, `package.js failed:\n${packaged.out}`);
      const rpm = path.join(out, `gwlbtun-${VERSION}-1.${RPM_ARCH[ARCH]}.rpm`);
      const payload = spawnSync('rpm2archive', ['-'], { input: fs.readFileSync(rpm), timeout: 60000, maxBuffer: 64 * 1024 * 1024 });
      assert.equal(payload.status, 0, String(payload.stderr));
      const data = listing(must('tar', ['--numeric-owner', '-tvzf', '-'], payload.stdout));
      checkEntries('RPM payload', data, packagedTree('./usr/lib/systemd/system'));
      assert.ok(data.some((e) => e.name === './opt/gwlbtun/examples/hooks/one-arm.sh' && e.mode === '-rwxr-xr-x'), 'the hooks are executable');
      assert.ok(data.some((e) => e.name === './opt/gwlbtun/bin/' && e.mode === 'drwxr-xr-x'), 'its directories are in it');
      assert.deepEqual(toolFiles(data.filter((e) => e.name.startsWith('./opt/gwlbtun/')).map((e) => e.name.slice('./opt/gwlbtun/'.length))), [], 'the RPM ships no tool');
    });
  });
}
