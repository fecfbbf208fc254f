// A small evaluator of Terraform (HCL) expressions, for test/unit/terraform.test.ts: there is no
// terraform binary here, and HashiCorp's parser from npm (@cdktf/hcl2json) turns a module into JSON
// whose expressions stay source text ("${var.x >= 1 && ...}"). This evaluates that text for given
// variable values, so that the test can run the module's validation blocks, preconditions and
// locals the way Terraform would.
//
// The subset the module uses, and nothing else (anything else throws, which fails the test, so a
// new construct in the module is noticed rather than misread): numbers, strings with escapes and
// ${} interpolation ($${ and %%{ are literal; %{ directives throw), true/false/null, list and
// object literals, [for x in list : expr] and {for k, v in coll : k => v}, each with `if`,
// references (var.x, local.x, data.t.n[k].attr, iterator names), indexing, ! - * / + -,
// comparisons, == != && ||, cond ? a : b, parentheses, and the functions below. regex() is RE2 in
// Terraform and a JavaScript RegExp here: the same for the patterns the module uses (no
// lookaround, no backreferences; the test feeds both the values the CloudFormation template
// accepts and refuses).

export type Value = unknown;
export type Scope = Record<string, Value>;

class EvalError extends Error {}

const FUNCTIONS: Record<string, (args: Value[]) => Value> = {
  regex: ([p, s]) => {
    if (typeof p !== 'string' || typeof s !== 'string') throw new EvalError('regex(pattern, string)');
    const m = new RegExp(p).exec(s);
    if (m === null) throw new EvalError(`regex: '${s}' does not match ${p}`);
    return m[0];
  },
  contains: ([l, v]) => {
    if (!Array.isArray(l)) throw new EvalError('contains(list, value)');
    return l.some((x) => x === v);
  },
  length: ([x]) => {
    if (Array.isArray(x) || typeof x === 'string') return x.length;
    if (x !== null && typeof x === 'object') return Object.keys(x).length;
    throw new EvalError('length() of a list, string or map');
  },
  alltrue: ([l]) => {
    if (!Array.isArray(l)) throw new EvalError('alltrue(list)');
    return l.every((x) => x === true);
  },
  floor: ([n]) => Math.floor(num(n)),
  join: ([sep, l]) => {
    if (typeof sep !== 'string' || !Array.isArray(l)) throw new EvalError('join(sep, list)');
    return l.map((x) => str(x)).join(sep);
  },
  toset: ([l]) => {
    if (!Array.isArray(l)) throw new EvalError('toset(list)');
    return [...new Set(l)];
  },
  tostring: ([x]) => str(x),
  nonsensitive: ([x]) => x,
  base64encode: ([x]) => Buffer.from(str(x)).toString('base64'),
  merge: (maps) => Object.assign({}, ...maps.map((m) => obj(m))),
};

function num(v: Value): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^-?[0-9]+(\.[0-9]+)?$/.test(v)) return Number(v);
  throw new EvalError(`a number: ${JSON.stringify(v)}`);
}

function str(v: Value): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new EvalError(`a string: ${JSON.stringify(v)}`);
}

function obj(v: Value): Record<string, Value> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new EvalError(`an object: ${JSON.stringify(v)}`);
  return v as Record<string, Value>;
}

function bool(v: Value): boolean {
  if (typeof v !== 'boolean') throw new EvalError(`a bool: ${JSON.stringify(v)}`);
  return v;
}

function equal(a: Value, b: Value): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** An expression node: evaluated lazily, so that can() catches errors of its argument. */
type Node = (scope: Scope) => Value;

class Parser {
  private i = 0;
  constructor(private readonly src: string) {}

  private ws(): void {
    while (this.i < this.src.length && /\s/.test(this.src[this.i]!)) this.i++;
  }

  private peek(s: string): boolean {
    this.ws();
    return this.src.startsWith(s, this.i);
  }

  private eat(s: string): boolean {
    if (!this.peek(s)) return false;
    this.i += s.length;
    return true;
  }

  private expect(s: string): void {
    if (!this.eat(s)) throw new EvalError(`expected '${s}' at ${this.i} in ${this.src}`);
  }

  private ident(): string | undefined {
    this.ws();
    const m = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(this.src.slice(this.i));
    if (m === null) return undefined;
    this.i += m[0].length;
    return m[0];
  }

