// The state file (src/control/state.ts, src/control/state-worker.ts): what the writer thread writes
// from a live flow table is read back whole (endpoints, every flow, restorable into a table of
// another seed); a file that is missing, truncated anywhere, corrupt in any byte, of another
// version or record layout, or whose JSON is not what gwlbtun writes, is refused with a reason and
// never crashes the reader. And the cost per million flows, measured on the writer thread
// (CPU ms, file size, time) and on the main thread (what it still does: the JSON part), printed.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createFlowTableBuffer, FlowTable, SNAPSHOT_RECORD_WORDS, UPSERT_INSERTED } from '../../src/flow/table';
import { defaultLogConfig, Logger } from '../../src/base/log';
import { allocStateBuffer, bootId, defaultStateDir, encodeState, readStateFile, STATE_VERSION, StateFileError, StateWriter, writeStateFile, type SavedState } from '../../src/control/state';
import { fill, header, key, reverse } from './helpers/flows';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-state-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const log = new Logger(defaultLogConfig(), () => undefined);

function saved(endpoints: SavedState['endpoints'] = [{ hex: '00000000000000041', slot: 3, epId: (3 | (2 << 16)) >>> 0, readyMs: 10, lastMs: 20, netns: null, netnsCreated: false }]): SavedState {
  return { pid: 1234, bootId: bootId(), writtenMonoMs: 1, writtenWallMs: Date.now(), workers: 2, noReturn: false, offload: false, endpoints };
}

/** A valid file of `flows` flows (from a small table) and this JSON; its bytes. */
function validFile(file: string, flows = 20, state: unknown = saved()): Buffer {
  const t = new FlowTable(createFlowTableBuffer(100));
  fill(t, flows, () => 7);
  const b = allocStateBuffer(t.capacity);
  const n = t.snapshotInto(b.records);
  const len = encodeState(b, n, JSON.stringify(state));
  writeStateFile(file, b.bytes, len);
  return fs.readFileSync(file);
}

test('the writer thread writes a live table; read back whole, every flow restores into a table of another seed', async () => {
  const N = 5000;
  const sab = createFlowTableBuffer(8000, 0x1234);
  const a = new FlowTable(sab);
  assert.equal(fill(a, N, () => 50), N);
  const file = path.join(dir, 'live');
  const w = new StateWriter(file, sab, 1, log, () => saved());
  await w.request();
  await w.close();
  assert.equal(w.written, 1);
  assert.equal(w.last!.flows, N);
  assert.equal((fs.statSync(file).mode & 0o777).toString(8), '600');
  assert.ok(!fs.existsSync(file + '.tmp'));
  const r = readStateFile(file)!;
  assert.equal(r.flowCount, N);
  assert.deepEqual({ ...r.state, writtenWallMs: 0 }, { ...saved(), writtenWallMs: 0 });
  const b = new FlowTable(createFlowTableBuffer(8000, 0xbeef));
  for (let i = 0; i < r.flowCount; i++) assert.equal(b.restore(r.records, i * SNAPSHOT_RECORD_WORDS), UPSERT_INSERTED);
  const k = new Uint32Array(11);
  const rk = new Uint32Array(11);
  const want = new Uint8Array(64);
  const out = new Uint8Array(128);
  for (let i = 0; i < N; i += 97) {
    const len = header(i, want);
    for (const kk of [key(i, k), reverse(k, rk)]) {
      assert.equal(b.lookupInto(kk, out, 100, 50), len, `flow ${i}`);
      assert.deepEqual(out.subarray(100 - len, 100), want.subarray(0, len));
    }
  }
});

test('missing: null; a table-less daemon (--no-return) writes endpoints and no flows', async () => {
  assert.equal(readStateFile(path.join(dir, 'none')), null);
  const file = path.join(dir, 'noreturn');
  const w = new StateWriter(file, null, 1, log, () => saved());
  await w.request();
  await w.close();
  const r = readStateFile(file)!;
  assert.equal(r.flowCount, 0);
  assert.equal(r.state.endpoints.length, 1);
});

test('every truncation and every corrupt byte is refused with a reason, never a crash', () => {
  const file = path.join(dir, 'bad');
  const good = validFile(file);
  const reasons = new Set<string>();
  const refuse = (bytes: Uint8Array): void => {
    fs.writeFileSync(file, bytes);
    assert.throws(() => readStateFile(file), (e: unknown) => {
      assert.ok(e instanceof StateFileError, String(e));
      reasons.add(e.message.replace(/\d+/g, 'N'));
      return true;
    });
  };
  for (let len = 0; len < good.length; len += len < 64 ? 1 : 37) refuse(good.subarray(0, len));
  refuse(good.subarray(0, good.length - 1));
  refuse(Buffer.concat([good, Buffer.from([0])]));
  for (let i = 0; i < good.length; i++) {
    const b = Buffer.from(good);
    b[i] ^= 0x5a;
    refuse(b);
  }
  for (const r of ['truncated: N bytes', 'not a gwlbtun state file', 'checksum mismatch (corrupt)', `version N, this build reads version N`]) assert.ok(reasons.has(r), `${r} in ${[...reasons].join(' | ')}`);
});

