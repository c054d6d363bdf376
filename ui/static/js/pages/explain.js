// Explain: why a rule did or did not fire for one key over recorded events
// (POST /v1/rulesets:explain), as a timeline of the key's events and what
// each rule's partial matches made of them, under the verdicts.
import * as api from '../api.js';
import {h, replace, errorBox, table} from '../dom.js';
import {fieldText} from '../alertview.js';

// listRecordings pages through GET /v1/recordings; null when the server
// has no such call (an older server) or no recordings folder.
async function listRecordings() {
  const names = [];
  let page = '';
  try {
    do {
      const res = await api.get('/v1/recordings' + api.query({page_size: 1000, page_token: page}));
      for (const r of res.recordings || []) names.push(r.name);
      page = res.next_page_token || '';
    } while (page && names.length < 10000);
  } catch (e) {
    if (e.status === 401) throw e;
    return {names: null, error: e};
  }
  return {names, error: null};
}

// utc shows an RFC 3339 time as the trace has it (UTC), which is what the
// recording's events carry.
function utc(ts) {
  if (!ts) return '';
  return h('time', {datetime: ts}, ts.replace('T', ' ').replace('Z', ' UTC'));
}

// describeEnd says why a partial match ended (docs/explain.md).
export function describeEnd(e) {
  const win = () => `the ${e.window_of === 'step' ? 'step\'s' : 'rule\'s'} ${e.window || ''} window${e.since ? ` (from ${e.since})` : ''} closed` +
    (e.end_of_input ? ' at the end of the input' : e.deadline ? ` at ${e.deadline}` : '') +
    (e.at && !e.end_of_input ? `, noticed when the watermark reached ${e.at}` : '');
  switch (e.reason) {
    case 'window_expired': return 'window expired: ' + win();
    case 'timed_out': return 'timed out: ' + win() + '; a timeout alert follows';
    case 'contiguity_broken': return `contiguity broken: the record did not fit ${e.next_step || 'the next step'}, which allows nothing in between`;
    case 'negation': return `negation: the not step ${e.negated_step || ''} matched`;
    case 'skip_pruned': return 'pruned by the rule\'s skip strategy after an earlier match';
    case 'cap_dropped': return 'dropped by the cap on partial matches per key';
    case 'open': return 'still open, waiting at the end of the input';
    case 'completed': return 'completed without an alert of its own';
    default: return e.reason || 'ended';
  }
}

function ruleName(e) { return e.ruleset && e.rule ? `${e.ruleset}/${e.rule}` : (e.rule || ''); }

function heldEvents(events) {
  if (!events || !events.length) return '';
  return events.map(ev => `${ev.step}@${ev.position}`).join(', ');
}

// eventFields shows a traced record compactly: its fields as key: value.
function eventFields(e) {
  let ev = e.event;
  if (typeof ev === 'string') {
    try { ev = JSON.parse(ev); } catch (err) { return h('code', {class: 'event-json'}, ev); }
  }
  if (!ev || typeof ev !== 'object') return h('code', {class: 'event-json'}, fieldText(ev));
  return h('span', {class: 'event-fields'},
    Object.entries(ev).map(([k, v]) => [h('span', {class: 'kvpair'}, h('span', {class: 'k'}, k + ':'), ' ', fieldText(v)), ' ']),
    e.event_truncated ? h('span', {class: 'muted'}, ' (cut at 4,096 bytes)') : null);
}

// runLine tells one run entry as a sentence.
function runLine(e) {
  const at = e.step_index && e.steps ? ` (step ${e.step_index} of ${e.steps})` : '';
  const waits = e.next_step ? `; waits for ${e.next_step}` : '';
  const from = e.from ? `, split from run ${e.from}` : '';
  switch (e.action) {
    case 'started': return `run ${e.run} started: step ${e.step} took the record${at}${from}${waits}`;
    case 'took': return `run ${e.run} took the record at step ${e.step}${at}${from}${waits}`;
    case 'ignored': return `run ${e.run} ignored the record${waits}`;
    case 'completed': return `run ${e.run} completed: the match is whole (${heldEvents(e.events)})`;
    case 'ended': return `run ${e.run} ended: ${describeEnd(e)}` + (e.events && e.events.length ? ` (it held ${heldEvents(e.events)})` : '');
    default: return `run ${e.run}: ${e.action}`;
  }
}

