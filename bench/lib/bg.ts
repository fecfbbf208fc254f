// Background processes of the benchmark (generator, reflector, daemon), each started inside a
// namespace, its output collected (bounded), and stopped by its own PID: SIGTERM, then SIGKILL.

import { spawn, type ChildProcess } from 'node:child_process';
import { nsSpawnArgs } from '../../src/sim/topology';
import { sleep } from './env';

export interface Bg {
  proc: ChildProcess;
  pid: number;
  out: () => string;
  exited: Promise<number | null>;
  /** exited, and then its output read to the end (or 1 s passed): 'exit' can come before the
   * last of stdout is read, and a client's result line is its last. */
  finished: () => Promise<number | null>;
}

export function startBg(ns: string, cmd: string, args: string[]): Bg {
  const a = nsSpawnArgs(ns, cmd, args);
  const proc = spawn(a.file, a.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const on = (b: Buffer): void => {
    if (out.length < 2_000_000) out += b.toString();
  };
  proc.stdout!.on('data', on);
  proc.stderr!.on('data', on);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  const closed = new Promise<void>((resolve) => proc.on('close', () => resolve()));
  const finished = async (): Promise<number | null> => {
    const code = await exited;
    await Promise.race([closed, sleep(1000)]);
    return code;
  };
  return { proc, pid: proc.pid!, out: () => out, exited, finished };
}

export async function waitOutput(b: Bg, text: string, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!b.out().includes(text)) {
    if (b.proc.exitCode !== null || b.proc.signalCode !== null) throw new Error(`${what} exited:\n${b.out()}`);
    if (Date.now() > end) throw new Error(`${what} did not start within ${timeoutMs} ms:\n${b.out()}`);
    await sleep(25);
  }
}

/** SIGTERM by PID, then SIGKILL after timeoutMs. */
export async function stopBg(b: Bg, timeoutMs = 8000): Promise<void> {
  if (b.proc.exitCode === null && b.proc.signalCode === null) b.proc.kill('SIGTERM');
  const r = await Promise.race([b.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  if (!r) {
    b.proc.kill('SIGKILL');
    await b.exited;
  }
}
