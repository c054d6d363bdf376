// Rulesets: every ruleset of the registry, its live and shadow state, its
// rules with their alerts of the last hour and open partial matches, and
// links to edit it, see its history and its shadow.
import * as api from '../api.js';
import {h, replace, table, time, severityBadge, errorBox} from '../dom.js';
import {confirmAction} from '../confirm.js';

// optional calls a read that a server may not have yet (an older serve, or
// a route still being added): its absence (404 of the route, 501) or any
// other failure is null, and the page shows "—" for what it would have said.
async function optional(path) {
  try {
    return {value: await api.get(path)};
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    return {value: null, error: e};
  }
}

export async function render(main, params, ctx) {
  const rulesets = [];
  let page = '';
  do {
    const res = await api.get('/v1/rulesets' + api.query({page_size: 1000, page_token: page}));
    rulesets.push(...(res.rulesets || []));
    page = res.next_page_token || '';
  } while (page);

  // Shadows and figures, per ruleset, side by side.
  const extra = await Promise.all(rulesets.map(async rs => {
    const [shadow, stats] = await Promise.all([
      optional(`/v1/rulesets/${api.enc(rs.name)}/shadow`),
      optional(`/v1/rulesets/${api.enc(rs.name)}/stats`),
    ]);
    return {shadow, stats};
  }));

  const write = ctx.can('rules:write');
  const rerender = () => render(main, params, ctx);

  replace(main,
    h('div', {class: 'page-head'},
      h('h1', {}, 'Rulesets'),
      h('div', {class: 'toolbar'},
        write ? h('a', {class: 'btn primary new-ruleset', href: '#/new'}, 'New ruleset') : null,
        h('button', {type: 'button', class: 'refresh', onclick: rerender}, 'Refresh'))),
    rulesets.length ? null : h('p', {class: 'empty'}, 'No rulesets yet. ',
      write ? [h('a', {href: '#/new'}, 'Write one'), ', upload one with '] : 'Upload one with ',
      h('code', {}, 'shrike rules push'), ' or start serve with ', h('code', {}, '--rules DIR'), '.'),
    rulesets.map((rs, i) => rulesetSection(rs, extra[i], ctx, rerender)));
}