function measuresText(m) {
  if (!m) return '';
  return Object.entries(m).map(([k, v]) => `${k} = ${v === null ? '—' : fieldText(v)}`).join(', ');
}

// item renders one trace entry other than a record or a condition.
function item(e) {
  const rule = h('span', {class: 'tl-rule'}, ruleName(e));
  switch (e.type) {
    case 'run':
      return h('li', {class: `tl-run act-${e.action}`, dataset: {action: e.action || ''}}, rule, ' ', runLine(e));
    case 'alert':
      return h('li', {class: 'tl-alert'}, rule, ' ', h('strong', {}, e.timeout ? 'Timeout alert ' : 'Alert '),
        h('code', {}, e.alert_id || ''), e.run ? ` from run ${e.run}` : '', e.events && e.events.length ? ` (${heldEvents(e.events)})` : '');
    case 'suppressed':
      return h('li', {class: 'tl-suppressed'}, rule, ` an alert of run ${e.run || '?'} was suppressed until ${e.until || '?'}`,
        e.suppressed_by ? ` (by alert ${e.suppressed_by})` : '');
    case 'aggregate':
      return h('li', {class: `tl-aggregate res-${e.result}`}, rule, ' ', `having `, h('code', {}, e.condition || ''), ` → ${e.result}`,
        e.error ? `: ${e.error}` : '', `; ${measuresText(e.measures)}; ${e.counted ?? 0} counted in `, utc(e.window_start), ' – ', utc(e.window_end));
    default:
      return h('li', {}, rule, ' ', e.type, ' ', JSON.stringify(e));
  }
}

// conditionLine tells one failed or erring condition: the step refused
// the record.
function conditionLine(e) {
  return h('li', {class: `tl-condition res-${e.result}`}, h('span', {class: 'tl-rule'}, ruleName(e)), ' ',
    e.step ? `step ${e.step}` : e.role, ` (${e.role}) `, e.result === 'error' ? 'raised an error on' : 'rejected the record', ': ',
    h('code', {}, e.condition || ''), e.result === 'error' ? ` → ${e.error}` : ' failed',
    e.run ? ` (for run ${e.run})` : ' (for a new match)');
}

// refusals are the conditions worth a line of their own: those that
// failed or erred for a new match, or for a run that has no entry of its
// own in the group (an ignored or ended run tells the refusal itself).
function refusals(g) {
  const told = new Set(g.items.filter(e => e.type === 'run').map(e => `${e.ruleset}/${e.rule}/${e.run}`));
  return g.conds.filter(c => c.result !== 'held' && (c.result === 'error' || !c.run || !told.has(`${c.ruleset}/${c.rule}/${c.run}`)));
}

function conditionsDetails(conds) {
  if (!conds.length) return null;
  const held = conds.filter(c => c.result === 'held').length;
  return h('details', {class: 'tl-conditions'},
    h('summary', {}, `${conds.length} condition${conds.length === 1 ? '' : 's'} evaluated: ${held} held, ${conds.length - held} did not`),
    table([
      {label: 'Rule', value: c => ruleName(c)},
      {label: 'Step', value: c => c.step || '—'},
      {label: 'Role', value: c => c.role || ''},
      {label: 'Condition', value: c => h('code', {}, c.condition || '')},
      {label: 'Result', value: c => h('span', {class: `res res-${c.result}`}, c.result + (c.error ? `: ${c.error}` : ''))},
      {label: 'Run', value: c => (c.run ? String(c.run) : 'new match')},
    ], conds, {caption: 'Conditions evaluated against this record'}));
}

