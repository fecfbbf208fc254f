// Concurrency test of the shared flow table: writer worker threads hammer upserts (every one
// changes the header, so every one is a locked write, with evictions and displacements on a
// small table) while a reader worker and the main thread look flows up and the main thread sweeps.
// Every stored entry is self-describing, so a reader can tell a torn one:
//   c = a per-write counter; header length 8 + 4 * (c % 14); header byte 0 = the key's id,
//   bytes 1.. = c & 0xff; GWLB IP = id << 24 | (c & 0xffffff); local IP = GWLB IP ^ 0x5a5a5a5a;
//   GWLB port = c & 0xffff.
// Bounded: DURATION_MS of wall time and MAX_OPS operations per thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { createFlowTableBuffer, FlowTable, UPSERT_BUSY, UPSERT_HEADER_TOO_LONG } from '../../src/flow/table';

const KEYS = 200; // more keys than the table holds: constant evictions and displacements
const MAX_FLOWS = 64;
const DURATION_MS = 1500;
const MAX_OPS = 20_000_000;
const END = 100; // lookups put the header ending here

// Control cells (Int32Array over a SharedArrayBuffer).
const C_STOP = 0;
const C_NOW = 1;
const C_READY = 2;
const C_GO = 3;
const C_STATS = 4; // per worker: [ops, hits, torn, busy]
const C_SEED = C_STATS + 4 * 8; // per worker: the hash seed its FlowTable read from the buffer

interface Job {
  role: 'writer' | 'reader';
  index: number;
  flowSab: SharedArrayBuffer;
  ctrlSab: SharedArrayBuffer;
  seed: number;
}

/** Key of flow id, in direction dir (0 or 1); ids use 192.0.2.0/24 <-> 198.51.100.0/24. */
function fillKey(k: Uint32Array, id: number, dir: number): void {
  const a = 0xc0000200 | id;
  const b = 0xc6336400 | ((id * 7) & 0xff);
  const pa = 1024 + id;
  const pb = id % 3 === 0 ? 443 : 53;
  k[0] = 0x00010001;
  k[1] = (4 << 8) | (id % 3 === 0 ? 6 : 17);
  k[3] = k[4] = k[5] = k[7] = k[8] = k[9] = 0;
  if (dir === 0) {
    k[2] = a;
    k[6] = b;
    k[10] = ((pa << 16) | pb) >>> 0;
  } else {
    k[2] = b;
    k[6] = a;
    k[10] = ((pb << 16) | pa) >>> 0;
  }
}

function xorshift(s: number): number {
  s ^= s << 13;
  s ^= s >>> 17;
  s ^= s << 5;
  return s | 0;
}

/** Checks a hit against the self-describing format; returns true when consistent. */
function consistent(t: FlowTable, id: number, out: Uint8Array, len: number): boolean {
  const g = t.hitGwlbIp;
  const c = g & 0xffffff;
  if (g >>> 24 !== id) return false;
  if (len !== 8 + 4 * (c % 14)) return false;
  if (t.hitLocalIp !== (g ^ 0x5a5a5a5a) >>> 0) return false;
  if (t.hitGwlbPort !== (c & 0xffff)) return false;
  const start = END - len;
  if (out[start] !== id) return false;
  for (let j = 1; j < len; j++) if (out[start + j] !== (c & 0xff)) return false;
  return true;
}

function runJob(job: Job): void {
  const t = new FlowTable(job.flowSab);
  const ctrl = new Int32Array(job.ctrlSab);
  const st = C_STATS + job.index * 4;
  ctrl[C_SEED + job.index] = t.seed;
  const key = new Uint32Array(11);
  const hbuf = new Uint8Array(64);
  const out = new Uint8Array(END + 10);
  let rnd = job.seed | 1;
  let ops = 0;
  let hits = 0;
  let torn = 0;
  let busy = 0;
  let c = job.index; // per-write counter, distinct per writer
  Atomics.add(ctrl, C_READY, 1);
  Atomics.wait(ctrl, C_GO, 0, 10_000); // start together (bounded wait)
  while (Atomics.load(ctrl, C_STOP) === 0 && ops < MAX_OPS) {
    for (let n = 0; n < 256; n++) {
      rnd = xorshift(rnd);
      const id = (rnd >>> 8) % KEYS;
      fillKey(key, id, rnd & 1);
      const now = Atomics.load(ctrl, C_NOW);
      if (job.role === 'writer') {
        c = (c + 4) & 0xffffff;
        const len = 8 + 4 * (c % 14);
        hbuf[0] = id;
        hbuf.fill(c & 0xff, 1, len);
        const g = ((id << 24) | c) >>> 0;
        const r = t.upsert(key, hbuf, 0, len, g, (g ^ 0x5a5a5a5a) >>> 0, c & 0xffff, now);
        if (r === UPSERT_BUSY) busy++;
        else if (r === UPSERT_HEADER_TOO_LONG) torn++; // cannot happen: counted as a failure
      } else {
        const len = t.lookupInto(key, out, END, now);
        if (len >= 0) {
          hits++;
          if (!consistent(t, id, out, len)) torn++;
        }
      }
      ops++;
    }
  }
  ctrl[st] = ops;
  ctrl[st + 1] = hits;
  ctrl[st + 2] = torn;
  ctrl[st + 3] = busy;
}

