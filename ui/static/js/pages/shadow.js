// Shadow: the candidate version running beside a live ruleset, its alerts
// compared per rule with the live version's since it started, and the
// buttons to promote or drop it. Route: #/rulesets/:name/shadow.
import * as api from '../api.js';
import {h, replace, table, time, errorBox} from '../dom.js';
import {unifiedDiff} from '../diffview.js';
import {alertsTable} from '../testalerts.js';
import {confirmAction} from '../confirm.js';

export async function render(main, params, ctx) {
  const name = params.name;
  const base = `/v1/rulesets/${api.enc(name)}`;
  const write = ctx.can('rules:write');
  const live = await api.get(base);
  let shadow = null;
  try {
    shadow = await api.get(`${base}/shadow`);
  } catch (e) {
    if (e.status !== 404) throw e;
  }
  const links = h('p', {class: 'meta'}, 'Live version ', h('strong', {class: 'live-version'}, String(live.version)),
    ' · ', h('a', {href: `#/rulesets/${api.enc(name)}/edit`}, write ? 'Edit' : 'View source'),
    ' · ', h('a', {href: `#/rulesets/${api.enc(name)}/versions`}, 'Versions'),
    ' · ', h('a', {href: '#/rulesets'}, 'All rulesets'));

  if (!shadow) {
    replace(main, h('h1', {}, `Shadow of ${name}`), links,
      h('div', {class: 'empty no-shadow'},
        h('p', {}, `${name} has no shadow. A shadow is a candidate version that runs beside the live one on every instance, on the same events, with its alerts kept apart, so that you can compare them before it goes live.`),
        write
          ? h('p', {}, 'To start one, open the ', h('a', {href: `#/rulesets/${api.enc(name)}/edit`}, 'editor'), ', change the source and press ', h('strong', {}, 'Push as shadow'), '.')
          : h('p', {}, 'A token with rules:write can start one from the editor (Push as shadow).'),
        h('p', {}, 'Or from a shell: ', h('code', {class: 'shell'}, `jq -n --rawfile src ${name}.yaml '{source: $src}' | curl -X PUT -H "Authorization: Bearer $TOKEN" ${location.origin}${base}/shadow --data-binary @-`))));
    return;
  }

  const diffBox = h('div', {class: 'shadow-diff', 'aria-live': 'polite'});
  async function loadDiff() {
    if (!ctx.can('alerts:read')) {
      replace(diffBox, h('p', {class: 'empty'}, 'Comparing the alerts needs a token with alerts:read.'));
      return;
    }
    replace(diffBox, h('p', {class: 'muted'}, 'Comparing alerts…'));
    try {
      const d = await api.get(`${base}/shadow:diff` + api.query({examples: 5}));
      replace(diffBox, diffView(d, live.rules || [], shadow.rules || []));
    } catch (e) {
      replace(diffBox, errorBox(e));
    }
  }

  async function promote() {
    const ok = await confirmAction({
      title: `Promote the shadow of ${name}?`,
      message: h('p', {}, `The shadow's source becomes a new live version of ${name} (now version ${live.version}), every instance runs it within a second, and the shadow is dropped.`),
      confirmLabel: 'Promote',
    });
    if (!ok) return;
    try {
      const res = await api.post(`${base}/shadow:promote`, {});
      ctx.notify(`Promoted: version ${res.version} of ${name} is live.`, 'ok');
      await render(main, params, ctx);
    } catch (e) {
      ctx.notify(errorBox(e), 'error');
    }
  }

  async function drop() {
    const ok = await confirmAction({
      title: `Drop the shadow of ${name}?`,
      message: h('p', {}, 'The shadow stops on every instance; its partial matches and comparison are gone. The live version is not changed.'),
      confirmLabel: 'Drop shadow',
      danger: true,
    });
    if (!ok) return;
    try {
      await api.del(`${base}/shadow`);
      ctx.notify(`Dropped the shadow of ${name}.`, 'ok');
      await render(main, params, ctx);
    } catch (e) {
      ctx.notify(errorBox(e), 'error');
    }
  }

  replace(main,
    h('h1', {}, `Shadow of ${name}`),
    links,
    h('p', {class: 'shadow-state'}, h('span', {class: 'badge badge-shadow'}, 'shadow'),
      ` deployed beside version ${shadow.live_version}, running since `, time(shadow.start_time),
      `: ${shadow.rules ? shadow.rules.length : 0} rules.`),
    h('div', {class: 'toolbar'},
      write ? h('button', {type: 'button', class: 'primary promote', onclick: promote}, 'Promote') : null,
      write ? h('button', {type: 'button', class: 'danger drop', onclick: drop}, 'Drop') : null,
      h('button', {type: 'button', class: 'refresh-diff', onclick: loadDiff}, 'Refresh comparison')),
    h('h2', {}, 'Alerts, live against shadow'),
    diffBox,
    h('details', {class: 'shadow-source'},
      h('summary', {}, 'Source changes against the live version'),
      unifiedDiff(live.source, shadow.source, `live version ${live.version}`, 'shadow')));
  await loadDiff();
}

function diffView(d, liveRules, shadowRules) {
  const rules = d.rules || [];
  const n = (v) => String(v ?? 0);
  const presence = (r) => (r.in_old && r.in_new ? 'both' : r.in_new ? 'shadow only' : r.in_old ? 'live only' : '—');
  return h('div', {},
    h('p', {class: d.differ ? 'differ' : 'same'}, d.differ
      ? 'The shadow\'s alerts differ from the live version\'s.'
      : 'No difference so far: both versions produced the same alerts.',
    ' Compared since ', time(d.start_time), '.'),
    table([
      {label: 'Rule', value: r => h('code', {}, r.rule)},
      {label: 'In', value: presence},
      {label: 'Both', class: 'num both', value: r => n(r.both)},
      {label: 'Live only', class: 'num only-live', value: r => n(r.only_old)},
      {label: 'Shadow only', class: 'num only-shadow', value: r => n(r.only_new)},
      {label: 'Live total', class: 'num live-total', value: r => String(Number(r.both || 0) + Number(r.only_old || 0))},
      {label: 'Shadow total', class: 'num shadow-total', value: r => String(Number(r.both || 0) + Number(r.only_new || 0))},
    ], rules, {caption: 'Alerts per rule since the shadow started', empty: 'No rules to compare.',
      rowAttrs: r => ({class: `rule-diff${Number(r.only_old || 0) || Number(r.only_new || 0) ? ' differs' : ''}`, dataset: {rule: r.rule}})}),
    rules.filter(r => (r.only_old_examples || []).length || (r.only_new_examples || []).length).map(r =>
      h('details', {class: 'diff-examples', dataset: {rule: r.rule}},
        h('summary', {}, `Examples of ${r.rule}: ${n(r.only_old)} live only, ${n(r.only_new)} shadow only`),
        (r.only_old_examples || []).length ? alertsTable(r.only_old_examples, {caption: `Alerts only the live version produced (${r.rule})`, rules: liveRules}) : null,
        (r.only_new_examples || []).length ? alertsTable(r.only_new_examples, {caption: `Alerts only the shadow produced (${r.rule})`, rules: shadowRules}) : null)));
}
