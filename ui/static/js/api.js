// The console's client of the REST API (api/README.md). The bearer token
// lives in this module's memory only: it is gone when the tab is closed or
// reloaded, and never written to storage.

let token = '';

export function setToken(t) { token = t || ''; }
export function hasToken() { return token !== ''; }

// ApiError is a failed call: the HTTP status, the google.rpc.Status message,
// its ErrorInfo reason and its BadRequest field violations.
export class ApiError extends Error {
  constructor(status, message, reason, violations) {
    super(message);
    this.status = status;
    this.reason = reason || '';
    this.violations = violations || [];
  }
}

function headers(body) {
  const h = {Accept: 'application/json'};
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (token) h.Authorization = 'Bearer ' + token;
  return h;
}

async function toError(res) {
  let text = '';
  try { text = await res.text(); } catch (e) { /* the body is optional */ }
  let st = null;
  try { st = JSON.parse(text); } catch (e) { /* not JSON: a proxy's page */ }
  if (!st || typeof st !== 'object') {
    return new ApiError(res.status, `${res.status} ${res.statusText}${text ? ': ' + text.slice(0, 300) : ''}`);
  }
  let reason = '';
  const violations = [];
  for (const d of st.details || []) {
    if (d.reason) reason = d.reason;
    for (const v of d.field_violations || d.fieldViolations || []) violations.push(v);
  }
  return new ApiError(res.status, st.message || `${res.status} ${res.statusText}`, reason, violations);
}

// call sends one request and returns the decoded JSON body ({} for none).
export async function call(method, path, body, {signal} = {}) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `the server did not answer (${e.message})`);
  }
  if (!res.ok) throw await toError(res);
  const text = await res.text();
  return text ? JSON.parse(text) : {};
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const post = (path, body, opts) => call('POST', path, body || {}, opts);
export const put = (path, body, opts) => call('PUT', path, body || {}, opts);
export const del = (path, opts) => call('DELETE', path, undefined, opts);

// query builds "?a=1&b=2" from the non-empty values of params.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// stream reads a server-streaming call (newline-delimited {"result": …} or
// {"error": …} objects) and calls onItem for each result until the stream
// ends, fails or signal aborts. It resolves when the stream ends and throws
// an ApiError for an error object or a failed response. onOpen, when given,
// is called once the server has answered with its headers: for
// SubscribeAlerts, when the subscription is live.
export async function stream(path, onItem, {signal, onOpen} = {}) {
  let res;
  try {
    res = await fetch(path, {headers: headers(), signal, cache: 'no-store'});
  } catch (e) {
    if (e.name === 'AbortError') return;
    throw new ApiError(0, `the server did not answer (${e.message})`);
  }
  if (!res.ok) throw await toError(res);
  if (onOpen) onOpen();
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (e.name === 'AbortError' || (signal && signal.aborted)) return;
      throw new ApiError(0, `the stream broke off (${e.message})`);
    }
    if (chunk.done) return;
    buf += decoder.decode(chunk.value, {stream: true});
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line);
      if (msg.error) {
        const e = msg.error;
        throw new ApiError(e.http_code || 500, e.message || 'the stream failed', '', []);
      }
      if (msg.result) onItem(msg.result);
    }
  }
}

// enc encodes one path segment.
export const enc = encodeURIComponent;
