// Versions: a ruleset's history, newest first, a page at a time; any two
// versions compared side by side; a rollback to a chosen version.
// Route: #/rulesets/:name/versions (?old=N&new=M preselects the pair).
import * as api from '../api.js';
import {h, replace, time, errorBox} from '../dom.js';
import {sideBySideDiff} from '../diffview.js';
import {confirmAction} from '../confirm.js';

const PAGE_SIZE = 50;

export async function render(main, params, ctx) {
  const name = params.name;
  const write = ctx.can('rules:write');
  const versions = []; // RulesetVersion, newest first
  let next = '';
  let current = null; // the live version number, null when deleted
  try {
    current = (await api.get(`/v1/rulesets/${api.enc(name)}`)).version;
  } catch (e) {
    if (e.status !== 404) throw e;
  }

  async function loadPage() {
    const res = await api.get(`/v1/rulesets/${api.enc(name)}/versions` +
      api.query({include_source: true, page_size: PAGE_SIZE, page_token: next}));
    versions.push(...(res.versions || []));
    next = res.next_page_token || '';
  }
  await loadPage();

  const want = (k) => params.search && params.search.get(k);
  let oldV = want('old') || (versions[1] ? versions[1].version : (versions[0] ? versions[0].version : ''));
  let newV = want('new') || (versions[0] ? versions[0].version : '');

  const listBox = h('div', {class: 'versions-list'});
  const diffBox = h('section', {class: 'versions-diff', 'aria-labelledby': 'diff-title', 'aria-live': 'polite'});
  const moreBtn = h('button', {type: 'button', class: 'load-more', onclick: async () => {
    moreBtn.disabled = true;
    try { await loadPage(); drawList(); } catch (e) { replace(listBox, errorBox(e)); } finally { moreBtn.disabled = false; }
  }}, 'Load older versions');

  function drawList() {
    const rows = versions.map(v => {
      const id = String(v.version);
      const radio = (group, checked) => h('input', {
        type: 'radio', name: group, value: id, id: `${group}-${id}`, checked, disabled: v.deleted,
        'aria-label': `${group === 'old' ? 'Old' : 'New'} side: version ${id}`,
        onchange: () => { if (group === 'old') oldV = id; else newV = id; drawDiff(); },
      });
      const notes = [];
      if (String(v.version) === String(current)) notes.push(h('span', {class: 'badge badge-live'}, 'live'));
      if (v.deleted) notes.push(h('span', {class: 'badge badge-deleted'}, 'deletion'));
      if (v.rollback_of && v.rollback_of !== '0') notes.push(`rollback to version ${v.rollback_of}`);
      const canRollback = write && !v.deleted && String(v.version) !== String(current);
      return h('tr', {class: 'version-row', dataset: {version: id}},
        h('td', {class: 'pick'}, radio('old', id === String(oldV))),
        h('td', {class: 'pick'}, radio('new', id === String(newV))),
        h('th', {scope: 'row', class: 'num'}, id),
        h('td', {}, time(v.create_time)),
        h('td', {}, v.deleted ? '—' : `${lineCount(v.source)} lines`),
        h('td', {}, notes.length ? notes.map((n, i) => [i ? ' ' : '', n]) : ''),
        h('td', {}, canRollback ? h('button', {type: 'button', class: 'rollback-to', onclick: () => rollback(v)}, `Roll back to ${id}`) : ''));
    });
    replace(listBox,
      h('table', {class: 'grid versions'},
        h('caption', {}, `History of ${name}, newest first: choose the two versions to compare`),
        h('thead', {}, h('tr', {},
          h('th', {scope: 'col'}, 'Old'), h('th', {scope: 'col'}, 'New'), h('th', {scope: 'col', class: 'num'}, 'Version'),
          h('th', {scope: 'col'}, 'Stored'), h('th', {scope: 'col'}, 'Size'), h('th', {scope: 'col'}, 'Notes'),
          h('th', {scope: 'col'}, h('span', {class: 'visually-hidden'}, 'Actions')))),
        h('tbody', {}, rows)),
      next ? h('div', {class: 'toolbar'}, moreBtn) : null);
  }

  function drawDiff() {
    const a = versions.find(v => String(v.version) === String(oldV));
    const b = versions.find(v => String(v.version) === String(newV));
    if (!a || !b) {
      replace(diffBox, h('h2', {id: 'diff-title'}, 'Compare'), h('p', {class: 'empty'}, 'Choose an old and a new version in the table.'));
      return;
    }
    replace(diffBox,
      h('h2', {id: 'diff-title'}, `Version ${a.version} against version ${b.version}`),
      sideBySideDiff(a.source || '', b.source || '', `version ${a.version}`, `version ${b.version}`));
  }

  async function rollback(v) {
    const ok = await confirmAction({
      title: `Roll ${name} back to version ${v.version}?`,
      message: h('p', {}, `Version ${v.version}'s source is stored as a new version and every instance runs it within a second.`),
      confirmLabel: `Roll back to ${v.version}`,
    });
    if (!ok) return;
    try {
      const res = await api.post(`/v1/rulesets/${api.enc(name)}:rollback`, {version: Number(v.version)});
      ctx.notify(`Rolled ${name} back to version ${v.version}: version ${res.version} is live.`, 'ok');
      await render(main, params, ctx);
    } catch (e) {
      ctx.notify(errorBox(e), 'error');
    }
  }

  replace(main,
    h('h1', {}, `Versions of ${name}`),
    h('p', {class: 'meta'}, current !== null ? ['Live version ', h('strong', {}, String(current))] : 'The ruleset is deleted: roll back to a version to bring it back.',
      ' · ', h('a', {href: `#/rulesets/${api.enc(name)}/edit`}, write ? 'Edit' : 'View source'),
      ' · ', h('a', {href: `#/rulesets/${api.enc(name)}/shadow`}, 'Shadow'),
      ' · ', h('a', {href: '#/rulesets'}, 'All rulesets')),
    versions.length ? null : h('p', {class: 'empty'}, 'No versions stored.'),
    listBox, diffBox);
  drawList();
  drawDiff();
}

function lineCount(s) {
  if (!s) return 0;
  return s.split('\n').length - (s.endsWith('\n') ? 1 : 0);
}
