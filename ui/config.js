// Mappings and job types: the table events route through now, each row with the events it
// matched since the table was loaded, and the registered job types.
import { api } from "./api.js";
import { fmtDec, fmtNum, h, note } from "./fmt.js";

export function mappings() {
  const maps = h("section.card", { "data-testid": "mappings" }, h("h2", {}, "Mappings"), h("div.skeleton-block", {}, h("div.skeleton"), h("div.skeleton")));
  const types = h("section.card", { "data-testid": "job-types" }, h("h2", {}, "Job types"), h("div.skeleton-block", {}, h("div.skeleton"), h("div.skeleton")));
  const root = h("div.mappings", {}, h("h1", {}, "Mappings and job types"), maps, types);
  const fill = (c, ...b) => c.replaceChildren(c.firstChild, ...b);
  const dash = (v) => (v === null || v === undefined ? h("span.muted", {}, "–") : v);

  async function refresh() {
    try {
      const { mappings: ms } = await api("/v1/mappings");
      fill(maps, ms.length ? h("div.scroll", {}, h("table.data", {},
        h("thead", {}, h("tr", {}, ["#", "Event type", "Job type", "Queue", "Priority", "Retries", "Delay", "Payload", "Matched"].map((t, i) =>
          h(i === 0 || i === 4 || i === 5 || i === 8 ? "th.num" : "th", {}, t)))),
        h("tbody", {}, ms.map((m, i) => h("tr", { "data-mapping": i },
          h("td.num", {}, i), h("td.mono", {}, m.event_type), h("td", {}, h("a", { href: `#/jobs?job_type=${encodeURIComponent(m.job_type)}` }, m.job_type)),
          h("td", {}, m.queue), h("td.num", {}, fmtNum(m.priority)), h("td.num", {}, dash(m.max_retries)),
          h("td", {}, m.delay_s ? `${fmtDec(m.delay_s)} s` : dash(null)), h("td.mono", {}, dash(m.payload)),
          h("td.num", { "data-testid": `matched-${i}` }, fmtNum(m.matched)))))))
        : note("empty", "No mappings.", "Add rows to “mappings” in the config and reload (SIGHUP): events whose type matches become jobs."));
    } catch (e) {
      fill(maps, note("error", "Cannot read the mappings.", e.message));
    }
    try {
      const { job_types: ts } = await api("/v1/job_types");
      fill(types, ts.length ? h("div.scroll", {}, h("table.data", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Handler"), h("th.num", {}, "Timeout"), h("th.num", {}, "Retries"), h("th.num", {}, "Processes"))),
        h("tbody", {}, ts.map((t) => h("tr", { "data-type": t.name }, h("td", {}, t.name), h("td", {}, t.handler),
          h("td.num", {}, `${fmtDec(t.timeout_s)} s`), h("td.num", {}, fmtNum(t.max_retries)),
          h("td.num", {}, t.handler === "process" ? fmtNum(t.processes) : dash(null)))))))
        : note("empty", "No job types.", "Register job types under “job_types” in the config."));
    } catch (e) {
      fill(types, note("error", "Cannot read the job types.", e.message));
    }
  }
  return { root, refresh };
}
