// Editor: a ruleset's YAML with highlighting and validation as you type;
// save it, compare it with the live version, test it on a recording or on
// pasted events, or push it as the ruleset's shadow. Routes:
// #/rulesets/:name/edit and #/new.
import * as api from '../api.js';
import {h, replace, table, errorBox} from '../dom.js';
import {codeEditor} from '../codeeditor.js';
import {unifiedDiff} from '../diffview.js';
import {alertsTable} from '../testalerts.js';
import {confirmAction} from '../confirm.js';

// VALIDATE_DELAY is how long typing must pause before the source is
// validated: long enough not to send a request per key, short enough to
// feel live.
const VALIDATE_DELAY = 400;

// MAX_PASTED_BYTES bounds a local file loaded into the events field: the
// request carries it whole, and the server refuses requests over
// api.max_request_bytes (4 MiB by default).
const MAX_PASTED_BYTES = 4 * 1024 * 1024;

const NEW_RULESET = `ruleset: my-rules
description: What these rules catch
stream:
  topic: payments
  key: event.account_id
  time: event.ts
schema:
  type: string
  account_id: string
  amount: double
  ts: timestamp
rules:
  - id: big-transfer
    description: A transfer above 10,000.
    severity: high
    when: event.type == "transfer" && event.amount > 10000.0
    alert:
      summary: '"account " + event.account_id + " sent " + string(event.amount)'
`;

