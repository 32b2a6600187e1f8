// One job: every field, payload / result / metadata as collapsible JSON, the error, the
// timeline (each attempt, from /v1/jobs/{id}/attempts), the source event with the other jobs it made,
// and cancel / retry with a confirmation.
import { api, qs } from "./api.js";
import { WAITING, h, jsonTree, note, statusBadge, when } from "./fmt.js";

const FIELDS = ["id", "status", "job_type", "queue_name", "priority", "retry_count", "max_retries", "progress",
  "progress_message", "dedupe_key", "created_by", "locked_by", "scheduled_at", "started_at", "completed_at",
  "failed_at", "created_at", "updated_at", "locked_until"];
const TIMES = new Set(["scheduled_at", "started_at", "completed_at", "failed_at", "created_at", "updated_at", "locked_until"]);
const EVENT = [["event_id", "Event id"], ["event_type", "Type"], ["source", "Source"], ["exchange", "Exchange"],
  ["routing_key", "Routing key"], ["correlation_id", "Correlation id"], ["message_id", "Message id"], ["received_at", "Received"]];

function timeline(j) {
  const steps = [["Created", j.created_at]];
  if (j.scheduled_at && j.scheduled_at !== j.created_at) steps.push(["Scheduled for", j.scheduled_at]);
  if (Array.isArray(j.attempts) && j.attempts.length) {
    j.attempts.forEach((a, i) => {
      const at = a.started_at || a.start || a.created_at;
      const end = a.finished_at || a.ended_at || a.end;
      steps.push([`Attempt ${a.attempt || i + 1} started${a.worker || a.locked_by ? ` on ${a.worker || a.locked_by}` : ""}`, at]);
      if (end) steps.push([`Attempt ${a.attempt || i + 1} ended ${a.status || a.outcome || ""}`.trim(), end, a.error || a.error_message]);
    });
  } else if (j.started_at) {
    steps.push([j.retry_count ? `Started (attempt ${j.retry_count + 1})` : "Started", j.started_at]);
  }
  if (j.completed_at) steps.push(["Completed", j.completed_at]);
  if (j.failed_at) steps.push([j.status === "DEAD_LETTER" ? "Dead-lettered" : "Failed", j.failed_at, j.error_message]);
  if (!j.completed_at && !j.failed_at) steps.push([`Now ${j.status.toLowerCase()}`, null]);
  return h("ol.timeline", { "data-testid": "timeline" }, steps.map(([label, at, err]) =>
    h("li", { class: at ? "" : "pending" }, h("span.what", {}, label), " ", when(at), err ? h("pre.err", {}, err) : null)));
}