  /** A template: literal text with ${expr} parts, up to `end` (a closing quote) or the end of input. */
  template(end: string | undefined, escapes: boolean): Node {
    const parts: (string | Node)[] = [];
    let lit = '';
    for (;;) {
      if (this.i >= this.src.length) {
        if (end !== undefined) throw new EvalError(`unterminated string in ${this.src}`);
        break;
      }
      const c = this.src[this.i]!;
      if (end !== undefined && c === end) {
        this.i++;
        break;
      }
      if (this.src.startsWith('$${', this.i) || this.src.startsWith('%%{', this.i)) {
        lit += this.src[this.i] + '{';
        this.i += 3;
      } else if (this.src.startsWith('%{', this.i)) {
        throw new EvalError(`template directives (%{) are not known to this evaluator: ${this.src}`);
      } else if (this.src.startsWith('${', this.i)) {
        if (lit !== '') parts.push(lit);
        lit = '';
        this.i += 2;
        parts.push(this.expr());
        this.expect('}');
      } else if (escapes && c === '\\') {
        const n = this.src[this.i + 1];
        const map: Record<string, string> = { n: '\n', t: '\t', '"': '"', '\\': '\\' };
        if (n === undefined || !(n in map)) throw new EvalError(`escape \\${n} in ${this.src}`);
        lit += map[n];
        this.i += 2;
      } else {
        lit += c;
        this.i++;
      }
    }
    if (lit !== '') parts.push(lit);
    // "${expr}" alone keeps the expression's type (as Terraform does).
    if (parts.length === 1 && typeof parts[0] !== 'string') return parts[0]!;
    return (s) => parts.map((p) => (typeof p === 'string' ? p : str(p(s)))).join('');
  }

  expr(): Node {
    const c = this.or();
    if (this.eat('?')) {
      const a = this.expr();
      this.expect(':');
      const b = this.expr();
      return (s) => (bool(c(s)) ? a(s) : b(s));
    }
    return c;
  }

  private or(): Node {
    return this.logic('||', () => this.and());
  }

  private and(): Node {
    return this.logic('&&', () => this.eq());
  }

  /** Operands of `next` joined by `op`. Both sides are evaluated, as Terraform does (no short
   * circuit): `var.x != null && var.x > 0` fails there on null, and so it does here. */
  private logic(op: '||' | '&&', next: () => Node): Node {
    let l = next();
    while (this.eat(op)) {
      const a = l;
      const r = next();
      l = (s) => {
        const x = bool(a(s));
        const y = bool(r(s));
        return op === '||' ? x || y : x && y;
      };
    }
    return l;
  }

  private eq(): Node {
    let l = this.cmp();
    for (;;) {
      const op = this.eat('==') ? '==' : this.eat('!=') ? '!=' : undefined;
      if (op === undefined) return l;
      const a = l;
      const r = this.cmp();
      l = op === '==' ? (s) => equal(a(s), r(s)) : (s) => !equal(a(s), r(s));
    }
  }

  private cmp(): Node {
    let l = this.add();
    for (;;) {
      const op = ['>=', '<=', '>', '<'].find((o) => this.eat(o));
      if (op === undefined) return l;
      const a = l;
      const r = this.add();
      l = (s) => {
        const x = num(a(s));
        const y = num(r(s));
        return op === '>=' ? x >= y : op === '<=' ? x <= y : op === '>' ? x > y : x < y;
      };
    }
  }

  private add(): Node {
    let l = this.mul();
    for (;;) {
      const op = this.eat('+') ? '+' : this.peek('-') && !this.peek('->') ? (this.i++, '-') : undefined;
      if (op === undefined) return l;
      const a = l;
      const r = this.mul();
      l = op === '+' ? (s) => num(a(s)) + num(r(s)) : (s) => num(a(s)) - num(r(s));
    }
  }

  private mul(): Node {
    let l = this.unary();
    for (;;) {
      const op = this.eat('*') ? '*' : this.eat('/') ? '/' : undefined;
      if (op === undefined) return l;
      const a = l;
      const r = this.unary();
      l = op === '*' ? (s) => num(a(s)) * num(r(s)) : (s) => num(a(s)) / num(r(s));
    }
  }

  private unary(): Node {
    if (this.eat('!')) {
      const e = this.unary();
      return (s) => !bool(e(s));
    }
    if (this.eat('-')) {
      const e = this.unary();
      return (s) => -num(e(s));
    }
    return this.postfix(this.primary());
  }

  private postfix(base: Node): Node {
    let n = base;
    for (;;) {
      if (this.eat('[')) {
        const k = this.expr();
        this.expect(']');
        const b = n;
        n = (s) => {
          const v = b(s);
          const key = k(s);
          if (Array.isArray(v)) {
            const i = num(key);
            if (!(i >= 0 && i < v.length)) throw new EvalError(`index ${i} of a list of ${v.length}`);
            return v[i];
          }
          const o = obj(v);
          if (!(str(key) in o)) throw new EvalError(`no key ${str(key)}`);
          return o[str(key)];
        };
      } else if (this.peek('.') && !this.peek('..')) {
        this.i++;
        const name = this.ident();
        if (name === undefined) throw new EvalError(`a name after '.' at ${this.i} in ${this.src}`);
        const b = n;
        n = (s) => {
          const o = obj(b(s));
          if (!(name in o)) throw new EvalError(`no attribute ${name} in ${JSON.stringify(o)}`);
          return o[name];
        };
      } else {
        return n;
      }
    }
  }