export async function render(main, params, ctx) {
  const isNew = !params.name;
  const write = ctx.can('rules:write');
  let live = null; // the live Ruleset, when there is one
  if (!isNew) {
    live = await api.get(`/v1/rulesets/${api.enc(params.name)}`);
  }
  const readOnly = !write;
  let savedSource = live ? live.source : NEW_RULESET;

  const title = h('h1', {}, isNew ? 'New ruleset' : (readOnly ? `Source of ${params.name}` : `Edit ${params.name}`));
  const versionInfo = h('p', {class: 'meta ruleset-version', 'aria-live': 'polite'});
  const showVersion = () => {
    if (!live) { replace(versionInfo, 'Not stored yet: Save creates version 1.'); return; }
    replace(versionInfo, 'Live version ', h('strong', {class: 'live-version'}, String(live.version)),
      ' · ', h('a', {href: `#/rulesets/${api.enc(live.name)}/versions`}, 'Versions'),
      ' · ', h('a', {href: `#/rulesets/${api.enc(live.name)}/shadow`}, 'Shadow'));
  };
  showVersion();

  const status = h('span', {class: 'validation-status', role: 'status', 'aria-live': 'polite'});
  const problemsBox = h('div', {class: 'problems', id: 'problems'});
  const helpId = 'editor-help';
  const editor = codeEditor({
    id: 'source', value: live ? live.source : NEW_RULESET, readOnly, label: 'Ruleset YAML source',
    describedBy: `${helpId} problems`, onChange: () => { markDirty(); scheduleValidate(); },
  });

  const dirty = h('span', {class: 'dirty muted'});
  function markDirty() {
    dirty.textContent = editor.value !== savedSource && !isNew ? 'Unsaved changes' : '';
  }

  // Validation as you type.
  let validRules = live ? live.rules || [] : []; // of the last valid text: its steps' order
  let timer = 0;
  let inflight = null;
  let seq = 0;
  function scheduleValidate() {
    clearTimeout(timer);
    timer = setTimeout(validate, VALIDATE_DELAY);
  }
  async function validate() {
    const mySeq = ++seq;
    if (inflight) inflight.abort();
    inflight = new AbortController();
    replace(status, h('span', {class: 'muted'}, 'Checking…'));
    try {
      const res = await api.post('/v1/rulesets:validate', {source: editor.value}, {signal: inflight.signal});
      if (mySeq !== seq) return;
      if (res.valid) validRules = res.rules || [];
      showProblems(res.errors || [], res.warnings || []);
      return res;
    } catch (e) {
      if (e.name === 'AbortError' || mySeq !== seq) return;
      replace(status, h('span', {class: 'error-text'}, 'Could not check the source'));
      replace(problemsBox, errorBox(e));
    }
  }

  function showProblems(errors, warnings) {
    editor.setProblems(errors, warnings);
    if (!errors.length) {
      replace(status, h('span', {class: 'ok-text'}, warnings.length ? `Valid, ${plural(warnings.length, 'warning')}` : 'Valid'));
    } else {
      replace(status, h('span', {class: 'error-text'}, `${plural(errors.length, 'error')}${warnings.length ? ', ' + plural(warnings.length, 'warning') : ''}`));
    }
    const item = (kind) => (p) => h('li', {class: `problem problem-${kind}`, dataset: {line: String(p.line || 0), column: String(p.column || 0)}},
      h('button', {type: 'button', class: 'link', disabled: !p.line, onclick: () => editor.goTo(p.line, p.column)},
        h('span', {class: 'problem-kind'}, kind === 'error' ? 'Error' : 'Warning'), ' ', problemText(p)),
      p.snippet ? h('pre', {class: 'snippet'}, p.snippet) : null);
    replace(problemsBox,
      errors.length || warnings.length ? h('h2', {}, 'Problems') : null,
      errors.length ? h('ol', {class: 'problem-list errors', 'aria-label': 'Errors'}, errors.map(item('error'))) : null,
      warnings.length ? h('ol', {class: 'problem-list warnings', 'aria-label': 'Warnings'}, warnings.map(item('warning'))) : null);
  }

  // Saving.
  const saveResult = h('div', {class: 'save-result', 'aria-live': 'polite'});
  async function save() {
    const name = params.name || await sourceName();
    if (!name) {
      replace(saveResult, errorBox({message: 'The source names no ruleset: add a line "ruleset: NAME".'}));
      return;
    }
    if (isNew && !await confirmOverwrite(name)) return;
    saveBtn.disabled = true;
    try {
      const res = await api.put(`/v1/rulesets/${api.enc(name)}`, {source: editor.value});
      const unchanged = live && String(live.version) === String(res.version);
      live = res;
      savedSource = res.source;
      markDirty();
      showVersion();
      replace(saveResult, h('p', {class: 'saved notice-ok'}, unchanged ? `No change to ${res.name}: version ` : `Saved ${res.name}: version `,
        h('strong', {class: 'saved-version'}, String(res.version)), unchanged ? ' stays live.' : ' is live.'));
      ctx.notify(unchanged ? `${res.name} was already this source (version ${res.version}).` : `Saved ${res.name} version ${res.version}.`, 'ok');
      if (isNew) ctx.navigate(`#/rulesets/${api.enc(res.name)}/edit`);
    } catch (e) {
      replace(saveResult, errorBox(e));
      markViolations(e);
    } finally {
      saveBtn.disabled = false;
    }
  }

  // markViolations marks the errors of a refused save, which come as
  // "line:col: rule "id": message" field violations.
  function markViolations(e) {
    const errs = (e.violations || []).map(v => parseViolation(v.description || '')).filter(Boolean);
    if (errs.length) showProblems(errs, []);
  }

  // confirmOverwrite asks before a new ruleset's source replaces a stored
  // ruleset of the same name.
  async function confirmOverwrite(name) {
    let existing = null;
    try {
      existing = await api.get(`/v1/rulesets/${api.enc(name)}`);
    } catch (e) {
      if (e.status === 404) return true;
      replace(saveResult, errorBox(e));
      return false;
    }
    return confirmAction({
      title: `${name} exists`,
      message: h('p', {}, `A ruleset named ${name} is live (version ${existing.version}). Saving stores this source as its next version, replacing its rules.`),
      confirmLabel: `Replace ${name}`,
      danger: true,
    });
  }

  async function sourceName() {
    try {
      const res = await api.post('/v1/rulesets:validate', {source: editor.value});
      if (res.name) return res.name;
    } catch (e) { /* fall back to reading the line */ }
    const m = editor.value.match(/^ruleset:[ \t]*["']?([^"'\s#]+)/m);
    return m ? m[1] : '';
  }

  // Pushing as shadow.
  async function pushShadow() {
    shadowBtn.disabled = true;
    try {
      await api.put(`/v1/rulesets/${api.enc(params.name)}/shadow`, {source: editor.value});
      replace(saveResult, h('p', {class: 'saved notice-ok'}, 'Deployed as the shadow of ', params.name, '. ',
        h('a', {class: 'to-shadow', href: `#/rulesets/${api.enc(params.name)}/shadow`}, 'Compare it with the live version')));
    } catch (e) {
      replace(saveResult, errorBox(e));
      markViolations(e);
    } finally {
      shadowBtn.disabled = false;
    }
  }

  // Diff against live.
  const diffBox = h('section', {class: 'diff-panel', 'aria-labelledby': 'diff-title', 'aria-live': 'polite', hidden: true});
  async function showDiff() {
    diffBox.hidden = false;
    replace(diffBox, h('h2', {id: 'diff-title'}, 'Changes against the live version'), h('p', {class: 'muted'}, 'Loading…'));
    try {
      const current = await api.get(`/v1/rulesets/${api.enc(params.name)}`);
      replace(diffBox, h('h2', {id: 'diff-title'}, `Changes against the live version ${current.version}`),
        unifiedDiff(current.source, editor.value, `version ${current.version}`, 'editor'));
    } catch (e) {
      replace(diffBox, h('h2', {id: 'diff-title'}, 'Changes against the live version'), errorBox(e));
    }
    diffBox.scrollIntoView({block: 'nearest'});
  }

  // Testing.
  const testPanel = testSection(() => editor.value, params.name || '', () => validRules);

  const saveBtn = h('button', {type: 'button', class: 'primary save', onclick: save}, isNew ? 'Create' : 'Save');
  const shadowBtn = h('button', {type: 'button', class: 'push-shadow', onclick: pushShadow}, 'Push as shadow');
  const toolbar = h('div', {class: 'toolbar editor-toolbar'},
    write ? saveBtn : null,
    write && !isNew ? shadowBtn : null,
    !isNew ? h('button', {type: 'button', class: 'diff-live', onclick: showDiff}, 'Diff against live') : null,
    h('button', {type: 'button', class: 'to-test', onclick: () => testPanel.focus()}, 'Test on a recording'),
    status, dirty);

  replace(main,
    title, versionInfo,
    readOnly ? h('p', {class: 'muted read-only-note'}, 'Your token may read rules but not change them: the source is read-only.') : null,
    toolbar,
    editor.el,
    h('p', {id: helpId, class: 'muted editor-help'}, readOnly
      ? 'Validation and tests still run on this source.'
      : 'Checked as you type. Tab indents; press Esc, then Tab, to leave the editor. Ctrl+S saves. Click a problem to go to it.'),
    saveResult,
    problemsBox,
    diffBox,
    testPanel.el);

  const first = await validate();
  if (params.search && params.search.get('line') && first) {
    editor.goTo(Number(params.search.get('line')), Number(params.search.get('col') || 1));
  }
  if (write) {
    editor.textarea.addEventListener('keydown', (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key.toLowerCase() === 's') {
        ev.preventDefault();
        if (!saveBtn.disabled) save();
      }
    });
  }

  // Closing or reloading the tab with unsaved changes asks first.
  const beforeUnload = (ev) => {
    if (!readOnly && editor.value !== savedSource) { ev.preventDefault(); ev.returnValue = ''; }
  };
  window.addEventListener('beforeunload', beforeUnload);
  return () => {
    clearTimeout(timer);
    if (inflight) inflight.abort();
    testPanel.stop();
    window.removeEventListener('beforeunload', beforeUnload);
  };
}

function plural(n, word) { return `${n} ${word}${n === 1 ? '' : 's'}`; }

// problemText is how shrike check prints an error: line:col: rule "id": message.
export function problemText(p) {
  return `${p.line ? `${p.line}:${p.column || 0}: ` : ''}${p.rule ? `rule "${p.rule}": ` : ''}${p.message}`;
}

function parseViolation(desc) {
  const m = desc.match(/^(\d+):(\d+): (?:rule "([^"]*)": )?([\s\S]*)$/);
  if (m) return {line: Number(m[1]), column: Number(m[2]), rule: m[3] || '', message: m[4]};
  const r = desc.match(/^rule "([^"]*)": ([\s\S]*)$/);
  return {line: 0, column: 0, rule: r ? r[1] : '', message: r ? r[2] : desc};
}

