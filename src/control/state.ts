// The state file: what a crashed gwlbtun leaves for the next one (docs/operations.md, "Crashes and
// restarts"). Written every --snapshot-interval seconds by a worker thread of its own
// (src/control/state-worker.ts); read once at start-up by the daemon (src/control/daemon.ts), which
// adopts the persistent interfaces the dead process left (src/control/endpoints.ts,
// adoptLeftovers) and restores the flows of those it adopted.
//
// Layout (one file, little-endian header; the records in the machine's own byte order, as the
// flow table holds them: the file never leaves the machine that wrote it):
//   [0, 8)      magic "GWLBSTAT"
//   [8, 12)     STATE_VERSION
//   [12, 16)    record words (SNAPSHOT_RECORD_WORDS)
//   [16, 20)    flow count n
//   [20, 24)    JSON length j (bytes)
//   [24, 56)    SHA-256 of [56, end)
//   [56, 56 + n * 120)            the flows: FlowTable.snapshotInto records (the hand-over's)
//   [56 + n * 120, + j)           one JSON object (SavedState): the endpoints, as a hand-over
//                                 passes them minus their descriptors, and who wrote it when
// The records come first so that the writer's buffer (allocated once, sized from --max-flows) is
// a fixed Int32Array view: no allocation per snapshot but the JSON text.
//
// Decisions:
// - Written to `<file>.tmp` and renamed over the file: a reader sees the old file or the new one,
//   never half of one. No fsync: the state directory is /run (tmpfs), and what the file is for --
//   a crash of the process, not of the machine -- leaves the page cache intact. A reboot ends
//   every persistent device anyway; boot_id in the JSON makes a file from before one stale.
// - A file we read is input (docs/security.md, "The state file"): the checksum, every length and
//   every field is checked before anything is used; whatever is wrong gives one log line with the
//   reason and a start afresh, never a crash. Its own version: STATE_VERSION (not the hand-over's,
//   whose channel format may change on its own); the records are the hand-over's, checked by
//   their word count.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../base/log';
import { MAX_FLOWS_LIMIT, SNAPSHOT_RECORD_WORDS } from '../flow/table';
import type { HandedEndpoint } from './endpoints';
import { runtimeDir } from './handover-status';

export const STATE_VERSION = 1;
export const STATE_FILE_NAME = 'state';
export const STATE_MAGIC = 'GWLBSTAT';
export const STATE_HEADER_BYTES = 56;
/** The JSON's longest (4096 endpoints of ~200 bytes fit well). */
export const STATE_JSON_MAX = 4 << 20;
const RECORD_BYTES = SNAPSHOT_RECORD_WORDS * 4;

/** An endpoint as the state file keeps it: a hand-over's description without descriptors. */
export type SavedEndpoint = Omit<HandedEndpoint, 'gwiFds' | 'gwoFds'>;

/** The JSON part. */
export interface SavedState {
  pid: number;
  /** /proc/sys/kernel/random/boot_id of the writer: a file from before a reboot is stale. */
  bootId: string;
  /** When it was written: the monotonic clock (src/base/clock.ts) and the wall clock (for logs). */
  writtenMonoMs: number;
  writtenWallMs: number;
  workers: number;
  noReturn: boolean;
  offload: boolean;
  endpoints: SavedEndpoint[];
}

/** The state directory: --state-dir, else $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=; the
 * first of a colon-separated list), else /run/gwlbtun. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return runtimeDir(env, () => true)!; // the hand-over records' directory, created if missing
}

export function stateFilePath(dir: string): string {
  return path.join(dir, STATE_FILE_NAME);
}

let bootIdCache: string | null = null;
export function bootId(): string {
  if (bootIdCache === null) {
    try {
      bootIdCache = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = '';
    }
  }
  return bootIdCache;
}

/** The writer's buffer: header, records (view `records`, room for `capacity` flows), JSON. */
export interface StateBuffer {
  bytes: Uint8Array;
  records: Int32Array;
  capacity: number;
}

/** Allocated once per writer; its pages are committed only as far as a snapshot writes. */
export function allocStateBuffer(capacity: number): StateBuffer {
  const bytes = new Uint8Array(STATE_HEADER_BYTES + capacity * RECORD_BYTES + STATE_JSON_MAX);
  return { bytes, records: new Int32Array(bytes.buffer, STATE_HEADER_BYTES, capacity * SNAPSHOT_RECORD_WORDS), capacity };
}

/** Lay out a file of `flowCount` records (already in b.records) and this JSON in b.bytes; returns
 * its length, or -1 when the JSON does not fit. */
