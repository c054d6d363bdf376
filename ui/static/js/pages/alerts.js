// Alerts: the live alert stream (GET /v1/alerts:subscribe) with the API's
// filters, newest first, pausable without losing an alert, and each
// alert's detail.
import * as api from '../api.js';
import {h, replace, errorBox, time, severityBadge} from '../dom.js';
import {showAlert} from '../alertview.js';

// The page keeps the newest maxShown alerts; older ones leave the list.
const maxShown = 500;
// Recent alerts shown when the page opens (ListAlerts), before the stream.
const recentCount = 50;
// Ids remembered to drop the duplicates an at-least-once resume may bring.
const maxSeen = 5000;

const severities = ['info', 'low', 'medium', 'high', 'critical'];
const filterNames = ['ruleset', 'rule', 'min_severity', 'key', 'filter'];

export async function render(main, params, ctx) {
  const search = params.search;
  const filters = {};
  for (const f of filterNames) filters[f] = search.get(f) || '';
  let startAfter = search.get('after') || '';

  let rulesets = [];
  try {
    const res = await api.get('/v1/rulesets' + api.query({page_size: 1000}));
    rulesets = res.rulesets || [];
  } catch (e) {
    if (e.status === 401) throw e;
    // The filters fall back to free text without the rulesets.
  }

  const alerts = []; // newest first, at most maxShown
  const seen = new Set();
  const seenOrder = [];
  let received = 0;
  let lastPosition = '';
  let paused = false;
  let pausedAt = '';
  let ctl = null;
  let closed = false;
  // retries counts the reconnections since the stream was last live;
  // retryTimer is the pending one.
  let retries = 0;
  let retryTimer = null;
  const maxRetryDelay = 30000;

  // --- the filter form ---------------------------------------------------
  const rulesetSelect = h('select', {id: 'f-ruleset', name: 'ruleset'},
    h('option', {value: ''}, '(any)'),
    rulesets.map(rs => h('option', {value: rs.name}, rs.name)));
  const ruleSelect = h('select', {id: 'f-rule', name: 'rule'});
  const fillRules = (want) => {
    const ids = [];
    for (const rs of rulesets) {
      if (rulesetSelect.value && rs.name !== rulesetSelect.value) continue;
      for (const r of rs.rules || []) if (!ids.includes(r.id)) ids.push(r.id);
    }
    if (want && !ids.includes(want)) ids.push(want);
    replace(ruleSelect, h('option', {value: ''}, '(any)'), ids.map(id => h('option', {value: id}, id)));
    ruleSelect.value = want || '';
  };
  if (filters.ruleset && !rulesets.some(rs => rs.name === filters.ruleset)) {
    rulesetSelect.appendChild(h('option', {value: filters.ruleset}, filters.ruleset));
  }
  rulesetSelect.value = filters.ruleset;
  fillRules(filters.rule);
  rulesetSelect.addEventListener('change', () => fillRules(ruleSelect.value));

  const sevSelect = h('select', {id: 'f-min-severity', name: 'min_severity'},
    h('option', {value: ''}, '(any)'), severities.map(s => h('option', {value: s}, s)));
  sevSelect.value = filters.min_severity;
  const keyInput = h('input', {id: 'f-key', name: 'key', type: 'text', value: filters.key, autocomplete: 'off', spellcheck: 'false'});
  const celInput = h('input', {id: 'f-filter', name: 'filter', type: 'text', class: 'wide', value: filters.filter, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'alert.labels.team == "fraud"', 'aria-describedby': 'f-filter-help'});
  const afterInput = h('input', {id: 'f-after', name: 'after', type: 'text', value: startAfter, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'f-after-help'});

  const field = (id, label, control, help) => h('div', {},
    h('label', {for: id}, label), control, help ? h('span', {id: id + '-help', class: 'help muted'}, help) : null);

  const form = h('form', {class: 'alert-filters', 'aria-label': 'Alert filters', onsubmit: (ev) => {
    ev.preventDefault();
    filters.ruleset = rulesetSelect.value;
    filters.rule = ruleSelect.value;
    filters.min_severity = sevSelect.value;
    filters.key = keyInput.value.trim();
    filters.filter = celInput.value.trim();
    startAfter = afterInput.value.trim();
    const hash = '#/alerts' + api.query({...filters, after: startAfter});
    history.replaceState(null, '', hash);
    restart();
  }},
  h('div', {class: 'form-row'},
    field('f-ruleset', 'Ruleset', rulesetSelect),
    field('f-rule', 'Rule', ruleSelect),
    field('f-min-severity', 'Minimum severity', sevSelect),
    field('f-key', 'Key', keyInput)),
  h('div', {class: 'form-row'},
    field('f-filter', 'CEL filter', celInput, 'A bool expression over alert (alert.severity, alert.labels.team, alert.events.STEP[0].FIELD).'),
    field('f-after', 'Start after position', afterInput, 'An alert\'s position (in its detail): the stream starts with the alerts after it.'),
    h('div', {}, h('button', {type: 'submit', class: 'primary'}, 'Apply'))));

  // --- stream controls and the list ---------------------------------------
  const pauseButton = h('button', {type: 'button', id: 'pause', 'aria-pressed': 'false', onclick: () => (paused ? resume() : pause())}, 'Pause');
  const clearButton = h('button', {type: 'button', onclick: () => { alerts.length = 0; received = 0; replace(tbody); drawCount(); }}, 'Clear list');
  const status = h('div', {class: 'stream-status', id: 'stream-status', role: 'status', 'aria-live': 'polite'});
  const problem = h('div', {'aria-live': 'assertive'});
  const count = h('p', {class: 'meta', id: 'alert-count'});
  const tbody = h('tbody', {});
  const tableEl = h('table', {class: 'grid alerts'},
    h('caption', {}, 'Alerts, newest first. Select a row (click or Enter) for its detail.'),
    h('thead', {}, h('tr', {},
      ['Detected', 'Severity', 'Rule', 'Key', 'Summary', 'Start'].map(l => h('th', {scope: 'col'}, l)),
      h('th', {scope: 'col'}, h('span', {class: 'visually-hidden'}, 'Detail')))),
    tbody);
  const empty = h('p', {class: 'empty'}, 'No alert yet. Alerts that pass the filters appear here as the rules fire.');

  replace(main,
    h('h1', {}, 'Alerts'),
    form,
    h('div', {class: 'toolbar'}, pauseButton, clearButton, status),
    problem,
    count,
    empty,
    tableEl);

  function setStatus(state, text) {
    status.dataset.state = state;
    replace(status, h('span', {class: `dot dot-${state}`, 'aria-hidden': 'true'}), ' ', text);
  }

  function drawCount() {
    tableEl.hidden = alerts.length === 0;
    empty.hidden = alerts.length !== 0;
    replace(count, alerts.length === 0 ? '' :
      received > alerts.length
        ? `Showing the newest ${alerts.length} of ${received} alerts received; older ones left the list (it keeps ${maxShown}).`
        : `${alerts.length} alert${alerts.length === 1 ? '' : 's'}.`);
  }

  function row(a) {
    const open = () => showAlert(main, a, tr);
    const tr = h('tr', {class: `alert-row sev-row-${a.severity || 'none'}`, tabindex: 0, dataset: {id: a.id, rule: a.rule, key: a.key},
      onclick: open,
      onkeydown: (ev) => {
        if (ev.target !== tr) return; // the Detail button clicks by itself
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(); }
      }},
    h('td', {}, time(a.detected_at)),
    h('td', {}, severityBadge(a.severity)),
    h('td', {}, h('span', {class: 'muted'}, a.ruleset + '/'), h('code', {class: 'rule-id'}, a.rule), a.timeout ? ' (timed out)' : ''),
    h('td', {}, h('code', {}, a.key)),
    h('td', {class: 'summary'}, a.summary || ''),
    h('td', {}, time(a.start)),
    h('td', {}, h('button', {type: 'button', class: 'link', 'aria-label': `Detail of ${a.ruleset}/${a.rule} for ${a.key}`}, 'Detail')));
    return tr;
  }

  // add puts an alert at the top (newest first), or at the bottom for
  // the recent ones listed newest first.
  function add(a, atEnd) {
    if (a.position && !atEnd) lastPosition = a.position;
    if (seen.has(a.id)) return;
    seen.add(a.id);
    seenOrder.push(a.id);
    if (seenOrder.length > maxSeen) seen.delete(seenOrder.shift());
    received++;
    if (atEnd) {
      if (alerts.length >= maxShown) return;
      alerts.push(a);
      tbody.appendChild(row(a));
    } else {
      alerts.unshift(a);
      tbody.insertBefore(row(a), tbody.firstChild);
      while (alerts.length > maxShown) {
        alerts.pop();
        tbody.lastChild.remove();
      }
    }
    drawCount();
  }

  function stop() {
    if (ctl) ctl.abort();
    ctl = null;
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = null;
  }

  // A stream the network broke, or the server ended (a restart, a
  // rollout), is opened again after a pause that doubles from 1 s up to
  // 30 s, after the last alert seen: nothing is missed and nothing is
  // shown twice. One the server refused (a filter, a token no longer
  // valid) is not: retrying cannot change the answer.
  function retryable(e) {
    return !e || !e.status || e.status === 408 || e.status === 429 || e.status >= 500;
  }

  function reconnect(why) {
    ctl = null;
    const delay = Math.min(maxRetryDelay, 1000 * 2 ** retries);
    retries++;
    setStatus('reconnecting', `${why} Reconnecting in ${Math.round(delay / 1000)} s` +
      (lastPosition ? ', after the last alert seen' : '') + ' (attempt ' + retries + ').');
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (!closed && !paused) connect();
    }, delay);
  }

  function connect() {
    stop();
    const mine = new AbortController();
    ctl = mine;
    const after = lastPosition || pausedAt || startAfter;
    replace(problem);
    setStatus('connecting', after ? 'Connecting, to resume after position ' + after + '…' : 'Connecting…');
    const path = '/v1/alerts:subscribe' + api.query({...filters, after});
    api.stream(path, (a) => {
      if (mine.signal.aborted) return;
      add(a, false);
    }, {signal: mine.signal, onOpen: () => {
      if (mine.signal.aborted) return;
      retries = 0;
      setStatus('live', 'Live: new alerts appear at the top.');
    }})
      .then(() => {
        if (mine.signal.aborted || closed) return;
        reconnect('The server ended the stream.');
      })
      .catch((e) => {
        if (mine.signal.aborted || closed) return;
        if (retryable(e)) {
          reconnect(`The connection was lost: ${e.message}.`);
          return;
        }
        ended(null, e);
      });
  }

  // ended leaves the stream stopped after the server or the network ended
  // it; Resume reconnects from the last alert seen.
  function ended(message, err) {
    ctl = null;
    paused = true;
    pauseButton.textContent = 'Resume';
    pauseButton.setAttribute('aria-pressed', 'true');
    setStatus('stopped', message || 'The stream stopped.' + (lastPosition ? ' Resume continues after the last alert seen.' : ''));
    if (err) replace(problem, errorBox(err));
  }

  async function pause() {
    paused = true;
    stop();
    pauseButton.textContent = 'Resume';
    pauseButton.setAttribute('aria-pressed', 'true');
    const at = lastPosition || startAfter;
    if (at) {
      setStatus('paused', 'Paused. Resume continues after position ' + at + ', missing nothing.');
      return;
    }
    // No alert seen yet: the newest alert of the topic marks where the
    // pause began, so that Resume misses none of the alerts after it.
    setStatus('paused', 'Paused.');
    try {
      const res = await api.get('/v1/alerts' + api.query({page_size: 1}));
      const newest = (res.alerts || [])[0];
      if (newest && paused && !lastPosition) {
        pausedAt = newest.position;
        setStatus('paused', 'Paused. Resume continues after position ' + pausedAt + ', missing nothing.');
      }
    } catch (e) {
      // Without a position Resume starts with the alerts from then on.
    }
  }

  function resume() {
    paused = false;
    pauseButton.textContent = 'Pause';
    pauseButton.setAttribute('aria-pressed', 'false');
    connect();
  }

  // restarts counts the restarts, so that a slow listing of recent
  // alerts cannot fill the list of a later one.
  let restarts = 0;

  async function restart() {
    const mine = ++restarts;
    stop();
    alerts.length = 0;
    seen.clear();
    seenOrder.length = 0;
    received = 0;
    lastPosition = '';
    pausedAt = '';
    replace(tbody);
    replace(problem);
    drawCount();
    paused = false;
    pauseButton.textContent = 'Pause';
    pauseButton.setAttribute('aria-pressed', 'false');
    if (!startAfter) {
      // The recent alerts first, then the stream after the newest of
      // them, so that nothing between the two is missed.
      setStatus('connecting', 'Loading the recent alerts…');
      try {
        const res = await api.get('/v1/alerts' + api.query({...filters, page_size: recentCount}));
        if (closed || mine !== restarts) return;
        const recent = res.alerts || [];
        for (const a of recent) add(a, true);
        if (recent.length) lastPosition = recent[0].position;
      } catch (e) {
        if (closed || mine !== restarts) return;
        if (e.status === 400 || e.status === 401 || e.status === 403) {
          ended('The filters were refused.', e);
          return;
        }
        replace(problem, errorBox(e));
      }
    }
    if (!closed) connect();
  }

  drawCount();
  restart();
  return () => { closed = true; stop(); };
}