test('another version, another record layout, JSON not as written: refused, each with its reason', () => {
  const file = path.join(dir, 'fields');
  const good = validFile(file);
  const b = Buffer.from(good);
  b.writeUInt32LE(STATE_VERSION + 1, 8);
  fs.writeFileSync(file, b);
  assert.throws(() => readStateFile(file), /version 2, this build reads version 1/);
  b.writeUInt32LE(STATE_VERSION, 8);
  b.writeUInt32LE(SNAPSHOT_RECORD_WORDS + 2, 12);
  fs.writeFileSync(file, b);
  assert.throws(() => readStateFile(file), /records of 32 words/);
  const ep = saved().endpoints[0];
  const cases: [unknown, RegExp][] = [
    [[1, 2], /not an object/],
    [{ ...saved(), pid: -1 }, /bad field: pid/],
    [{ ...saved(), endpoints: [{ ...ep, slot: 4 }] }, /slot/],
    [{ ...saved(), endpoints: [{ ...ep, hex: '../../etc' }] }, /endpoint hex/],
    [{ ...saved(), endpoints: [{ ...ep, netns: 7 }] }, /netns/],
    [{ ...saved(), endpoints: 'all' }, /bad field: endpoints/],
  ];
  for (const [state, re] of cases) {
    validFile(file, 3, state);
    assert.throws(() => readStateFile(file), (e: unknown) => e instanceof StateFileError && re.test(e.message), JSON.stringify(state));
  }
  const buf = allocStateBuffer(1);
  assert.equal(encodeState(buf, 0, 'x'.repeat(5 << 20)), -1, 'JSON over the limit: not written');
});

test('a state file that cannot be written: said once (with the reason) until it works again, never a crash', async () => {
  const lines: string[] = [];
  const sub = path.join(dir, 'later');
  const w = new StateWriter(path.join(sub, 'state'), null, 1, new Logger(defaultLogConfig(), (l) => lines.push(l)), () => saved());
  await w.request();
  await w.request();
  assert.equal(w.failed, 2);
  assert.equal(lines.filter((l) => /not written: ENOENT/.test(l)).length, 1, lines.join('\n'));
  fs.mkdirSync(sub);
  await w.request();
  await w.close();
  assert.equal(w.written, 1);
  assert.equal(lines.filter((l) => /written again/.test(l)).length, 1);
});

test('the state directory: $RUNTIME_DIRECTORY (its first path), else /run/gwlbtun', () => {
  assert.equal(defaultStateDir({ RUNTIME_DIRECTORY: '/run/gwlbtun:/run/other' }), '/run/gwlbtun');
  assert.equal(defaultStateDir({ RUNTIME_DIRECTORY: '/tmp/x' }), '/tmp/x');
  assert.equal(defaultStateDir({}), '/run/gwlbtun');
});

test('cost per million flows (measured on the writer thread and the main thread, printed)', async (t) => {
  const N = 1_000_000;
  const sab = createFlowTableBuffer(N);
  const a = new FlowTable(sab);
  fill(a, N, () => 1);
  const file = path.join(dir, 'million');
  const w = new StateWriter(file, sab, 1, log, () => saved());
  const lines: string[] = [];
  // The first snapshot commits the buffer's pages (and compiles the code); the second is the
  // steady cost, every --snapshot-interval.
  for (const which of ['first', 'second']) {
    const m0 = performance.now();
    const done = w.request();
    const mainMs = performance.now() - m0;
    await done;
    const c = w.last!;
    assert.equal(c.flows, a.size());
    assert.equal(c.bytes, fs.statSync(file).size);
    lines.push(`${which}: ${c.flows} flows, ${(c.bytes / 1e6).toFixed(1)} MB, ${c.wallMs.toFixed(0)} ms on the writer thread (${c.cpuMs.toFixed(0)} ms CPU), main thread ${mainMs.toFixed(2)} ms`);
  }
  await w.close();
  assert.equal(readStateFile(file)!.flowCount, a.size());
  t.diagnostic(`state file per million flows: ${lines.join('; ')}`);
});

test('start() writes the first snapshot at once (the thread starts with the daemon), then every interval', async () => {
  const file = path.join(dir, 'at-start');
  const w = new StateWriter(file, null, 3600, log, () => saved());
  w.start();
  const end = Date.now() + 10_000;
  while (w.written === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  await w.close();
  assert.equal(w.written, 1, 'written once, long before the hour of its interval');
  assert.ok(readStateFile(file) !== null);
});
