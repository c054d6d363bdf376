// One managed list: its items (GET /v1/lists/{name}), a search, and adding
// and removing items (POST /v1/lists/{name}:add and :remove, scope
// lists:write).
import * as api from '../api.js';
import {h, replace, errorBox} from '../dom.js';

// The page loads at most maxLoaded items; a longer list is searched on the
// server (its `contains` filter) instead of in the page.
const maxLoaded = 10000;
// Rows drawn at once; the search narrows the rest.
const maxRows = 1000;

// splitItems reads the items typed into the box: one per line, or
// separated by commas or spaces.
export function splitItems(text) {
  return text.split(/[\s,]+/).map(s => s.trim()).filter(Boolean);
}

// itemError names the items a LIST_ITEMS_INVALID error refuses: each
// violation's field items[i] is shown with the item it points at.
function itemError(e, items) {
  const violations = (e.violations || []).map(v => {
    const m = /^items\[(\d+)\]$/.exec(v.field || '');
    if (m && items[Number(m[1])] !== undefined) return {field: `${v.field} "${items[Number(m[1])]}"`, description: v.description};
    return v;
  });
  return errorBox({status: e.status, message: e.message, violations});
}

async function load(name, contains) {
  const items = [];
  let page = '';
  let head = null;
  do {
    const res = await api.get('/v1/lists/' + api.enc(name) + api.query({page_size: 1000, page_token: page, contains}));
    if (!head) head = res;
    items.push(...(res.items || []));
    page = res.next_page_token || '';
  } while (page && items.length < maxLoaded);
  return {head, items, complete: !page};
}

export async function render(main, params, ctx) {
  const name = params.name;
  let {head, items, complete} = await load(name, '');
  const canWrite = ctx.can('lists:write');

  const title = h('h1', {}, 'List ', h('code', {}, name));
  const meta = h('p', {class: 'meta', id: 'list-meta'});
  const searchInput = h('input', {id: 'item-search', type: 'search', autocomplete: 'off', spellcheck: 'false', 'aria-controls': 'list-items', 'aria-describedby': 'item-search-note'});
  const searchNote = h('span', {id: 'item-search-note', class: 'muted', 'aria-live': 'polite'});
  const itemsHost = h('div', {id: 'list-items'});
  const result = h('div', {class: 'list-result', 'aria-live': 'polite'});
  let serverMatches = null; // items the server found for the search, when the page has not loaded them all
  let searchSeq = 0;

  function drawMeta() {
    replace(meta,
      `Type ${(head.types || []).join(', ') || '—'} · declared by ${(head.rulesets || []).join(', ') || '—'} · `,
      h('span', {id: 'item-count'}, `${head.item_count ?? 0} item${Number(head.item_count) === 1 ? '' : 's'}`),
      ` · version ${head.version ?? 0}`);
  }

  function drawItems() {
    const q = searchInput.value.trim();
    const pool = q && serverMatches ? serverMatches : items;
    const shown = q ? pool.filter(it => it.includes(q)) : pool;
    const rows = shown.slice(0, maxRows);
    const total = Number(head.item_count ?? items.length);
    replace(searchNote,
      q ? `${shown.length} item${shown.length === 1 ? '' : 's'} hold${shown.length === 1 ? 's' : ''} “${q}”` : '',
      !complete ? ` (the page loaded ${items.length} of ${total}; the search asks the server)` : '',
      shown.length > rows.length ? `; showing the first ${rows.length}` : '');
    if (!items.length) {
      replace(itemsHost, h('p', {class: 'empty'}, 'The list is empty.', canWrite ? ' Add items below.' : ''));
      return;
    }
    if (!rows.length) {
      replace(itemsHost, h('p', {class: 'empty'}, 'No item matches the search.'));
      return;
    }
    replace(itemsHost, h('table', {class: 'grid list-items'},
      h('caption', {}, `Items of ${name}, in byte order`),
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Item'), canWrite ? h('th', {scope: 'col'}, h('span', {class: 'visually-hidden'}, 'Actions')) : null)),
      h('tbody', {}, rows.map(it => h('tr', {class: 'list-item', dataset: {item: it}},
        h('td', {}, h('code', {}, it)),
        canWrite ? h('td', {class: 'num'}, h('button', {type: 'button', class: 'danger', 'aria-label': `Remove ${it}`, onclick: () => change('remove', [it])}, 'Remove')) : null)))));
  }

  async function refresh() {
    ({head, items, complete} = await load(name, ''));
    serverMatches = null;
    drawMeta();
    await search();
  }

  async function search() {
    const q = searchInput.value.trim();
    const seq = ++searchSeq;
    if (q && !complete) {
      try {
        const res = await load(name, q);
        if (seq !== searchSeq) return;
        serverMatches = res.items;
      } catch (e) {
        if (seq !== searchSeq) return;
        replace(itemsHost, errorBox(e));
        return;
      }
    } else {
      serverMatches = null;
    }
    drawItems();
  }

  const box = h('textarea', {id: 'items-input', rows: 3, class: 'code', spellcheck: 'false', 'aria-describedby': 'items-input-help'});
  async function change(what, list, fromBox) {
    if (!list.length) {
      replace(result, errorBox({message: `Type the items to ${what}.`}));
      box.focus();
      return;
    }
    replace(result, h('p', {class: 'muted'}, what === 'add' ? 'Adding…' : 'Removing…'));
    try {
      const res = await api.post(`/v1/lists/${api.enc(name)}:${what}`, {items: list});
      const n = Number(res.changed_items || 0);
      replace(result, h('p', {class: 'ok-text'},
        what === 'add' ? `Added ${n} item${n === 1 ? '' : 's'}` : `Removed ${n} item${n === 1 ? '' : 's'}`,
        n < list.length ? ` (${list.length - n} ${what === 'add' ? 'already held' : 'not held'})` : '',
        `; the list holds ${res.item_count} at version ${res.version}.`));
      if (fromBox) box.value = '';
      await refresh();
    } catch (e) {
      replace(result, itemError(e, list));
    }
  }

  searchInput.addEventListener('input', () => search());

  replace(main,
    h('p', {}, h('a', {href: '#/lists'}, '← Lists')),
    title,
    meta,
    canWrite ? h('form', {class: 'list-change', 'aria-label': 'Change the items', onsubmit: (ev) => { ev.preventDefault(); change('add', splitItems(box.value), true); }},
      h('div', {class: 'form-row'},
        h('div', {},
          h('label', {for: 'items-input'}, 'Items'),
          box,
          h('span', {id: 'items-input-help', class: 'help muted'},
            (head.types || []).includes('cidr') ? 'Networks (10.0.0.0/8, 2001:db8::/32) or addresses, one per line or separated by commas or spaces.' : 'One per line, or separated by commas or spaces.')),
        h('div', {class: 'toolbar'},
          h('button', {type: 'submit', class: 'primary', id: 'add-items'}, 'Add'),
          h('button', {type: 'button', class: 'danger', id: 'remove-items', onclick: () => change('remove', splitItems(box.value), true)}, 'Remove these'))))
      : h('p', {class: 'muted'}, 'Changing the items needs a token with the lists:write scope.'),
    result,
    h('div', {class: 'toolbar'}, h('label', {for: 'item-search'}, 'Search items'), searchInput, searchNote),
    itemsHost);
  drawMeta();
  drawItems();
}
