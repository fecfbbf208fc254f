// `gwlbtun handover` (src/ops/handover-cmd.ts) and the records it reads
// (src/control/handover-status.ts), without a daemon: a scripted process table, runtime directory
// and systemctl play each outcome (done, refused, failed, fallback, no answer, systemd not
// following), the choice of the process (--pid, MainPID, PID file, not a gwlbtun), and bad
// records (truncated, foreign, an older answer) that must be ignored, never crash. The real
// exchange with a daemon runs in test/e2e/handover-cmd.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { catchesUsr2, EXIT_DONE, EXIT_FALLBACK, EXIT_NOT_DONE, EXIT_USAGE, handOverMain, realDeps, type HandOverDeps, type ProcInfo } from '../../src/ops/handover-cmd';
import { HandOverStatus, parseRecord, PID_FILE, recordFile, runtimeDir, type HandOverRecord } from '../../src/control/handover-status';
import { defaultLogConfig, Logger } from '../../src/base/log';

const DIR = '/run/gwlbtun';
const OLD = 4242;
const NEW = 4343;

interface World {
  deps: HandOverDeps;
  out: string[];
  err: string[];
  signals: [number, string][];
  files: Map<string, string>;
  procs: Map<number, ProcInfo>;
  mainPid: number | null;
}

/** `onSignal` runs when SIGUSR2 is sent; `step` at every sleep (the daemon's progress). */
function world(opts: { onSignal?: (w: World) => void; step?: (w: World, t: number) => void; systemd?: boolean; dir?: boolean } = {}): World {
  let now = 0;
  const w: World = {
    out: [], err: [], signals: [], files: new Map(), procs: new Map([[OLD, { cmdline: 'node /opt/gwlbtun/bin/gwlbtun -p 8080', zombie: false, catchesUsr2: true }]]),
    mainPid: opts.systemd === true ? OLD : null,
    deps: undefined as unknown as HandOverDeps,
  };
  w.deps = {
    env: {},
    kill: (pid, sig) => {
      if (!w.procs.has(pid)) throw Object.assign(new Error('kill ESRCH'), { code: 'ESRCH' });
      w.signals.push([pid, String(sig)]);
      if (sig === 'SIGUSR2') opts.onSignal?.(w);
    },
    read: (f) => w.files.get(f) ?? null,
    exists: (p) => p === DIR && opts.dir !== false,
    systemctl: () => (opts.systemd === true ? { status: 0, stdout: `${w.mainPid ?? 0}\n` } : null),
    proc: (pid) => w.procs.get(pid) ?? null,
    nowMs: () => now,
    sleep: async (ms) => {
      now += ms;
      opts.step?.(w, now);
    },
    out: (l) => w.out.push(l),
    err: (l) => w.err.push(l),
  };
  return w;
}

const rec = (r: Partial<HandOverRecord>): string => JSON.stringify({ pid: OLD, seq: 1, phase: 'started', newPid: null, reason: '', ...r });
const recPath = path.join(DIR, recordFile(OLD));

/** A daemon that answers the signal with `phases` one poll after another, then (after done) exits. */
function answering(phases: Partial<HandOverRecord>[], seq = 1): { onSignal: (w: World) => void; step: (w: World) => void } {
  let i = -1;
  return {
    onSignal: () => (i = 0),
    step: (w) => {
      if (i < 0) return;
      if (i < phases.length) {
        const p = phases[i++];
        w.files.set(recPath, rec({ seq, ...p }));
        if (p.newPid != null) w.procs.set(p.newPid, { cmdline: 'node /opt/gwlbtun/bin/gwlbtun -p 8080', zombie: false, catchesUsr2: true });
        if (p.phase === 'done') {
          w.procs.set(OLD, { ...w.procs.get(OLD)!, zombie: true }); // exited, not yet reaped
          w.mainPid = NEW;
        }
      }
    },
  };
}

test('done: SIGUSR2 to --pid, the answer to this signal read, the old PID gone and the new running: exit 0', async () => {
  const w = world(answering([{ phase: 'started', newPid: NEW }, { phase: 'done', newPid: NEW, reason: '3 flow(s) passed' }]));
  assert.equal(await handOverMain(['--pid', String(OLD)], w.deps), EXIT_DONE, w.err.join('\n'));
  assert.deepEqual(w.signals, [[OLD, 'SIGUSR2']]);
  assert.match(w.out.join('\n'), /PID 4343 took over from PID 4242 \(3 flow\(s\) passed\)/);
});