// testSection is the "Test on a recording" form and its results.
function testSection(source, name, rules) {
  let controller = null;
  const results = h('div', {class: 'test-results', 'aria-live': 'polite'});
  const recordingSlot = h('div', {class: 'recording-slot'});
  const fromRecording = h('input', {type: 'radio', name: 'test-input', id: 'test-from-recording', value: 'recording', checked: true});
  const fromEvents = h('input', {type: 'radio', name: 'test-input', id: 'test-from-events', value: 'events'});
  const events = h('textarea', {id: 'test-events', class: 'code', rows: 6, spellcheck: 'false', wrap: 'off',
    placeholder: '{"type": "login", "account_id": "acct-1", "success": false, "ts": "2026-11-20T10:00:00Z"}'});
  const fileStatus = h('span', {class: 'muted', 'aria-live': 'polite'});
  const file = h('input', {type: 'file', id: 'test-events-file', accept: '.jsonl,.json,.ndjson,.txt,application/json,text/plain',
    onchange: async () => {
      const f = file.files && file.files[0];
      if (!f) return;
      if (f.size > MAX_PASTED_BYTES) { replace(fileStatus, `${f.name} is ${formatBytes(f.size)}: put files over ${formatBytes(MAX_PASTED_BYTES)} in the server's recordings folder.`); return; }
      events.value = await f.text();
      replace(fileStatus, `${f.name}: ${formatBytes(f.size)} loaded.`);
    }});
  const eventsRow = h('div', {class: 'events-row', hidden: true},
    h('label', {for: 'test-events'}, 'Events, one JSON object per line'), events,
    h('div', {class: 'toolbar'}, h('label', {for: 'test-events-file'}, 'or load a local file'), file, fileStatus));
  let recordingInput = null; // a <select> of the server's recordings or a free-text <input>

  const sync = () => {
    eventsRow.hidden = !fromEvents.checked;
    recordingSlot.hidden = !fromRecording.checked;
  };
  fromRecording.addEventListener('change', sync);
  fromEvents.addEventListener('change', sync);

  (async () => {
    try {
      const names = [];
      let token = '';
      do {
        const res = await api.get('/v1/recordings' + api.query({page_size: 1000, page_token: token}));
        for (const r of res.recordings || []) names.push(r);
        token = res.next_page_token || '';
      } while (token && names.length < 10000);
      if (!names.length) {
        replace(recordingSlot, h('p', {class: 'empty'}, 'The server\'s recordings folder is empty: paste events instead.'));
        fromEvents.checked = true; sync();
        return;
      }
      recordingInput = h('select', {id: 'test-recording'}, names.map(r => h('option', {value: r.name},
        r.size_bytes ? `${r.name} (${formatBytes(Number(r.size_bytes))})` : r.name)));
      const preferred = names.find(r => r.name === `${name}.jsonl`) || names.find(r => r.name.startsWith(name));
      if (preferred) recordingInput.value = preferred.name;
      replace(recordingSlot, h('label', {for: 'test-recording'}, 'Recording'), recordingInput);
    } catch (e) {
      if (e.status === 400 && e.reason === 'RECORDINGS_DISABLED') {
        replace(recordingSlot, h('p', {class: 'muted'}, 'This server has no recordings folder (api.recordings_dir): paste events instead.'));
        fromEvents.checked = true; sync();
        return;
      }
      // A server without the listing: the recording's file name, typed.
      recordingInput = h('input', {id: 'test-recording', type: 'text', value: name ? `${name}.jsonl` : '', 'aria-describedby': 'test-recording-help'});
      replace(recordingSlot, h('label', {for: 'test-recording'}, 'Recording'), recordingInput,
        h('span', {id: 'test-recording-help', class: 'muted'}, 'a file of the server\'s recordings folder'));
    }
  })();

  const run = h('button', {type: 'submit', class: 'primary run-test'}, 'Run test');
  const form = h('form', {class: 'test-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const body = {source: source()};
    if (fromEvents.checked) {
      if (!events.value.trim()) { replace(results, errorBox({message: 'Paste at least one event.'})); return; }
      body.events = events.value;
    } else {
      const rec = recordingInput ? recordingInput.value.trim() : '';
      if (!rec) { replace(results, errorBox({message: 'Choose a recording.'})); return; }
      body.recording = rec;
    }
    if (controller) controller.abort();
    controller = new AbortController();
    run.disabled = true;
    replace(results, h('p', {class: 'muted'}, 'Running…'));
    try {
      const res = await api.post('/v1/rulesets:test', body, {signal: controller.signal});
      replace(results, testResults(res, body.recording || 'pasted events', rules()));
    } catch (e) {
      if (e.name !== 'AbortError') replace(results, errorBox(e));
    } finally {
      run.disabled = false;
    }
  }},
  h('fieldset', {class: 'test-input'},
    h('legend', {}, 'Events to run'),
    h('div', {class: 'radio'}, fromRecording, h('label', {for: 'test-from-recording'}, 'A recording of the server')),
    h('div', {class: 'radio'}, fromEvents, h('label', {for: 'test-from-events'}, 'Pasted events'))),
  h('div', {class: 'form-row'}, recordingSlot),
  eventsRow,
  h('div', {class: 'toolbar'}, run, h('span', {class: 'muted'}, 'Runs the editor\'s text offline: nothing is stored or published.')));

  const el = h('section', {class: 'test-panel', id: 'test-panel', tabindex: '-1', 'aria-labelledby': 'test-title'},
    h('h2', {id: 'test-title'}, 'Test on a recording'), form, results);
  return {
    el,
    focus() { el.scrollIntoView({block: 'start'}); (recordingInput || events).focus(); },
    stop() { if (controller) controller.abort(); },
  };
}

