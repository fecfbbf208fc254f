// Debian's chromium, headless, for the status page test and `npm run screenshot`: installed with
// apt-get when missing (root), run inside a namespace (the daemon's health port is there), with
// a fresh profile and no background networking (this machine's network is closed).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { nsSpawnArgs } from '../../src/sim/topology';

export const CHROMIUM = '/usr/bin/chromium';

/** Install Debian's chromium when it is missing; throws with one line when that fails. */
export function ensureChromium(): void {
  if (fs.existsSync(CHROMIUM)) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-q'], ['install', '-y', '-q', 'chromium']]) {
    const r = spawnSync('apt-get', args, { encoding: 'utf8', env, timeout: 900_000 });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').pop()}`);
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is missing`);
}

/** Run chromium headless in namespace `ns` on `url` with `extra` arguments (--dump-dom,
 * --screenshot=FILE, ...); its page scripts run for `budgetMs` of virtual time first. Returns
 * stdout. The profile directory is removed afterwards. */
export function chromium(ns: string, url: string, extra: string[], budgetMs = 5000, timeoutMs = 90_000): string {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'gwlbtun-chromium-'));
  try {
    const a = nsSpawnArgs(ns, CHROMIUM, [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      `--virtual-time-budget=${budgetMs}`,
      ...extra,
      url,
    ]);
    const r = spawnSync(a.file, a.args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`chromium exited ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    return r.stdout;
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

/** The numbers of a status page's DOM: data-k -> data-v. */
export function pageNumbers(dom: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of dom.matchAll(/data-k="([^"]+)" data-v="([^"]+)"/g)) out.set(m[1], Number(m[2]));
  return out;
}
