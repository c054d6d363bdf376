// Lists: the managed lists the live rulesets declare (GET /v1/lists), with
// their types and item counts; each links to its items.
import * as api from '../api.js';
import {h, replace, table} from '../dom.js';
import {managedLists} from '../lists.js';

// fromServer pages through GET /v1/lists; null when the server lacks it.
async function fromServer() {
  const lists = [];
  let page = '';
  try {
    do {
      const res = await api.get('/v1/lists' + api.query({page_size: 1000, page_token: page}));
      lists.push(...(res.lists || []));
      page = res.next_page_token || '';
    } while (page);
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
  return lists;
}

// fromSources reads the declarations in the rulesets' sources and asks
// each list for its count.
async function fromSources() {
  const rulesets = [];
  let page = '';
  do {
    const res = await api.get('/v1/rulesets' + api.query({page_size: 1000, page_token: page}));
    rulesets.push(...(res.rulesets || []));
    page = res.next_page_token || '';
  } while (page);
  const byName = new Map();
  for (const rs of rulesets) {
    for (const l of managedLists(rs.source || '')) {
      const e = byName.get(l.name) || {name: l.name, types: [], rulesets: []};
      if (!e.types.includes(l.type)) e.types.push(l.type);
      e.rulesets.push(rs.name);
      byName.set(l.name, e);
    }
  }
  const lists = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  await Promise.all(lists.map(async (l) => {
    try {
      const res = await api.get('/v1/lists/' + api.enc(l.name) + api.query({page_size: 1}));
      l.item_count = res.item_count;
      l.version = res.version;
    } catch (e) {
      l.error = e.message;
    }
  }));
  return lists;
}

export async function render(main, params, ctx) {
  let lists = await fromServer();
  const fallback = lists === null;
  if (fallback) lists = await fromSources();
  replace(main,
    h('h1', {}, 'Lists'),
    h('p', {class: 'muted'}, 'Managed lists are reference data the rules read as ', h('code', {}, 'lists.NAME'),
      ': a ruleset declares them (', h('code', {}, '{managed: true, type: cidr}'), ') and their items are edited here while the rules run, without a reload.'),
    fallback ? h('p', {class: 'meta'}, 'Read from the rulesets\' sources (this server does not list lists itself).') : null,
    table([
      {label: 'List', value: l => h('a', {href: '#/lists/' + api.enc(l.name), class: 'list-link'}, l.name)},
      {label: 'Type', value: l => (l.types || []).join(', ')},
      {label: 'Declared by', value: l => (l.rulesets || []).join(', ')},
      {label: 'Items', class: 'num', value: l => (l.error ? h('span', {class: 'error-text'}, l.error) : String(l.item_count ?? 0))},
      {label: 'Version', class: 'num', value: l => String(l.version ?? 0)},
    ], lists, {
      caption: 'Managed lists of the live rulesets',
      empty: 'No live ruleset declares a managed list. Declare one in a ruleset\'s lists: section, e.g. blocked: {managed: true, type: cidr}.',
      rowAttrs: l => ({dataset: {list: l.name}}),
    }));
}
