// A code editor for ruleset YAML: a <textarea> whose text is transparent,
// laid over a <pre> that shows the same text highlighted (yaml.js), with a
// gutter of line numbers. The textarea does the editing, selection, undo
// and accessibility; the <pre> and the gutter follow its scrolling. Lines
// with problems get a gutter marker, a tinted background and the problem's
// column underlined.
import {h, replace} from './dom.js';
import {tokenize} from './yaml.js';

// LINE_HEIGHT matches the CSS (.code-editor: line-height 20px) so that the
// gutter, the highlight and the textarea's lines stay aligned.
const LINE_HEIGHT = 20;

// codeEditor builds an editor. onChange(text) runs after each edit.
export function codeEditor({id, value = '', readOnly = false, label, describedBy, onChange}) {
  const gutter = h('div', {class: 'ce-gutter', 'aria-hidden': 'true'});
  const pre = h('pre', {class: 'ce-highlight', 'aria-hidden': 'true'});
  const textarea = h('textarea', {
    id, class: 'ce-input', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off',
    wrap: 'off', 'aria-label': label, 'aria-describedby': describedBy, readonly: readOnly,
  });
  textarea.value = value;
  const el = h('div', {class: `code-editor${readOnly ? ' ce-readonly' : ''}`},
    gutter, h('div', {class: 'ce-area'}, pre, textarea));

  let problems = new Map(); // line -> [{kind, column, message}]
  let frame = 0;
  let tabLeaves = false; // Escape, then Tab, moves focus on

  // The elements of the last drawing, by line, with what they show: a
  // keystroke redraws the lines it changed and reuses the others, so that
  // a long source stays quick to type in.
  let drawnNums = [];
  let drawnRows = [];

  function draw() {
    frame = 0;
    const lines = tokenize(textarea.value);
    const nums = [];
    const rows = [];
    lines.forEach((toks, i) => {
      const n = i + 1;
      const ps = problems.get(n) || [];
      const kind = ps.some(p => p.kind === 'error') ? 'err' : (ps.length ? 'warn' : '');
      const title = ps.map(p => `${p.kind === 'error' ? 'Error' : 'Warning'}${p.column ? ' at column ' + p.column : ''}: ${p.message}`).join('\n');
      const numKey = kind + '\u0000' + title;
      nums.push(drawnNums[i] && drawnNums[i].key === numKey ? drawnNums[i] : {key: numKey, el: h('div', {
        class: `ce-num${kind ? ' ce-' + kind : ''}`, dataset: {line: String(n)}, title: title || false,
      }, String(n))});
      const cols = ps.filter(p => p.column > 0).map(p => ({column: p.column, kind: p.kind}));
      const rowKey = JSON.stringify([toks, cols, kind]);
      rows.push(drawnRows[i] && drawnRows[i].key === rowKey ? drawnRows[i] : {key: rowKey,
        el: h('span', {class: `ce-line${kind ? ' ce-line-' + kind : ''}`, dataset: {line: String(n)}}, renderTokens(toks, cols))});
    });
    if (nums.length !== drawnNums.length || nums.some((x, i) => x !== drawnNums[i])) replace(gutter, nums.map(x => x.el));
    if (rows.length !== drawnRows.length || rows.some((x, i) => x !== drawnRows[i])) replace(pre, rows.map(x => x.el));
    drawnNums = nums;
    drawnRows = rows;
    sync();
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function sync() {
    pre.scrollTop = textarea.scrollTop;
    pre.scrollLeft = textarea.scrollLeft;
    gutter.scrollTop = textarea.scrollTop;
  }

  textarea.addEventListener('input', () => { schedule(); if (onChange) onChange(textarea.value); });
  textarea.addEventListener('scroll', sync);
  textarea.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') { tabLeaves = true; return; }
    if (ev.key === 'Tab' && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey && !readOnly && !tabLeaves) {
      ev.preventDefault();
      insertText(textarea, '  ');
      return;
    }
    tabLeaves = false;
  });
  textarea.addEventListener('blur', () => { tabLeaves = false; });

  draw();

  return {
    el,
    textarea,
    get value() { return textarea.value; },
    set value(v) { textarea.value = v; draw(); },
    // setProblems marks errors and warnings: [{line, column, message}].
    setProblems(errors, warnings) {
      problems = new Map();
      const add = (kind) => (p) => {
        if (!p.line) return;
        if (!problems.has(p.line)) problems.set(p.line, []);
        problems.get(p.line).push({kind, column: p.column || 0, message: p.message});
      };
      (errors || []).forEach(add('error'));
      (warnings || []).forEach(add('warning'));
      textarea.setAttribute('aria-invalid', (errors || []).length ? 'true' : 'false');
      draw();
    },
    // goTo puts the caret at line:column (1-based) and scrolls it into view.
    goTo(line, column) {
      const lines = textarea.value.split('\n');
      const l = Math.min(Math.max(line, 1), lines.length);
      let offset = 0;
      for (let i = 0; i < l - 1; i++) offset += lines[i].length + 1;
      offset += Math.min(Math.max((column || 1) - 1, 0), lines[l - 1].length);
      textarea.focus();
      textarea.setSelectionRange(offset, offset);
      const top = (l - 1) * LINE_HEIGHT;
      if (top < textarea.scrollTop || top > textarea.scrollTop + textarea.clientHeight - 2 * LINE_HEIGHT) {
        textarea.scrollTop = Math.max(0, top - textarea.clientHeight / 3);
      }
      sync();
    },
    // caret says the caret's line and column, 1-based.
    caret() {
      const before = textarea.value.slice(0, textarea.selectionStart).split('\n');
      return {line: before.length, column: before[before.length - 1].length + 1};
    },
  };
}

