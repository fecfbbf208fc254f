// Counts the results of a node:test TAP stream (--test-reporter=tap) the way a reader of the CI log
// would: one result per top-level test or suite of each file, and per file that failed to load.
// node's own `# fail N` leaves out a suite whose before() hook failed (the suite is `not ok`, its
// tests only "cancelled"), so a run could end with `# fail 0` and failures above it.
'use strict';

function createTapCounter() {
  const result = { passed: 0, failed: 0, skipped: 0, failedNames: [], failedFiles: [], node: {} };
  let failing = false; // inside the YAML block of an unindented `not ok`
  const failedFile = (f) => {
    if (!result.failedFiles.includes(f)) result.failedFiles.push(f);
  };
  /** Feed one line of the stream (without its newline). */
  function line(l) {
    // The file of a failed top-level result: the `location:` of its YAML block.
    const loc = failing ? /^ {2}location: '(.+?\.js):\d+:\d+'$/.exec(l) : null;
    if (loc) {
      failedFile(loc[1]);
      failing = false;
      return;
    }
    // Results of nested tests are indented; only the unindented ones are counted.
    const m = /^(not ok|ok) \d+ - (.*?)(?: # (SKIP|TODO)\b.*)?$/i.exec(l);
    if (m) {
      const directive = (m[3] || '').toUpperCase();
      if (directive === 'SKIP') result.skipped++;
      else if (m[1] === 'ok' || directive === 'TODO') result.passed++;
      else {
        result.failed++;
        result.failedNames.push(m[2]);
        if (/\.js$/.test(m[2])) failedFile(m[2]); // a file that failed to load is named by its path
        else failing = true;
      }
      return;
    }
    const s = /^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$/.exec(l);
    if (s) result.node[s[1]] = Number(s[2]);
  }
  return { line, result };
}

module.exports = { createTapCounter };