  private primary(): Node {
    this.ws();
    const c = this.src[this.i];
    if (c === '(') {
      this.i++;
      const e = this.expr();
      this.expect(')');
      return e;
    }
    if (c === '"') {
      this.i++;
      return this.template('"', true);
    }
    if (c !== undefined && /[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?/.exec(this.src.slice(this.i))!;
      this.i += m[0].length;
      const v = Number(m[0]);
      return () => v;
    }
    if (c === '[') {
      this.i++;
      if (this.peek('for ')) return this.forExpr(']');
      const items: Node[] = [];
      while (!this.eat(']')) {
        items.push(this.expr());
        if (!this.eat(',')) {
          this.expect(']');
          break;
        }
      }
      return (s) => items.map((x) => x(s));
    }
    if (c === '{') {
      this.i++;
      if (this.peek('for ')) return this.forExpr('}');
      const fields: [string, Node][] = [];
      while (!this.eat('}')) {
        const k = this.ident();
        if (k === undefined) throw new EvalError(`an object key at ${this.i} in ${this.src}`);
        if (!this.eat('=')) this.expect(':');
        fields.push([k, this.expr()]);
        this.eat(',');
      }
      return (s) => Object.fromEntries(fields.map(([k, n]) => [k, n(s)]));
    }
    const name = this.ident();
    if (name === undefined) throw new EvalError(`an expression at ${this.i} in ${this.src}`);
    if (name === 'true') return () => true;
    if (name === 'false') return () => false;
    if (name === 'null') return () => null;
    if (this.eat('(')) {
      const args: Node[] = [];
      while (!this.eat(')')) {
        args.push(this.expr());
        if (!this.eat(',')) {
          this.expect(')');
          break;
        }
      }
      if (name === 'can') {
        if (args.length !== 1) throw new EvalError('can(expr)');
        return (s) => {
          try {
            args[0]!(s);
            return true;
          } catch (e) {
            if (e instanceof EvalError) return false;
            throw e;
          }
        };
      }
      const f = FUNCTIONS[name];
      if (f === undefined) throw new EvalError(`function ${name}() is not known to this evaluator`);
      return (s) => f(args.map((a) => a(s)));
    }
    return (s) => {
      if (!(name in s)) throw new EvalError(`${name} is not defined`);
      return s[name];
    };
  }

  /** After '[' or '{', at 'for': `a in coll : expr]`, `k, v in coll : expr]`, or for an object
   * `k, v in coll : keyExpr => valueExpr}`; each may end in `if cond`. */
  private forExpr(end: ']' | '}'): Node {
    this.expect('for');
    const a = this.ident();
    const b = this.eat(',') ? this.ident() : undefined;
    if (a === undefined) throw new EvalError(`for: a name in ${this.src}`);
    this.expect('in');
    const coll = this.expr();
    this.expect(':');
    const body = this.expr();
    let value: Node | undefined;
    if (end === '}') {
      this.expect('=>');
      value = this.expr();
    }
    const cond = this.eat('if ') ? this.expr() : undefined;
    this.expect(end);
    return (s) => {
      const c = coll(s);
      const entries: [Value, Value][] = Array.isArray(c) ? c.map((v, i) => [i, v]) : Object.entries(obj(c));
      const scopes = entries
        .map(([k, v]) => ({ ...s, ...(b === undefined ? { [a]: v } : { [a]: k, [b]: v }) }))
        .filter((x) => cond === undefined || bool(cond(x)));
      if (value === undefined) return scopes.map((x) => body(x));
      return Object.fromEntries(scopes.map((x) => [str(body(x)), value!(x)]));
    };
  }

  end(): void {
    this.ws();
    if (this.i !== this.src.length) throw new EvalError(`unexpected '${this.src.slice(this.i)}' in ${this.src}`);
  }
}

/** The value of an attribute as @cdktf/hcl2json gives it: a string is a template ("${expr}" or
 * text with interpolations), anything else (numbers, bools, lists, objects) is evaluated item by
 * item. Throws on what the subset above does not cover. */
export function evaluate(v: Value, scope: Scope): Value {
  if (typeof v === 'string') {
    const p = new Parser(v);
    const n = p.template(undefined, false);
    p.end();
    return n(scope);
  }
  if (Array.isArray(v)) return v.map((x) => evaluate(x, scope));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, evaluate(x, scope)]));
  return v;
}
