// The Metrics page: ops_get_metrics' answer drawn as three uPlot charts and a table.
// Kept apart from app.js (which signs in and calls the function) so it can be drawn from any
// answer: each figure also says what its chart plots (data-series), for people and tests.
import { color, summary, timeChart } from "./charts.js";

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmt = (t) => (t ? new Date(t).toISOString().replace("T", " ").replace("Z", "") : "");
const ms = (v) => (v == null ? "–" : v >= 10000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);

export function renderMetrics(m) {
  const cut = Object.entries(m.complete_from || {}).filter(([, t]) => t);
  $("metrics-summary").textContent =
    `${m.window === "day" ? "last 24 hours, 15-minute buckets" : "last hour, 1-minute buckets"} · read ` +
    Object.entries(m.reads).map(([k, v]) => `${v} ${k.replace("_", " ")}`).join(", ") +
    (cut.length ? ` · limit reached: ${cut.map(([k, t]) => `${k.replace("_", " ")} complete from ${fmt(t)}`).join(", ")}` : "");

  const events = $("chart-events");
  const types = m.events.slice(0, 12); // the busiest; the rest are summed in "other"
  const other = m.events.slice(12);
  const series = types.map((s, i) => ({ label: s.type, values: s.per_minute, color: color(i), points: false }));
  if (other.length) {
    series.push({ label: `other (${other.length} types)`, color: "#98a2b3", points: false,
      values: m.times.map((_, i) => other.reduce((sum, s) => (s.per_minute[i] == null ? sum : sum + s.per_minute[i]), 0)) });
  }
  show(events, timeChart(events.querySelector(".plot"), { times: m.times, series, yLabel: "events / minute" }),
    m.events.length ? "" : "no events in this window");

  const select = $("latency-subscriber");
  const chosen = select.value || "*";
  select.innerHTML = m.latency.map((r) => `<option value="${esc(r.subscriber)}">${r.subscriber === "*" ? "all subscribers" : esc(r.subscriber)} (${r.count})</option>`).join("");
  select.value = m.latency.some((r) => r.subscriber === chosen) ? chosen : "*";
  drawLatency(m);
  $("latency-table").tBodies[0].innerHTML = m.latency.filter((r) => r.subscriber !== "*")
    .sort((a, b) => (b.p95_ms ?? -1) - (a.p95_ms ?? -1) || a.subscriber.localeCompare(b.subscriber))
    .map((r) => `<tr data-subscriber="${esc(r.subscriber)}" data-count="${r.count}" data-p50="${r.p50_ms ?? ""}" data-p95="${r.p95_ms ?? ""}"
      class="${r.count ? "" : "idle"}"><td>${esc(r.subscriber)}</td><td>${r.count}</td><td>${ms(r.p50_ms)}</td><td>${ms(r.p95_ms)}</td></tr>`).join("");

  const failures = $("chart-failures");
  show(failures, timeChart(failures.querySelector(".plot"), {
    times: m.times, yLabel: "per bucket",
    series: [{ label: "failed attempts", values: m.failures, color: "#f79009", bars: 0.8 },
             { label: "dead letters", values: m.dead_letters, color: "#d92d20", bars: 0.4 }],
  }), "");
}

export function drawLatency(m) {
  const row = m.latency.find((r) => r.subscriber === $("latency-subscriber").value) || m.latency[0];
  const chart = $("chart-latency");
  chart.dataset.subscriber = row.subscriber;
  show(chart, timeChart(chart.querySelector(".plot"), {
    times: m.times, yLabel: "ms",
    series: [{ label: "p50", values: row.p50, color: "#2e90fa" }, { label: "p95", values: row.p95, color: "#7a5af8" }],
  }), row.count ? `${row.count} processed · p50 ${ms(row.p50_ms)} · p95 ${ms(row.p95_ms)} over the window` : "nothing processed in this window");
}

// The figure says what its chart plots (the browser test reads it, and uPlot's own data on .plot).
function show(figure, chart, note) {
  figure.dataset.series = JSON.stringify(summary(chart));
  figure.querySelector(".note").textContent = note;
}