// insertText types text at the caret, as the user would, so that undo
// takes it back.
function insertText(textarea, text) {
  if (!document.execCommand || !document.execCommand('insertText', false, text)) {
    textarea.setRangeText(text, textarea.selectionStart, textarea.selectionEnd, 'end');
    textarea.dispatchEvent(new Event('input'));
  }
}

// renderTokens turns a line's tokens into spans, underlining from each
// problem's column to the end of the word there.
function renderTokens(toks, cols) {
  const text = toks.map(t => t[1]).join('');
  const marks = cols.map(c => {
    const start = Math.min(c.column - 1, Math.max(text.length - 1, 0));
    let end = start + 1;
    while (end < text.length && /[\w.$"'-]/.test(text[end]) && /[\w.$"'-]/.test(text[start])) end++;
    return {start, end, kind: c.kind};
  });
  const out = [];
  let pos = 0;
  for (const [cls, t] of toks) {
    // Cut the token where marks start and end.
    const cuts = new Set([0, t.length]);
    for (const m of marks) {
      if (m.start > pos && m.start < pos + t.length) cuts.add(m.start - pos);
      if (m.end > pos && m.end < pos + t.length) cuts.add(m.end - pos);
    }
    const points = [...cuts].sort((a, b) => a - b);
    for (let i = 0; i + 1 < points.length; i++) {
      const piece = t.slice(points[i], points[i + 1]);
      const at = pos + points[i];
      const mark = marks.find(m => at >= m.start && at < m.end);
      const classes = [cls, mark ? `ce-at-${mark.kind === 'error' ? 'err' : 'warn'}` : ''].filter(Boolean).join(' ');
      out.push(classes ? h('span', {class: classes}, piece) : document.createTextNode(piece));
    }
    pos += t.length;
  }
  if (!text) {
    // An empty line with a problem at it still shows the underline.
    if (marks.length) out.push(h('span', {class: `ce-at-${marks[0].kind === 'error' ? 'err' : 'warn'}`}, ' '));
  }
  return out;
}
