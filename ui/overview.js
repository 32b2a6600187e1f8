// Overview: per-queue counts, the last hour's throughput, ingest, dead letters by reason,
// outbox lag and the connections' health. Refreshed by polling (app.js calls refresh).
import { api } from "./api.js";
import { throughputChart } from "./chart.js";
import { fmtDec, fmtNum, h, note } from "./fmt.js";

const COLS = [["pending", "Pending"], ["scheduled", "Scheduled"], ["retrying", "Retrying"], ["running", "Running"],
  ["completed", "Completed"], ["failed", "Failed"], ["dead_letter", "Dead letter"], ["total", "Total"]];

// Prometheus text exposition into [{name, labels, value}].
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const sum = (ms, name, pred = () => true) =>
  ms.filter((m) => m.name === name && pred(m.labels)).reduce((s, m) => s + m.value, 0);
const has = (ms, name) => ms.some((m) => m.name === name);

function card(title, testid, ...body) {
  return h("section.card", { "data-testid": testid }, h("h2", {}, title), ...body);
}

function skeleton(lines) {
  return h("div.skeleton-block", {}, Array.from({ length: lines }, () => h("div.skeleton")));
}

export function overview() {
  const el = {
    queues: card("Queues", "queues", skeleton(4)),
    chart: card("Throughput, last hour (jobs per minute)", "throughput", h("div.chart-box.skeleton")),
    ingest: card("Ingest", "ingest", skeleton(3)),
    dead: card("Dead-lettered events by reason", "dead", skeleton(3)),
    outbox: card("Outbox", "outbox", skeleton(2)),
    health: card("Connections and readiness", "health", skeleton(3)),
  };
  const root = h("div.overview", {},
    h("h1", {}, "Overview"),
    el.queues,
    h("div.grid", {}, el.chart, h("div.grid.four", {}, el.ingest, el.dead, el.outbox, el.health)));
  let last = null; // the previous scrape, for rates

  const fill = (c, ...body) => c.replaceChildren(c.firstChild, ...body.filter((b) => b !== null && b !== undefined));

  async function queues() {
    try {
      const qs = await api("/v1/queues");
      if (!qs.length) {
        fill(el.queues, note("empty", "No jobs yet.", "Publish an event that a mapping matches, or POST /v1/jobs: its queue appears here."));
        return;
      }
      const head = h("tr", {}, h("th", {}, "Queue"), COLS.map(([, l]) => h("th.num", {}, l)));
      const rows = qs.map((q) => h("tr", { "data-queue": q.queue_name }, h("th", {}, h("a", { href: `#/jobs?queue=${encodeURIComponent(q.queue_name)}` }, q.queue_name)),
        COLS.map(([k]) => h("td.num", { "data-testid": `q-${q.queue_name}-${k}` }, fmtNum(q[`${k}_count`])))));
      fill(el.queues, h("div.scroll", {}, h("table.data", {}, h("thead", {}, head), h("tbody", {}, rows))));
    } catch (e) {
      fill(el.queues, note("error", "Cannot read the queues.", e.message));
    }
  }

  async function chart() {
    try {
      fill(el.chart, throughputChart(await api("/v1/stats/throughput")));
    } catch (e) {
      fill(el.chart, note("error", "Cannot read the throughput.", e.message));
    }
  }

  function stat(label, value, testid, title) {
    return h("div.stat", { title }, h("span.label", {}, label), h("span.value", { "data-testid": testid }, value));
  }

  async function metrics() {
    let ms;
    try {
      ms = parseMetrics(await api("/metrics", { text: true }));
    } catch (e) {
      for (const c of [el.ingest, el.dead, el.outbox]) fill(c, note("error", "Cannot read /metrics.", e.message));
      return;
    }
    const now = performance.now();
    const received = sum(ms, "jobbridge_events_received_total");
    const rate = last ? ((received - last.received) * 1000) / (now - last.at) : null;
    last = { received, at: now };
    fill(el.ingest,
      stat("Events per second", rate === null ? "measuring…" : fmtDec(rate), "ingest-rate", "since the previous refresh"),
      stat("Events received", fmtNum(received), "ingest-received", "since jobbridge started"),
      stat("Jobs created", fmtNum(sum(ms, "jobbridge_jobs_created_total")), "jobs-created"),
      stat("Duplicates", fmtNum(sum(ms, "jobbridge_events_total", (l) => l.outcome === "duplicate")), "ingest-dup"));
    const reasons = ms.filter((m) => m.name === "jobbridge_events_dead_lettered_total" && m.value > 0);
    fill(el.dead, reasons.length
      ? h("table.data.compact", {}, h("tbody", {}, reasons.sort((a, b) => b.value - a.value).map((m) =>
        h("tr", {}, h("th", {}, m.labels.reason), h("td.num", { "data-testid": `dead-${m.labels.reason}` }, fmtNum(m.value))))))
      : note("empty", "No dead letters since start.", "Events jobbridge cannot turn into jobs go to the dead-letter exchange with their reason; they would be counted here."));
    const lag = ms.find((m) => m.name === "jobbridge_outbox_oldest_age_seconds");
    fill(el.outbox,
      stat("Events waiting", fmtNum(sum(ms, "jobbridge_outbox_depth")), "outbox-depth", "job events not yet confirmed by the broker"),
      stat("Oldest waiting", lag ? `${fmtDec(lag.value)} s` : "–", "outbox-lag", "age of the oldest unpublished job event"),
      stat("Published", fmtNum(sum(ms, "jobbridge_outbox_published_total")), "outbox-published"));
    const conn = [
      ["Broker connections", has(ms, "jobbridge_amqp_connections") ? sum(ms, "jobbridge_amqp_connections") : null, "amqp"],
      ["Database connections", has(ms, "jobbridge_db_connections") ? sum(ms, "jobbridge_db_connections") : null, "db"],
    ];
    el.health.dataset.conn = JSON.stringify(conn.map(([, v, k]) => [k, v]));
    await readiness(conn);
  }

  async function readiness(conn) {
    let ready = null, err = null;
    try {
      ready = await fetch("/readyz").then((r) => r.json());
    } catch (e) {
      err = e.message;
    }
    const items = conn.map(([l, v, k]) => h("li", {}, h(`span.dot.${v > 0 ? "ok" : "down"}`), `${l}: `, h("strong", { "data-testid": `conn-${k}` }, fmtNum(v))));
    for (const c of (ready && ready.checks) || [])
      items.push(h("li", { title: c.reason || "" }, h(`span.dot.${c.ready ? "ok" : "down"}`), `${c.name}: `, h("strong", {}, c.ready ? "ready" : c.reason || "not ready")));
    fill(el.health, h("ul.checks", {}, items), err ? note("error", "Cannot read /readyz.", err) : null);
  }

  return { root, refresh: () => Promise.all([queues(), chart(), metrics()]) };
}
