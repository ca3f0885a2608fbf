// A checkout's trace as a waterfall: one row per hop (a callable, a publishing span, an event,
// a delivery), nested by cause, with bars at their start and duration.
//
// Built from the documents the suite keeps anyway (no log reading, so it works the same in
// production): an event's `trace` names the span that published it (`span_id`, `name`); a
// processed delivery keeps its own span (`trace.span_id`), so an event it published nests
// under it; a delivery nests under its event; each attempt in its `history` is a bar
// (`at` is its end, `duration_ms` its length), after a lighter "queued" bar from the event's
// publication. Orders and payments stand for the callables that wrote them.
// `buildWaterfall` is pure (plain objects, times in ms); `renderWaterfall` draws the rows.

const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// docs: { orders: [{id, created, detail?}], payments: [{id, created, trace}], events: [{id, type, source, subject, time, trace}],
//         deliveries: [{id, subscriber, event_id, status, attempts, history: [{attempt, at, duration_ms, outcome, via, error}],
//                       processed, duration_ms, trace}] }, every time in ms since the epoch.
export function buildWaterfall({ orders = [], payments = [], events = [], deliveries = [] }) {
  const nodes = new Map(); // key -> node
  const bySpan = new Map(); // span id -> node key
  const byName = new Map(); // callable name -> node key (documents that stand for a callable)
  const add = (node) => { nodes.set(node.key, { children: [], parent: null, segments: [], ...node }); return nodes.get(node.key); };

  for (const o of orders) {
    add({ key: `order:${o.id}`, kind: "callable", name: "orders_place", detail: o.detail || `order ${o.id}`, start: o.created, end: o.created });
    byName.set("orders_place", `order:${o.id}`);
  }
  for (const p of payments) {
    add({ key: `payment:${p.id}`, kind: "callable", name: "payments_create_intent", detail: `payment ${p.id}`, start: p.created, end: p.created });
    byName.set("payments_create_intent", `payment:${p.id}`);
    if (p.trace?.span_id) bySpan.set(p.trace.span_id, `payment:${p.id}`);
  }
  for (const d of deliveries) {
    const attempts = (d.history || []).filter((h) => h && h.at != null).map((h) => ({
      start: h.at - (h.duration_ms || 0), end: h.at, outcome: h.outcome || "?", attempt: h.attempt, via: h.via, error: h.error,
    }));
    if (!attempts.length && d.processed != null) {
      attempts.push({ start: d.processed - (d.duration_ms || 0), end: d.processed, outcome: d.status, attempt: d.attempts });
    }
    const node = add({
      key: `delivery:${d.id}`, kind: "delivery", name: d.subscriber, status: d.status, eventId: d.event_id,
      detail: `${d.status}${d.attempts ? `, ${d.attempts} attempt(s)` : ""}`, attempts,
    });
    if (d.status === "processed") {
      if (d.trace?.span_id) bySpan.set(d.trace.span_id, node.key);
      else if (!byName.has(d.subscriber)) byName.set(d.subscriber, node.key); // a record from before spans were kept
    }
  }
  for (const e of events) {
    add({ key: `event:${e.id}`, kind: "event", name: e.type, detail: `from ${e.source} (${e.subject})`, start: e.time, end: e.time,
          publisher: e.trace || null });
  }

  // Events under the span that published them: a delivery or a payment by span id, a callable's
  // document by the span's name, else a row for that span itself.
  for (const e of events) {
    const node = nodes.get(`event:${e.id}`);
    const span = e.trace?.span_id;
    let parentKey = (span && bySpan.get(span)) || (e.trace?.name && byName.get(e.trace.name));
    if (!parentKey && (span || e.trace?.name)) {
      parentKey = `span:${span || e.trace.name}`;
      if (!nodes.has(parentKey)) {
        add({ key: parentKey, kind: "span", name: e.trace?.name || `${e.source} (published)`, detail: "published events", start: e.time, end: e.time });
      }
      const hop = nodes.get(parentKey);
      hop.start = Math.min(hop.start, e.time);
      hop.end = Math.max(hop.end, e.time);
      if (span) bySpan.set(span, parentKey);
    }
    if (parentKey) link(nodes, parentKey, node.key);
  }
  // Deliveries under their event; a delivery's bars start where its event was published.
  for (const node of nodes.values()) {
    if (node.kind !== "delivery") continue;
    const event = nodes.get(`event:${node.eventId}`);
    const published = event?.start;
    const first = node.attempts.length ? Math.min(...node.attempts.map((a) => a.start)) : published;
    const last = node.attempts.length ? Math.max(...node.attempts.map((a) => a.end)) : published;
    node.start = published ?? first;
    node.end = last ?? node.start;
    if (published != null && first != null && first > published) node.segments.push({ start: published, end: first, outcome: "queued" });
    node.segments.push(...node.attempts.map((a) => ({ ...a })));
    if (event) link(nodes, event.key, node.key);
  }

  const placed = [...nodes.values()].filter((n) => n.start != null);
  const start = Math.min(...placed.map((n) => n.start));
  const end = Math.max(...placed.map((n) => n.end ?? n.start));
  const rows = [];
  const visit = (node, depth) => {
    rows.push({ ...node, depth, children: undefined, parent: node.parent });
    node.children.map((k) => nodes.get(k)).sort(byStart).forEach((child) => visit(child, depth + 1));
  };
  [...nodes.values()].filter((n) => !n.parent).sort(byStart).forEach((n) => visit(n, 0));
  return { rows, start: Number.isFinite(start) ? start : 0, end: Number.isFinite(end) ? end : 0 };
}

