// Hooks: the operator's create/destroy scripts, run as `FILE CREATE|DESTROY gwi-X gwo-X ENIHEX`.
// No shell: the file is executed directly with an argument vector, so nothing derived from a
// packet (the ENI ID) can ever be interpreted by a shell. Hooks run asynchronously in the
// control plane, never on the data path; output is captured (bounded) and logged, and a hook
// that outlives its timeout is killed (SIGTERM, then SIGKILL a second later).

import { spawn } from 'node:child_process';
import { monoMs } from '../flow/clock';

export interface HookResult {
  file: string;
  args: string[];
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  output: string; // stdout + stderr, at most OUTPUT_MAX bytes
  error?: string; // spawn failure (ENOENT, EACCES)
}

const OUTPUT_MAX = 16 * 1024;

export function runHook(file: string, args: string[], timeoutMs: number): Promise<HookResult> {
  const started = monoMs();
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    let settled = false;
    const finish = (r: Omit<HookResult, 'file' | 'args' | 'durationMs' | 'output' | 'timedOut'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      resolve({ file, args, timedOut, durationMs: monoMs() - started, output, ...r });
    };
    const take = (b: Buffer): void => {
      if (output.length < OUTPUT_MAX) output += b.toString('utf8', 0, Math.min(b.length, OUTPUT_MAX - output.length));
    };
    let killTimer: NodeJS.Timeout | undefined;
    // Own process group (detached), so that a timeout kills the hook and everything it started:
    // a shell script's `sleep` would otherwise survive its shell and keep our pipes open.
    const child = spawn(file, args, { shell: false, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const killGroup = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        child.kill(sig);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), 1000);
    }, timeoutMs);
    child.on('error', (e) => finish({ code: null, signal: null, error: e.message }));
    // 'exit', not 'close': a background process the hook left behind may hold the pipes open for
    // ever. Output already written arrives within the grace period.
    child.on('exit', (code, signal) => {
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish({ code, signal });
      }, 50);
    });
  });
}

/** Runs tasks one after another per key (per endpoint): a DESTROY never overtakes its CREATE. */
export class SerialQueues {
  private readonly tails = new Map<string, Promise<void>>();
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const p = prev.then(task, task);
    const tail = p.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return p;
  }
  get size(): number {
    return this.tails.size;
  }
}
