// Managed lists: reading the declarations of the rulesets' sources, for a
// server without GET /v1/lists.

// managedLists finds the managed lists a YAML source declares in its
// top-level `lists:` section, in flow style (`NAME: {managed: true, type:
// cidr}`) or block style (NAME: then indented `managed: true`, `type:`).
// Lists with items in the source are not managed and are left out.
export function managedLists(source) {
  const out = [];
  const lines = source.split('\n');
  let i = lines.findIndex(l => /^lists:\s*(#.*)?$/.test(l));
  if (i < 0) return out;
  let childIndent = -1;
  let cur = null;
  const finish = () => { if (cur && cur.managed) out.push({name: cur.name, type: cur.type || 'string'}); cur = null; };
  for (i++; i < lines.length; i++) {
    const line = lines[i];
    if (/^\s*(#.*)?$/.test(line)) continue;
    const indent = line.length - line.trimStart().length;
    if (indent === 0) break;
    if (childIndent < 0) childIndent = indent;
    const text = line.trim().replace(/\s+#.*$/, '');
    if (indent === childIndent) {
      finish();
      const m = /^["']?([A-Za-z_][A-Za-z0-9_]*)["']?\s*:\s*(.*)$/.exec(text);
      if (!m) continue;
      cur = {name: m[1], managed: false, type: ''};
      const rest = m[2];
      if (rest.startsWith('{')) {
        cur.managed = /\bmanaged\s*:\s*true\b/.test(rest);
        const t = /\btype\s*:\s*["']?([a-z]+)/.exec(rest);
        if (t) cur.type = t[1];
      }
    } else if (cur && indent > childIndent) {
      if (/^managed\s*:\s*true\b/.test(text)) cur.managed = true;
      const t = /^type\s*:\s*["']?([a-z]+)/.exec(text);
      if (t) cur.type = t[1];
    }
  }
  finish();
  return out;
}