function link(nodes, parentKey, childKey) {
  if (parentKey === childKey || nodes.get(childKey).parent) return;
  nodes.get(childKey).parent = parentKey;
  nodes.get(parentKey).children.push(childKey);
}

function byStart(a, b) {
  return (a.start ?? Infinity) - (b.start ?? Infinity) || a.name.localeCompare(b.name);
}

const ms = (v) => (v >= 10000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);

// Draws the rows into `el`: a label column indented by depth, and a track where each bar is
// placed by its start and length on the checkout's own time scale (positions set through the
// CSSOM, which the page's Content-Security-Policy allows; no inline style attributes).
export function renderWaterfall(el, { rows, start, end }) {
  const total = Math.max(1, end - start);
  const pct = (t) => ((t - start) / total) * 100;
  el.innerHTML = `<div class="wf-axis"><span></span><div class="wf-ticks">
      ${[0, 0.25, 0.5, 0.75, 1].map((f) => `<span data-at="${f}">+${ms(total * f)}</span>`).join("")}</div></div>` +
    rows.map((r) => `<div class="wf-row" data-key="${esc(r.key)}" data-parent="${esc(r.parent || "")}" data-kind="${esc(r.kind)}"
        data-name="${esc(r.name)}" data-depth="${r.depth}" data-start-ms="${r.start - start}" data-duration-ms="${(r.end ?? r.start) - r.start}">
        <div class="wf-label"><span class="tag">${esc(r.kind)}</span> <strong>${esc(r.name)}</strong>
          <small>+${ms(r.start - start)} · ${esc(r.detail || "")}</small></div>
        <div class="wf-track">${(r.segments.length ? r.segments : [{ start: r.start, end: r.end ?? r.start, outcome: r.kind }])
          .map((s) => `<span class="wf-bar ${esc(s.outcome)}" data-outcome="${esc(s.outcome)}" data-start-ms="${s.start - start}"
              data-duration-ms="${s.end - s.start}" title="${esc(`${s.outcome}${s.attempt ? ` (attempt ${s.attempt}${s.via ? `, ${s.via}` : ""})` : ""}: ${ms(s.end - s.start)}${s.error ? ` · ${s.error}` : ""}`)}"></span>`)
          .join("")}</div></div>`).join("");
  el.querySelectorAll(".wf-ticks span").forEach((tick) => { tick.style.left = `${Number(tick.dataset.at) * 100}%`; });
  el.querySelectorAll(".wf-row").forEach((row) => {
    row.querySelector(".wf-label").style.paddingLeft = `${Number(row.dataset.depth) * 1.2}rem`;
    row.querySelectorAll(".wf-bar").forEach((bar) => {
      const at = start + Number(bar.dataset.startMs);
      bar.style.left = `${pct(at)}%`;
      bar.style.width = `${(Number(bar.dataset.durationMs) / total) * 100}%`;
    });
  });
}
