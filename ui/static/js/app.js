// The console's shell: login, navigation and the hash router. Pages are
// modules under pages/ exporting render(main, params, ctx), which fills
// main and may return a function that stops what the page started (a
// stream, a timer) when the user leaves it.
import * as api from './api.js';
import {h, replace, errorBox} from './dom.js';

// routes maps URL fragments to pages; `:name` segments become params.
// `nav` entries appear in the top navigation, in this order.
const routes = [
  {path: '/rulesets', page: 'rulesets', nav: 'Rulesets'},
  {path: '/alerts', page: 'alerts', nav: 'Alerts'},
  {path: '/explain', page: 'explain', nav: 'Explain'},
  {path: '/lists', page: 'lists', nav: 'Lists'},
  {path: '/lists/:name', page: 'list'},
  {path: '/rulesets/:name/rules/:rule/picture', page: 'picture'},
  {path: '/new', page: 'editor'},
  {path: '/rulesets/:name/edit', page: 'editor'},
  {path: '/rulesets/:name/versions', page: 'versions'},
  {path: '/rulesets/:name/shadow', page: 'shadow'},
  {path: '/login', page: null},
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const notice = document.getElementById('notice');

let caller = null; // {authRequired, name, scopes: Set}
let cleanup = null;
let renderSeq = 0;

// ctx is what pages receive: the caller's rights and shell services.
const ctx = {
  get caller() { return caller; },
  can(scope) { return !!caller && caller.scopes.has(scope); },
  navigate(hash) { location.hash = hash; },
  notify(message, kind = 'info') { showNotice(message, kind); },
};

function showNotice(message, kind) {
  if (!message) { notice.hidden = true; return; }
  notice.className = `notice notice-${kind}`;
  replace(notice, message, ' ', h('button', {type: 'button', class: 'link', onclick: () => { notice.hidden = true; }}, 'Dismiss'));
  notice.hidden = false;
}

function match(path) {
  const segs = path.split('/').filter(Boolean);
  for (const r of routes) {
    const want = r.path.split('/').filter(Boolean);
    if (want.length !== segs.length) continue;
    const params = {};
    let ok = true;
    want.forEach((w, i) => {
      if (w.startsWith(':')) params[w.slice(1)] = decodeURIComponent(segs[i]);
      else if (w !== segs[i]) ok = false;
    });
    if (ok) return {route: r, params};
  }
  return null;
}

function currentPath() {
  const frag = location.hash.replace(/^#/, '');
  const [path, q] = frag.split('?');
  return {path: path || '/rulesets', search: new URLSearchParams(q || '')};
}

function drawNav(path) {
  replace(nav, h('ul', {}, routes.filter(r => r.nav).map(r => {
    const here = path === r.path || path.startsWith(r.path + '/');
    return h('li', {}, h('a', {href: '#' + r.path, 'aria-current': here ? 'page' : false}, r.nav));
  })));
  nav.hidden = false;
  const scopes = [...caller.scopes].sort().join(', ');
  replace(who,
    caller.authRequired ? h('span', {title: `scopes: ${scopes}`}, caller.name ? `Signed in as ${caller.name}` : 'Signed in') : h('span', {class: 'muted'}, 'No token required'),
    caller.authRequired ? h('button', {type: 'button', class: 'link', onclick: logout}, 'Sign out') : null);
}

function logout() {
  api.setToken('');
  caller = null;
  location.hash = '#/login';
}

// loadCaller asks the server who the token (or no token) is; null when the
// server wants a token.
async function loadCaller() {
  try {
    const c = await api.get('/v1/caller');
    return {
      authRequired: !!c.tokens_required,
      name: c.token_name || '',
      scopes: new Set(c.scopes || []),
    };
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

function loginPage(message) {
  nav.hidden = true;
  replace(who);
  const input = h('input', {id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'token-help'});
  const status = h('div', {'aria-live': 'polite'}, message ? errorBox({message}) : null);
  const form = h('form', {class: 'login', onsubmit: async (ev) => {
    ev.preventDefault();
    api.setToken(input.value.trim());
    try {
      caller = await loadCaller();
    } catch (e) {
      replace(status, errorBox(e));
      return;
    }
    if (!caller) {
      api.setToken('');
      replace(status, errorBox({status: 401, message: 'The server refused this token.'}));
      input.select();
      return;
    }
    location.hash = '#/rulesets';
    route();
  }},
  h('h1', {}, 'Sign in'),
  h('label', {for: 'token'}, 'API token'),
  input,
  h('p', {id: 'token-help', class: 'muted'}, 'A bearer token from the server\'s api.tokens. It stays in this tab\'s memory only.'),
  h('button', {type: 'submit', class: 'primary'}, 'Sign in'),
  status);
  replace(main, form);
  input.focus();
}

async function route() {
  const seq = ++renderSeq;
  if (cleanup) { try { cleanup(); } catch (e) { /* the page is gone anyway */ } cleanup = null; }
  showNotice('');
  const {path, search} = currentPath();
  if (!caller) {
    try {
      caller = await loadCaller();
    } catch (e) {
      replace(main, h('h1', {}, 'Shrike console'), errorBox(e));
      return;
    }
    if (seq !== renderSeq) return;
    if (!caller) { loginPage(path === '/login' ? '' : null); return; }
  }
  if (path === '/login') { location.hash = '#/rulesets'; return; }
  const m = match(path);
  drawNav(path);
  if (!m || !m.route.page) {
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No page at ', h('code', {}, path), '. ', h('a', {href: '#/rulesets'}, 'Go to the rulesets.')));
    return;
  }
  // Each render fills a container of its own: a render still waiting for
  // the API when the user moves on writes into a container no longer shown.
  const page = h('div', {class: 'page'}, h('p', {class: 'muted'}, 'Loading…'));
  replace(main, page);
  try {
    const mod = await import(`./pages/${m.route.page}.js`);
    if (seq !== renderSeq) return;
    const params = {...m.params, search};
    const done = await mod.render(page, params, ctx);
    if (seq !== renderSeq) { if (typeof done === 'function') done(); return; }
    cleanup = typeof done === 'function' ? done : null;
  } catch (e) {
    if (seq !== renderSeq) return;
    if (e.status === 401) { caller = null; api.setToken(''); loginPage('Your token was refused; sign in again.'); return; }
    replace(main, errorBox(e));
  }
  main.focus({preventScroll: true});
}

// The skip link moves the focus to the content: as a plain link to #main
// it would change the hash, which the router reads as a page.
document.querySelector('a.skip').addEventListener('click', e => {
  e.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', route);
route();
