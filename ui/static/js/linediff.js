// A line diff: Myers' O(ND) algorithm over the lines that differ once the
// common head and tail are set aside. The edit distance it searches is
// bounded (maxEdits), so that two unrelated large files cannot stall the
// page: past the bound the middle is reported as removed and added whole.

// diffLines compares two texts line by line and returns the edit script as
// [{op: 'same'|'del'|'add', text, a, b}]: a and b are 1-based line numbers
// in the old and new text (0 where the line is not in that text).
export function diffLines(oldText, newText, {maxEdits = 1500} = {}) {
  const a = splitLines(oldText);
  const b = splitLines(newText);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head &&
         a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);

  const ops = [];
  for (let i = 0; i < head; i++) ops.push({op: 'same', text: a[i], a: i + 1, b: i + 1});
  for (const m of myers(midA, midB, maxEdits)) {
    ops.push({
      op: m.op, text: m.op === 'add' ? midB[m.j] : midA[m.i],
      a: m.op === 'add' ? 0 : head + m.i + 1,
      b: m.op === 'del' ? 0 : head + m.j + 1,
    });
  }
  for (let k = tail; k > 0; k--) {
    const i = a.length - k, j = b.length - k;
    ops.push({op: 'same', text: a[i], a: i + 1, b: j + 1});
  }
  return ops;
}

// splitLines splits on \n (a \r before it is kept out); a final newline
// does not start another line, and the empty text has no lines.
export function splitLines(text) {
  if (!text) return [];
  const lines = text.split('\n').map(l => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

// myers returns [{op, i, j}] turning a into b; i and j index a and b.
function myers(a, b, maxEdits) {
  const n = a.length, m = b.length;
  if (n === 0) return b.map((_, j) => ({op: 'add', i: 0, j}));
  if (m === 0) return a.map((_, i) => ({op: 'del', i, j: 0}));
  const max = Math.min(n + m, maxEdits);
  const offset = max + 1;
  let v = new Int32Array(2 * max + 3);
  const trace = [];
  let found = -1;
  for (let d = 0; d <= max && found < 0; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x;
      if (k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1])) x = v[offset + k + 1];
      else x = v[offset + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x++; y++; }
      v[offset + k] = x;
      if (x >= n && y >= m) { found = d; break; }
    }
  }
  if (found < 0) {
    // Too many edits to search: everything in the middle changed.
    return [...a.map((_, i) => ({op: 'del', i, j: 0})), ...b.map((_, j) => ({op: 'add', i: 0, j}))];
  }
  // Walk back through the saved frontiers.
  const out = [];
  let x = n, y = m;
  for (let d = found; d > 0; d--) {
    const pv = trace[d];
    const k = x - y;
    let prevK;
    if (k === -d || (k !== d && pv[offset + k - 1] < pv[offset + k + 1])) prevK = k + 1;
    else prevK = k - 1;
    const prevX = pv[offset + prevK];
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) { x--; y--; out.push({op: 'same', i: x, j: y}); }
    if (x === prevX) { y--; out.push({op: 'add', i: x, j: y}); } else { x--; out.push({op: 'del', i: x, j: y}); }
  }
  while (x > 0 && y > 0) { x--; y--; out.push({op: 'same', i: x, j: y}); }
  return out.reverse();
}

// sideBySide pairs an edit script into rows of a two-column view: a run of
// removals beside the run of additions that follows it, same lines on both
// sides. Each row is {left: op|null, right: op|null, kind}, kind one of
// 'same', 'change', 'del', 'add'.
export function sideBySide(ops) {
  const rows = [];
  let i = 0;
  while (i < ops.length) {
    if (ops[i].op === 'same') { rows.push({left: ops[i], right: ops[i], kind: 'same'}); i++; continue; }
    const dels = [], adds = [];
    while (i < ops.length && ops[i].op === 'del') dels.push(ops[i++]);
    while (i < ops.length && ops[i].op === 'add') adds.push(ops[i++]);
    for (let k = 0; k < Math.max(dels.length, adds.length); k++) {
      const l = dels[k] || null, r = adds[k] || null;
      rows.push({left: l, right: r, kind: l && r ? 'change' : (l ? 'del' : 'add')});
    }
  }
  return rows;
}

// foldUnchanged replaces runs of unchanged rows longer than 2*context with
// the context rows at each end and one {kind: 'fold', count} row between.
export function foldUnchanged(rows, context = 3) {
  const out = [];
  let i = 0;
  while (i < rows.length) {
    if (rows[i].kind !== 'same') { out.push(rows[i++]); continue; }
    let j = i;
    while (j < rows.length && rows[j].kind === 'same') j++;
    const keepHead = i === 0 ? 0 : context;
    const keepTail = j === rows.length ? 0 : context;
    if (j - i > keepHead + keepTail + 1) {
      out.push(...rows.slice(i, i + keepHead));
      out.push({kind: 'fold', count: j - i - keepHead - keepTail});
      out.push(...rows.slice(j - keepTail, j));
    } else {
      out.push(...rows.slice(i, j));
    }
    i = j;
  }
  return out;
}

// counts says how many lines an edit script adds and removes.
export function counts(ops) {
  let added = 0, removed = 0;
  for (const o of ops) {
    if (o.op === 'add') added++;
    else if (o.op === 'del') removed++;
  }
  return {added, removed};
}
