// Rulesets: every ruleset of the registry and its rules.
import * as api from '../api.js';
import {h, replace, table, time, severityBadge} from '../dom.js';

export async function render(main, params, ctx) {
  const rulesets = [];
  let page = '';
  do {
    const res = await api.get('/v1/rulesets' + api.query({page_size: 1000, page_token: page}));
    rulesets.push(...(res.rulesets || []));
    page = res.next_page_token || '';
  } while (page);

  replace(main,
    h('h1', {}, 'Rulesets'),
    rulesets.length ? null : h('p', {class: 'empty'}, 'No rulesets yet. Upload one with ',
      h('code', {}, 'shrike rules push'), ' or start serve with ', h('code', {}, '--rules DIR'), '.'),
    rulesets.map(rs => h('section', {class: 'ruleset', 'aria-labelledby': `rs-${rs.name}`, dataset: {ruleset: rs.name}},
      h('h2', {id: `rs-${rs.name}`}, rs.name, ' ', h('span', {class: 'muted'}, `version ${rs.version}`)),
      rs.description ? h('p', {}, rs.description) : null,
      h('p', {class: 'meta'}, 'Topic ', h('code', {}, rs.topic || '—'), ' · updated ', time(rs.update_time)),
      table([
        {label: 'Rule', value: r => h('code', {class: 'rule-id'}, r.id)},
        {label: 'Severity', value: r => severityBadge(r.severity)},
        {label: 'Description', value: r => r.description || ''},
        {label: 'Version', value: r => h('code', {}, r.version)},
        {label: 'Enabled', value: r => (r.enabled ? 'yes' : 'no')},
      ], rs.rules || [], {caption: `Rules of ${rs.name}`, empty: 'This ruleset has no rules.', rowAttrs: r => ({dataset: {rule: r.id}})}))));
}
