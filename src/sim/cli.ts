#!/usr/bin/env node
// Command line of the GWLB emulator. Run it inside the GWLB namespace (`emulate`) or the
// appliance namespace (`reflect`). Output is JSON, one object per line, on stdout:
//   emulate: {"type":"progress",...} lines, then one {"type":"report",...} line.
//   reflect: {"type":"ready",...} once the sockets are open, then {"type":"reflector",...}.
// Exit status: 0 when it ran (verification results are data, not exit codes) and for --help,
// 2 on bad arguments (one line on stderr), 1 on a runtime error (e.g. no permission to open a raw socket).

import { parseArgs } from 'node:util';
import { Emulator, EMULATOR_DEFAULTS, EmulatorOptions } from './emulator';
import { Reflector } from './reflector';
import { SimFamily, SimProto } from './flows';
import { MALFORMED_ALL, MALFORMED_KINDS } from './malformed';

export const USAGE = `usage:
  cli.js emulate [--gwlb-ip 198.18.0.1] [--appliance-ip 198.18.0.2] [--endpoints 1,ffffffffffffffff]
                 [--flows N] [--families 4,6] [--protos tcp,udp,icmp] [--size BYTES] [--rate PPS]
                 [--packets N] [--duration S] [--settle-ms N] [--ttl-decrement N] [--phases N]
                 [--progress-ms N] [--malformed all|KIND,...] [--malformed-every N]
                 [--random-enis N] [--flow-offset N] [--same-inner]
  cli.js reflect [--duration S]

emulate: --endpoints are ENI IDs in hex (optionally 0x- or vpce- prefixed); --flows per endpoint,
  family and protocol; --size is the inner IP packet size; --rate 0 = unpaced; --packets per flow
  and phase; --duration bounds the sending time of the whole run; --progress-ms 0 = no progress.
  --malformed interleaves malformed Geneve (one after every --malformed-every good packets,
  default 10), each kind with its own ENI ID that no good flow uses; kinds:
    ${MALFORMED_KINDS.map((k) => k.name).join(' ')}
  ('all' = every kind but inner_ports_truncated). --random-enis N first sends N valid packets,
  each with a new random ENI ID (an endpoint flood). --flow-offset shifts the inner addresses and
  ports (new 5-tuples per run). The report's "extras" lists what was sent and returned per kind.
  --same-inner gives every endpoint identical inner packets (overlapping customer CIDRs).`;

class UsageError extends Error {}

function int(name: string, s: string | undefined, def: number, min: number, max: number): number {
  if (s === undefined) return def;
  if (!/^\d+$/.test(s)) throw new UsageError(`--${name}: not a non-negative integer: ${s}`);
  const v = Number(s);
  if (v < min || v > max) throw new UsageError(`--${name}: must be ${min}..${max}`);
  return v;
}

function num(name: string, s: string | undefined, def: number, minExclusive: number): number {
  if (s === undefined) return def;
  const v = Number(s);
  if (s.trim() === '' || !Number.isFinite(v) || v <= minExclusive) throw new UsageError(`--${name}: must be a number > ${minExclusive}`);
  return v;
}