// groups splits the trace into the key's records, each with what followed
// from it, and the moves of the stream's time between them (window
// expiries noticed by the watermark).
function groups(entries) {
  const out = [];
  let cur = null;
  for (const e of entries) {
    if (e.type === 'verdict') continue;
    if (e.type === 'event' || e.type === 'late') {
      cur = {record: e, items: [], conds: []};
      out.push(cur);
      continue;
    }
    const belongs = cur && cur.record && e.position && e.position === cur.record.position;
    if (!belongs && !(cur && !cur.record)) {
      cur = {record: null, items: [], conds: []};
      out.push(cur);
    }
    if (e.type === 'condition') cur.conds.push(e);
    else cur.items.push(e);
  }
  return out;
}

function timeline(entries) {
  const gs = groups(entries);
  if (!gs.length) return h('p', {class: 'empty'}, 'The recording holds no record of this key.');
  return h('ol', {class: 'timeline', 'aria-label': 'Trace of the key, in the order the matcher saw it'}, gs.map(g => {
    if (!g.record) {
      const first = g.items[0] || g.conds[0] || {};
      return h('li', {class: 'tl-group tl-time'},
        h('div', {class: 'tl-head'}, h('span', {class: 'tl-kind'}, 'Stream time'), ' ', utc(first.at || first.time || ''),
          first.end_of_input ? ' (end of the input)' : ''),
        h('ul', {class: 'tl-items'}, g.items.map(item), refusals(g).map(conditionLine)),
        conditionsDetails(g.conds));
    }
    const r = g.record;
    return h('li', {class: `tl-group tl-record${r.type === 'late' ? ' tl-late' : ''}`, dataset: {position: r.position || ''}},
      h('div', {class: 'tl-head'},
        h('span', {class: 'tl-kind'}, r.type === 'late' ? 'Late record (not matched)' : 'Record'), ' ',
        utc(r.time), ' ', h('code', {class: 'tl-pos'}, r.position || ''),
        r.watermark ? h('span', {class: 'muted'}, ' watermark after it ', utc(r.watermark)) : null),
      h('div', {class: 'tl-event'}, eventFields(r)),
      g.items.length || refusals(g).length
        ? h('ul', {class: 'tl-items'}, refusals(g).map(conditionLine), g.items.map(item))
        : h('p', {class: 'muted tl-none'}, 'No step took it.'),
      conditionsDetails(g.conds));
  }));
}

function verdictCard(v) {
  const fired = v.verdict === 'fired';
  const f = v.furthest;
  return h('div', {class: `verdict ${fired ? 'verdict-fired' : 'verdict-not'}`, dataset: {rule: v.rule || ''}},
    h('h3', {}, ruleName(v)),
    h('p', {class: 'verdict-word'}, fired ? `Fired ${v.fired} time${v.fired === 1 ? '' : 's'}` : 'Did not fire'),
    v.suppressed ? h('p', {}, `${v.suppressed} more alert${v.suppressed === 1 ? ' was' : 's were'} suppressed (alert.suppress).`) : null,
    (v.alert_ids || []).length ? h('p', {}, 'Alerts: ', v.alert_ids.map(id => [h('code', {}, id), ' '])) : null,
    f ? h('p', {}, `Got furthest: run ${f.run}, step ${f.step_index} of ${f.steps} (${f.step}${f.next_step ? `, waiting for ${f.next_step}` : ''}); `,
      describeEnd(f), f.events && f.events.length ? `; it held ${heldEvents(f.events)}` : '') : null,
    v.unmet_step ? h('p', {}, 'Still needed step ', h('code', {}, v.unmet_step), '.') : null,
    v.counted !== undefined ? h('p', {}, `Counted ${v.counted} record${v.counted === 1 ? '' : 's'}; measures after the last: ${measuresText(v.measures) || '—'}.`) : null,
    h('p', {class: 'meta'}, `${v.records ?? 0} record${v.records === 1 ? '' : 's'} of the key in the input`, v.steps ? `; the rule has ${v.steps} step${v.steps === 1 ? '' : 's'}` : '', '.',
      v.steps && v.counted === undefined && v.ruleset ? [' ', h('a', {href: `#/rulesets/${api.enc(v.ruleset)}/rules/${api.enc(v.rule)}/picture`, class: 'picture-link'}, 'Picture of the rule')] : null));
}

