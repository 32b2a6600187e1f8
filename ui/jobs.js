// Jobs: the list with filters (status, queue, job type, time range), search by job id, event id
// or dedupe key, keyset paging (newest first), and bulk retry / cancel of a selection.
import { api, qs } from "./api.js";
import { STATUSES, WAITING, h, note, statusBadge, when } from "./fmt.js";

const PAGE = 25;

// A datetime-local value ("2026-05-01T12:00") as RFC 3339 in UTC, or "".
const toIso = (v) => (v ? new Date(v).toISOString() : "");
const toLocal = (iso) => {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};

export function jobs(params, ctx) {
  const f = Object.fromEntries(params);
  const form = h("form.filters", { "data-testid": "filters" });
  const sel = (name, label, opts) => h("label", {}, label, h("select", { name },
    opts.map(([v, l]) => h("option", { value: v, selected: f[name] === v ? true : null }, l))));
  const inp = (name, label, type = "text", value = f[name] || "", ph = "") =>
    h("label", {}, label, h("input", { name, type, value, placeholder: ph }));
  const kind = f.id ? "id" : f.dedupe_key ? "dedupe_key" : "event_id";
  form.append(
    sel("status", "Status", [["", "Any"], ...STATUSES.map((s) => [s, s.replace("_", " ").toLowerCase()])]),
    inp("queue", "Queue", "text", f.queue, "any"),
    inp("job_type", "Job type", "text", f.job_type, "any"),
    inp("created_after", "Created after", "datetime-local", toLocal(f.created_after)),
    inp("created_before", "Created before", "datetime-local", toLocal(f.created_before)),
    h("label.search", {}, "Search",
      h("span.join", {},
        h("select", { name: "kind", "aria-label": "Search by" },
          [["id", "Job id"], ["event_id", "Event id"], ["dedupe_key", "Dedupe key"]].map(([v, l]) =>
            h("option", { value: v, selected: v === kind ? true : null }, l))),
        h("input", { name: "q", type: "search", value: f.id || f.event_id || f.dedupe_key || "", placeholder: "exact value" }))),
    h("div.buttons", {}, h("button", { type: "submit" }, "Apply"),
      h("button.secondary", { type: "button", onclick: () => { location.hash = "#/jobs"; } }, "Clear")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    const q = { status: d.get("status"), queue: d.get("queue").trim(), job_type: d.get("job_type").trim(),
      created_after: toIso(d.get("created_after")), created_before: toIso(d.get("created_before")) };
    if (d.get("q").trim()) q[d.get("kind")] = d.get("q").trim();
    location.hash = "#/jobs" + qs(q);
  });

  const table = h("div.table-box", {}, skeletonTable());
  const pager = h("div.pager");
  const bulk = h("div.bulk", { hidden: !ctx.canWrite, "data-testid": "bulk" });
  const status = h("p.status", { role: "status" });
  const root = h("div.jobs", {}, h("h1", {}, "Jobs"), form, bulk, status, table, pager);

  const cursors = [""]; // the cursor of each page seen, for going back
  let page = 0, shown = [];
  const selected = new Set();

  function skeletonTable() {
    return h("table.data", {}, h("tbody", {}, Array.from({ length: 8 }, () => h("tr", {}, h("td", { colspan: 7 }, h("div.skeleton"))))));
  }

  function renderBulk() {
    if (!ctx.canWrite) return;
    const n = selected.size;
    bulk.replaceChildren(
      h("span", {}, n ? `${n} selected` : "Select jobs to retry or cancel them together."),
      h("button", { type: "button", disabled: n ? null : true, "data-testid": "bulk-retry", onclick: () => act("retry") }, "Retry selected"),
      h("button.danger", { type: "button", disabled: n ? null : true, "data-testid": "bulk-cancel", onclick: () => act("cancel") }, "Cancel selected"));
  }

  async function act(verb) {
    const ids = [...selected];
    if (!(await ctx.confirm(`${verb === "retry" ? "Retry" : "Cancel"} ${ids.length} job${ids.length > 1 ? "s" : ""}?`))) return;
    const results = await Promise.allSettled(ids.map((id) => api(`/v1/jobs/${id}/${verb}`, { method: "POST" })));
    const failed = results.map((r, i) => [r, ids[i]]).filter(([r]) => r.status === "rejected");
    status.textContent = failed.length
      ? `${ids.length - failed.length} done; ${failed.length} refused: ${failed.map(([r, id]) => `${id}: ${r.reason.message}`).join("; ")}`
      : `${verb === "retry" ? "Retried" : "Cancelled"} ${ids.length} job${ids.length > 1 ? "s" : ""}.`;
    selected.clear();
    await refresh();
  }

  function render(list) {
    shown = list.jobs;
    for (const id of [...selected]) if (!shown.some((j) => j.id === id)) selected.delete(id);
    renderBulk();
    if (!shown.length) {
      const filtered = Object.keys(f).length > 0;
      table.replaceChildren(note("empty", filtered ? "No job matches these filters." : "No jobs yet.",
        filtered ? "Widen the time range, clear a filter, or check the search value (it must be exact)."
          : "Jobs appear here when events arrive or a client POSTs /v1/jobs."));
    } else {
      const all = h("input", { type: "checkbox", "aria-label": "Select all", "data-testid": "select-all",
        onchange: (ev) => { for (const j of shown) ev.target.checked ? selected.add(j.id) : selected.delete(j.id); render(list); } });
      all.checked = shown.every((j) => selected.has(j.id));
      table.replaceChildren(h("div.scroll", {}, h("table.data.jobs-table", {},
        h("thead", {}, h("tr", {}, ctx.canWrite ? h("th.check", {}, all) : null, h("th", {}, "Job"), h("th", {}, "Status"),
          h("th", {}, "Type"), h("th", {}, "Queue"), h("th.num", {}, "Tries"), h("th", {}, "Created"), h("th", {}, "Updated"))),
        h("tbody", {}, shown.map((j) => {
          const box = h("input", { type: "checkbox", "aria-label": `Select ${j.id}`, "data-testid": "select",
            onchange: (ev) => { ev.target.checked ? selected.add(j.id) : selected.delete(j.id); renderBulk(); } });
          box.checked = selected.has(j.id);
          return h("tr", { "data-job": j.id, "data-status": j.status },
            ctx.canWrite ? h("td.check", {}, box) : null,
            h("td.mono", {}, h("a", { href: `#/jobs/${j.id}` }, j.id)),
            h("td", {}, statusBadge(j.status), j.status === "RUNNING" && j.progress ? h("span.muted", {}, ` ${j.progress}%`) : null),
            h("td", {}, j.job_type), h("td", {}, j.queue_name), h("td.num", {}, `${j.retry_count}/${j.max_retries}`),
            h("td", {}, when(j.created_at)), h("td", {}, when(j.updated_at)));
        })))));
    }
    pager.replaceChildren(
      h("button.secondary", { type: "button", disabled: page === 0 ? true : null, "data-testid": "newer", onclick: () => { page--; refresh(); } }, "← Newer"),
      h("span.muted", {}, `Page ${page + 1}`),
      h("button.secondary", { type: "button", disabled: list.next_cursor ? null : true, "data-testid": "older",
        onclick: () => { cursors[page + 1] = list.next_cursor; page++; refresh(); } }, "Older →"));
  }

  async function refresh() {
    try {
      render(await api("/v1/jobs" + qs({ ...f, limit: PAGE, cursor: cursors[page] })));
    } catch (e) {
      table.replaceChildren(note("error", "Cannot list the jobs.", e.field ? `${e.message} (fix the “${e.field}” filter)` : e.message));
    }
  }
  return { root, refresh };
}

export { WAITING };
