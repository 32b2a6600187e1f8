// The throughput chart: jobs per minute over the last hour, one line per series, hand-written
// SVG (no dependency). The box has a fixed aspect ratio, so nothing moves when data arrives.
import { fmtNum, h } from "./fmt.js";

const NS = "http://www.w3.org/2000/svg";
const W = 720, H = 220, L = 44, R = 8, T = 10, B = 24;
export const SERIES = [
  ["created", "Created"], ["completed", "Completed"], ["failed", "Failed"], ["dead_letter", "Dead-lettered"],
];

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// The 60 minutes ending with `to` (the minute of the answer's "to"), each with every series.
function minutes(data) {
  const end = Math.floor(new Date(data.to).getTime() / 60000) * 60000;
  const byAt = new Map(data.minutes.map((m) => [new Date(m.at).getTime(), m]));
  const out = [];
  for (let i = 59; i >= 0; i--) {
    const at = end - i * 60000;
    out.push({ at, ...(byAt.get(at) || {}) });
  }
  return out;
}

function niceMax(v) {
  if (v <= 5) return 5;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function throughputChart(data) {
  const ms = minutes(data);
  const max = niceMax(Math.max(1, ...ms.flatMap((m) => SERIES.map(([k]) => m[k] || 0))));
  const x = (i) => L + (i * (W - L - R)) / 59;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": "Jobs per minute over the last hour" });
  for (let g = 0; g <= 4; g++) {
    const v = (max * g) / 4;
    root.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, fmtNum(v)));
  }
  const tf = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  for (const i of [0, 15, 30, 45, 59])
    root.append(svg("text", { x: x(i), y: H - 6, class: "axis", "text-anchor": i === 0 ? "start" : i === 59 ? "end" : "middle" },
      tf.format(new Date(ms[i].at))));
  for (const [k, label] of SERIES) {
    const pts = ms.map((m, i) => `${x(i).toFixed(1)},${y(m[k] || 0).toFixed(1)}`).join(" ");
    const line = svg("polyline", { points: pts, class: `series s-${k}` });
    line.append(svg("title", {}, label));
    root.append(line);
  }
  // One invisible column per minute, with the minute's figures as its tooltip.
  for (let i = 0; i < 60; i++) {
    const m = ms[i];
    const r = svg("rect", { x: x(i) - (W - L - R) / 118, y: T, width: (W - L - R) / 59, height: H - T - B, class: "hover" });
    r.append(svg("title", {}, `${tf.format(new Date(m.at))}\n` + SERIES.map(([k, l]) => `${l}: ${fmtNum(m[k] || 0)}`).join("\n")));
    root.append(r);
  }
  const totals = Object.fromEntries(SERIES.map(([k]) => [k, ms.reduce((s, m) => s + (m[k] || 0), 0)]));
  const legend = h("ul.legend", {}, SERIES.map(([k, l]) =>
    h("li", {}, h(`span.swatch.s-${k}`), `${l} `, h("strong", { "data-testid": `hour-${k}` }, fmtNum(totals[k])))));
  return h("figure.chart-box", {}, root, legend);
}
