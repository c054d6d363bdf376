// Alerts of a test run or of a shadow comparison, as a table: rule,
// severity, key, time, summary, and the matched events per step behind a
// disclosure.
import {h, table, time, severityBadge} from './dom.js';

// alertsTable lists alerts; limit caps the rows drawn (the rest are
// counted below the table). rules, the Rule messages of the ruleset, put
// each alert's steps in pattern order (the JSON has them by name).
export function alertsTable(alerts, {caption, empty = 'No alerts.', limit = 200, rules = []} = {}) {
  const stepOrder = new Map(rules.map(r => [r.id, r.steps || []]));
  const shown = alerts.slice(0, limit);
  return h('div', {class: 'alerts'},
    table([
      {label: 'Rule', value: a => h('code', {class: 'alert-rule'}, a.rule)},
      {label: 'Severity', value: a => severityBadge(a.severity)},
      {label: 'Key', value: a => h('code', {class: 'alert-key'}, a.key)},
      {label: 'Time', value: a => [time(a.start), a.end && a.end !== a.start ? [' – ', time(a.end)] : null]},
      {label: 'Summary', value: a => [a.summary, a.timeout ? h('span', {class: 'badge'}, 'timeout') : null]},
      {label: 'Matched events', value: a => matchedEvents(a, stepOrder.get(a.rule) || [])},
    ], shown, {caption, empty, rowAttrs: a => ({class: 'alert-row', dataset: {rule: a.rule}})}),
    alerts.length > shown.length ? h('p', {class: 'muted'}, `${alerts.length - shown.length} more alerts not shown.`) : null);
}

// matchedEvents shows an alert's events by step, folded.
function matchedEvents(a, order) {
  const rank = (step) => { const i = order.indexOf(step); return i < 0 ? order.length : i; };
  const steps = Object.entries(a.events || {}).sort(([x], [y]) => rank(x) - rank(y));
  if (!steps.length) return h('span', {class: 'muted'}, '—');
  const total = steps.reduce((n, [, evs]) => n + (evs || []).length, 0);
  return h('details', {class: 'matched'},
    h('summary', {}, `${total} ${total === 1 ? 'event' : 'events'} in ${steps.length} ${steps.length === 1 ? 'step' : 'steps'}`),
    steps.map(([step, evs]) => h('div', {class: 'step'},
      h('div', {class: 'step-name'}, h('code', {}, step), ` (${(evs || []).length})`),
      (evs || []).map(e => h('pre', {class: 'event-json'}, JSON.stringify(e))))));
}
