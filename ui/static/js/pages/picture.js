// Rule picture: a pattern rule's automaton (POST /v1/rulesets:automaton)
// as the server draws it, with a legend, and as tables of its states and
// edges for those who do not read the picture.
import * as api from '../api.js';
import {h, replace, errorBox, table} from '../dom.js';

const svgNS = 'http://www.w3.org/2000/svg';

function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(c);
  return el;
}

// importSVG parses the server's SVG and keeps only drawing: no scripts,
// no foreign content, no event handlers, no links out. (The console's CSP
// would block a script anyway.)
export function importSVG(markup) {
  const doc = new DOMParser().parseFromString(markup, 'image/svg+xml');
  const root = doc.documentElement;
  if (!root || root.nodeName !== 'svg' || doc.getElementsByTagName('parsererror').length) return null;
  for (const bad of [...root.querySelectorAll('script, foreignObject, iframe, object, embed')]) bad.remove();
  for (const el of [root, ...root.querySelectorAll('*')]) {
    for (const a of [...el.attributes]) {
      const n = a.name.toLowerCase();
      if (n.startsWith('on') || ((n === 'href' || n === 'xlink:href') && !a.value.startsWith('#')) || n === 'style') el.removeAttribute(a.name);
    }
  }
  return document.importNode(root, true);
}

// legend draws the picture's vocabulary with the colours and dashes the
// server's pictures use.
function legend(window) {
  const edge = (action, colour, dash, text) => h('li', {},
    s('svg', {width: 44, height: 12, 'aria-hidden': 'true', focusable: 'false'},
      s('line', {x1: 2, y1: 6, x2: 42, y2: 6, stroke: colour, 'stroke-width': 2, ...(dash ? {'stroke-dasharray': dash} : {})})),
    h('span', {}, h('strong', {}, action), ': ', text));
  const state = (kind, fill, stroke, text, dash) => h('li', {},
    s('svg', {width: 44, height: 18, 'aria-hidden': 'true', focusable: 'false'},
      s('rect', {x: 2, y: 2, width: 40, height: 14, rx: 4, fill, stroke, 'stroke-width': 1.6, ...(dash ? {'stroke-dasharray': dash} : {})})),
    h('span', {}, h('strong', {}, kind), ': ', text));
  return h('section', {class: 'picture-legend', 'aria-labelledby': 'legend-title'},
    h('h2', {id: 'legend-title'}, 'Legend'),
    h('ul', {},
      edge('take', '#1f5fa8', '', 'the event joins the match at this step'),
      edge('ignore', '#8a8a8a', '5 3', 'the event is skipped; the run waits on (relaxed contiguity)'),
      edge('proceed', '#2e7d32', '2 3', 'a move without an event, tried on the same event (an optional or finished loop step)'),
      state('final', '#e8f5e9', '#2e7d32', 'a run here is a match: the alert'),
      state('stop', '#fdecea', '#c62828', 'a run here is discarded: a not step\'s forbidden event arrived'),
      state('pending', '#fff3e0', '#ef6c00', 'a run here becomes a match when its window closes (a pattern ending in a not step)'),
      h('li', {}, h('span', {}, h('strong', {}, 'window'), ': ',
        window ? ['the rule\'s ', h('code', {}, 'within: ' + window), ' bounds a run from its first event; a state\'s own window bounds the wait there'] : 'the rule has no within; a state\'s own window bounds the wait there'))));
}

export async function render(main, params, ctx) {
  const {name, rule} = params;
  const head = h('div', {},
    h('p', {}, h('a', {href: '#/rulesets'}, '← Rulesets')),
    h('h1', {}, 'Rule ', h('code', {}, rule), ' ', h('span', {class: 'muted'}, 'of ', name)));
  let others = [];
  try {
    const rs = await api.get('/v1/rulesets/' + api.enc(name));
    others = (rs.rules || []).filter(r => (r.steps || []).length && r.enabled !== false);
  } catch (e) {
    if (e.status === 401) throw e;
  }
  const switcher = others.length > 1 ? h('nav', {class: 'toolbar rule-switch', 'aria-label': 'Pictures of the ruleset\'s other pattern rules'},
    h('span', {class: 'muted'}, 'Pattern rules:'),
    others.map(r => (r.id === rule
      ? h('strong', {'aria-current': 'page'}, r.id)
      : h('a', {href: `#/rulesets/${api.enc(name)}/rules/${api.enc(r.id)}/picture`}, r.id)))) : null;

  let res;
  try {
    res = await api.post('/v1/rulesets:automaton', {ruleset: {name}, rule});
  } catch (e) {
    if (e.status === 401) throw e;
    replace(main, head, switcher, errorBox(e),
      e.status === 400 ? h('p', {class: 'muted'}, 'Only pattern rules have an automaton; a when or aggregate rule matches one event, or counts events, without one.') : null);
    return;
  }
  const a = res.automaton || res;
  const states = a.states || [];
  const edges = a.edges || [];
  const byId = new Map(states.map(st => [st.id ?? 0, st]));
  const stateName = (id) => { const st = byId.get(id ?? 0); return st ? `${id ?? 0} ${st.name}` : String(id ?? 0); };

  const figure = h('figure', {class: 'automaton-picture'});
  const svg = res.svg ? importSVG(res.svg) : null;
  if (svg) {
    svg.setAttribute('aria-labelledby', 'picture-caption');
    figure.appendChild(h('div', {class: 'scroll-x', tabindex: 0, role: 'region', 'aria-label': 'The automaton\'s picture (scrolls sideways)'}, svg));
  } else {
    figure.appendChild(h('p', {class: 'empty'}, 'The server sent no picture it could draw; the tables below describe the automaton.'));
  }
  figure.appendChild(h('figcaption', {id: 'picture-caption'},
    `The automaton of ${rule}: ${states.length} state${states.length === 1 ? '' : 's'}, ${edges.length} edge${edges.length === 1 ? '' : 's'}`,
    a.window ? `, within ${a.window}` : '', '. Runs start in state ', String(a.start ?? 0), '.'));

  replace(main, head, switcher, figure, legend(a.window),
    h('h2', {}, 'States'),
    table([
      {label: 'State', class: 'num', value: st => String(st.id ?? 0)},
      {label: 'Step', value: st => h('code', {}, st.name)},
      {label: 'Kind', value: st => st.kind || 'normal'},
      {label: 'Start', value: st => (st.start ? 'yes' : '')},
      {label: 'Loops a group', value: st => (st.group ? 'yes' : '')},
      {label: 'Window', value: st => st.window || ''},
    ], states, {caption: `States of ${rule}`, rowAttrs: st => ({class: 'automaton-state', dataset: {state: String(st.id ?? 0)}})}),
    h('h2', {}, 'Edges'),
    table([
      {label: 'From', value: e => stateName(e.from)},
      {label: 'To', value: e => stateName(e.to)},
      {label: 'Action', value: e => h('span', {class: `action action-${e.action}`}, e.action)},
      {label: 'Condition', value: e => h('code', {}, e.condition || 'true')},
    ], edges, {caption: `Edges of ${rule}, each state's in the order the matcher tries them`, rowAttrs: () => ({class: 'automaton-edge'})}));
}
