// The raw results of a benchmark run (saved as JSON by the runner, rendered by report.ts). Types
// only, so that the renderer depends on nothing that measures.

/** The summary line of `gen send` (bench/gen.c). */
export interface GenResult {
  flows: number;
  size: number;
  rate: number;
  batch: number;
  sent: number;
  verified: number;
  lost: number;
  sendErrors: number;
  sendSeconds: number;
  windowSeconds: number;
  sentPps: number;
  returnedPps: number;
  innerGbps: number;
  counts: Record<string, number>;
  cpuSeconds: number;
}

/** One measured run (bench/lib/measure.ts). */
export interface Run {
  /** 'baseline': gwlbtun from another checkout (--baseline), measured in the same rounds;
   * 'original': the C++ original (--original BIN), in the bulk TCP rounds. */
  kind: 'reflector' | 'gwlbtun' | 'baseline' | 'original';
  label: string;
  workers: number;
  pinned: boolean;
  size: number;
  rate: number;
  /** Paced runs: the generator busy-waits between bursts instead of sleeping. */
  spin: boolean;
  gen: GenResult;
  /** CPU seconds of the appliance process (all threads) over the run, and per verified packet. */
  applCpuS: number;
  usPerPacket: number;
  rcvbufErrors: number;
  gwoTxDropped: number;
  /** Machine idle fraction before the run, and CPU seconds used by anything else during it. */
  idleBefore: number;
  otherCpuS: number;
  bad: number;
}

/** One real-TCP transfer through the lab (bench/scenarios/lab-tcp.ts). */
export interface LabTcpRun {
  mode: 'off' | 'on-uso' | 'on' | 'original';
  round: number;
  ok: boolean;
  /** Payload bytes received intact, and how long the transfer took. */
  bytes: number;
  ms: number;
  /** CPU seconds of the appliance process over the transfer. */
  applCpuS: number;
}

/** One probe phase of the latency scenario (bench/scenarios/latency.ts): `gen probe` through one
 * appliance, inner IPv4 or IPv6, alone or beside a bulk load. Times in microseconds. */
export interface LatencyRun {
  appliance: 'gwlbtun' | 'baseline' | 'original' | 'reflector';
  family: 4 | 6;
  load: 'idle' | 'loaded';
  round: number;
  /** Probes per second, probes sent, returned (with an RTT), lost, and returns that failed the check. */
  rate: number;
  sent: number;
  returned: number;
  lost: number;
  bad: number;
  /** Timer ticks the probe client missed (it was late by a whole period or more). */
  late: number;
  pct: Record<'p50' | 'p90' | 'p99' | 'p999' | 'max', number>;
  /** 'loaded': the bulk load's packets/s asked for, and what it got back (and lost). */
  loadPps: number;
  loadReturnedPps: number;
  loadLost: number;
}

export interface Results {
  machine: Record<string, string | number>;
  startedAt: string;
  seconds: number;
  rounds: number;
  runs: Run[];
  flows1M: null | { flows: number; sent: number; verified: number; lost: number; tableFlows: number; evictions: number; rssIdleMB: number; rssMB: number; hwmMB: number; seconds: number };
  flowtable: null | Record<string, unknown>;
  rcvbufMetric: null | { metric: number; proc: number };
  syscallsPerPacket: null | Record<string, number>;
  notes: string[];
  /** Real TCP through the lab (older results: absent). */
  labTcp?: LabTcpRun[];
  /** Round-trip latency of probes (older results: absent). */
  latency?: LatencyRun[];
}