export function encodeState(b: StateBuffer, flowCount: number, json: string): number {
  const jsonAt = STATE_HEADER_BYTES + flowCount * RECORD_BYTES;
  const r = new TextEncoder().encodeInto(json, b.bytes.subarray(jsonAt, jsonAt + STATE_JSON_MAX));
  if (r.read !== json.length) return -1;
  const end = jsonAt + r.written;
  const dv = new DataView(b.bytes.buffer, b.bytes.byteOffset, STATE_HEADER_BYTES);
  for (let i = 0; i < 8; i++) b.bytes[i] = STATE_MAGIC.charCodeAt(i);
  dv.setUint32(8, STATE_VERSION, true);
  dv.setUint32(12, SNAPSHOT_RECORD_WORDS, true);
  dv.setUint32(16, flowCount, true);
  dv.setUint32(20, r.written, true);
  b.bytes.set(createHash('sha256').update(b.bytes.subarray(STATE_HEADER_BYTES, end)).digest(), 24);
  return end;
}

/** Write the first `len` bytes of b to `file` atomically (a temporary file, renamed), mode 0600. */
export function writeStateFile(file: string, bytes: Uint8Array, len: number): void {
  const tmp = file + '.tmp';
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    let off = 0;
    while (off < len) off += fs.writeSync(fd, bytes, off, len - off);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** A state file read and checked. */
export interface LoadedState {
  state: SavedState;
  /** flowCount records of SNAPSHOT_RECORD_WORDS words. */
  records: Int32Array;
  flowCount: number;
  bytes: number;
}

export class StateFileError extends Error {}

const isInt = (x: unknown, min: number, max: number): x is number => typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max;
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** Check the JSON's shape field by field (a file we read is input). */
function checkState(x: unknown): SavedState {
  const bad = (what: string): never => {
    throw new StateFileError(`bad field: ${what}`);
  };
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return bad('not an object');
  const s = x as Record<string, unknown>;
  if (!isInt(s.pid, 0, 1 << 30)) bad('pid');
  if (typeof s.bootId !== 'string') bad('bootId');
  if (!isNum(s.writtenMonoMs) || !isNum(s.writtenWallMs)) bad('written');
  if (!isInt(s.workers, 1, 4096)) bad('workers');
  if (typeof s.noReturn !== 'boolean' || typeof s.offload !== 'boolean') bad('noReturn/offload');
  if (!Array.isArray(s.endpoints) || s.endpoints.length > 4096) return bad('endpoints');
  for (const e of s.endpoints as unknown[]) {
    if (typeof e !== 'object' || e === null) bad('endpoint');
    const p = e as Record<string, unknown>;
    if (typeof p.hex !== 'string' || !/^[0-9a-f]{17}$/.test(p.hex)) bad('endpoint hex');
    if (!isInt(p.slot, 0, 0xffff) || !isInt(p.epId, 0, 0xffffffff) || ((p.epId as number) & 0xffff) !== p.slot) bad(`endpoint ${String(p.hex)} slot`);
    if (!isNum(p.readyMs) || !isNum(p.lastMs)) bad(`endpoint ${String(p.hex)} times`);
    if (!(p.netns === null || typeof p.netns === 'string') || typeof p.netnsCreated !== 'boolean') bad(`endpoint ${String(p.hex)} netns`);
  }
  return s as unknown as SavedState;
}

/** Read and check a state file. null: there is none. Throws StateFileError naming what is wrong
 * (anything else: the file could not be read). */
export function readStateFile(file: string): LoadedState | null {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateFileError(`cannot read it: ${(e as Error).message}`);
  }
  if (buf.length < STATE_HEADER_BYTES) throw new StateFileError(`truncated: ${buf.length} bytes`);
  if (buf.toString('latin1', 0, 8) !== STATE_MAGIC) throw new StateFileError('not a gwlbtun state file');
  const version = buf.readUInt32LE(8);
  if (version !== STATE_VERSION) throw new StateFileError(`version ${version}, this build reads version ${STATE_VERSION}`);
  const words = buf.readUInt32LE(12);
  if (words !== SNAPSHOT_RECORD_WORDS) throw new StateFileError(`records of ${words} words, this build's are ${SNAPSHOT_RECORD_WORDS}`);
  const n = buf.readUInt32LE(16);
  const j = buf.readUInt32LE(20);
  if (n > MAX_FLOWS_LIMIT * 2 || j > STATE_JSON_MAX) throw new StateFileError(`${n} flows and ${j} bytes of JSON: out of range`);
  const want = STATE_HEADER_BYTES + n * RECORD_BYTES + j;
  if (buf.length !== want) throw new StateFileError(`${buf.length} bytes where its header says ${want} (truncated or corrupt)`);
  const sum = createHash('sha256').update(buf.subarray(STATE_HEADER_BYTES)).digest();
  if (!sum.equals(buf.subarray(24, STATE_HEADER_BYTES))) throw new StateFileError('checksum mismatch (corrupt)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8', STATE_HEADER_BYTES + n * RECORD_BYTES));
  } catch (e) {
    throw new StateFileError(`JSON: ${(e as Error).message}`);
  }
  const state = checkState(parsed);
  // The records as an Int32Array: in place when aligned, else copied once.
  const at = buf.byteOffset + STATE_HEADER_BYTES;
  const records = at % 4 === 0 ? new Int32Array(buf.buffer, at, n * SNAPSHOT_RECORD_WORDS) : new Int32Array(buf.buffer.slice(at, at + n * RECORD_BYTES));
  return { state, records, flowCount: n, bytes: buf.length };
}

