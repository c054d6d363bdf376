// A small YAML tokenizer for highlighting ruleset sources (docs/language.md),
// not a parser: it knows keys, scalars, comments, flow collections and block
// scalars, and lightly highlights the CEL expressions of the keys that hold
// them (when, where, having, summary, key, time, until, measures' values,
// suppress.by's items). Every character of the input lands in exactly one
// token, so the highlighted text lines up with the text as typed.

// CEL_KEYS are the keys whose values are CEL expressions.
const CEL_KEYS = new Set(['when', 'where', 'having', 'summary', 'key', 'time', 'until']);
// CEL_PARENTS are keys whose children (mapping values or list items) are CEL.
const CEL_PARENTS = new Set(['measures', 'by']);
const CEL_WORDS = new Set(['event', 'lists', 'true', 'false', 'null', 'in']);
const YAML_WORDS = /^(true|false|null|yes|no|on|off|~)$/i;
const NUMBER = /^[-+]?(\d[\d_]*(\.\d*)?([eE][-+]?\d+)?|\.\d+|0x[0-9a-fA-F]+)$/;
const DURATION = /^\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d)(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))*$/;

// tokenize returns, per line of text, its tokens as [class, text] pairs; a
// class of '' is plain text.
export function tokenize(text) {
  const lines = text.split('\n');
  const out = [];
  let block = null; // {indent, cel}: inside a block scalar
  const stack = []; // [{indent, key}] of the enclosing keys
  for (const line of lines) {
    if (block) {
      const ind = line.match(/^ */)[0].length;
      if (line.trim() === '' || ind > block.indent) {
        out.push(block.cel ? cel(line, false) : [['y-str', line]]);
        continue;
      }
      block = null;
    }
    const toks = [];
    const m = line.match(/^(\s*)((?:-(?:\s+|$))*)/);
    let pos = 0;
    if (m[1]) { toks.push(['', m[1]]); pos = m[1].length; }
    if (m[2]) { toks.push(['y-dash', m[2]]); pos += m[2].length; }
    const rest = line.slice(pos);
    if (rest === '') { out.push(toks); continue; }
    if (rest.startsWith('#')) { toks.push(['y-comment', rest]); out.push(toks); continue; }
    if (/^(---|\.\.\.)(\s|$)/.test(line)) { out.push([['y-punct', line]]); continue; }

    const km = rest.match(/^([^\s"'#{}[\],:][^:#]*?|"(?:[^"\\]|\\.)*"|'(?:[^']|'')*')(\s*:)(?=\s|$)/);
    let celValue = false;
    if (km) {
      const key = km[1].replace(/^["']|["']$/g, '');
      while (stack.length && stack[stack.length - 1].indent >= pos) stack.pop();
      const parent = stack.length ? stack[stack.length - 1].key : '';
      stack.push({indent: pos, key});
      celValue = CEL_KEYS.has(key) || CEL_PARENTS.has(parent) && parent === 'measures';
      toks.push(['y-key', km[1]], ['y-punct', km[2]]);
      const value = rest.slice(km[0].length);
      const bm = value.match(/^(\s+)([|>][-+0-9]*)(\s*(#.*)?)$/);
      if (bm) {
        toks.push(['', bm[1]], ['y-block', bm[2]]);
        if (bm[3]) toks.push(...comment(bm[3]));
        block = {indent: pos, cel: celValue};
        out.push(toks);
        continue;
      }
      toks.push(...scalarOrFlow(value, celValue));
    } else {
      // A list item's scalar: CEL under suppress.by or measures.
      while (stack.length && stack[stack.length - 1].indent > pos) stack.pop();
      const parent = stack.length ? stack[stack.length - 1].key : '';
      toks.push(...scalarOrFlow(rest, CEL_PARENTS.has(parent)));
    }
    out.push(toks);
  }
  return out;
}

// comment splits "   # text" into its space and the comment.
function comment(s) {
  const i = s.indexOf('#');
  if (i < 0) return [['', s]];
  return [['', s.slice(0, i)], ['y-comment', s.slice(i)]].filter(t => t[1]);
}

// scalarOrFlow tokenizes what follows a key's colon, or a list item.
function scalarOrFlow(s, isCel) {
  const toks = [];
  const lead = s.match(/^\s*/)[0];
  if (lead) toks.push(['', lead]);
  let rest = s.slice(lead.length);
  if (rest === '') return toks;
  if (rest.startsWith('#')) { toks.push(['y-comment', rest]); return toks; }
  if (rest[0] === '"' || rest[0] === "'") {
    const q = rest[0];
    const re = q === '"' ? /^"(?:[^"\\]|\\.)*("|$)/ : /^'(?:[^']|'')*('|$)/;
    const str = rest.match(re)[0];
    if (isCel && str.length >= 2) {
      const closed = str.endsWith(q) && str.length > 1;
      toks.push(['y-punct', q], ...cel(str.slice(1, closed ? -1 : undefined), false));
      if (closed) toks.push(['y-punct', q]);
    } else {
      toks.push(['y-str', str]);
    }
    rest = rest.slice(str.length);
    if (rest) toks.push(...comment(rest));
    return toks;
  }
  if (rest[0] === '{' || rest[0] === '[') return toks.concat(flow(rest));
  if (isCel) return toks.concat(cel(rest, true));
  const cm = rest.match(/\s#/);
  const value = cm ? rest.slice(0, cm.index) : rest;
  toks.push([plainClass(value.trimEnd()), value]);
  if (cm) toks.push(...comment(rest.slice(cm.index)));
  return toks;
}

function plainClass(v) {
  if (NUMBER.test(v)) return 'y-num';
  if (YAML_WORDS.test(v)) return 'y-bool';
  if (DURATION.test(v)) return 'y-num';
  if (/^[&*]\S+$/.test(v)) return 'y-anchor';
  return 'y-val';
}

// flow tokenizes a flow collection ({a: 1, b: [x, y]}) on one line.
function flow(s) {
  const toks = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if ('{}[],'.includes(c)) { toks.push(['y-punct', c]); i++; continue; }
    if (c === ' ' || c === '\t') { const w = s.slice(i).match(/^[ \t]+/)[0]; toks.push(['', w]); i += w.length; continue; }
    if (c === '#' && (i === 0 || /\s/.test(s[i - 1]))) { toks.push(['y-comment', s.slice(i)]); break; }
    if (c === '"' || c === "'") {
      const re = c === '"' ? /^"(?:[^"\\]|\\.)*("|$)/ : /^'(?:[^']|'')*('|$)/;
      const str = s.slice(i).match(re)[0];
      const after = s.slice(i + str.length);
      toks.push([/^\s*:/.test(after) ? 'y-key' : 'y-str', str]);
      i += str.length;
      continue;
    }
    if (c === ':') { toks.push(['y-punct', c]); i++; continue; }
    const w = s.slice(i).match(/^[^{}[\],:#]+?(?=\s*[{}[\],]|:(\s|$)|\s#|$)/);
    const word = w ? w[0] : s.slice(i, i + 1);
    const trimmed = word.trimEnd();
    const isKey = /^:(\s|$)/.test(s.slice(i + word.length));
    toks.push([isKey ? 'y-key' : plainClass(trimmed), word]);
    i += word.length;
  }
  return toks;
}

// cel tokenizes a CEL expression lightly: strings, numbers, operators,
// functions, the names every rule sees, and (with allowComment) a YAML
// comment after it.
export function cel(s, allowComment) {
  const toks = [];
  let i = 0;
  while (i < s.length) {
    const rest = s.slice(i);
    let m;
    if (allowComment && rest[0] === '#' && (i === 0 || /\s/.test(s[i - 1]))) { toks.push(['y-comment', rest]); break; }
    if ((m = rest.match(/^\s+/))) { toks.push(['', m[0]]); i += m[0].length; continue; }
    if ((m = rest.match(/^[rbRB]?("""[\s\S]*?("""|$)|'''[\s\S]*?('''|$)|"(?:[^"\\]|\\.)*("|$)|'(?:[^'\\]|\\.)*('|$))/))) {
      toks.push(['c-str', m[0]]); i += m[0].length; continue;
    }
    if ((m = rest.match(/^(0x[0-9a-fA-F]+u?|\d+(\.\d+)?([eE][-+]?\d+)?u?|\.\d+)/))) { toks.push(['c-num', m[0]]); i += m[0].length; continue; }
    if ((m = rest.match(/^[A-Za-z_][A-Za-z0-9_]*/))) {
      const after = s.slice(i + m[0].length);
      const cls = CEL_WORDS.has(m[0]) ? 'c-kw' : /^\s*\(/.test(after) ? 'c-fn' : 'c-id';
      toks.push([cls, m[0]]); i += m[0].length; continue;
    }
    if ((m = rest.match(/^(&&|\|\||==|!=|<=|>=|[-+*/%<>!?:])/))) { toks.push(['c-op', m[0]]); i += m[0].length; continue; }
    toks.push(['c-punct', rest[0]]);
    i++;
  }
  return toks;
}
