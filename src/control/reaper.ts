// Orphan reaping for when gwlbtun is PID 1 (a container without an init).
//
// A hook may leave background processes behind (src/control/hooks.ts: a hook that ends by
// itself keeps them). When the hook exits they are re-parented to the nearest subreaper or to
// PID 1 of their PID namespace, and when they end their exit status waits there as a zombie
// until that process collects it. If gwlbtun is that PID 1, nobody does: Node collects only the
// children it spawned, so zombies pile up with every endpoint until the PID space runs out.
//
// The design, and why:
// - libuv (Node's child_process) collects each of its children with waitpid(ITS_PID) when
//   SIGCHLD arrives, on the event loop. A plain waitpid(-1) loop here would race it: a hook's exit
//   status taken by us is never seen by libuv (it then assumes "someone stole it" and never emits
//   'exit'), so that hook would never finish. Hence the addon's reapOrphans(ours) (src/io/native.ts)
//   peeks with waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT), which leaves the exit status in place,
//   and collects the peeked child with waitpid(pid) only if its PID is not one of `ours`: the
//   children spawned through child_process that have not emitted 'exit' yet. It stops at the first
//   of ours (libuv collects it on this same loop soon; the next round goes on past it).
// - Correct without locks because everything runs on the main thread: a PID enters `ours`
//   synchronously when spawn() returns and leaves it on 'exit', after libuv has collected it, so
//   at every reapOrphans call `ours` is exactly the set of children libuv may still wait for. An
//   uncollected zombie keeps its PID, so the PID peeked cannot be reused before the waitpid.
//   Rule: every child process the daemon spawns must be tracked here (trackChild/untrackChild);
//   today only hooks spawn (src/control/hooks.ts), and worker_threads are threads, not children.
// - Rejected: PR_SET_CHILD_SUBREAPER (it gathers orphans, does not collect them; PID 1 already
//   gets them); a reaping wrapper around each hook (a second executable to ship, and it would have
//   to wait for the daemons a hook starts); a waitid(P_ALL) loop collecting everything (the race
//   above); requiring `docker run --init` / tini (still recommended, see docs/operations.md, but
//   forgetting it must not leak a PID per endpoint).
// - When: once a second while gwlbtun is PID 1 (the timer is unref'd), so a zombie lasts at most
//   about a second. Not PID 1: orphans go to the real init; nothing is started.

import type { NativeAddon } from '../io/native';
import type { Logger } from '../base/log';

export const REAP_INTERVAL_MS = 1000;

/** PIDs of children spawned through child_process that libuv has not collected yet. */
const ours = new Set<number>();

/** A child spawned through child_process: the reaper must leave its exit status to libuv. */
export function trackChild(pid: number): void {
  ours.add(pid);
}

/** Its 'exit' event came: libuv has collected it. */
export function untrackChild(pid: number): void {
  ours.delete(pid);
}

/** Collect every exited child that is not ours, now; returns how many. */
export function reapOrphans(nat: Pick<NativeAddon, 'reapOrphans'>): number {
  return nat.reapOrphans(Int32Array.from(ours));
}

/** Start reaping orphans every intervalMs (for PID 1); returns the stop function. */
export function startOrphanReaper(nat: Pick<NativeAddon, 'reapOrphans'>, log: Logger, intervalMs = REAP_INTERVAL_MS): () => void {
  const timer = setInterval(() => reapOrphans(nat), intervalMs);
  timer.unref();
  log.important('core', `running as PID 1: collecting orphaned processes (background processes of hooks) every ${intervalMs} ms; an init (docker run --init, tini) would do it too`);
  return () => clearInterval(timer);
}
