// Small DOM helpers. Text always goes in as text nodes (never as markup), so
// values from events, rules and errors cannot inject HTML.

// h builds an element: h('a', {href: '#/x', class: 'btn'}, 'text', child…).
// Attributes whose value is false, null or undefined are left out; `on*`
// functions become event listeners; `dataset` sets data-* attributes.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace empties el and appends children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// table builds an accessible table: columns are [{label, value: row => node|text, class}].
export function table(columns, rows, {caption, empty, rowAttrs} = {}) {
  if (!rows.length && empty) return h('p', {class: 'empty'}, empty);
  return h('table', {class: 'grid'},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map(c => h('th', {scope: 'col', class: c.class}, c.label)))),
    h('tbody', {}, rows.map(r => h('tr', rowAttrs ? rowAttrs(r) : {},
      columns.map(c => h('td', {class: c.class}, c.value(r)))))));
}

// time formats an RFC 3339 timestamp (or Date) as local date and time.
export function time(ts) {
  if (!ts) return '';
  const d = ts instanceof Date ? ts : new Date(ts);
  if (isNaN(d)) return String(ts);
  return h('time', {datetime: d.toISOString(), title: d.toISOString()}, d.toLocaleString());
}

// errorBox shows an API or network error with its message and details.
export function errorBox(err) {
  const details = (err && err.violations) || [];
  return h('div', {class: 'error', role: 'alert'},
    h('strong', {}, err && err.status ? `Error ${err.status}: ` : 'Error: '),
    err && err.message ? err.message : String(err),
    details.length ? h('ul', {}, details.map(v => h('li', {}, v.field ? `${v.field}: ${v.description}` : v.description))) : null);
}

// severityBadge renders a severity as a labelled badge.
export function severityBadge(sev) {
  return h('span', {class: `sev sev-${sev || 'none'}`}, sev || '—');
}