if (!isMainThread && workerData !== null && typeof workerData === 'object' && 'role' in workerData) {
  runJob(workerData as Job);
} else {
  test('concurrent upserts, lookups and sweeps: no torn entry is ever read', { timeout: 30_000 }, async () => {
    const flowSab = createFlowTableBuffer(MAX_FLOWS);
    const ctrlSab = new SharedArrayBuffer(4 * (C_SEED + 8));
    const ctrl = new Int32Array(ctrlSab);
    const t = new FlowTable(flowSab);
    const jobs: Job[] = [
      { role: 'writer', index: 0, flowSab, ctrlSab, seed: 0x1234567 },
      { role: 'writer', index: 1, flowSab, ctrlSab, seed: 0x7654321 },
      { role: 'reader', index: 2, flowSab, ctrlSab, seed: 0x2468ace },
    ];
    const workers = jobs.map((job) => new Worker(__filename, { workerData: job }));
    const exited = workers.map(
      (w) =>
        new Promise<number>((resolve, reject) => {
          w.on('error', reject);
          w.on('exit', resolve);
        }),
    );
    try {
      // Wait (bounded) until every worker is running, then start them together.
      const t0 = Date.now();
      while (Atomics.load(ctrl, C_READY) < jobs.length && Date.now() - t0 < 10_000) {
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(Atomics.load(ctrl, C_READY), jobs.length, 'workers started');
      // One hash seed for the whole table: drawn by createFlowTableBuffer, read by every thread.
      for (const j of jobs) assert.equal(ctrl[C_SEED + j.index], t.seed, `worker ${j.index}'s seed`);
      Atomics.store(ctrl, C_GO, 1);
      Atomics.notify(ctrl, C_GO);
      // The main thread: lookups too, a clock tick every 2048 operations, and sweeps with a
      // 0-tick idle limit so that entries are also deleted while others read and write them.
      const key = new Uint32Array(11);
      const out = new Uint8Array(END + 10);
      let rnd = 0x13579bd;
      let ops = 0;
      let hits = 0;
      let torn = 0;
      let swept = 0;
      const deadline = Date.now() + DURATION_MS;
      while (Date.now() < deadline && ops < MAX_OPS) {
        for (let n = 0; n < 2048; n++) {
          rnd = xorshift(rnd);
          const id = (rnd >>> 8) % KEYS;
          fillKey(key, id, rnd & 1);
          const len = t.lookupInto(key, out, END, Atomics.load(ctrl, C_NOW));
          if (len >= 0) {
            hits++;
            if (!consistent(t, id, out, len)) torn++;
          }
          ops++;
        }
        const now = Atomics.add(ctrl, C_NOW, 1) + 1;
        swept += t.sweep(now, 0, 0, 3, null); // idle 0: whatever was not refreshed this tick
        const size = t.size();
        assert.ok(size >= 0 && size <= t.capacity, `size ${size}`);
      }
      Atomics.store(ctrl, C_STOP, 1);
      await Promise.all(exited);
      const stats = jobs.map((j) => ({
        role: j.role,
        ops: ctrl[C_STATS + j.index * 4],
        hits: ctrl[C_STATS + j.index * 4 + 1],
        torn: ctrl[C_STATS + j.index * 4 + 2],
        busy: ctrl[C_STATS + j.index * 4 + 3],
      }));
      const info = JSON.stringify({ main: { ops, hits, torn, swept }, workers: stats });
      assert.equal(torn, 0, info);
      for (const s of stats) {
        assert.equal(s.torn, 0, info);
        assert.ok(s.ops > 10_000, info);
      }
      assert.ok(hits > 1000 && stats[2].hits > 1000, info);
      assert.ok(swept > 0, info);
      // Duplicates (same key inserted by both writers at once) may make the count differ from
      // the number of distinct keys, never from the entries present.
      assert.ok(t.size() >= 0 && t.size() <= t.capacity);
      console.log(`# flow concurrency: ${info}`);
    } finally {
      Atomics.store(ctrl, C_STOP, 1);
      Atomics.store(ctrl, C_GO, 1);
      Atomics.notify(ctrl, C_GO);
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });
}
