// The layer rules of docs/architecture.md ("Layers"), checked on every run: every import of every
// .ts file in src/ and bench/ is parsed (import and export ... from, `import type` included,
// import '...', require('...') and import('...')) and resolved to a file, and the run fails on
// - an import from a folder its layer may not import from (product code importing a tool or
//   test/ is one of those),
// - a product file importing anything but a relative path or a `node:` built-in (the release
//   artefacts have no node_modules),
// - a folder of src/ the table does not name, an import that resolves to no file,
// - a circle of imports between files (type-only ones too: the rule is about structure).
// The rules are read from the table in docs/architecture.md itself, so the document and the check
// cannot drift apart. The checker is a pure function of the files' texts; the synthetic trees
// below show that it catches each kind of mistake.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Imports the layer table allows only for now, each to be deleted by the change that ends it
 * (the check fails when one is no longer used, so a stale entry cannot linger). None today. */
const TEMPORARY = new Set<string>([]);

interface Layer {
  name: string;
  /** 'src/x/' or 'src/cli.ts' or 'bench/'. */
  folder: string;
  mayImport: Set<string>;
  tool: boolean;
}

/** The table of docs/architecture.md's "Layers" section: | layer | `folder` | may import | holds |.
 * "product" and "tools" in the third column stand for every layer of that kind; a tool's fourth
 * column starts with "tools:". */
export function parseLayers(doc: string): Map<string, Layer> {
  const start = doc.indexOf('\n## Layers\n');
  assert.ok(start >= 0, 'docs/architecture.md has a "## Layers" section');
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  const rows: { name: string; folder: string; may: string[]; tool: boolean }[] = [];
  for (const line of section.split('\n')) {
    const m = /^\|\s*(\w+)\s*\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|\s*([^|]*?)\s*\|$/.exec(line);
    if (m === null) continue;
    const may = m[3] === '-' ? [] : m[3].split(',').map((s) => s.trim());
    rows.push({ name: m[1], folder: m[2], may, tool: m[4].startsWith('tools:') });
  }
  const product = rows.filter((r) => !r.tool).map((r) => r.name);
  const tools = rows.filter((r) => r.tool).map((r) => r.name);
  const layers = new Map<string, Layer>();
  for (const r of rows) {
    const may = new Set<string>();
    for (const x of r.may) {
      if (x === 'product') product.forEach((p) => may.add(p));
      else if (x === 'tools') tools.forEach((t) => may.add(t));
      else {
        assert.ok(rows.some((o) => o.name === x), `layer ${r.name} may import '${x}', which is no layer`);
        may.add(x);
      }
    }
    layers.set(r.name, { name: r.name, folder: r.folder, mayImport: may, tool: r.tool });
  }
  return layers;
}

/** The module specifiers a TypeScript file imports, with their line numbers. */
export function importsOf(text: string): { spec: string; line: number }[] {
  const out: { spec: string; line: number }[] = [];
  const lineAt = (i: number): number => text.slice(0, i).split('\n').length;
  // Statements at the start of a line: the part before `from` holds names, braces, commas, `*`
  // and `as` only, so a multi-line `import { a,\n b } from` matches and `export const x = ...`
  // never runs on into a later statement.
  const stmt = /^[ \t]*(?:import|export)[ \t]+(?:type[ \t]+)?[\w$*{}\s,]*?\bfrom[ \t]*['"]([^'"]+)['"]|^[ \t]*import[ \t]*['"]([^'"]+)['"]/gm;
  for (let m = stmt.exec(text); m !== null; m = stmt.exec(text)) out.push({ spec: m[1] ?? m[2], line: lineAt(m.index + m[0].search(/\S/)) });
  const call = /\b(?:require|import)\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (let m = call.exec(text); m !== null; m = call.exec(text)) {
    const lineStart = text.lastIndexOf('\n', m.index) + 1;
    if (/^\s*(\/\/|\*|\/\*)/.test(text.slice(lineStart, m.index))) continue; // in a comment
    out.push({ spec: m[1], line: lineAt(m.index) });
  }
  return out;
}

/** Which layer a file (a path relative to the repository, with '/') is in; undefined: none. */
function layerOf(file: string, layers: Map<string, Layer>): Layer | undefined {
  for (const l of layers.values()) {
    if (l.folder.endsWith('/') ? file.startsWith(l.folder) : file === l.folder) return l;
  }
  return undefined;
}

/** Every problem of a tree of files (repository-relative path -> text), as one line each. */
export function checkTree(files: Map<string, string>, layers: Map<string, Layer>, temporary: Set<string> = new Set()): string[] {
  const problems: string[] = [];
  const used = new Set<string>();
  const graph = new Map<string, string[]>();
  const resolve = (from: string, spec: string): string | undefined => {
    const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
    for (const c of [base, `${base}.ts`, `${base}/index.ts`]) if (files.has(c)) return c;
    return undefined;
  };
  for (const [file, text] of files) {
    const layer = layerOf(file, layers);
    if (layer === undefined) {
      problems.push(`${file}: in no layer of docs/architecture.md ("Layers"): add its folder to the table`);
      continue;
    }
    const edges: string[] = [];
    graph.set(file, edges);
    for (const { spec, line } of importsOf(text)) {
      const at = `${file}:${line}`;
      if (!spec.startsWith('.')) {
        if (!layer.tool && !spec.startsWith('node:')) problems.push(`${at}: imports '${spec}': the product imports only node: built-ins`);
        continue;
      }
      const target = resolve(file, spec);
      if (target === undefined) {
        problems.push(`${at}: '${spec}' resolves to no .ts file of src/ or bench/ (test/ is not for them)`);
        continue;
      }
      edges.push(target);
      const to = layerOf(target, layers);
      if (to === undefined || to === layer || layer.mayImport.has(to.name)) continue;
      const key = `${file} -> ${target}`;
      if (temporary.has(key)) {
        used.add(key);
        continue;
      }
      problems.push(`${at}: ${layer.name} imports ${to.name} (${target}): not allowed by docs/architecture.md ("Layers")`);
    }
  }
  for (const key of temporary) if (!used.has(key)) problems.push(`temporary exception '${key}' is no longer used: delete it`);
  for (const circle of circles(graph)) problems.push(`import circle: ${circle.join(' -> ')} -> ${circle[0]}`);
  return problems;
}

