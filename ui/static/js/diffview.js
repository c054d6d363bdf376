// Views of line diffs (linediff.js): one column with removed and added
// lines, or old and new side by side; unchanged runs folded to context.
import {h} from './dom.js';
import {diffLines, sideBySide, foldUnchanged, counts} from './linediff.js';

// unifiedDiff shows a line diff as one table, unchanged runs folded.
export function unifiedDiff(oldText, newText, oldLabel, newLabel) {
  const ops = diffLines(oldText, newText);
  const {added, removed} = counts(ops);
  if (!added && !removed) return h('p', {class: 'empty no-changes'}, 'No changes.');
  // Fold runs of unchanged lines, keeping three lines of context.
  const rows = foldUnchanged(ops.map(o => ({kind: o.op, op: o})), 3);
  const body = rows.map(r => (r.kind === 'fold'
    ? h('tr', {class: 'diff-fold'}, h('td', {colspan: 4}, `… ${r.count} unchanged ${r.count === 1 ? 'line' : 'lines'}`))
    : diffRow(r.op, r.kind === 'del' ? '-' : r.kind === 'add' ? '+' : ' ')));
  return h('div', {class: 'diff-wrap'},
    h('p', {class: 'diff-counts'}, h('span', {class: 'diff-add-count'}, `+${added}`), ' ', h('span', {class: 'diff-del-count'}, `−${removed}`),
      ` lines: ${oldLabel} → ${newLabel}`),
    h('table', {class: 'diff unified'},
      h('caption', {}, `Line diff of ${oldLabel} and ${newLabel}`),
      h('thead', {}, h('tr', {}, h('th', {scope: 'col', class: 'num'}, oldLabel), h('th', {scope: 'col', class: 'num'}, newLabel), h('th', {scope: 'col'}, h('span', {class: 'visually-hidden'}, 'Change')), h('th', {scope: 'col'}, 'Line'))),
      h('tbody', {}, body)));
}

function diffRow(op, sign) {
  const cls = sign === '-' ? 'diff-del' : sign === '+' ? 'diff-add' : 'diff-same';
  return h('tr', {class: cls},
    h('td', {class: 'num ln'}, op.a ? String(op.a) : ''),
    h('td', {class: 'num ln'}, op.b ? String(op.b) : ''),
    h('td', {class: 'sign'}, h('span', {'aria-hidden': 'true'}, sign),
      sign.trim() ? h('span', {class: 'visually-hidden'}, sign === '-' ? 'removed' : 'added') : null),
    h('td', {class: 'code'}, h('code', {}, op.text)));
}

// sideBySideDiff shows a line diff as two columns, old left and new right,
// a change's lines beside each other.
export function sideBySideDiff(oldText, newText, oldLabel, newLabel, {context = 3} = {}) {
  const ops = diffLines(oldText, newText);
  const {added, removed} = counts(ops);
  const summary = h('p', {class: 'diff-counts'}, h('span', {class: 'diff-add-count'}, `+${added}`), ' ',
    h('span', {class: 'diff-del-count'}, `−${removed}`), ` lines: ${oldLabel} → ${newLabel}`);
  if (!added && !removed) return h('div', {class: 'diff-wrap'}, summary, h('p', {class: 'empty no-changes'}, 'The two sources are the same.'));
  const rows = foldUnchanged(sideBySide(ops), context);
  const cell = (op, side, kind) => {
    const cls = !op ? 'diff-none' : kind === 'same' ? 'diff-same' : side === 'left' ? 'diff-del' : 'diff-add';
    const n = op ? (side === 'left' ? op.a : op.b) : '';
    return [h('td', {class: `num ln ${cls}`}, n ? String(n) : ''),
      h('td', {class: `code ${cls}`},
        op && kind !== 'same' ? h('span', {class: 'visually-hidden'}, side === 'left' ? 'removed: ' : 'added: ') : null,
        op ? h('code', {}, op.text) : '')];
  };
  return h('div', {class: 'diff-wrap'}, summary,
    h('table', {class: 'diff side-by-side'},
      h('caption', {}, `${oldLabel} (left) against ${newLabel} (right)`),
      h('colgroup', {}, h('col', {class: 'ln-col'}), h('col', {class: 'code-col'}), h('col', {class: 'ln-col'}), h('col', {class: 'code-col'})),
      h('thead', {}, h('tr', {},
        h('th', {scope: 'col', class: 'num'}, 'Line'), h('th', {scope: 'col'}, oldLabel),
        h('th', {scope: 'col', class: 'num'}, 'Line'), h('th', {scope: 'col'}, newLabel))),
      h('tbody', {}, rows.map(r => (r.kind === 'fold'
        ? h('tr', {class: 'diff-fold'}, h('td', {colspan: 4}, `… ${r.count} unchanged ${r.count === 1 ? 'line' : 'lines'}`))
        : h('tr', {class: `diff-row diff-${r.kind}`}, cell(r.left, 'left', r.kind), cell(r.right, 'right', r.kind)))))));
}
