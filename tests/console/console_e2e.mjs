// Drives the ops console in the machine's headless Chrome or Chromium (playwright-core,
// which downloads no browser of its own). Input: a JSON scenario in argv[2], whose
// `browser` is the executable devtools/browser.py found (tests/integration/test_console.py
// passes it). Output: one JSON line of findings on stdout; screenshots into .run/screenshots/.
import { chromium } from "playwright-core";

const scenario = JSON.parse(process.argv[2]);
const shots = scenario.screenshots;
const out = { csp_violations: [] };
if (!scenario.browser) {
  out.error = "no browser given: run this through tests/integration/test_console.py, or pass \"browser\" " +
    "(python -m devtools.browser prints the one it would use)";
  console.log(JSON.stringify(out));
  process.exit(0);
}
let browser;
try {
  browser = await chromium.launch({
    executablePath: scenario.browser,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  out.browser_version = browser.version();
} catch (err) {
  out.error = `the browser ${scenario.browser} (${scenario.browser_source || "given"}) did not start: ${String(err && err.message || err)}`;
  console.log(JSON.stringify(out));
  process.exit(0);
}

// Anything the Content-Security-Policy blocked (the page must not need it).
function watch(page) {
  page.on("console", (msg) => {
    if (msg.type() === "error" && /Content Security Policy/i.test(msg.text())) out.csp_violations.push(msg.text());
  });
  return page;
}

// What each chart on the Metrics page plots (uPlot's own data arrays, kept on `.plot` as `uplot`),
// and how many pixels of each series' colour its plot area shows (it was drawn, not just built).
function readCharts(page) {
  return page.evaluate(() => {
    const chart = (id) => {
      const u = document.querySelector(`#${id} .plot`).uplot;
      if (!u) return null;
      const { left, top, width, height } = u.bbox; // canvas pixels
      const px = u.ctx.getImageData(left, top, Math.max(1, width), Math.max(1, height)).data;
      const series = u.series.slice(1).map((s, i) => {
        const hex = typeof s.stroke === "function" ? s.stroke(u, i + 1) : s.stroke;
        const rgb = [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
        let drawn = 0;
        for (let p = 0; p < px.length; p += 4) {
          if (px[p + 3] > 200 && rgb.every((v, k) => Math.abs(px[p + k] - v) < 40)) drawn++;
        }
        return { label: s.label, points: u.data[i + 1].length, values: u.data[i + 1].filter((v) => v != null), drawn };
      });
      return { x: u.data[0].length, first_x: u.data[0][0], last_x: u.data[0][u.data[0].length - 1],
               canvas: [u.ctx.canvas.width, u.ctx.canvas.height], series };
    };
    const num = (v) => (v === "" || v == null ? null : Number(v));
    return {
      summary: document.getElementById("metrics-summary").textContent,
      events: chart("chart-events"), latency: chart("chart-latency"), failures: chart("chart-failures"),
      latency_subscriber: document.getElementById("chart-latency").dataset.subscriber,
      latency_rows: [...document.querySelectorAll("#latency-table tbody tr")].map((r) => ({
        subscriber: r.dataset.subscriber, count: Number(r.dataset.count), p50: num(r.dataset.p50), p95: num(r.dataset.p95) })),
    };
  });
}

async function signIn(page, email, password) {
  await page.goto(scenario.url, { waitUntil: "domcontentloaded" });
  await page.fill("#email", email);
  await page.fill("#password", password);
  await page.click("#signin-form button[type=submit]");
  await page.waitForFunction(() => ["admin", "denied"].includes(document.body.dataset.state), null, { timeout: 30000 });
  return page.evaluate(() => document.body.dataset.state);
}

try {
  // 1. a non-admin sees nothing
  {
    const page = watch(await browser.newPage({ viewport: { width: 1200, height: 700 } }));
    out.member_state = await signIn(page, scenario.member.email, scenario.member.password);
    out.member_nav_visible = await page.isVisible("#nav");
    out.member_tables_visible = await page.isVisible("#health-table");
    await page.screenshot({ path: `${shots}/denied.png` });
    await page.close();
  }
  // 2. an admin: health, events, trace, dead letters
  const page = watch(await browser.newPage({ viewport: { width: 1300, height: 900 } }));
  out.admin_state = await signIn(page, scenario.admin.email, scenario.admin.password);
  await page.waitForFunction(() => document.body.dataset.health === "ready", null, { timeout: 30000 });
  out.health_rows = await page.locator("#health-table tbody tr").count();
  out.health_dead_row = await page.locator(`#health-table tr[data-subscriber="${scenario.dead_subscriber}"] td`).last().textContent();
  await page.screenshot({ path: `${shots}/health.png`, fullPage: true });

  await page.goto(`${scenario.url}#events`);
  await page.waitForFunction(() => Number(document.body.dataset.events || 0) > 0, null, { timeout: 30000 });
  out.event_rows = Number(await page.evaluate(() => document.body.dataset.events));
  await page.locator("#events-table tr[data-event]").first().click();
  await page.waitForSelector("#events-table tr.detail:not([hidden]) pre", { timeout: 15000 });
  await page.screenshot({ path: `${shots}/events.png`, fullPage: true });

  await page.goto(`${scenario.url}#trace`);
  await page.fill("#trace-input", scenario.order_id);
  await page.click("#trace-form button");
  await page.waitForFunction(() => Number(document.body.dataset.trace || 0) > 0, null, { timeout: 30000 });
  out.trace_summary = await page.textContent("#trace-summary");
  out.trace_text = await page.textContent("#trace-waterfall");
  out.trace_docs = await page.textContent("#trace-docs");
  // The waterfall's rows (nesting, start, duration) and each bar's place in its track, in pixels.
  out.waterfall = await page.evaluate(() => [...document.querySelectorAll("#trace-waterfall .wf-row")].map((row) => {
    const track = row.querySelector(".wf-track").getBoundingClientRect();
    return {
      key: row.dataset.key, parent: row.dataset.parent, name: row.dataset.name, kind: row.dataset.kind,
      depth: Number(row.dataset.depth), start_ms: Number(row.dataset.startMs), duration_ms: Number(row.dataset.durationMs),
      bars: [...row.querySelectorAll(".wf-bar")].map((bar) => {
        const box = bar.getBoundingClientRect();
        return { outcome: bar.dataset.outcome, start_ms: Number(bar.dataset.startMs), duration_ms: Number(bar.dataset.durationMs),
                 left: box.left - track.left, width: box.width, track: track.width };
      }),
    };
  }));
  await page.screenshot({ path: `${shots}/trace.png`, fullPage: true });

  // Metrics: the last hour, then the last day (the same checkout and dead letter in both).
  await page.goto(`${scenario.url}#metrics`);
  await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.metrics), null, { timeout: 60000 });
  out.metrics_state = await page.evaluate(() => document.body.dataset.metrics);
  out.metrics_hour = await readCharts(page);
  await page.screenshot({ path: `${shots}/metrics.png`, fullPage: true });
  await page.click('[data-window="day"]');
  await page.waitForFunction(() => document.body.dataset.metrics === "ready"
    && document.querySelector('[data-window="day"]').classList.contains("active"), null, { timeout: 60000 });
  out.metrics_day = await readCharts(page);

  await page.goto(`${scenario.url}#dead`);
  const card = page.locator(`.card[data-letter="${scenario.dead_letter}"]`);
  await card.waitFor({ timeout: 30000 });
  out.dead_error = await card.locator(".error").textContent();
  await page.screenshot({ path: `${shots}/dead-letters.png`, fullPage: true });
  await card.locator("button[data-replay]").click();
  await page.waitForSelector(`.card[data-letter="${scenario.dead_letter}"][data-status="replayed"]`, { timeout: 30000 });
  // The letter turns "replayed" before the redelivery runs; its outcome ("→ processed") follows.
  await page.waitForFunction(
    (id) => (document.querySelector(`.card[data-letter="${id}"]`)?.textContent || "").includes("→"),
    scenario.dead_letter, { timeout: 30000 });
  out.dead_after = await page.locator(`.card[data-letter="${scenario.dead_letter}"]`).textContent();
  await page.screenshot({ path: `${shots}/dead-letters-replayed.png`, fullPage: true });
} catch (err) {
  out.error = String(err && err.stack || err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
