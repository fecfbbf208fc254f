// What SIGINT/SIGTERM do (docs/operations.md, "Signals" and "Draining").
//
// Owns: the stop sequence's phase and its two timers (the drain and the hard limit).
// Promises:
// - without a drain (--drain 0), the first signal starts the shutdown (workers stop, DESTROY
//   hooks run) and a second one exits at once with code 1, as before;
// - with --drain SECS, the first signal starts the drain: health answers 503 at once while
//   packets keep flowing both ways, and after SECS the shutdown starts; a second signal ends
//   the drain early (the shutdown starts then), a third exits at once with code 1;
// - a signal during start-up skips the drain (nothing has been carried yet);
// - the whole sequence is bounded by the drain time plus 5 s plus twice --hook-timeout (a CREATE
//   hook still running when the shutdown starts finishes first, then DESTROY runs); past that
//   the process exits with code 1.

import type { Logger } from '../base/log';

export interface StopTarget {
  /** Health answers 503 from now on; nothing else changes. */
  drain(): void;
  /** Stop the workers, run the DESTROY hooks, close everything. */
  shutdown(): Promise<void>;
}

export interface StopOptions {
  /** --drain: seconds between the first signal and the shutdown (0: none). */
  drainS: number;
  hookTimeoutS: number;
  /** Ends the process: 0 after a clean shutdown, 1 otherwise. */
  exit: (code: number) => void;
}

export type StopPhase = 'running' | 'draining' | 'stopping';

/** The limit of the shutdown itself, after any drain. */
export function shutdownLimitMs(hookTimeoutS: number): number {
  return 5000 + 2 * hookTimeoutS * 1000;
}

export class StopSequence {
  phase: StopPhase = 'running';
  /** Set once start-up is over: a signal before that skips the drain. */
  started = false;
  private drainTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly target: StopTarget,
    private readonly opts: StopOptions,
    private readonly log: Logger,
  ) {}

  signal(sig: string): void {
    if (this.phase === 'stopping') {
      this.log.important('core', `${sig} again: exiting at once`);
      this.opts.exit(1);
      return;
    }
    if (this.phase === 'draining') {
      this.log.important('core', `${sig} again: ending the drain early`);
      this.stop();
      return;
    }
    const drainMs = this.started ? this.opts.drainS * 1000 : 0;
    const limitMs = drainMs + shutdownLimitMs(this.opts.hookTimeoutS);
    const hard = setTimeout(() => {
      this.log.critical('core', `stopping took longer than ${drainMs > 0 ? 'the drain plus ' : ''}5 s plus twice the hook timeout; exiting`);
      this.opts.exit(1);
    }, limitMs);
    hard.unref();
    if (drainMs > 0) {
      this.phase = 'draining';
      this.target.drain();
      this.log.important('core', `${sig}: draining for ${this.opts.drainS} s (health answers 503, traffic still flows); a second signal ends the drain`);
      // Not unref'd: the drain is what the process waits for.
      this.drainTimer = setTimeout(() => this.stop(), drainMs);
      return;
    }
    this.log.important('core', `${sig}: shutting down`);
    this.stop();
  }

  private stop(): void {
    if (this.drainTimer !== null) clearTimeout(this.drainTimer);
    this.drainTimer = null;
    if (this.phase === 'draining') this.log.important('core', 'drain over: shutting down');
    this.phase = 'stopping';
    this.target.shutdown().then(
      () => {
        this.log.important('core', 'stopped');
        this.opts.exit(0);
      },
      (e: Error) => {
        this.log.critical('core', `shutdown failed: ${e.message}`);
        this.opts.exit(1);
      },
    );
  }
}