/** The strongly connected components of more than one file (Tarjan), each as a path around it. */
function circles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.reverse());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

function sourceTree(): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts')) files.set(rel, fs.readFileSync(path.join(ROOT, rel), 'utf8'));
    }
  };
  walk('src');
  walk('bench');
  return files;
}

const LAYERS = parseLayers(fs.readFileSync(path.join(ROOT, 'docs', 'architecture.md'), 'utf8'));

test('layers: the table of docs/architecture.md names every folder of src/ and bench/, product below tools', () => {
  const names = [...LAYERS.keys()];
  assert.deepEqual(names.slice(0, 8), ['base', 'wire', 'flow', 'io', 'dataplane', 'control', 'ops', 'cli']);
  for (const l of LAYERS.values()) {
    if (!l.tool) for (const t of l.mayImport) assert.ok(!LAYERS.get(t)!.tool, `product layer ${l.name} may import tool ${t}`);
  }
  // The data plane: nothing of the control plane or of operations; control: nothing of ops.
  assert.ok(!LAYERS.get('dataplane')!.mayImport.has('control') && !LAYERS.get('dataplane')!.mayImport.has('ops'));
  assert.ok(!LAYERS.get('control')!.mayImport.has('ops'));
  const folders = fs.readdirSync(path.join(ROOT, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory() && e.name !== 'native').map((e) => `src/${e.name}/`);
  for (const f of folders) assert.ok([...LAYERS.values()].some((l) => l.folder === f), `${f} is in the table`);
});

test('layers: every import in src/ and bench/ keeps the table, and no files import each other around a circle', () => {
  assert.deepEqual(checkTree(sourceTree(), LAYERS, TEMPORARY), []);
});

test('layers: the checker catches an import from above, a tool in the product, an npm package, an unknown folder and a circle', () => {
  const tree = (extra: Record<string, string>): Map<string, string> => new Map(Object.entries({
    'src/base/clock.ts': 'export const a = 1;\n',
    'src/wire/geneve.ts': "// import { x } from '../ops/health'; (a comment, not an import)\nexport const b = 2;\n",
    'src/dataplane/loop.ts': "import {\n  a,\n} from '../base/clock';\nimport type { b } from '../wire/geneve';\nexport const c = a;\n",
    'src/ops/health.ts': "import * as fs from 'node:fs';\nexport const d = 3;\n",
    'src/testkit/build.ts': "import { c } from '../dataplane/loop';\nexport const e = c;\n",
    'src/cli.ts': "import { d } from './ops/health';\n",
    ...extra,
  }));
  assert.deepEqual(checkTree(tree({}), LAYERS), []);
  // The data plane reaching up into ops (a multi-line import, as the formatter writes long ones).
  const up = checkTree(tree({ 'src/dataplane/loop.ts': "import {\n  a,\n} from '../base/clock';\nimport { d } from '../ops/health';\nexport const c = a + d;\n" }), LAYERS);
  assert.equal(up.length, 1, up.join('\n'));
  assert.match(up[0], /^src\/dataplane\/loop\.ts:4: dataplane imports ops/);
  // A product file using a tool, by require().
  const tool = checkTree(tree({ 'src/ops/health.ts': "const b = require('../testkit/build');\nexport const d = b;\n" }), LAYERS);
  assert.match(tool.join('\n'), /^src\/ops\/health\.ts:1: ops imports testkit/);
  // An npm package in the product (fine in a tool).
  assert.match(checkTree(tree({ 'src/wire/fc.ts': "import fc from 'fast-check';\n" }), LAYERS).join('\n'), /only node: built-ins/);
  assert.deepEqual(checkTree(tree({ 'src/testkit/fc.ts': "import fc from 'fast-check';\n" }), LAYERS), []);
  // A folder the table does not know; an import of test/ from bench/.
  assert.match(checkTree(tree({ 'src/misc/x.ts': '' }), LAYERS).join('\n'), /src\/misc\/x\.ts: in no layer/);
  assert.match(checkTree(tree({ 'bench/b.ts': "import { t } from '../test/unit/helpers/tcp';\n" }), LAYERS).join('\n'), /resolves to no \.ts file/);
  // A circle inside one layer (type-only imports count).
  const circle = checkTree(tree({ 'src/base/clock.ts': "import type { L } from './log';\nexport const a = 1;\n", 'src/base/log.ts': "import { a } from './clock';\nexport type L = typeof a;\n" }), LAYERS);
  assert.deepEqual(circle, ['import circle: src/base/clock.ts -> src/base/log.ts -> src/base/clock.ts']);
  // A temporary exception is used, or reported as stale.
  assert.deepEqual(checkTree(tree({}), LAYERS, new Set(['src/dataplane/loop.ts -> src/ops/health.ts'])), ["temporary exception 'src/dataplane/loop.ts -> src/ops/health.ts' is no longer used: delete it"]);
});
