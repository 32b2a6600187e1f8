// Building elements and formatting numbers and times for people.
const num = new Intl.NumberFormat(undefined);
const dec = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const rel = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const exact = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export const fmtNum = (n) => (n === null || n === undefined || Number.isNaN(n) ? "–" : num.format(n));
export const fmtDec = (n) => (n === null || n === undefined || Number.isNaN(n) ? "–" : dec.format(n));

// h("tag.class", {attrs}, ...children): a small element builder (text children are escaped).
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag);
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false)
    el.append(c instanceof Node ? c : String(c));
  return el;
}

const units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
  ["hour", 3600], ["minute", 60], ["second", 1]];

export function relative(iso, now = Date.now()) {
  const s = (new Date(iso).getTime() - now) / 1000;
  if (Math.abs(s) < 5) return "just now";
  for (const [u, secs] of units) if (Math.abs(s) >= secs || u === "second")
    return rel.format(Math.round(s / secs), u);
  return "";
}

// A <time> showing the time relative to now, exact on hover; "–" for none.
export function when(iso) {
  if (!iso) return h("span.muted", {}, "–");
  return h("time", { datetime: iso, title: exact.format(new Date(iso)), "data-rel": "" }, relative(iso));
}

// Refreshes every relative time on the page (they age while the page is open).
export function ageTimes(root = document) {
  for (const t of root.querySelectorAll("time[data-rel]")) t.textContent = relative(t.dateTime);
}

export const STATUSES = ["PENDING", "SCHEDULED", "RUNNING", "RETRYING", "COMPLETED", "FAILED", "DEAD_LETTER"];
export const WAITING = ["PENDING", "SCHEDULED", "RETRYING"];

export function statusBadge(s) {
  return h(`span.badge.s-${s.toLowerCase()}`, { "data-status": s }, s.replace("_", " ").toLowerCase());
}

// Collapsible JSON: objects and arrays as nested <details>, the first levels open.
export function jsonTree(v, depth = 0) {
  if (v === null || typeof v !== "object") return h(`span.j-${v === null ? "null" : typeof v}`, {}, JSON.stringify(v));
  const entries = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  const open = Array.isArray(v) ? "[" : "{", close = Array.isArray(v) ? "]" : "}";
  if (!entries.length) return h("span.j-empty", {}, open + close);
  const d = h("details.jtree", { open: depth < 2 });
  d.append(h("summary", {}, `${open} ${entries.length} ${Array.isArray(v) ? "items" : "keys"} ${close}`));
  const list = h("ul");
  for (const [k, x] of entries) list.append(h("li", {}, h("span.j-key", {}, Array.isArray(v) ? `${k}: ` : `"${k}": `), jsonTree(x, depth + 1)));
  d.append(list);
  return d;
}

// A message for an empty or failed panel: what happened and what to do.
export function note(kind, title, advice) {
  return h(`div.note.${kind}`, { role: kind === "error" ? "alert" : null, "data-testid": `note-${kind}` },
    h("strong", {}, title), advice ? h("p", {}, advice) : null);
}
