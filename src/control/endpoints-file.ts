// The endpoints file (--endpoints FILE): the GWLB endpoints the operator knows in advance, written
// by hand, one a line. gwlbtun creates them at start-up (interfaces, sysctls, CREATE hook) before
// it reports healthy, never tears them down on -t, and re-reads the file on SIGHUP
// (src/control/endpoints.ts, reload()). docs/operations.md, "The endpoints file", is the
// operator's description; this header is the contract.
//
// Format, line by line:
//   # a comment; blank lines are ignored; a '#' after whitespace starts a comment too
//   <id> <name> [create=FILE] [destroy=FILE] [netns=NAME]
// - <id>: the VPC endpoint ID (`vpce-` and up to 17 hex digits) or the ENI ID the hooks get (up
//   to 17 hex digits); either way a 64-bit number, the value GWLB puts in its Geneve option.
// - <name>: 1 to 48 characters of [A-Za-z0-9_.-], starting with a letter or digit: it shows in
//   logs, the status page, JSON and Prometheus labels as it is, so it needs no escaping anywhere.
// - create=/destroy=: this endpoint's own hooks (absolute paths of executable files), in place of
//   -c/-r. Not given: -c/-r apply.
// - netns=NAME: the endpoint's network namespace (created if missing; its gwi-/gwo- are moved
//   there and its hooks run there). Names as `ip netns` takes them: [A-Za-z0-9_.-], 1 to 48.
// IDs and names are unique in a file, and so are namespaces (two endpoints sharing one would
// share its routing and conntrack, which is what the namespace is there to avoid).
//
// Every error names the file, the line and the field, and the first one found is the one
// reported (one clear line: at start-up gwlbtun exits 2 with it; on SIGHUP it is logged and the
// running configuration stays). Parsing is pure (parseEndpoints); checking that hook files are
// executable is the caller's (loadEndpointsFile), so that unit tests need no files.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { endpointNames } from '../wire/eni';

export interface EndpointEntry {
  eni: bigint;
  /** 17-digit hex, as hooks get it. */
  hex: string;
  name: string;
  /** Its own hooks (null: -c/-r apply). */
  createHook: string | null;
  destroyHook: string | null;
  /** Its network namespace (null: gwlbtun's own, unless --netns-per-endpoint). */
  netns: string | null;
  /** Where it was written, for messages: "FILE line N". */
  where: string;
}

export class EndpointsFileError extends Error {}

const U64_MAX = 0xffffffffffffffffn;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$/;
const OPTIONS = ['create', 'destroy', 'netns'] as const;

/** The entries of an endpoints file's text; throws EndpointsFileError naming line and field. */
export function parseEndpoints(text: string, file: string): EndpointEntry[] {
  const out: EndpointEntry[] = [];
  const byHex = new Map<string, number>();
  const byName = new Map<string, number>();
  const byNs = new Map<string, number>();
  const lines = text.split('\n');
  for (let n = 1; n <= lines.length; n++) {
    const raw = lines[n - 1].replace(/\r$/, '');
    const hash = raw.search(/(^|\s)#/);
    const fields = (hash < 0 ? raw : raw.slice(0, hash)).trim().split(/\s+/).filter((f) => f !== '');
    if (fields.length === 0) continue;
    const where = `${file} line ${n}`;
    const fail = (field: string, msg: string): never => {
      throw new EndpointsFileError(`${where}, field ${field}: ${msg}`);
    };
    const m = /^(?:vpce-)?([0-9a-fA-F]{1,17})$/.exec(fields[0]);
    if (m === null) fail('id', `'${fields[0]}' is not a VPC endpoint ID (vpce- and up to 17 hex digits) or an ENI ID (up to 17 hex digits)`);
    const eni = BigInt('0x' + m![1]);
    if (eni > U64_MAX) fail('id', `'${fields[0]}' is over 64 bits`);
    const hex = endpointNames(eni).hex;
    if (byHex.has(hex)) fail('id', `${fields[0]} is already listed on line ${byHex.get(hex)}`);
    if (fields.length < 2) fail('name', 'missing (every endpoint needs a name after its ID)');
    const name = fields[1];
    if (name.includes('=')) fail('name', `missing before '${name}' (the name comes second, options after it)`);
    if (!NAME_RE.test(name)) fail('name', `'${name}' is not 1 to 48 characters of A-Z a-z 0-9 _ . - starting with a letter or digit`);
    if (byName.has(name)) fail('name', `'${name}' is already used on line ${byName.get(name)}`);
    const e: EndpointEntry = { eni, hex, name, createHook: null, destroyHook: null, netns: null, where };
    const seen = new Set<string>();
    for (const opt of fields.slice(2)) {
      const eq = opt.indexOf('=');
      const key = eq < 0 ? opt : opt.slice(0, eq);
      if (!(OPTIONS as readonly string[]).includes(key)) fail(key, `unknown option (known: ${OPTIONS.map((o) => o + '=').join(' ')})`);
      if (eq < 0 || eq === opt.length - 1) fail(key, 'has no value');
      if (seen.has(key)) fail(key, 'given twice');
      seen.add(key);
      const v = opt.slice(eq + 1);
      if (key === 'netns') {
        if (!NAME_RE.test(v)) fail('netns', `'${v}' is not 1 to 48 characters of A-Z a-z 0-9 _ . - starting with a letter or digit`);
        if (byNs.has(v)) fail('netns', `'${v}' is already the namespace of the endpoint on line ${byNs.get(v)}`);
        byNs.set(v, n);
        e.netns = v;
      } else {
        if (!path.isAbsolute(v)) fail(key, `'${v}' is not an absolute path`);
        if (key === 'create') e.createHook = v;
        else e.destroyHook = v;
      }
    }
    byHex.set(hex, n);
    byName.set(name, n);
    out.push(e);
  }
  return out;
}

/** Read and parse the file, and check that every hook it names is an executable file. */
export function loadEndpointsFile(file: string): EndpointEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new EndpointsFileError(`${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const entries = parseEndpoints(text, file);
  for (const e of entries) {
    for (const [field, hook] of [['create', e.createHook], ['destroy', e.destroyHook]] as const) {
      if (hook === null) continue;
      try {
        if (!fs.statSync(hook).isFile()) throw new Error('not a file');
        fs.accessSync(hook, fs.constants.X_OK);
      } catch (err) {
        throw new EndpointsFileError(`${e.where}, field ${field}: ${hook} is not an executable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    }
  }
  return entries;
}
