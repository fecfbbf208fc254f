// npm run lab -- [--hook FILE|NAME] [gwlbtun flags...]     a lab that stays up until Ctrl-C
// npm run lab -- --check [--hook FILE|NAME]...               the non-interactive check (CI)
// npm run lab -- exec client|server|gwlb|appliance [CMD...]  run CMD in a namespace of the running lab
// docs/lab.md describes what it builds.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { parseCli, UsageError } from '../cli';
import { BULK_BYTES, formatTable, HTTP_REQUESTS, runCheck, UDP_DATAGRAMS } from './check';
import { EXAMPLE_HOOKS, Lab, LAB_PORTS, resolveHook } from './lab';
import { ensureTools, suggestedCommands } from './tools';
import { LAB, LAB_ROLES, labNsExists, type LabRole } from './topology';

const STATE = process.env.GWLBTUN_LAB_STATE ?? '/run/gwlbtun-lab.json';

const USAGE = `usage: npm run lab -- [--hook FILE|NAME] [gwlbtun flags...]
       npm run lab -- --check [--hook FILE|NAME]...
       npm run lab -- exec client|server|gwlb|appliance [CMD [ARGS...]]
  --hook FILE|NAME   the appliance's hook: a file, or by name ${EXAMPLE_HOOKS.join(', ')} (default one-arm)
  --check            the non-interactive check of every example hook (or of each --hook given)
  exec ROLE [CMD]    run CMD (a shell when none) in a namespace of the running lab; a missing
                     tool the banner suggests (curl, ping, tcpdump) is installed with apt-get
  gwlbtun flags      passed on to gwlbtun (see gwlbtun --help), e.g. -p 8081 --udpthreads 2
  -h, --help         this help
Needs root. docs/lab.md`;

interface State {
  pid: number;
  hook: string;
  namespaces: Record<LabRole, string>;
}

function fail(msg: string, code = 2): never {
  process.stderr.write(`lab: ${msg}\n`);
  process.exit(code);
}