export function job(id, ctx) {
  const root = h("div.job", {}, h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")), h("h1.mono", {}, id),
    h("div.skeleton-block", {}, Array.from({ length: 8 }, () => h("div.skeleton"))));

  let seen = null; // the updated_at shown

  async function act(verb) {
    const text = verb === "cancel" ? "Cancel this job? A waiting job fails at once with “Job cancelled”; a running one is asked to stop."
      : "Retry this job? It goes back to PENDING with its retry count reset.";
    if (!(await ctx.confirm(text))) return;
    try {
      await api(`/v1/jobs/${id}/${verb}`, { method: "POST" });
    } catch (e) {
      root.querySelector(".actions-msg").textContent = `Could not ${verb}: ${e.message}`;
      return;
    }
    await refresh();
  }

  async function others(j) {
    const ev = j.metadata && j.metadata.event_id;
    if (!ev) return note("empty", "No source event.", "This job was created through the API or the CLI, not from an event.");
    // An event's jobs are created in one transaction: a minute either side bounds the search.
    const t = new Date(j.created_at).getTime();
    const list = await api("/v1/jobs" + qs({ event_id: ev, created_after: new Date(t - 60000).toISOString(),
      created_before: new Date(t + 60000).toISOString(), limit: 100 }));
    const rest = list.jobs.filter((o) => o.id !== j.id);
    if (!rest.length) return h("p.muted", { "data-testid": "siblings" }, "No other job came from this event.");
    return h("ul.siblings", { "data-testid": "siblings" }, rest.map((o) => h("li", {},
      h("a.mono", { href: `#/jobs/${o.id}` }, o.id), " ", o.job_type, " ", statusBadge(o.status))));
  }

  async function refresh() {
    let j;
    try {
      j = await api(`/v1/jobs/${encodeURIComponent(id)}`);
    } catch (e) {
      root.replaceChildren(root.firstChild, h("h1.mono", {}, id), note("error", e.status === 404 ? "No such job." : "Cannot read this job.",
        e.status === 404 ? "It may have been pruned, or the id is mistyped: search the job list." : e.message));
      return;
    }
    // Unchanged since the last look: keep the page as the user arranged it (folded JSON).
    if (j.updated_at === seen) return;
    seen = j.updated_at;
    // The attempt history (GET /v1/jobs/{id}/attempts): the timeline falls back to the job's
    // own timestamps if it cannot be read.
    try {
      j.attempts = (await api(`/v1/jobs/${encodeURIComponent(id)}/attempts`)).attempts;
    } catch (e) {
      j.attempts = null;
    }
    const actions = h("div.actions", {},
      ctx.canWrite && (WAITING.includes(j.status) || j.status === "RUNNING")
        ? h("button.danger", { type: "button", "data-testid": "cancel", onclick: () => act("cancel") }, "Cancel job") : null,
      ctx.canWrite && (j.status === "FAILED" || j.status === "DEAD_LETTER")
        ? h("button", { type: "button", "data-testid": "retry", onclick: () => act("retry") }, "Retry job") : null,
      h("span.actions-msg", { role: "status" }));
    const fields = h("dl.fields", {}, FIELDS.filter((k) => k in j).map((k) => [h("dt", {}, k.replace(/_/g, " ")),
      h("dd", { "data-field": k }, k === "status" ? statusBadge(j[k]) : TIMES.has(k) ? when(j[k])
        : j[k] === null || j[k] === "" ? h("span.muted", {}, "–") : String(j[k]))]).flat());
    const json = (k) => h("section.card", {}, h("h2", {}, k), j[k] === null || j[k] === undefined
      ? h("p.muted", {}, "none") : h("div.json", { "data-testid": `json-${k}` }, jsonTree(j[k])));
    const meta = j.metadata || {};
    const event = h("section.card", { "data-testid": "event" }, h("h2", {}, "Source event"),
      meta.event_id ? h("dl.fields", {}, EVENT.filter(([k]) => meta[k]).map(([k, l]) =>
        [h("dt", {}, l), h("dd.mono", { "data-event": k }, k === "received_at" ? when(meta[k]) : meta[k])]).flat()) : null,
      h("h3", {}, "Jobs from the same event"), h("div.siblings-box", {}, h("div.skeleton")));
    root.replaceChildren(...[root.firstChild, h("h1.mono", {}, j.id), h("div.head", {}, statusBadge(j.status), h("span", {}, j.job_type), actions),
      j.error_message ? h("div.note.error", { "data-testid": "error" }, h("strong", {}, "Error"), h("pre.err", {}, j.error_message)) : null,
      h("div.grid", {}, h("section.card", {}, h("h2", {}, "Fields"), fields), h("section.card", {}, h("h2", {}, "Timeline"), timeline(j))),
      h("div.grid", {}, event, json("payload")),
      h("div.grid", {}, json("result"), json("metadata"))].filter(Boolean));
    try {
      event.querySelector(".siblings-box").replaceChildren(await others(j));
    } catch (e) {
      event.querySelector(".siblings-box").replaceChildren(note("error", "Cannot list the event's jobs.", e.message));
    }
  }
  return { root, refresh };
}
