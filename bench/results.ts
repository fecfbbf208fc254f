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
}