function list(s: string | undefined): string[] | undefined {
  return s === undefined ? undefined : s.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

function ipv4(name: string, s: string | undefined, def: string): string {
  if (s === undefined) return def;
  const p = s.split('.');
  if (p.length !== 4 || !p.every((x) => /^(0|[1-9]\d{0,2})$/.test(x) && Number(x) <= 255)) {
    throw new UsageError(`--${name}: not an IPv4 address: ${s}`);
  }
  return s;
}

/** ENI IDs in hex: "1", "0x1", "vpce-0123456789abcdef0" (the last 17 hex digits of the ID). */
export function parseEni(s: string): bigint {
  const h = s.replace(/^(vpce-|0x)/i, '');
  if (!/^[0-9a-fA-F]{1,17}$/.test(h)) throw new UsageError(`not an ENI ID (hex): ${s}`);
  const v = BigInt('0x' + h);
  if (v > 0xffffffffffffffffn) throw new UsageError(`ENI ID over 64 bits: ${s}`);
  return v;
}

/** Parse `emulate` arguments into emulator options (without onProgress). Throws UsageError. */
export function parseEmulateArgs(argv: string[]): Partial<EmulatorOptions> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      'gwlb-ip': { type: 'string' },
      'appliance-ip': { type: 'string' },
      endpoints: { type: 'string' },
      flows: { type: 'string' },
      families: { type: 'string' },
      protos: { type: 'string' },
      size: { type: 'string' },
      rate: { type: 'string' },
      packets: { type: 'string' },
      duration: { type: 'string' },
      'settle-ms': { type: 'string' },
      'ttl-decrement': { type: 'string' },
      phases: { type: 'string' },
      'progress-ms': { type: 'string' },
      malformed: { type: 'string' },
      'malformed-every': { type: 'string' },
      'random-enis': { type: 'string' },
      'flow-offset': { type: 'string' },
      'same-inner': { type: 'boolean' },
    },
  });
  const d = EMULATOR_DEFAULTS;
  let malformed: string[] | undefined;
  const mal = list(values.malformed);
  if (mal !== undefined) {
    malformed = [];
    for (const m of mal) {
      const names = m === 'all' ? MALFORMED_ALL : [m];
      for (const n of names) {
        if (!MALFORMED_KINDS.some((k) => k.name === n)) throw new UsageError(`--malformed: unknown kind ${n}`);
        if (!malformed.includes(n)) malformed.push(n);
      }
    }
    if (malformed.length === 0) throw new UsageError('--malformed: empty');
  }
  const eps = list(values.endpoints);
  const endpoints = eps === undefined ? d.endpoints : eps.map(parseEni);
  if (endpoints.length === 0) throw new UsageError('--endpoints: empty');
  if (new Set(endpoints.map(String)).size !== endpoints.length) throw new UsageError('--endpoints: duplicates');
  const fams = list(values.families);
  let families: SimFamily[] = d.families;
  if (fams !== undefined) {
    if (fams.length === 0 || !fams.every((f) => f === '4' || f === '6')) throw new UsageError('--families: 4 and/or 6');
    families = [...new Set(fams.map((f) => Number(f) as SimFamily))];
  }
  const prs = list(values.protos);
  let protos: SimProto[] = d.protos;
  if (prs !== undefined) {
    if (prs.length === 0 || !prs.every((p) => p === 'tcp' || p === 'udp' || p === 'icmp')) throw new UsageError('--protos: tcp, udp and/or icmp');
    protos = [...new Set(prs as SimProto[])];
  }
  return {
    gwlbIp: ipv4('gwlb-ip', values['gwlb-ip'], d.gwlbIp),
    applianceIp: ipv4('appliance-ip', values['appliance-ip'], d.applianceIp),
    endpoints,
    flowsPerKind: int('flows', values.flows, d.flowsPerKind, 1, 65535),
    families,
    protos,
    innerSize: int('size', values.size, d.innerSize, 0, 8500),
    rate: int('rate', values.rate, d.rate, 0, 100_000_000),
    packetsPerFlow: int('packets', values.packets, d.packetsPerFlow, 1, 2 ** 31),
    maxSeconds: num('duration', values.duration, d.maxSeconds, 0),
    settleMs: int('settle-ms', values['settle-ms'], d.settleMs, 0, 3_600_000),
    ttlDecrement: int('ttl-decrement', values['ttl-decrement'], d.ttlDecrement, 0, 63),
    phases: int('phases', values.phases, d.phases, 1, 1000),
    progressMs: int('progress-ms', values['progress-ms'], d.progressMs, 0, 3_600_000),
    ...(malformed === undefined ? {} : { malformed }),
    ...(values['malformed-every'] === undefined ? {} : { malformedEvery: int('malformed-every', values['malformed-every'], 10, 1, 1_000_000) }),
    ...(values['random-enis'] === undefined ? {} : { randomEnis: int('random-enis', values['random-enis'], 0, 0, 10_000_000) }),
    ...(values['flow-offset'] === undefined ? {} : { flowOffset: int('flow-offset', values['flow-offset'], 0, 0, 2 ** 31 - 1) }),
    ...(values['same-inner'] === true ? { sameInner: true } : {}),
  };
}

export function parseReflectArgs(argv: string[]): { durationS: number } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: { duration: { type: 'string' } },
  });
  return { durationS: num('duration', values.duration, 60, 0) };
}

function out(obj: object): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** Stop cleanly on SIGINT/SIGTERM: the run ends early and still reports. */
function onSignals(stop: () => void): void {
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

async function emulate(argv: string[]): Promise<void> {
  const opts = parseEmulateArgs(argv);
  let emu: Emulator;
  try {
    emu = new Emulator({ ...opts, onProgress: (s) => out({ type: 'progress', ...s }) });
  } catch (e) {
    // Combinations the single-option checks cannot see (too many flows for the port range...).
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  onSignals(() => emu.stop());
  const report = await emu.run();
  out({ type: 'report', ...report });
}

async function reflect(argv: string[]): Promise<void> {
  const { durationS } = parseReflectArgs(argv);
  const r = new Reflector({ durationS });
  onSignals(() => r.stop());
  out({ type: 'ready', role: 'reflector', pid: process.pid });
  const stats = await r.run();
  out({ type: 'reflector', ...stats });
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if ((cmd === 'emulate' || cmd === 'reflect') && (rest.includes('-h') || rest.includes('--help'))) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (cmd === 'emulate') await emulate(rest);
    else if (cmd === 'reflect') await reflect(rest);
    else if (cmd === '-h' || cmd === '--help' || cmd === 'help') {
      process.stdout.write(USAGE + '\n');
      return 0;
    } else throw new UsageError(cmd === undefined ? 'missing command' : `unknown command: ${cmd}`);
    return 0;
  } catch (e) {
    // parseArgs reports unknown/malformed options as TypeError with an ERR_PARSE_ARGS_* code.
    const code = (e as { code?: string }).code;
    if (e instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      // One line (the whole usage is --help's): the message names the option or the command.
      process.stderr.write(`emulator: ${(e as Error).message.split('\n')[0].replace(/\. To specify.*$/, '')} (usage: node dist/src/sim/cli.js --help)\n`);
      return 2;
    }
    process.stderr.write(`error: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
