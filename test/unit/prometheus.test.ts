import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePrometheusText } from './helpers/prometheus';

test('the strict Prometheus parser accepts valid text and rejects what Prometheus rejects', () => {
  const ok = '# HELP a_total Things.\n# TYPE a_total counter\na_total{x="1",y="q\\"uote"} 3\na_total{x="2"} 4.5e3\n# TYPE b gauge\nb NaN\nb{l="\\\\"} +Inf 1700000000000\n';
  const f = parsePrometheusText(ok);
  assert.equal(f.get('a_total')!.samples.length, 2);
  assert.equal(f.get('a_total')!.samples[0].labels.y, 'q"uote');
  assert.equal(f.get('b')!.type, 'gauge');
  for (const bad of [
    'a 1', // no newline at the end
    'a{x=1} 1\n',
    'a{x="1"} one\n',
    '9a 1\n',
    '# TYPE a counter\n# TYPE a counter\na 1\n',
    'a 1\n# TYPE a counter\n',
    'a 1\nb 1\na 2\n',
    'a{x="1"} 1\na{x="1"} 2\n',
    '# TYPE a countr\n',
    'a{x="1",x="2"} 1\n',
  ]) {
    assert.throws(() => parsePrometheusText(bad), Error, JSON.stringify(bad));
  }
});
