// Where the C addon is loaded from, and why not when it cannot be.
//
// Two places, in this order (paths relative to the installation root, the directory holding
// bin/ and dist/):
//   build/gwlbtun.node                  compiled on this machine by `npm run build`
//   prebuilds/linux-<arch>/gwlbtun.node shipped in a release tarball or .deb (`npm run package`)
// A file is taken only if it is an ELF shared object for the running CPU (64-bit, e_machine), so
// a source tree built on x64 and run under an arm64 Node falls through to its arm64 prebuild, and
// a tarball unpacked on the wrong architecture says so in one line instead of a dlopen error.
// Pure (the file reader is a parameter) so that the unit tests can feed it anything.

import * as fs from 'node:fs';
import * as path from 'node:path';

export const ADDON_FILE = 'gwlbtun.node';

/** ELF e_machine of each Node.js process.arch that gwlbtun can run on, and its readable name. */
const MACHINES: Record<string, { machine: number; elfClass: number; name: string }> = {
  x64: { machine: 62, elfClass: 2, name: 'x86-64' },
  arm64: { machine: 183, elfClass: 2, name: 'AArch64' },
  ia32: { machine: 3, elfClass: 1, name: 'i386' },
  arm: { machine: 40, elfClass: 1, name: 'ARM' },
  riscv64: { machine: 243, elfClass: 2, name: 'RISC-V' },
  ppc64: { machine: 21, elfClass: 2, name: 'PowerPC64' },
  s390x: { machine: 22, elfClass: 2, name: 's390x' },
};

function machineName(m: number): string {
  for (const v of Object.values(MACHINES)) if (v.machine === m) return v.name;
  return `e_machine ${m}`;
}

/** The files tried, in order, for `arch` under `root`. */
export function addonCandidates(root: string, arch: string): string[] {
  return [path.join(root, 'build', ADDON_FILE), path.join(root, 'prebuilds', `linux-${arch}`, ADDON_FILE)];
}

/** Why the ELF header `head` (the first 20 bytes or more of a file) cannot be loaded by a Node
 * of `arch`, or undefined when it can. */
export function elfProblem(head: Uint8Array, arch: string): string | undefined {
  if (head.length < 20 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return 'not an ELF file';
  const little = head[5] === 1;
  const type = little ? head[16] | (head[17] << 8) : (head[16] << 8) | head[17];
  const machine = little ? head[18] | (head[19] << 8) : (head[18] << 8) | head[19];
  const want = MACHINES[arch];
  if (want === undefined) return `no known ELF machine for Node's arch '${arch}'`;
  if (machine !== want.machine) return `built for ${machineName(machine)}, but this Node.js is ${arch} (${want.name})`;
  if (head[4] !== want.elfClass) return `${head[4] === 1 ? '32' : '64'}-bit ELF, but this Node.js is ${arch}`;
  if (type !== 3) return 'not a shared object (ELF type ' + type + ')';
  return undefined;
}

/** Reads up to 64 bytes of a file; undefined when it does not exist or cannot be read. */
export type HeadReader = (file: string) => Uint8Array | undefined;

export const readHead: HeadReader = (file) => {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const b = new Uint8Array(64);
    const n = fs.readSync(fd, b, 0, 64, 0);
    return b.subarray(0, n);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
};

/** The prebuilt architectures present under root/prebuilds (names like linux-x64). */
export function prebuiltArches(root: string): string[] {
  try {
    return fs
      .readdirSync(path.join(root, 'prebuilds'))
      .filter((d) => fs.existsSync(path.join(root, 'prebuilds', d, ADDON_FILE)))
      .sort();
  } catch {
    return [];
  }
}

/** The addon file to load for this platform and arch, or an Error whose message says, in one
 * line, what was tried and what to do. */
export function resolveAddon(
  root: string,
  platform: string = process.platform,
  arch: string = process.arch,
  read: HeadReader = readHead,
  available: () => string[] = () => prebuiltArches(root),
): string {
  if (platform !== 'linux') throw new Error(`gwlbtun runs on Linux only (TUN devices, epoll); this is ${platform}-${arch}`);
  const tried: string[] = [];
  for (const file of addonCandidates(root, arch)) {
    const head = read(file);
    if (head === undefined) {
      tried.push(`${file}: not found`);
      continue;
    }
    const problem = elfProblem(head, arch);
    if (problem === undefined) return file;
    tried.push(`${file}: ${problem}`);
  }
  const have = available();
  throw new Error(
    `no C addon for linux-${arch}: ${tried.join('; ')}` +
      ` (prebuilt addons here: ${have.length > 0 ? have.join(', ') : 'none'}).` +
      ` Install the gwlbtun release for linux-${arch}, or build from source with 'npm run build' (needs a C compiler and node_api.h)`,
  );
}