/** Remove the state file (a clean stop: nothing is left to adopt). */
export function removeStateFile(file: string): void {
  for (const f of [file, file + '.tmp']) fs.rmSync(f, { force: true });
}

// ---- the writer thread (src/control/state-worker.ts) and the main thread's side -----------------

/** What the main thread passes at start. */
export interface StateWorkerData {
  file: string;
  flowSab: SharedArrayBuffer | null;
}
/** A request (the JSON part, made by the main thread, which owns the endpoints) and the answer. */
export interface StateRequest {
  json: string;
}
export type StateReply = { t: 'done'; flows: number; bytes: number; wallMs: number; cpuMs: number } | { t: 'error'; message: string };

/** The last snapshot's cost (for the log and the tests). */
export interface SnapshotCost {
  flows: number;
  bytes: number;
  wallMs: number;
  cpuMs: number;
}

/** The main thread's side: every intervalS seconds it asks the writer thread for a snapshot
 * (none while one is under way), with the endpoints as the JSON part. The thread is started with
 * the first request and kept; stop() ends the timer, close() the thread too. */
export class StateWriter {
  private worker: Worker | null = null;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  /** Snapshots written, failed; the last one's cost. */
  written = 0;
  failed = 0;
  last: SnapshotCost | null = null;
  private failing = false;
  private waiters: (() => void)[] = [];

  constructor(
    readonly file: string,
    private readonly flowSab: SharedArrayBuffer | null,
    private readonly intervalS: number,
    private readonly log: Logger,
    /** The JSON part, made at the time of each request. */
    private readonly state: () => SavedState,
  ) {}

  start(): void {
    if (this.intervalS <= 0 || this.timer !== null) return;
    this.timer = setInterval(() => this.request(), this.intervalS * 1000);
    this.timer.unref();
    // The first snapshot at once: the thread (an isolate: several MB) starts with the daemon, not
    // an interval later in the middle of whatever the process is doing (a memory measurement saw
    // it as growth), and an unwritable state directory is said at start-up.
    void this.request();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Ask for one snapshot now (skipped while one is under way); resolves when it is written or failed. */
  request(): Promise<void> {
    const done = new Promise<void>((r) => this.waiters.push(r));
    if (this.busy) return done;
    this.busy = true;
    if (this.worker === null) this.worker = this.spawn();
    this.worker.postMessage({ json: JSON.stringify(this.state()) });
    return done;
  }

  private spawn(): Worker {
    const w = new Worker(path.join(__dirname, 'state-worker.js'), { workerData: { file: this.file, flowSab: this.flowSab } satisfies StateWorkerData });
    w.unref();
    w.on('message', (m: StateReply) => {
      if (m.t === 'done') {
        if (this.failing) this.log.important('core', `state file ${this.file} written again`);
        this.failing = false;
        this.written++;
        this.last = { flows: m.flows, bytes: m.bytes, wallMs: m.wallMs, cpuMs: m.cpuMs };
        const line = `state file ${this.file}: ${m.flows} flow(s), ${m.bytes} bytes, ${m.wallMs.toFixed(1)} ms (${m.cpuMs.toFixed(1)} ms CPU, writer thread)`;
        if (this.written === 1) this.log.important('core', line);
        else this.log.info('core', line);
      } else {
        // Logged once until it works again (an unwritable directory would say it every interval).
        if (!this.failing) this.log.important('core', `state file ${this.file} not written: ${m.message} (said once; a crash now loses the flows of the last snapshot written)`);
        this.failing = true;
        this.failed++;
      }
      this.settle();
    });
    w.on('error', (e) => {
      this.failed++;
      this.log.critical('core', `state file writer: ${e.message}; started again with the next snapshot`);
      this.worker = null;
      this.settle();
    });
    return w;
  }

  private settle(): void {
    this.busy = false;
    const ws = this.waiters;
    this.waiters = [];
    for (const r of ws) r();
  }

  /** End the timer and the thread (a snapshot under way is cut short: its .tmp file is left). */
  async close(): Promise<void> {
    this.stop();
    const w = this.worker;
    this.worker = null;
    if (w !== null) await w.terminate();
    this.settle();
  }
}
