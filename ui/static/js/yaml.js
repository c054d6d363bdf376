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
// LONG_LINE is the length past which a line is left plain: highlighting
// runs on every keystroke, and a pasted line of megabytes would stall it.
const LONG_LINE = 4000;

// tokenize returns, per line of text, its tokens as [class, text] pairs; a
// class of '' is plain text.
export function tokenize(text) {
  const lines = text.split('\n');
  const out = [];
  let block = null; // {indent, cel}: inside a block scalar
  const stack = []; // [{indent, key}] of the enclosing keys
  for (const line of lines) {
    if (line.length > LONG_LINE) { out.push([['', line]]); continue; }
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

    const km = rest.match(/^([^\s"'#{}[\],:](?:[^:#]*[^\s:#])?|"(?:[^"\\]|\\.)*"|'(?:[^']|'')*')(\s*:)(?=\s|$)/);
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

// flow tokenizes a flow collection ({a: 1, b: [x, y]}) on one line. The
// patterns are sticky (matched at lastIndex) so that a long line is read
// in one pass, without copying its rest at each token.
const FLOW_SPACE = /[ \t]+/y;
const FLOW_DQ = /"(?:[^"\\]|\\.)*("|$)/y;
const FLOW_SQ = /'(?:[^']|'')*('|$)/y;
const FLOW_WORD = /[^{}[\],:#\s]+(?:[ \t]+[^{}[\],:#\s]+)*/y;
const FLOW_COLON_AFTER = /\s*:/y;
const FLOW_KEY_END = /:(\s|$)/y;

function stickyMatch(re, s, i) {
  re.lastIndex = i;
  const m = re.exec(s);
  return m ? m[0] : null;
}

function flow(s) {
  const toks = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if ('{}[],'.includes(c)) { toks.push(['y-punct', c]); i++; continue; }
    let w;
    if ((w = stickyMatch(FLOW_SPACE, s, i))) { toks.push(['', w]); i += w.length; continue; }
    if (c === '#' && (i === 0 || /\s/.test(s[i - 1]))) { toks.push(['y-comment', s.slice(i)]); break; }
    if (c === '"' || c === "'") {
      const str = stickyMatch(c === '"' ? FLOW_DQ : FLOW_SQ, s, i);
      const isKey = stickyMatch(FLOW_COLON_AFTER, s, i + str.length) !== null;
      toks.push([isKey ? 'y-key' : 'y-str', str]);
      i += str.length;
      continue;
    }
    if (c === ':') { toks.push(['y-punct', c]); i++; continue; }
    const word = stickyMatch(FLOW_WORD, s, i) || c;
    const isKey = stickyMatch(FLOW_KEY_END, s, i + word.length) !== null;
    toks.push([isKey ? 'y-key' : plainClass(word), word]);
    i += word.length;
  }
  return toks;
}

// cel tokenizes a CEL expression lightly: strings, numbers, operators,
// functions, the names every rule sees, and (with allowComment) a YAML
// comment after it.
const CEL_SPACE = /\s+/y;
const CEL_STRING = /[rbRB]?("""[\s\S]*?("""|$)|'''[\s\S]*?('''|$)|"(?:[^"\\]|\\.)*("|$)|'(?:[^'\\]|\\.)*('|$))/y;
const CEL_NUMBER = /(0x[0-9a-fA-F]+u?|\d+(\.\d+)?([eE][-+]?\d+)?u?|\.\d+)/y;
const CEL_IDENT = /[A-Za-z_][A-Za-z0-9_]*/y;
const CEL_CALL = /\s*\(/y;
const CEL_OP = /(&&|\|\||==|!=|<=|>=|[-+*/%<>!?:])/y;

export function cel(s, allowComment) {
  const toks = [];
  let i = 0;
  while (i < s.length) {
    let m;
    if (allowComment && s[i] === '#' && (i === 0 || /\s/.test(s[i - 1]))) { toks.push(['y-comment', s.slice(i)]); break; }
    if ((m = stickyMatch(CEL_SPACE, s, i))) { toks.push(['', m]); i += m.length; continue; }
    if ((m = stickyMatch(CEL_STRING, s, i))) { toks.push(['c-str', m]); i += m.length; continue; }
    if ((m = stickyMatch(CEL_NUMBER, s, i))) { toks.push(['c-num', m]); i += m.length; continue; }
    if ((m = stickyMatch(CEL_IDENT, s, i))) {
      const cls = CEL_WORDS.has(m) ? 'c-kw' : stickyMatch(CEL_CALL, s, i + m.length) !== null ? 'c-fn' : 'c-id';
      toks.push([cls, m]); i += m.length; continue;
    }
    if ((m = stickyMatch(CEL_OP, s, i))) { toks.push(['c-op', m]); i += m.length; continue; }
    toks.push(['c-punct', s[i]]);
    i++;
  }
  return toks;
}
