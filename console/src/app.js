// flowsuite ops console: a small single page over the Firebase JS SDK.
// Shows nothing unless the signed-in user's ID token carries role == "admin".
import { initializeApp } from "firebase/app";
import { connectAuthEmulator, getAuth, onAuthStateChanged, signInWithEmailAndPassword, signOut } from "firebase/auth";
import {
  collection, collectionGroup, connectFirestoreEmulator, doc, getDoc, getDocs, getFirestore, limit, onSnapshot,
  orderBy, query, where,
} from "firebase/firestore";
import { connectFunctionsEmulator, getFunctions, httpsCallable } from "firebase/functions";
import { resizeAll } from "./charts.js";
import { drawLatency, renderMetrics } from "./metrics.js";
import { buildWaterfall, renderWaterfall } from "./waterfall.js";

const local = ["localhost", "127.0.0.1"].includes(location.hostname);
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const when = (t) => (t && t.toDate ? t.toDate() : t ? new Date(t) : null);
const fmt = (t) => (when(t) ? when(t).toISOString().replace("T", " ").replace("Z", "") : "");
const tag = (s) => `<span class="tag ${esc(s)}">${esc(s)}</span>`;

async function config() {
  try {
    const r = await fetch("/__/firebase/init.json");
    if (r.ok) return await r.json();
  } catch (e) { /* not on Hosting */ }
  return { projectId: "demo-flowsuite", apiKey: "demo-api-key", authDomain: "demo-flowsuite.firebaseapp.com" };
}

const cfg = await config();
if (local && !cfg.projectId.startsWith("demo-")) cfg.projectId = "demo-flowsuite";
const app = initializeApp({ ...cfg, apiKey: cfg.apiKey || "demo-api-key" });
const auth = getAuth(app);
const db = getFirestore(app);
const functions = getFunctions(app, "us-central1");
if (local) {
  const ports = await fetch("/console-emulators.json").then((r) => r.json()).catch(() => ({}));
  connectAuthEmulator(auth, `http://127.0.0.1:${ports.auth || 9099}`, { disableWarnings: true });
  connectFirestoreEmulator(db, "127.0.0.1", ports.firestore || 8080);
  connectFunctionsEmulator(functions, "127.0.0.1", ports.functions || 5001);
}

let unsubscribers = [];
const stopListening = () => { unsubscribers.forEach((u) => u()); unsubscribers = []; };

// ---- sign-in and the admin gate ---------------------------------------------------
$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").textContent = "";
  try {
    await signInWithEmailAndPassword(auth, $("email").value, $("password").value);
  } catch (err) {
    $("signin-error").textContent = err.code || String(err);
  }
});
$("signout-denied").addEventListener("click", () => signOut(auth));

onAuthStateChanged(auth, async (user) => {
  stopListening();
  document.querySelectorAll(".page").forEach((p) => (p.hidden = true));
  $("nav").hidden = true;
  $("denied").hidden = true;
  $("signin").hidden = !!user;
  $("who").textContent = user ? user.email : "";
  if (!user) return;
  const token = await user.getIdTokenResult(true);
  if (token.claims.role !== "admin") {
    $("denied").hidden = false;
    document.body.dataset.state = "denied";
    return;
  }
  document.body.dataset.state = "admin";
  $("nav").hidden = false;
  route();
});

window.addEventListener("hashchange", () => auth.currentUser && document.body.dataset.state === "admin" && route());

function route() {
  stopListening();
  const page = (location.hash || "#health").slice(1);
  document.querySelectorAll(".page").forEach((p) => (p.hidden = p.id !== `page-${page}`));
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  ({ health, metrics, events, trace, dead }[page] || health)();
}

// ---- Health: ops_health's report, refreshed whenever the bus changes ------------------
async function fetchHealth() {
  // Same origin: Hosting rewrites /api/ops_health to the function (the emulator does too).
  const token = await auth.currentUser.getIdToken();
  const r = await fetch("/api/ops_health", { headers: { Authorization: `Bearer ${token}` } });
  return r.json();
}

