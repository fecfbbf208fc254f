// The bulk TCP workload of the offload tests and how its returns are checked, shared by
// test/e2e/offload.test.ts and test/e2e/handover-offload.test.ts: segment streams from "GWLB" (12
// flows, IPv4 and IPv6, 1,448- and 8,000-byte segments, short runs with PSH, a corrupt TCP
// checksum, a reordered pair), sent from the GWLB namespace, and the rule that every inner packet
// GWLB gets back is, byte for byte, the one it sent (apart from the TTL/hop limit and the IPv4
// header checksum that follows it), once, with its flow's Geneve header, each flow in order.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { nsSpawnArgs } from '../../src/sim/topology';
import { concatBytes } from '../../src/testkit/build';
import { writeGeneveHeader } from '../../src/wire/geneve';
import { stream, type SegSpec } from '../../src/testkit/tcp';
import type { Env } from './lib';

export const ENI = 0x0ff10ad13n;

export interface Sent {
  datagram: Uint8Array;
  inner: Uint8Array;
  flow: number;
}

function geneve(inner: Uint8Array, cookie: number): Uint8Array {
  const h = new Uint8Array(64);
  const n = writeGeneveHeader(h, 0, { protocol: inner[0] >> 4 === 6 ? 0x86dd : 0x0800, eni: ENI, attachment: 0x1313n, cookie });
  return concatBytes(h.subarray(0, n), inner);
}

/** Runs of segments, as TCP windows arriving: run r of every flow, flows interleaved in turns of
 * 4 segments (so that a receive batch holds several flows). `rounds` runs (each flow's stream goes
 * on from one to the next); the corrupt segment and the reordered pair are in the third. */
export function workload(rounds = 3): Sent[][] {
  const flows: { base: SegSpec; mss: number }[] = [];
  for (let f = 0; f < 12; f++) {
    const v6 = f >= 8;
    flows.push({ base: { v6, src: 10 + f, dst: 100 + (f % 3), sport: 41000 + f, dport: 443, ack: 0x1000 + f, id: 7 * f, seq: 0x10000 * f }, mss: f === 3 ? 8000 : 1448 });
  }
  const seqs = flows.map((f) => f.base.seq!);
  const ids = flows.map((f) => f.base.id!);
  const runs: Sent[][] = [];
  for (let r = 0; r < rounds; r++) {
    const per: Uint8Array[][] = flows.map((f, i) => {
      const n = f.mss > 1448 ? 8 : 32;
      const short = r % 3 === 1 ? 700 : undefined;
      const s = stream({ ...f.base, seq: seqs[i], id: ids[i] }, n, f.mss, short, short !== undefined ? 0x18 : undefined);
      for (const p of s) {
        const ip = p[0] >> 4 === 6 ? 40 : 20;
        seqs[i] = (seqs[i] + p.length - ip - 20) >>> 0;
      }
      ids[i] = (ids[i] + n) & 0xffff;
      if (r === 2 && i === 1) s[10] = corrupt(s[10]);
      if (r === 2 && i === 2) [s[5], s[6]] = [s[6], s[5]];
      return s;
    });
    const run: Sent[] = [];
    for (let k = 0; k < 32; k += 4) {
      for (let i = 0; i < per.length; i++) {
        for (const p of per[i].slice(k, k + 4)) run.push({ inner: p, datagram: geneve(p, 0xc00 + i), flow: i });
      }
    }
    runs.push(run);
  }
  return runs;
}

function corrupt(p: Uint8Array): Uint8Array {
  const c = p.slice();
  c[c.length - 1] ^= 0x5a;
  return c;
}

/** The inner packet GWLB should get back: the TTL/hop limit one lower and the IPv4 header
 * checksum updated. */
