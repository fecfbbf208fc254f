// The system calls a unit's SystemCallFilter= lines allow, computed as systemd does
// (systemd.exec(5)): the first line is an allow-list (this project's unit never starts with a
// '~' deny-list), each later '~' line removes from the set and each plain line adds to it. Groups
// (@system-service, ...) are expanded, nested groups included, by `systemd-analyze syscall-filter`,
// i.e. from the installed systemd's own tables. Used by test/unit/systemd-unit.test.ts and
// test/e2e/systemd-filter.test.ts.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

/** Whether systemd-analyze is on PATH. */
export function haveSystemdAnalyze(): boolean {
  return spawnSync('sh', ['-c', 'command -v systemd-analyze'], { stdio: 'ignore' }).status === 0;
}

/** The values of a unit file's SystemCallFilter= lines, in order. */
export function filterLines(unitFile: string): string[] {
  return fs.readFileSync(unitFile, 'utf8').split('\n').map((l) => /^SystemCallFilter=(.*)$/.exec(l.trim())?.[1]).filter((v): v is string => v !== undefined);
}

const groups = new Map<string, string[]>();

/** A group's system calls, nested groups expanded. */
export function expandGroup(g: string): string[] {
  const known = groups.get(g);
  if (known !== undefined) return known;
  const r = spawnSync('systemd-analyze', ['syscall-filter', g], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `systemd-analyze syscall-filter ${g}: ${r.stderr}`);
  const out: string[] = [];
  for (const l of r.stdout.split('\n').slice(1)) {
    const w = l.trim();
    if (w === '' || w.startsWith('#')) continue;
    out.push(...(w.startsWith('@') ? expandGroup(w) : [w]));
  }
  groups.set(g, out);
  return out;
}

/** The system calls the filter lines allow. */
export function allowedSyscalls(lines: string[]): Set<string> {
  let allow: Set<string> | undefined;
  for (const line of lines) {
    const deny = line.startsWith('~');
    assert.ok(allow !== undefined || !deny, 'the first SystemCallFilter= is an allow-list');
    allow ??= new Set();
    for (const item of line.replace(/^~/, '').split(/\s+/).filter(Boolean)) {
      for (const s of item.startsWith('@') ? expandGroup(item) : [item]) {
        if (deny) allow.delete(s);
        else allow.add(s);
      }
    }
  }
  assert.ok(allow !== undefined && allow.size > 0, 'the unit has a SystemCallFilter');
  return allow;
}
