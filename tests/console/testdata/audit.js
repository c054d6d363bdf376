// The console's accessibility audit, installed in the page by a11y_test.go
// as window.shrikeAudit. page() returns one line per problem found in what
// is shown now:
//   - a control, link or button without an accessible name;
//   - an image or a drawn picture without a text alternative;
//   - text under 4.5:1 contrast with what is behind it (3:1 when large);
//   - an id given twice, a page without exactly one h1, no lang.
// focus() describes the focused element and whether its focus ring shows,
// at 3:1 against what is around it.
window.shrikeAudit = (() => {
  const describe = el => {
    let d = el.tagName.toLowerCase();
    if (el.id) d += '#' + el.id;
    if (el.classList.length) d += '.' + [...el.classList].join('.');
    const t = (el.innerText || el.value || '').trim().replace(/\s+/g, ' ');
    return t ? `${d} "${t.slice(0, 40)}"` : d;
  };
  const visible = el => {
    if (el.closest('[hidden]')) return false;
    const s = getComputedStyle(el);
    if (s.visibility === 'hidden' || s.display === 'none') return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const textOf = id => {
    const e = document.getElementById(id);
    return e ? e.textContent.trim() : '';
  };
  const name = el => {
    const by = el.getAttribute('aria-labelledby');
    if (by) return by.split(/\s+/).map(textOf).join(' ').trim();
    const label = (el.getAttribute('aria-label') || '').trim();
    if (label) return label;
    if (el.labels && el.labels.length) {
      const t = [...el.labels].map(l => l.textContent.trim()).join(' ').trim();
      if (t) return t;
    }
    if (['BUTTON', 'A', 'SUMMARY'].includes(el.tagName) || el.getAttribute('role') === 'button') {
      const t = el.textContent.trim();
      if (t) return t;
      const img = el.querySelector('img[alt]');
      if (img && img.alt.trim()) return img.alt.trim();
    }
    return (el.getAttribute('title') || '').trim();
  };

  const page = () => {
  const problems = [];
  if (!document.documentElement.lang) problems.push('the page has no lang');
  const h1s = [...document.querySelectorAll('h1')].filter(visible);
  if (h1s.length !== 1) problems.push(`${h1s.length} visible h1 headings, want 1`);

  const ids = new Map();
  for (const el of document.querySelectorAll('[id]')) ids.set(el.id, (ids.get(el.id) || 0) + 1);
  for (const [id, n] of ids) if (n > 1) problems.push(`id "${id}" is given ${n} times`);

  const controls = 'input:not([type=hidden]), select, textarea, button, a[href], summary, [role=button], [tabindex]:not([tabindex="-1"])';
  for (const el of document.querySelectorAll(controls)) {
    if (!visible(el) && !el.classList.contains('skip')) continue;
    if (!name(el)) problems.push(`no accessible name: ${describe(el)}`);
  }
  for (const img of document.querySelectorAll('img')) {
    if (visible(img) && !img.hasAttribute('alt')) problems.push(`an image without alt: ${img.src}`);
  }
  for (const svg of document.querySelectorAll('main svg')) {
    if (!visible(svg) || svg.parentElement.closest('svg')) continue;
    if (svg.getAttribute('aria-hidden') === 'true') continue;
    const alt = name(svg) || (svg.querySelector(':scope > title') || {}).textContent;
    if (svg.getAttribute('role') !== 'img' || !alt) problems.push(`a picture without role=img and a name: ${describe(svg.parentElement)}`);
  }

  return problems.concat(contrast());
  };

  // Contrast: the colour of an element's own text against the colours
  // behind it, blended up the tree to the opaque page.
  const rgba = c => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a),
    g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a),
    a: 1,
  });
  const behind = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.backgroundImage && s.backgroundImage !== 'none') return null;
      const c = rgba(s.backgroundColor);
      if (c && c.a > 0) {
        layers.push(c);
        if (c.a >= 1) break;
      }
    }
    let bg = {r: 255, g: 255, b: 255, a: 1};
    for (const c of layers.reverse()) bg = over(c, bg);
    return bg;
  };
  const lum = c => {
    const ch = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b);
  };
  const ratio = (a, b) => {
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const contrast = () => {
  const problems = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg, script, style, noscript') || el.disabled || el.closest('[aria-disabled=true]')) continue;
    const own = [...el.childNodes].some(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    if (!own || !visible(el)) continue;
    const s = getComputedStyle(el);
    const fg = rgba(s.color);
    const bg = behind(el);
    if (!fg || fg.a === 0 || !bg) continue;
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight, 10) >= 700;
    const want = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const got = ratio(over(fg, bg), bg);
    if (got < want) problems.push(`contrast ${got.toFixed(2)}:1 < ${want}:1 (${s.color} on rgb(${Math.round(bg.r)}, ${Math.round(bg.g)}, ${Math.round(bg.b)})): ${describe(el)}`);
  }
  return problems;
  };

  const focus = () => {
    const el = document.activeElement;
    if (!el || el === document.body) return {what: 'nothing', ring: false};
    // The ring is the element's, or a container's (:focus-within) close by.
    for (let e = el, i = 0; e && i < 3; e = e.parentElement, i++) {
      const s = getComputedStyle(e);
      const c = rgba(s.outlineColor);
      if (s.outlineStyle === 'none' || parseFloat(s.outlineWidth) < 2 || !c || c.a === 0) continue;
      const bg = behind(e.parentElement || e) || {r: 255, g: 255, b: 255, a: 1};
      const got = ratio(over(c, bg), bg);
      return {what: describe(el), ring: got >= 3, contrast: got};
    }
    return {what: describe(el), ring: false};
  };
  return {page, focus};
})();
true
