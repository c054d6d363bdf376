// An alert's detail: what fired, for which key, when, its measures and the
// events it matched step by step, in a modal dialog.
import * as api from './api.js';
import {h, replace, table, time, severityBadge} from './dom.js';

// Fields that commonly hold an event's time, tried when the ruleset's
// stream.time expression cannot be read.
const timeFields = ['ts', 'time', 'timestamp', '@timestamp', 'event_time'];

// The field each ruleset's stream.time reads (`time: event.ts`), by ruleset
// name; '' when it is not a plain field.
const timeFieldOf = new Map();

async function eventTimeField(ruleset) {
  if (timeFieldOf.has(ruleset)) return timeFieldOf.get(ruleset);
  let field = '';
  try {
    const rs = await api.get('/v1/rulesets/' + api.enc(ruleset));
    field = streamTimeField(rs.source || '');
  } catch (e) {
    // Without the source the usual field names are tried instead.
  }
  timeFieldOf.set(ruleset, field);
  return field;
}

// streamTimeField finds `time: event.NAME` in the source's stream section.
export function streamTimeField(source) {
  const lines = source.split('\n');
  let inStream = false;
  for (const line of lines) {
    if (/^stream:\s*(#.*)?$/.test(line)) { inStream = true; continue; }
    if (inStream && /^\S/.test(line)) break;
    if (!inStream) continue;
    const m = /^\s+time:\s*["']?event\.([A-Za-z_][A-Za-z0-9_]*)["']?\s*(#.*)?$/.exec(line);
    if (m) return m[1];
  }
  return '';
}

function eventTime(ev, field) {
  if (!ev || typeof ev !== 'object') return '';
  if (field && ev[field] !== undefined) return ev[field];
  for (const f of timeFields) if (ev[f] !== undefined) return ev[f];
  return '';
}

// fieldText shows one value of an event: strings as they are, the rest as
// JSON.
export function fieldText(v) {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

// stepRows flattens the alert's events ({step: [event…]}) into rows in
// step order, numbering each step's events from 1.
function stepRows(events) {
  const rows = [];
  for (const [step, list] of Object.entries(events || {})) {
    (list || []).forEach((ev, i) => rows.push({step, n: i + 1, of: list.length, ev}));
  }
  return rows;
}

// eventsTable shows the matched events, one row each, with a column per
// field any of them has (in order of first appearance).
function eventsTable(alert, timeField) {
  const rows = stepRows(alert.events);
  const fields = [];
  for (const r of rows) {
    if (r.ev && typeof r.ev === 'object' && !Array.isArray(r.ev)) {
      for (const k of Object.keys(r.ev)) if (!fields.includes(k)) fields.push(k);
    }
  }
  const columns = [
    {label: 'Step', value: r => h('span', {class: 'step-name'}, r.of > 1 ? `${r.step} ${r.n}/${r.of}` : r.step)},
    {label: 'Event time', value: r => { const t = eventTime(r.ev, timeField); return t ? time(t) : '—'; }},
    ...fields.map(f => ({label: f, value: r => (r.ev && typeof r.ev === 'object' ? fieldText(r.ev[f]) : fieldText(r.ev))})),
  ];
  return h('div', {class: 'scroll-x', tabindex: 0, role: 'region', 'aria-label': 'Matched events (scrolls sideways)'},
    table(columns, rows, {
      caption: 'Matched events by step' + (timeField ? ` (event time: field ${timeField})` : ''),
      empty: 'The alert carries no events.',
      rowAttrs: r => ({class: 'matched-event', dataset: {step: r.step}}),
    }));
}

function measuresTable(alert) {
  const m = alert.measures;
  if (!m || typeof m !== 'object' || !Object.keys(m).length) return null;
  return h('section', {},
    h('h3', {}, 'Measures'),
    alert.window ? h('p', {class: 'meta'}, 'Window ', time(alert.window.start), ' – ', time(alert.window.end)) : null,
    table([
      {label: 'Measure', value: r => h('code', {}, r[0])},
      {label: 'Value', class: 'num', value: r => (r[1] === null ? '— (no value)' : fieldText(r[1]))},
    ], Object.entries(m), {caption: 'The aggregate\'s measures when the alert fired'}));
}

// explainHash is the explain page pre-filled with the alert's ruleset,
// rule and key.
export function explainHash(alert) {
  return '#/explain' + api.query({ruleset: alert.ruleset, rule: alert.rule, key: alert.key});
}

// isPattern tells a pattern rule's alert (it has an automaton to picture):
// its events are under step names, where a when rule's are under "event"
// and an aggregate's alert carries measures.
function isPattern(alert) {
  const steps = Object.keys(alert.events || {});
  return !alert.measures && steps.length > 0 && !(steps.length === 1 && steps[0] === 'event');
}

function kv(pairs) {
  return h('dl', {class: 'kv'}, pairs.filter(p => p && p[1] !== null && p[1] !== undefined && p[1] !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// showAlert opens the alert's detail in a modal dialog appended to host;
// closing it gives the focus back to returnFocus.
let opening = false;

export async function showAlert(host, alert, returnFocus) {
  if (opening || host.querySelector('dialog.alert-detail')) return null;
  opening = true;
  let timeField;
  try {
    timeField = await eventTimeField(alert.ruleset);
  } finally {
    opening = false;
  }
  if (!host.isConnected) return null;
  const labels = Object.entries(alert.labels || {});
  const dialog = h('dialog', {class: 'alert-detail', 'aria-labelledby': 'alert-detail-title'});
  const close = () => dialog.close();
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (returnFocus && returnFocus.isConnected) returnFocus.focus();
  });
  replace(dialog,
    h('div', {class: 'dialog-head'},
      h('h2', {id: 'alert-detail-title'}, severityBadge(alert.severity), ' ', alert.rule, alert.timeout ? ' (timed out)' : ''),
      h('button', {type: 'button', class: 'close', onclick: close, 'aria-label': 'Close the alert\'s detail'}, 'Close')),
    alert.summary ? h('p', {class: 'summary'}, alert.summary) : null,
    kv([
      ['Rule', h('code', {}, alert.rule)],
      ['Ruleset', h('code', {}, alert.ruleset)],
      ['Severity', severityBadge(alert.severity)],
      ['Key', h('code', {class: 'alert-key'}, alert.key)],
      ['Start', time(alert.start)],
      ['End', time(alert.end)],
      ['Detected', time(alert.detected_at)],
      ['Labels', labels.length ? labels.map(([k, v]) => h('span', {class: 'label'}, `${k}: ${v}`)) : null],
      ['Alert id', h('code', {}, alert.id)],
      ['Rule version', h('code', {}, alert.rule_version)],
      ['Position', alert.position ? h('code', {class: 'alert-position'}, alert.position) : null],
      ['Shadow', alert.shadow ? 'yes: an alert of the ruleset\'s shadow version' : null],
      ['Shrunk', (alert.truncated || []).length ? `to fit a Kafka record: ${alert.truncated.join(', ')}` : null],
    ]),
    h('p', {class: 'toolbar'}, h('a', {href: explainHash(alert), class: 'btn explain-link', onclick: close}, 'Explain this key'),
      isPattern(alert) ? h('a', {href: `#/rulesets/${api.enc(alert.ruleset)}/rules/${api.enc(alert.rule)}/picture`, class: 'btn picture-link', onclick: close}, 'Picture of the rule') : null),
    measuresTable(alert),
    h('h3', {}, 'Matched events'),
    eventsTable(alert, timeField));
  host.appendChild(dialog);
  dialog.showModal();
  dialog.querySelector('button.close').focus();
  return dialog;
}