async function renderHealth() {
  const report = await fetchHealth();
  $("health-status").innerHTML = tag(report.status === "up" ? "processed" : "dead") + " " + esc(report.status);
  const sweep = report.last_sweep || {};
  $("health-summary").textContent =
    `pending ${report.totals?.pending ?? 0} · dead letters ${report.totals?.dead_letters ?? 0} · ` +
    `Firestore ${report.firestore?.latency_ms ?? "?"} ms · last sweep ${sweep.time ? fmt(sweep.time) + ` (${sweep.age_seconds} s ago)` : "never"}`;
  const rows = Object.entries(report.subscribers || {}).sort(([a, x], [b, y]) => (x.domain + a).localeCompare(y.domain + b));
  $("health-table").tBodies[0].innerHTML = rows.map(([name, r]) => `
    <tr class="${r.failed || r.dead_letters ? "bad" : ""}" data-subscriber="${esc(name)}">
      <td>${esc(r.domain)}</td><td>${esc(name)}</td><td>${esc(r.event_type)}</td><td>${r.processing}</td>
      <td>${r.failed}</td><td>${r.oldest_pending_age_seconds} s</td><td>${r.dead_letters}</td></tr>`).join("");
  document.body.dataset.health = "ready";
}

function health() {
  renderHealth();
  let timer = null;
  const refresh = () => { clearTimeout(timer); timer = setTimeout(renderHealth, 300); };
  unsubscribers.push(onSnapshot(query(collection(db, "deliveries"), where("status", "in", ["processing", "failed"])), refresh));
  unsubscribers.push(onSnapshot(query(collection(db, "dead_letters"), where("status", "==", "dead")), refresh));
  unsubscribers.push(onSnapshot(doc(db, "ops_state", "sweep"), refresh));
}

// ---- Metrics: ops_get_metrics' series for the last hour or day, drawn with uPlot --------------------
let metricsWindow = "hour";
let lastMetrics = null;

function metrics() {
  const getMetrics = httpsCallable(functions, "ops_get_metrics");
  const load = async () => {
    document.body.dataset.metrics = "loading";
    document.querySelectorAll("[data-window]").forEach((b) => b.classList.toggle("active", b.dataset.window === metricsWindow));
    try {
      lastMetrics = (await getMetrics({ window: metricsWindow })).data;
      renderMetrics(lastMetrics);
      document.body.dataset.metrics = "ready";
    } catch (err) {
      $("metrics-summary").textContent = `could not load the metrics: ${err.code || err}`;
      document.body.dataset.metrics = "error";
    }
  };
  document.querySelectorAll("[data-window]").forEach((b) => {
    b.onclick = () => { metricsWindow = b.dataset.window; load(); };
  });
  $("metrics-refresh").onclick = load;
  $("latency-subscriber").onchange = () => lastMetrics && drawLatency(lastMetrics);
  load();
}

window.addEventListener("resize", () => resizeAll(document));

// ---- Events -------------------------------------------------------------------------------
function events() {
  const select = $("event-type");
  const listen = () => {
    stopListening();
    const base = collectionGroup(db, "events");
    const q = select.value
      ? query(base, where("type", "==", select.value), orderBy("time", "desc"), limit(50))
      : query(base, orderBy("time", "desc"), limit(50));
    unsubscribers.push(onSnapshot(q, (snap) => {
      const types = new Set([...select.options].map((o) => o.value));
      snap.docs.forEach((d) => {
        if (!types.has(d.get("type"))) { select.add(new Option(d.get("type"), d.get("type"))); types.add(d.get("type")); }
      });
      $("events-table").tBodies[0].innerHTML = snap.docs.map((d) => `
        <tr class="clickable" data-event="${esc(d.id)}"><td>${fmt(d.get("time"))}</td><td>${esc(d.get("type"))}</td>
        <td>${esc(d.get("source"))}</td><td>${esc(d.get("subject"))}</td><td>${esc(d.get("correlation_id"))}</td></tr>
        <tr class="detail" data-detail="${esc(d.id)}" hidden><td colspan="5"></td></tr>`).join("");
      document.body.dataset.events = String(snap.size);
    }));
  };
  select.onchange = listen;
  $("events-table").onclick = async (e) => {
    const row = e.target.closest("tr[data-event]");
    if (!row) return;
    const id = row.dataset.event;
    const detail = document.querySelector(`tr[data-detail="${id}"]`);
    detail.hidden = !detail.hidden;
    if (detail.hidden) return;
    const eventDoc = (await getDocs(query(collectionGroup(db, "events"), where("id", "==", id), limit(1)))).docs[0];
    const deliveries = await getDocs(query(collection(db, "deliveries"), where("event_id", "==", id)));
    detail.cells[0].innerHTML = `<pre>${esc(JSON.stringify(eventDoc?.data() ?? {}, null, 2))}</pre>
      <table><tr><th>subscriber</th><th>status</th><th>attempts</th><th>last error</th></tr>
      ${deliveries.docs.map((d) => `<tr><td>${esc(d.get("subscriber"))}</td><td>${tag(d.get("status"))}</td>
        <td>${d.get("attempts")}</td><td>${esc(d.get("last_error") || "")}</td></tr>`).join("") || "<tr><td colspan=4>no deliveries (no subscriber)</td></tr>"}</table>`;
  };
  listen();
}

