// The /v1 API with the signed-in token. The token lives in this tab's sessionStorage only.
const KEY = "jobbridge.token";

export class ApiError extends Error {
  constructor(status, detail, field) {
    super(detail);
    this.status = status;
    this.field = field;
  }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

// Calls the API; resolves with the parsed JSON (or text), rejects with an ApiError naming the
// problem (the server's RFC 9457 detail when it sent one).
export async function api(path, { method = "GET", body, tok = token.get(), text = false } = {}) {
  const headers = { Accept: text ? "text/plain" : "application/json" };
  if (tok) headers.Authorization = `Bearer ${tok}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "jobbridge does not answer: is it running? (" + err.message + ")");
  }
  if (r.ok) return text ? r.text() : r.json();
  let detail = `${r.status} ${r.statusText}`, field;
  try {
    const p = await r.json();
    if (p.detail) detail = p.detail;
    field = p.field;
  } catch { /* not a problem document */ }
  throw new ApiError(r.status, detail, field);
}

// Query string of the non-empty entries of o.
export function qs(o) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}
