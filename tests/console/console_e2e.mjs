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
  out.trace_text = await page.textContent("#trace-timeline");
  out.trace_docs = await page.textContent("#trace-docs");
  await page.screenshot({ path: `${shots}/trace.png`, fullPage: true });

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