/** A bad option: one line naming it and where the options are, exit 2. */
function usage(msg: string): never {
  return fail(`${msg} (see npm run lab -- --help)`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readState(): State | undefined {
  try {
    const s = JSON.parse(fs.readFileSync(STATE, 'utf8')) as State;
    return alive(s.pid) && labNsExists(s.namespaces.client) ? s : undefined;
  } catch {
    return undefined;
  }
}

function exec(args: string[]): never {
  const role = args[0] as LabRole;
  if (!LAB_ROLES.includes(role)) usage(`exec needs one of ${LAB_ROLES.join(', ')}`);
  const s = readState();
  if (s === undefined) fail(`no lab is running (no live lab in ${STATE}); start one with 'npm run lab'`);
  const cmd = args.length > 1 ? args.slice(1) : [process.env.SHELL ?? 'sh'];
  // A tool the banner suggests that this machine lacks: installed now, or its package named.
  const missing = ensureTools([cmd[0]]);
  if (missing.length > 0) fail(missing[0], 127);
  const r = spawnSync('ip', ['netns', 'exec', s.namespaces[role], ...cmd], { stdio: 'inherit' });
  if (r.error) fail(`${cmd[0]}: ${r.error.message}`, 1);
  process.exit(r.status ?? 1);
}

async function interactive(hook: string, daemonArgs: string[]): Promise<number> {
  const other = readState();
  if (other !== undefined) fail(`a lab is already running (pid ${other.pid}, ${STATE}); stop it first`);
  let quit: () => void = () => undefined;
  const quitting = new Promise<void>((r) => (quit = r));
  process.on('SIGINT', () => quit());
  process.on('SIGTERM', () => quit());
  const lab = new Lab({
    hook,
    daemonArgs,
    onDaemonLine: (l) => {
      for (const x of l.split('\n')) if (x !== '') process.stdout.write(`  gwlbtun | ${x}\n`);
    },
  });
  console.log(`lab: starting with hook ${lab.hook}`);
  const started = lab.start().then(() => 'up' as const, (e: Error) => e);
  const first = await Promise.race([started, quitting.then(() => 'quit' as const)]);
  if (first === 'quit') {
    await started;
    await lab.stop();
    console.log('lab: interrupted; everything removed');
    return 130;
  }
  if (first instanceof Error) fail(first.message, 1);
  const t = lab.topo!;
  // Every command the banner suggests must work here: install the missing tools first.
  const cmds = suggestedCommands(LAB.server4, LAB.server6, lab.endpoint.gwi, lab.healthPort);
  const notes = ensureTools(cmds.map(([, c]) => c.split(' ')[0]));
  const tries = cmds
    .map(([role, c]) => {
      const note = notes.find((n) => n.startsWith(c.split(' ')[0] + ' '));
      return `  npm run lab -- exec ${role} ${c}` + (note === undefined ? '' : `\n      (${note})`);
    })
    .join('\n');
  const state: State = { pid: process.pid, hook: lab.hook, namespaces: { client: t.client, server: t.server, gwlb: t.gwlb, appliance: t.appliance } };
  fs.writeFileSync(STATE, JSON.stringify(state) + '\n');
  console.log(`
lab: up (namespaces ${LAB_ROLES.map((r) => t[r]).join(', ')})

  client     ${LAB.client4}  ${LAB.client6}
  server     ${LAB.server4}  ${LAB.server6}   HTTP :${LAB_PORTS.http} and :${LAB_PORTS.blocked} (/ and /bytes/N), TCP+UDP echo :${LAB_PORTS.echo}
  GWLB       ${LAB.gwlbOuter} (Geneve to the appliance), TUN ${LAB.tun}
  appliance  ${LAB.applianceOuter} gwlbtun with ${lab.hookName}, endpoint ${lab.endpoint.gwi}/${lab.endpoint.gwo}, health and /metrics on :${lab.healthPort}
             ${LAB.egressIf} ${LAB.egress4} ${LAB.egress6} (second arm, towards the server)

Try, in another terminal:
${tries}
  npm run lab -- exec client          (a shell in the client's namespace)
Ctrl-C stops gwlbtun and removes everything.
`);
  await quitting;
  console.log('\nlab: stopping');
  try {
    fs.rmSync(STATE, { force: true });
  } finally {
    await lab.stop();
  }
  console.log('lab: everything removed');
  return 0;
}

async function check(hooks: string[]): Promise<number> {
  let current: Lab | undefined;
  const onSignal = (code: number) => () => {
    process.stderr.write('\nlab: interrupted, cleaning up\n');
    void (current?.stop() ?? Promise.resolve()).finally(() => process.exit(code));
  };
  process.once('SIGINT', onSignal(130));
  process.once('SIGTERM', onSignal(143));
  const t0 = Date.now();
  console.log(`lab check: per hook ${2 * HTTP_REQUESTS} HTTP requests, 2 x ${BULK_BYTES >> 20} MiB bulk, ${2 * UDP_DATAGRAMS} UDP echoes (IPv4 + IPv6), TCP port ${LAB_PORTS.blocked} blocked in the appliance`);
  const rows = await runCheck(hooks, (l) => {
    current = l;
    if (l?.topo !== undefined) console.log(`lab check: namespaces ${l.topo.id}-*`);
  }, (s) => console.log(s));
  console.log('\n' + formatTable(rows) + '\n');
  const failed = rows.filter((r) => r.failures.length > 0);
  for (const r of failed) console.log(`lab check: ${r.hook} FAILED:\n  ${r.failures.join('\n  ')}`);
  console.log(`lab check: ${failed.length === 0 ? 'PASS' : 'FAIL'} (${rows.length} hooks, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return failed.length === 0 ? 0 : 1;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  // exec's arguments are the command's own (tcpdump -h is tcpdump's help).
  if (argv[0] !== 'exec' && (argv.includes('-h') || argv.includes('--help'))) {
    console.log(USAGE);
    return 0;
  }
  const hooks: string[] = [];
  const rest: string[] = [];
  let isCheck = false;
  for (let i = 0; argv[0] !== 'exec' && i < argv.length; i++) {
    if (argv[i] === '--check') isCheck = true;
    else if (argv[i] === '--hook') {
      if (argv[i + 1] === undefined) usage('--hook needs a file or a name');
      hooks.push(argv[++i]);
    } else rest.push(argv[i]);
  }
  // Every option is checked before anything is built (or root is asked for): a bad one is one
  // line and exit 2. What is not the lab's own goes to gwlbtun, so gwlbtun's parser judges it.
  if (isCheck && rest.length > 0) usage(`--check takes only --hook, not ${rest.join(' ')}`);
  if (hooks.length > 1 && !isCheck) usage('one --hook at a time');
  for (const h of hooks) {
    try {
      resolveHook(h);
    } catch (e) {
      usage((e as Error).message);
    }
  }
  try {
    parseCli(rest);
  } catch (e) {
    if (e instanceof UsageError) usage(`gwlbtun flags: ${e.message}`);
    throw e;
  }
  if (process.getuid?.() !== 0) fail('needs root (it creates network namespaces, TUN devices and raw sockets)');
  if (argv[0] === 'exec') exec(argv.slice(1));
  if (isCheck) return check(hooks);
  return interactive(hooks[0] ?? 'one-arm', rest);
}

main().then(
  (code) => process.exit(code),
  (e: Error) => fail(e.message, 1),
);