// ---- Trace: one checkout as a waterfall (a correlation id or an order id) -------------------------
const millis = (t) => when(t)?.getTime() ?? null;

function trace() {
  $("trace-form").onsubmit = async (e) => {
    e.preventDefault();
    let id = $("trace-input").value.trim();
    const order = await getDoc(doc(db, "orders", id)).catch(() => null);
    if (order && order.exists()) id = order.get("correlation_id");
    const [evs, dels, orders, payments] = await Promise.all([
      getDocs(query(collectionGroup(db, "events"), where("correlation_id", "==", id))),
      getDocs(query(collection(db, "deliveries"), where("correlation_id", "==", id))),
      getDocs(query(collection(db, "orders"), where("correlation_id", "==", id))),
      getDocs(query(collection(db, "payments"), where("correlation_id", "==", id))),
    ]);
    const waterfall = buildWaterfall({
      orders: orders.docs.map((d) => ({ id: d.id, created: millis(d.get("created_time")),
        detail: `order ${d.id} (${d.get("total")} ${d.get("currency")})` })),
      payments: payments.docs.map((d) => ({ id: d.id, created: millis(d.get("created_time")), trace: d.get("trace") })),
      events: evs.docs.map((d) => ({ id: d.get("id") || d.id, type: d.get("type"), source: d.get("source"), subject: d.get("subject"),
        time: millis(d.get("time")), trace: d.get("trace") })),
      deliveries: dels.docs.map((d) => ({
        id: d.id, subscriber: d.get("subscriber"), event_id: d.get("event_id"), status: d.get("status"), attempts: d.get("attempts"),
        processed: millis(d.get("processed_time")), duration_ms: d.get("duration_ms"), trace: d.get("trace"),
        history: (d.get("history") || []).map((h) => ({ ...h, at: millis(h.at) })),
      })),
    });
    renderWaterfall($("trace-waterfall"), waterfall);
    const traces = [...new Set([...evs.docs, ...payments.docs].map((d) => d.get("trace")?.trace_id).filter(Boolean))];
    $("trace-summary").innerHTML = `correlation id <code>${esc(id)}</code>: ${evs.size} events, ${dels.size} deliveries, ` +
      `${Math.round(waterfall.end - waterfall.start)} ms from first to last` +
      (traces.length ? ` · trace ${traces.map((t) => (local ? `<code>${esc(t)}</code>`
        : `<a href="https://console.cloud.google.com/traces/list?project=${encodeURIComponent(cfg.projectId)}&tid=${esc(t)}" target="_blank" rel="noopener">${esc(t)}</a>`)).join(", ")}` : "");
    $("trace-docs").innerHTML = [...orders.docs.map((d) => `orders/${d.id}`), ...payments.docs.map((d) => `payments/${d.id}`),
      ...evs.docs.map((d) => d.ref.path)].map((p) => `<li><code>${esc(p)}</code></li>`).join("");
    document.body.dataset.trace = String(waterfall.rows.length);
  };
}

// ---- Dead letters ------------------------------------------------------------------------------
function dead() {
  const replay = httpsCallable(functions, "ops_replay_dead_letters");
  unsubscribers.push(onSnapshot(query(collection(db, "dead_letters"), orderBy("created_time", "desc"), limit(100)), (snap) => {
    const open = snap.docs.filter((d) => d.get("status") === "dead").length;
    $("dead-summary").textContent = `${open} waiting for replay`;
    $("dead-list").innerHTML = snap.docs.map((d) => `
      <div class="card" data-letter="${esc(d.id)}" data-status="${esc(d.get("status"))}">
        <strong>${esc(d.get("subscriber"))}</strong> · ${esc(d.get("event_type"))} · ${tag(d.get("status"))}
        ${d.get("replay_outcome") ? "→ " + tag(d.get("replay_outcome")) : ""}
        ${d.get("status") === "dead" ? `<button data-replay="${esc(d.id)}">Replay</button>` : ""}
        <p class="error">${esc(d.get("error"))}</p>
        <details><summary>history (${(d.get("history") || []).length})</summary>
        <pre>${esc(JSON.stringify(d.get("history"), null, 2))}</pre></details></div>`).join("");
  }));
  $("dead-list").onclick = async (e) => {
    const id = e.target.dataset?.replay;
    if (!id) return;
    e.target.disabled = true;
    await replay({ ids: [id] });
  };
  $("replay-all").onclick = () => replay({ all: true });
}
