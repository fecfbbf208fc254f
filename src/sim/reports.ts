// The shapes of what the emulator reports: per endpoint, per phase, for the extra packets, the
// whole run, and the periodic progress snapshots. Types only; the counters behind them live in
// verifier.ts (returns), sender.ts (sends) and extras.ts (malformed and random-ENI packets).

export interface Counts {
  sent: number;
  returned: number;
  verified: number;
  /** sent - verified, after settling. */
  lost: number;
  /** Non-zero reasons only (see verifier.ts Bad). `reordered` packets are also in `verified`. */
  bad: Record<string, number>;
}

export interface EndpointReport extends Counts {
  /** ENI ID, 17 hex digits. */
  eni: string;
  /** gwi-<base60> */
  name: string;
}

export interface PhaseReport {
  phase: number;
  sent: number;
  verified: number;
  lost: number;
  sendMs: number;
  settleMs: number;
}

/** What was sent besides the good traffic (malformed kinds, random ENI IDs). */
export interface ExtrasReport {
  /** One malformed packet after every `every` good packets. */
  every: number;
  /** Per kind: packets accepted by the kernel. */
  sent: Record<string, number>;
  /** Per kind: datagrams that came back from the appliance (must be 0 for malformed kinds). */
  returned: Record<string, number>;
  /** Per malformed kind: the drop reason it must be counted under. */
  reasons: Record<string, string>;
  /** Per malformed kind: the ENI ID it carries (17 hex digits; no good flow uses it). */
  enis: Record<string, string>;
}

export interface EmulatorReport {
  endpoints: EndpointReport[];
  /** Sums over endpoints, plus returns that cannot be attributed to an endpoint (unknown_port). */
  totals: Counts & { sendErrors: number };
  phases: PhaseReport[];
  flows: number;
  elapsedMs: number;
  /** Time spent sending (all phases), ms. */
  sendMs: number;
  /** Achieved send rate: totals.sent / sendMs. */
  pps: number;
  /** totals.verified / sendMs. */
  verifiedPps: number;
  /** True when stop() ended the run early. */
  stopped: boolean;
  /** Present when malformed kinds or random ENI IDs were sent. */
  extras?: ExtrasReport;
}

export interface ProgressSnapshot {
  phase: number;
  elapsedMs: number;
  sent: number;
  returned: number;
  verified: number;
  /** Bad returns (all reasons except reordered). */
  bad: number;
  /** sent - verified so far (in flight or lost). */
  outstanding: number;
  /** Rates over the last interval, packets/s. */
  sentPps: number;
  verifiedPps: number;
  /** The same counters per endpoint (bad: all reasons except reordered). */
  endpoints: ProgressEndpoint[];
}

export interface ProgressEndpoint {
  eni: string;
  name: string;
  sent: number;
  returned: number;
  verified: number;
  bad: number;
}