test('an answer to an earlier signal does not count: only a higher seq', async () => {
  const w = world(answering([{ phase: 'done', newPid: NEW }], 3));
  w.files.set(recPath, rec({ seq: 2, phase: 'refused', reason: 'a hook is running' }));
  assert.equal(await handOverMain(['--pid', String(OLD)], w.deps), EXIT_DONE, w.err.join('\n'));
});

test('refused and failed: exit 1 with the reason, the running one carries on', async () => {
  for (const [phase, re] of [['refused', /PID 4242 refused the hand-over \(an endpoint is being created\); it carries on/], ['failed', /could not hand over to PID 4343 \(it exited before it was ready\)/]] as const) {
    const w = world(answering([{ phase, newPid: phase === 'failed' ? NEW : null, reason: phase === 'failed' ? 'it exited before it was ready' : 'an endpoint is being created' }]));
    assert.equal(await handOverMain(['--pid', String(OLD)], w.deps), EXIT_NOT_DONE);
    assert.match(w.err.join('\n'), re);
  }
});

test('fallback: exit 2, says a restart follows', async () => {
  const w = world(answering([{ phase: 'started', newPid: NEW }, { phase: 'fallback', newPid: NEW, reason: 'it reads hand-over version 2, not 1' }]));
  assert.equal(await handOverMain(['--pid', String(OLD)], w.deps), EXIT_FALLBACK);
  assert.match(w.out.join('\n'), /falling back to a restart/);
});

test('no answer: exit 1 after --timeout, bounded', async () => {
  const w = world({});
  assert.equal(await handOverMain(['--pid', String(OLD), '--timeout', '2'], w.deps), EXIT_NOT_DONE);
  assert.match(w.err.join('\n'), /no outcome within 2 s \(nothing recorded\); PID 4242 still runs/);
});

test('bad records are ignored, not fatal: truncated, not an object, another PID, an unknown phase', async () => {
  const bad = [rec({ phase: 'done', newPid: NEW }).slice(0, 20), '[1,2]', rec({ pid: 7, phase: 'done', newPid: NEW }), rec({ phase: 'exploded' as 'done' }), '\u0000\u0001'];
  let i = 0;
  const w = world({ step: (x) => x.files.set(recPath, bad[i++ % bad.length]) });
  assert.equal(await handOverMain(['--pid', String(OLD), '--timeout', '1'], w.deps), EXIT_NOT_DONE);
  for (const b of bad) if (!b.includes('"pid":7')) assert.equal(typeof parseRecord(b), 'string', b); // another PID's is a record, not this one's
});

test('systemd: the PID is the unit\'s MainPID, and done waits until MainPID is the new one', async () => {
  const a = answering([{ phase: 'done', newPid: NEW }]);
  const w = world({ ...a, systemd: true });
  assert.equal(await handOverMain([], w.deps), EXIT_DONE, w.err.join('\n'));
  assert.deepEqual(w.signals, [[OLD, 'SIGUSR2']]);
  // A unit systemd does not follow (not Type=notify): MainPID stays the old one.
  const b = answering([{ phase: 'done', newPid: NEW }]);
  const w2 = world({ onSignal: b.onSignal, step: (x) => {
    b.step(x);
    x.mainPid = OLD;
  }, systemd: true });
  assert.equal(await handOverMain(['--timeout', '1'], w2.deps), EXIT_NOT_DONE);
  assert.match(w2.err.join('\n'), /MainPID of gwlbtun.service is 4242, not 4343 \(is it Type=notify\?\)/);
});

