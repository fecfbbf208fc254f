// Fixed facts of the benchmark set-up (paths, the emulated endpoint, the CPU split) and the
// runner's log. Everything under bench/lib and bench/scenarios takes them from here.

import * as path from 'node:path';

/** The repository (this file runs as dist/bench/lib/env.js). */
export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const GEN_SRC = path.join(ROOT, 'bench', 'gen.c');
export const GEN_BIN = path.join(ROOT, 'build', 'bench-gen');
export const DAEMON = path.join(ROOT, 'bin', 'gwlbtun');
export const HOOK = path.join(ROOT, 'examples', 'hooks', 'one-arm.sh');
export const FLOWTABLE = path.join(ROOT, 'dist', 'bench', 'flowtable.js');
export const HEALTH_PORT = 8089;
export const ENI = '2b8ee1d4db0c51c4';
export const FLOWS = 64;
export const GEN_CPU = '0';
export const APPL_CPU = '1';
export const CLK_TCK = 100; // USER_HZ: /proc/<pid>/stat times are in 1/100 s on Linux

/** When the run started (the log prints seconds since then). */
export const t0 = Date.now();
export function log(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${msg}\n`);
}
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