export async function render(main, params, ctx) {
  const search = params.search;
  const [rsRes, rec] = await Promise.all([
    api.get('/v1/rulesets' + api.query({page_size: 1000})),
    listRecordings(),
  ]);
  const rulesets = rsRes.rulesets || [];

  const rulesetSelect = h('select', {id: 'x-ruleset', name: 'ruleset', required: true},
    h('option', {value: ''}, '(choose a ruleset)'),
    rulesets.map(rs => h('option', {value: rs.name}, rs.name)));
  const ruleSelect = h('select', {id: 'x-rule', name: 'rule'});
  const fillRules = (want) => {
    const rs = rulesets.find(r => r.name === rulesetSelect.value);
    const ids = rs ? (rs.rules || []).map(r => r.id) : [];
    if (want && !ids.includes(want)) ids.push(want);
    replace(ruleSelect, h('option', {value: ''}, '(every rule)'), ids.map(id => h('option', {value: id}, id)));
    ruleSelect.value = want || '';
  };
  const wantRuleset = search.get('ruleset') || (rulesets.length === 1 ? rulesets[0].name : '');
  if (wantRuleset && !rulesets.some(rs => rs.name === wantRuleset)) rulesetSelect.appendChild(h('option', {value: wantRuleset}, wantRuleset));
  rulesetSelect.value = wantRuleset;
  fillRules(search.get('rule') || '');
  rulesetSelect.addEventListener('change', () => fillRules(''));

  const keyInput = h('input', {id: 'x-key', name: 'key', type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', value: search.get('key') || ''});
  const wantRecording = search.get('recording') || '';
  let recordingControl;
  let recordingNote = null;
  if (rec.names) {
    const names = [...rec.names];
    if (wantRecording && !names.includes(wantRecording)) names.push(wantRecording);
    recordingControl = h('select', {id: 'x-recording', name: 'recording'},
      h('option', {value: ''}, names.length ? '(choose a recording)' : '(no recordings on the server)'),
      names.map(n => h('option', {value: n}, n)));
    recordingControl.value = wantRecording;
  } else {
    recordingControl = h('input', {id: 'x-recording', name: 'recording', type: 'text', autocomplete: 'off', spellcheck: 'false',
      value: wantRecording, placeholder: 'payments.jsonl', 'aria-describedby': 'x-recording-help'});
    recordingNote = rec.error && rec.error.status !== 404
      ? h('span', {id: 'x-recording-help', class: 'help muted'}, `The recordings could not be listed (${rec.error.message}); type a file name of the server's recordings folder.`)
      : h('span', {id: 'x-recording-help', class: 'help muted'}, 'A file of the server\'s recordings folder (api.recordings_dir), by its path there.');
  }
  const eventsInput = h('textarea', {id: 'x-events', name: 'events', rows: 3, class: 'code', spellcheck: 'false', 'aria-describedby': 'x-events-help'});

  // The trace can be long: only a one-line summary is announced.
  const announce = h('p', {class: 'visually-hidden', role: 'status'});
  const result = h('div', {class: 'explain-result'});
  const submit = h('button', {type: 'submit', class: 'primary'}, 'Explain');
  let ctl = null;

  const form = h('form', {class: 'explain-form', 'aria-label': 'What to explain', onsubmit: async (ev) => {
    ev.preventDefault();
    const ruleset = rulesetSelect.value;
    const rule = ruleSelect.value;
    const key = keyInput.value;
    const recording = recordingControl.value.trim();
    const events = eventsInput.value;
    const missing = [];
    if (!ruleset) missing.push('a ruleset');
    if (!key) missing.push('a key');
    if (!recording && !events.trim()) missing.push('a recording or events');
    if (missing.length) {
      replace(result, errorBox({message: `Choose ${missing.join(', ')}.`}));
      return;
    }
    history.replaceState(null, '', '#/explain' + api.query({ruleset, rule, key, recording}));
    const body = {ruleset: {name: ruleset}, key};
    if (rule) body.rule = rule;
    if (events.trim()) body.events = events;
    else body.recording = recording;
    if (ctl) ctl.abort();
    const mine = new AbortController();
    ctl = mine;
    submit.disabled = true;
    replace(result, h('p', {class: 'muted'}, `Replaying ${body.recording || 'the events'} for key ${key}…`));
    replace(announce, 'Explaining…');
    try {
      const res = await api.post('/v1/rulesets:explain', body, {signal: mine.signal});
      if (mine.signal.aborted) return;
      showTrace(res, {ruleset, rule, key, recording: body.recording || 'the events given'});
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(announce);
      replace(result, errorBox(e));
    } finally {
      if (ctl === mine) { ctl = null; submit.disabled = false; }
    }
  }},
  h('div', {class: 'form-row'},
    h('div', {}, h('label', {for: 'x-ruleset'}, 'Ruleset'), rulesetSelect),
    h('div', {}, h('label', {for: 'x-rule'}, 'Rule'), ruleSelect),
    h('div', {}, h('label', {for: 'x-key'}, 'Key'), keyInput),
    h('div', {}, h('label', {for: 'x-recording'}, 'Recording'), recordingControl, recordingNote)),
  h('details', {class: 'inline-events'},
    h('summary', {}, 'Or paste events instead of a recording'),
    h('div', {class: 'form-row'}, h('div', {},
      h('label', {for: 'x-events'}, 'Events (JSON lines)'), eventsInput,
      h('span', {id: 'x-events-help', class: 'help muted'}, 'The lines of a recorded event file; when given, they are replayed instead of the recording.')))),
  h('div', {class: 'toolbar'}, submit));

  function showTrace(res, what) {
    const entries = res.entries || [];
    const verdicts = entries.filter(e => e.type === 'verdict');
    const records = entries.filter(e => e.type === 'event' || e.type === 'late').length;
    replace(announce, verdicts.map(v => `${v.rule}: ${v.verdict === 'fired' ? `fired ${v.fired} time${v.fired === 1 ? '' : 's'}` : 'did not fire'}`).join('; ') || 'No verdict.');
    replace(result,
      h('h2', {}, 'Verdict', verdicts.length === 1 ? '' : 's'),
      h('p', {class: 'meta'}, `Key `, h('code', {}, what.key), ` over `, h('code', {}, what.recording), `, ruleset ${what.ruleset}`, what.rule ? `, rule ${what.rule}` : ', every rule', '.'),
      verdicts.length ? h('div', {class: 'verdicts'}, verdicts.map(verdictCard)) : h('p', {class: 'empty'}, 'The trace has no verdict.'),
      h('h2', {}, 'Timeline'),
      res.truncated ? h('p', {class: 'notice notice-info'}, 'The server left entries out of this trace (its bound on entries); the verdicts are complete.') : null,
      h('p', {class: 'meta'}, `${records} record${records === 1 ? '' : 's'} of the key, ${entries.length - verdicts.length} trace entries. Times are event times in UTC.`),
      timeline(entries));
  }

  replace(main,
    h('h1', {}, 'Explain'),
    h('p', {class: 'muted'}, 'Replays recorded events through a stored ruleset and traces one key: what each rule made of each of its records, and why it fired or not.'),
    form,
    announce,
    result);
  return () => { if (ctl) ctl.abort(); };
}