test('without systemd: the PID file; a PID that is not gwlbtun, none, no runtime directory: exit 3, nothing sent', async () => {
  const w = world(answering([{ phase: 'done', newPid: NEW }]));
  w.files.set(path.join(DIR, PID_FILE), `${OLD}\n`);
  assert.equal(await handOverMain([], w.deps), EXIT_DONE, w.err.join('\n'));

  const x = world({});
  x.files.set(path.join(DIR, PID_FILE), '77\n');
  x.procs.set(77, { cmdline: 'sshd: root', zombie: false, catchesUsr2: true });
  assert.equal(await handOverMain([], x.deps), EXIT_USAGE);
  assert.match(x.err.join('\n'), /PID 77 .* is not gwlbtun/);
  assert.deepEqual(x.signals, []);

  // A gwlbtun that does not catch SIGUSR2 (older than the hand-over): its default action would
  // end it, so nothing is sent and the scriptlet restarts it instead.
  const o = world({});
  o.procs.set(OLD, { ...o.procs.get(OLD)!, catchesUsr2: false });
  assert.equal(await handOverMain(['--pid', String(OLD)], o.deps), EXIT_USAGE);
  assert.match(o.err.join('\n'), /does not handle SIGUSR2/);
  assert.deepEqual(o.signals, []);

  const y = world({});
  assert.equal(await handOverMain([], y.deps), EXIT_USAGE);
  assert.match(y.err.join('\n'), /no running gwlbtun found/);
  assert.equal(await handOverMain(['--pid', '999'], y.deps), EXIT_USAGE);

  const z = world({ dir: false });
  assert.equal(await handOverMain(['--pid', String(OLD)], z.deps), EXIT_USAGE);
  assert.match(z.err.join('\n'), /no runtime directory/);
  assert.deepEqual(z.signals, []);

  for (const args of [['--pid', 'x'], ['--timeout', '0'], ['--bogus']]) assert.equal(await handOverMain(args, world({}).deps), EXIT_USAGE, args.join(' '));
});

test('HandOverStatus writes whole records and the PID file in the runtime directory; removes the PID file only when it is its own', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-hstatus-'));
  try {
    assert.equal(runtimeDir({ RUNTIME_DIRECTORY: `${dir}:/other` }), dir);
    assert.equal(runtimeDir({ RUNTIME_DIRECTORY: path.join(dir, 'missing') }), null);
    const lines: string[] = [];
    const s = new HandOverStatus(new Logger(defaultLogConfig(), (l) => lines.push(l)), dir, 1234);
    s.writePid();
    s.signalled();
    s.record('started', 99, '');
    s.record('done', 99, '5 flow(s) passed');
    const r = parseRecord(fs.readFileSync(path.join(dir, recordFile(1234)), 'utf8'));
    assert.ok(typeof r !== 'string');
    assert.deepEqual(r, { pid: 1234, seq: 1, phase: 'done', newPid: 99, reason: '5 flow(s) passed' });
    assert.deepEqual(fs.readdirSync(dir).sort(), [PID_FILE, recordFile(1234)], 'no temporary file left');
    fs.writeFileSync(path.join(dir, PID_FILE), '99\n'); // the new process wrote its own
    s.removePid();
    assert.ok(fs.existsSync(path.join(dir, PID_FILE)), 'the new one\'s PID file stays');
    new HandOverStatus(new Logger(defaultLogConfig(), () => undefined), dir, 99).removePid();
    assert.ok(!fs.existsSync(path.join(dir, PID_FILE)));
    // A directory it cannot write to: one line, no exception.
    const ro = new HandOverStatus(new Logger(defaultLogConfig(), (l) => lines.push(l)), path.join(dir, 'nope'), 1);
    ro.record('refused', null, 'x');
    ro.record('refused', null, 'x');
    assert.equal(lines.filter((l) => l.includes('cannot write')).length, 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('whether a process catches SIGUSR2, from /proc/PID/status (a plain node, and one that handles it)', async () => {
  assert.equal(catchesUsr2('Name:\tx\nSigCgt:\t0000000000000800\n'), true);
  assert.equal(catchesUsr2('SigCgt:\t0000000100004602\n'), false);
  assert.equal(catchesUsr2('no such line'), false);
  // Child processes, not this one: Node 24's test runner handles SIGUSR2 in the processes it runs
  // test files in (SigCgt 0x4e02 where a plain node has 0x4602).
  const seen = async (code: string): Promise<boolean> => {
    const c = spawn(process.execPath, ['-e', `${code}; process.stdout.write('up'); setTimeout(() => {}, 10000)`], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((ok, fail) => {
        c.stdout!.once('data', () => ok());
        c.once('exit', () => fail(new Error('the child exited')));
      });
      return realDeps.proc(c.pid!)!.catchesUsr2;
    } finally {
      c.kill('SIGKILL');
    }
  };
  assert.equal(await seen(''), false, 'node does not catch SIGUSR2 by itself');
  assert.equal(await seen("process.on('SIGUSR2', () => {})"), true);
  assert.equal(realDeps.proc(2 ** 22 + 1), null, 'no such process');
});