function formatBytes(n) {
  if (!(n >= 0)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function testResults(res, input, rules) {
  const alerts = res.alerts || [];
  const n = (v) => String(v ?? 0);
  return h('div', {class: 'test-result'},
    h('h3', {}, `Result over ${input}`),
    h('dl', {class: 'test-counts'},
      h('div', {}, h('dt', {}, 'Alerts'), h('dd', {class: 'alert-count'}, n(res.alert_count))),
      h('div', {}, h('dt', {}, 'Lines'), h('dd', {}, n(res.lines))),
      h('div', {}, h('dt', {}, 'Events'), h('dd', {}, n(res.events))),
      h('div', {}, h('dt', {}, 'Late'), h('dd', {}, n(res.late))),
      h('div', {}, h('dt', {}, 'Unrouted'), h('dd', {}, n(res.unrouted))),
      h('div', {}, h('dt', {}, 'Dead-lettered'), h('dd', {}, n(res.dead_lettered)))),
    (res.rule_stats || []).length ? table([
      {label: 'Rule', value: r => h('code', {}, r.rule)},
      {label: 'Alerts', class: 'num', value: r => n(r.alerts)},
      {label: 'Suppressed', class: 'num', value: r => n(r.suppressed)},
      {label: 'Windows closed', class: 'num', value: r => n(r.timeouts)},
      {label: 'Dropped', class: 'num', value: r => n(r.dropped)},
      {label: 'CEL errors', class: 'num', value: r => n(r.cel_errors)},
    ], res.rule_stats, {caption: 'Per rule', rowAttrs: r => ({class: 'rule-stat', dataset: {rule: r.rule}})}) : null,
    (res.dead_letters || []).length ? h('details', {class: 'dead-letters'},
      h('summary', {}, `First dead-lettered lines (${res.dead_letters.length})`),
      h('ul', {}, res.dead_letters.map(d => h('li', {}, `line ${d.line}: ${d.reason}`)))) : null,
    res.alerts_truncated ? h('p', {class: 'muted'}, `The server returned the first ${alerts.length} of ${n(res.alert_count)} alerts.`) : null,
    alertsTable(alerts, {caption: 'Alerts, in the order they were emitted', empty: 'No alert: the rules matched nothing in these events.', rules}));
}