export function forwarded(p: Uint8Array): Uint8Array {
  const c = p.slice();
  if (c[0] >> 4 === 6) {
    c[7] -= 1;
    return c;
  }
  c[8] -= 1;
  c[10] = 0;
  c[11] = 0;
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (c[i] << 8) | c[i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  s = ~s & 0xffff;
  c[10] = s >> 8;
  c[11] = s & 0xff;
  return c;
}

/** Sends the runs from the GWLB namespace (from GWLB's address, port 6081, each run in one burst,
 * `gapMs` apart) and collects what comes back to port 6081 until `expect` datagrams or 30 s after
 * the last run. */
export async function exchange(env: Pick<Env, 'dir' | 't'>, runs: Sent[][], expect: number, gapMs = 30): Promise<Uint8Array[]> {
  const inFile = path.join(env.dir, 'runs.json');
  const outFile = path.join(env.dir, 'back.txt');
  fs.writeFileSync(inFile, JSON.stringify(runs.map((r) => r.map((s) => Buffer.from(s.datagram).toString('hex')))));
  const script = `
    const fs = require('node:fs');
    const runs = JSON.parse(fs.readFileSync(${JSON.stringify(inFile)}, 'utf8')).map((r) => r.map((h) => Buffer.from(h, 'hex')));
    const s = require('node:dgram').createSocket('udp4');
    const got = [];
    const done = () => { fs.writeFileSync(${JSON.stringify(outFile)}, got.join('\\n')); process.exit(0); };
    s.on('message', (m) => { got.push(m.toString('hex')); if (got.length >= ${expect}) done(); });
    let timer = setTimeout(done, 30000);
    s.bind(6081, ${JSON.stringify(env.t.gwlbIp)}, async () => {
      s.setRecvBufferSize(8 << 20);
      s.setSendBufferSize(8 << 20);
      for (const run of runs) {
        await Promise.all(run.map((b) => new Promise((ok) => s.send(b, 6081, ${JSON.stringify(env.t.applianceIp)}, ok))));
        await new Promise((ok) => setTimeout(ok, ${gapMs}));
      }
      clearTimeout(timer);
      timer = setTimeout(done, 30000);
    });`;
  const a = nsSpawnArgs(env.t.gwlbNs, process.execPath, ['-e', script]);
  const proc = spawn(a.file, a.args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await new Promise<number | null>((ok) => proc.on('exit', (c) => ok(c)));
  assert.equal(code, 0, 'the GWLB-side sender/receiver');
  const text = fs.existsSync(outFile) ? fs.readFileSync(outFile, 'utf8') : '';
  return text === '' ? [] : text.split('\n').map((h) => new Uint8Array(Buffer.from(h, 'hex')));
}

/** Matches what came back (`back`: Geneve header and inner packet, as GWLB's socket reads them)
 * against what was sent (`all`): each returned inner packet is one that was sent, forwarded (TTL
 * - 1), each exactly once, with its flow's Geneve header, each flow in order (but flow 2, whose
 * pair is reordered on purpose). Returns how many matched. */
export function matchReturns(all: Sent[], back: Uint8Array[]): number {
  const expect = new Map<string, number[]>(); // inner hex (as returned) -> indices sent
  all.forEach((s, i) => {
    const k = Buffer.from(forwarded(s.inner)).toString('hex');
    expect.set(k, [...(expect.get(k) ?? []), i]);
  });
  const lastOfFlow = new Map<number, number>();
  let matched = 0;
  for (const b of back) {
    // Outer IPv4/UDP was removed by the socket; the Geneve header is the flow's, as sent.
    const s0 = all[0];
    const glen = s0.datagram.length - s0.inner.length;
    const k = Buffer.from(b.subarray(glen)).toString('hex');
    const idx = expect.get(k)?.shift();
    assert.ok(idx !== undefined, `a returned packet that was never sent (or twice): ${k.slice(0, 120)}...`);
    assert.deepEqual(b.subarray(0, glen), all[idx].datagram.subarray(0, glen), 'its flow\'s Geneve header');
    const f = all[idx].flow;
    assert.ok((lastOfFlow.get(f) ?? -1) < idx || f === 2, `flow ${f} in order`);
    lastOfFlow.set(f, idx);
    matched++;
  }
  return matched;
}