function rulesetSection(rs, {shadow, stats}, ctx, rerender) {
  const write = ctx.can('rules:write');
  const base = `#/rulesets/${api.enc(rs.name)}`;
  const statsByRule = new Map();
  const shadowStatsByRule = new Map();
  for (const r of (stats.value && stats.value.rules) || []) {
    (r.shadow ? shadowStatsByRule : statsByRule).set(r.rule, r);
  }
  const hasShadow = !!shadow.value;
  const figure = (m, rule, field) => {
    if (!stats.value) return h('span', {class: 'muted', title: statsUnavailable(stats.error)}, '—');
    const r = m.get(rule);
    if (!r) return h('span', {class: 'muted', title: 'no figures for this rule'}, '—');
    const suppressed = Number(r.suppressed_last_hour || 0);
    return field === 'alerts_last_hour' && suppressed
      ? h('span', {title: `${suppressed} more suppressed as repeats`}, String(r[field] ?? 0), h('span', {class: 'muted'}, ` (+${suppressed} suppressed)`))
      : String(r[field] ?? 0);
  };

  const columns = [
    {label: 'Rule', value: r => h('code', {class: 'rule-id'}, r.id)},
    {label: 'Severity', value: r => severityBadge(r.severity)},
    {label: 'Description', value: r => r.description || ''},
    {label: 'Version', value: r => h('code', {}, r.version)},
    {label: 'Enabled', value: r => (r.enabled ? 'yes' : 'no')},
    {label: 'Alerts (last hour)', class: 'num alerts-last-hour', value: r => figure(statsByRule, r.id, 'alerts_last_hour')},
    {label: 'Open partial matches', class: 'num partial-matches', value: r => figure(statsByRule, r.id, 'open_partial_matches')},
  ];
  if (hasShadow && stats.value) {
    columns.push({label: 'Shadow alerts (last hour)', class: 'num shadow-alerts', value: r => figure(shadowStatsByRule, r.id, 'alerts_last_hour')});
  }
  columns.push({label: 'Picture', value: r => (r.steps && r.steps.length
    ? h('a', {class: 'picture', href: `${base}/rules/${api.enc(r.id)}/picture`, 'aria-label': `Picture of ${r.id}`}, 'Picture')
    : h('span', {class: 'muted', title: 'only pattern rules have an automaton'}, '—'))});

  const state = h('p', {class: 'state'},
    h('span', {class: 'badge badge-live'}, 'live'), ` version ${rs.version}`,
    hasShadow
      ? [' · ', h('a', {class: 'badge badge-shadow', href: `${base}/shadow`}, 'shadow'),
        ` running since `, time(shadow.value.start_time), ` beside version ${shadow.value.live_version}`]
      : [' · ', h('span', {class: 'muted no-shadow'}, shadow.error && shadow.error.status !== 404 ? `shadow unknown (${shadow.error.message})` : 'no shadow')],
    stats.value && stats.value.gather_time
      ? [' · figures of ', String(stats.value.instances), stats.value.instances === 1 ? ' instance' : ' instances', ' at ', time(stats.value.gather_time)]
      : null);

  const actions = h('div', {class: 'toolbar ruleset-actions'},
    h('a', {class: 'btn edit-link', href: `${base}/edit`}, write ? 'Edit' : 'View source'),
    h('a', {class: 'btn versions-link', href: `${base}/versions`}, 'Versions'),
    h('a', {class: 'btn shadow-link', href: `${base}/shadow`}, 'Shadow'),
    write ? h('button', {type: 'button', class: 'rollback', onclick: () => rollback(rs, ctx, rerender)}, 'Roll back') : null,
    write ? h('button', {type: 'button', class: 'danger delete', onclick: () => remove(rs, ctx, rerender)}, 'Delete') : null);

  return h('section', {class: 'ruleset', 'aria-labelledby': `rs-${rs.name}`, dataset: {ruleset: rs.name}},
    h('h2', {id: `rs-${rs.name}`}, rs.name, ' ', h('span', {class: 'muted version'}, `version ${rs.version}`)),
    rs.description ? h('p', {}, rs.description) : null,
    h('p', {class: 'meta'}, 'Topic ', h('code', {}, rs.topic || '—'), ' · updated ', time(rs.update_time)),
    state,
    actions,
    table(columns, rs.rules || [], {caption: `Rules of ${rs.name}`, empty: 'This ruleset has no rules.', rowAttrs: r => ({dataset: {rule: r.id}})}));
}

function statsUnavailable(err) {
  if (!err) return 'figures unavailable';
  if (err.status === 404 || err.status === 501) return 'this server does not report rule figures';
  return `figures unavailable: ${err.message}`;
}

async function rollback(rs, ctx, rerender) {
  const ok = await confirmAction({
    title: `Roll back ${rs.name}?`,
    message: h('p', {}, `Version ${rs.version} is live. Rolling back stores the previous version's source as a new version, and every instance runs it within a second.`),
    confirmLabel: 'Roll back',
  });
  if (!ok) return;
  try {
    const res = await api.post(`/v1/rulesets/${api.enc(rs.name)}:rollback`, {});
    await rerender();
    ctx.notify(`Rolled ${rs.name} back: version ${res.version} is live.`, 'ok');
  } catch (e) {
    ctx.notify(errorBox(e), 'error');
  }
}

async function remove(rs, ctx, rerender) {
  const ok = await confirmAction({
    title: `Delete ${rs.name}?`,
    message: h('p', {}, `Its rules stop on every instance and their partial matches are dropped. The history stays: rolling back to a version brings it back.`),
    confirmLabel: 'Delete',
    danger: true,
  });
  if (!ok) return;
  try {
    await api.del(`/v1/rulesets/${api.enc(rs.name)}`);
    await rerender();
    ctx.notify(h('span', {}, `Deleted ${rs.name}. Its history stays: `,
      h('a', {href: `#/rulesets/${api.enc(rs.name)}/versions`}, 'roll back to a version'), ' to bring it back.'), 'ok');
  } catch (e) {
    ctx.notify(errorBox(e), 'error');
  }
}
