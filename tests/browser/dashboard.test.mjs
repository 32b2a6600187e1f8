// The dashboard in Debian's chromium (playwright-core, headless). Reads its spec (URL, tokens,
// the database's counts and ids) as JSON on stdin from run_dashboard.py, which started a real
// jobbridge. Fails on any console error, any page error, and any request that leaves
// 127.0.0.1. Screenshots of every page in both colour schemes go to spec.out.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const spec = JSON.parse(await new Promise((res) => {
  let s = "";
  process.stdin.on("data", (d) => (s += d)).on("end", () => res(s));
}));
const T = 30000; // generous waits: the machine is shared
const num = (s) => Number(String(s).replace(/[^\d.-]/g, ""));
const errors = [], outside = [];
let allowRefused = 0; // 401s the invalid-token step expects

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
await context.route("**/*", (route) => {
  const u = new URL(route.request().url());
  if (u.protocol === "data:" || u.hostname === "127.0.0.1") return route.continue();
  outside.push(route.request().url());
  return route.abort();
});
const page = await context.newPage();
page.setDefaultTimeout(T);
page.on("console", (m) => {
  if (m.type() !== "error") return;
  if (allowRefused > 0 && /status of 401/.test(m.text())) { allowRefused--; return; }
  errors.push(`console: ${m.text()} (${m.location().url})`);
});
page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
page.on("requestfailed", (r) => { if (!outside.includes(r.url())) errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`); });

const step = async (name, fn) => {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    await page.screenshot({ path: `${spec.out}/FAILED-${name.replace(/\W+/g, "-")}.png`, fullPage: true }).catch(() => {});
    console.error(`FAIL ${name}: ${e.stack || e}`);
    await browser.close();
    process.exit(1);
  }
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
};
const signIn = async (tok) => {
  await page.fill("#token", tok);
  await page.click("#signin-form button[type=submit]");
};
const go = async (hash) => {
  await page.evaluate((h) => { location.hash = h; }, hash);
};
const rows = () => page.locator("tr[data-job]");

await step("an invalid token is refused with a clear message", async () => {
  await page.goto(spec.url + "/");
  await page.waitForSelector("#signin:not([hidden])");
  allowRefused = 1;
  await signIn("not-a-token");
  await page.waitForFunction(() => document.querySelector("#signin-error").textContent.includes("not valid"));
  assert.equal(await page.isVisible("#nav"), false, "no navigation without a valid token");
  assert.equal(allowRefused, 0, "the refusal was the 401 of /v1/whoami");
});

await step("the overview's counts equal the database's", async () => {
  await signIn(spec.ops);
  await page.waitForSelector('[data-testid="who"]:has-text("ops")');
  for (const [queue, st] of Object.entries(spec.counts)) {
    const cell = (k) => page.locator(`[data-testid="q-${queue}-${k}"]`);
    await cell("total").waitFor();
    const want = { pending: st.PENDING || 0, scheduled: st.SCHEDULED || 0, retrying: st.RETRYING || 0,
      running: st.RUNNING || 0, completed: st.COMPLETED || 0, failed: st.FAILED || 0,
      dead_letter: st.DEAD_LETTER || 0, total: Object.values(st).reduce((a, b) => a + b, 0) };
    for (const [k, v] of Object.entries(want)) assert.equal(num(await cell(k).textContent()), v, `${queue} ${k}`);
  }
  await page.waitForSelector('[data-testid="hour-created"]');
  assert.equal(num(await page.textContent('[data-testid="hour-created"]')), spec.total, "jobs created this hour");
  assert.equal(num(await page.textContent('[data-testid="hour-dead_letter"]')), 1, "dead-lettered this hour");
  await page.waitForFunction(() => document.querySelector('[data-testid="conn-db"]'));
  assert.ok(num(await page.textContent('[data-testid="conn-db"]')) > 0, "database connections");
  assert.ok(num(await page.textContent('[data-testid="conn-amqp"]')) > 0, "broker connections");
  assert.equal(num(await page.textContent('[data-testid="ingest-received"]')), 8, "events received");
  // It refreshes by itself: the ingest rate is measured between two polls.
  await page.waitForFunction(() => !document.querySelector('[data-testid="ingest-rate"]').textContent.includes("measuring"), null, { timeout: T });
});

await step("mappings show the events each matched", async () => {
  await go("#/mappings");
  await page.waitForSelector('[data-testid="matched-1"]');
  assert.equal(num(await page.textContent('[data-testid="matched-0"]')), spec.matched[0]);
  assert.equal(num(await page.textContent('[data-testid="matched-1"]')), spec.matched[1]);
  await page.waitForSelector('tr[data-type="flaky"]');
});

await step("the job list filters by status and queue", async () => {
  await go("#/jobs");
  await rows().first().waitFor();
  await page.selectOption('select[name="status"]', "DEAD_LETTER");
  await page.click('form.filters button[type="submit"]');
  await page.waitForFunction(() => location.hash.includes("status=DEAD_LETTER"));
  await page.waitForSelector(`tr[data-job="${spec.dead_id}"]`);
  assert.equal(await rows().count(), 1);
  await page.click("text=Clear");
  await page.fill('input[name="queue"]', "parked");
  await page.click('form.filters button[type="submit"]');
  await page.waitForFunction(() => location.hash.includes("queue=parked"));
  await page.waitForFunction((n) => document.querySelectorAll("tr[data-job]").length === n, spec.counts.parked.PENDING);
  for (const s of await rows().evaluateAll((rs) => rs.map((r) => r.dataset.status))) assert.equal(s, "PENDING");
});

await step("search by event id, job id, and an empty time range", async () => {
  await go("#/jobs");
  await rows().first().waitFor();
  await page.selectOption('select[name="kind"]', "event_id");
  await page.fill('input[name="q"]', spec.event_id);
  await page.click('form.filters button[type="submit"]');
  await page.waitForFunction((n) => location.hash.includes("event_id=") && document.querySelectorAll("tr[data-job]").length === n, spec.event_jobs.length);
  const ids = await rows().evaluateAll((rs) => rs.map((r) => r.dataset.job));
  assert.deepEqual(ids.sort(), [...spec.event_jobs].sort());
  await go(`#/jobs?id=${spec.dead_id}`);
  await page.waitForFunction((id) => document.querySelectorAll("tr[data-job]").length === 1 && document.querySelector(`tr[data-job="${id}"]`), spec.dead_id);
  await go("#/jobs");
  await rows().first().waitFor();
  const later = new Date(Date.now() + 86400000);
  const local = new Date(later.getTime() - later.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  await page.fill('input[name="created_after"]', local);
  await page.click('form.filters button[type="submit"]');
  await page.waitForSelector('[data-testid="note-empty"]:has-text("No job matches")');
});

await step("a job shows its timeline and source event with the event's other jobs", async () => {
  const [first, second] = spec.event_jobs;
  await go("#/jobs");
  await page.click(`tr[data-job="${first}"] a`);
  await page.waitForSelector('[data-testid="timeline"]');
  assert.match(await page.textContent('[data-testid="timeline"]'), /Created/);
  await page.waitForSelector('[data-event="event_id"]');
  assert.equal(await page.textContent('[data-event="event_id"]'), spec.event_id);
  assert.equal(await page.textContent('[data-event="routing_key"]'), "order.created");
  assert.ok((await page.textContent('[data-event="exchange"]')).startsWith("ev."));
  await page.waitForSelector(`[data-testid="siblings"] a[href="#/jobs/${second}"]`);
  await page.waitForSelector('[data-testid="json-payload"] details');
  // A job that ran shows each attempt (GET /v1/jobs/{id}/attempts): the dead-lettered one failed.
  await go(`#/jobs/${spec.dead_id}`);
  await page.waitForSelector('[data-testid="timeline"] li:has-text("Attempt 1 started")');
  assert.match(await page.textContent('[data-testid="timeline"]'), /Attempt 1 ended (DEAD_LETTER|RETRYING|FAILED)/);
});

await step("cancel a waiting job through the UI", async () => {
  await go(`#/jobs/${spec.cancel_id}`);
  await page.click('[data-testid="cancel"]');
  await page.click('[data-testid="confirm-ok"]');
  await page.waitForSelector('[data-field="status"] [data-status="FAILED"]');
  await page.waitForSelector('[data-testid="error"]:has-text("Job cancelled")');
});

await step("bulk-cancel a selection", async () => {
  await go("#/jobs?queue=parked");
  for (const id of spec.bulk_ids) await page.check(`tr[data-job="${id}"] input[type=checkbox]`);
  await page.click('[data-testid="bulk-cancel"]');
  await page.click('[data-testid="confirm-ok"]');
  await page.waitForSelector('p.status:has-text("Cancelled 2 jobs")');
  for (const id of spec.bulk_ids) await page.waitForSelector(`tr[data-job="${id}"][data-status="FAILED"]`);
});

await step("retry a dead-lettered job through the UI", async () => {
  await go(`#/jobs/${spec.dead_id}`);
  await page.click('[data-testid="retry"]');
  await page.click('[data-testid="confirm-ok"]');
  // flaky 2 succeeds on its second attempt: the page polls until it shows COMPLETED.
  await page.waitForSelector('[data-field="status"] [data-status="COMPLETED"]', { timeout: 60000 });
});

async function screenshots(tag) {
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const [name, hash, ready] of [["overview", "#/overview", '[data-testid="hour-created"]'],
      ["jobs", "#/jobs", "tr[data-job]"], ["job", `#/jobs/${spec.event_jobs[0]}`, '[data-testid="siblings"]'],
      ["mappings", "#/mappings", '[data-testid="matched-0"]']]) {
      await go(hash);
      await page.waitForSelector(ready);
      await page.waitForTimeout(300);
      await page.screenshot({ path: `${spec.out}/${name}${tag}-${scheme}.png`, fullPage: true });
    }
  }
}

await step("screenshots of every page in both colour schemes", () => screenshots(""));

await step("a phone-sized window: no page wider than the screen", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: "light" });
  for (const [name, hash, ready] of [["overview", "#/overview", '[data-testid="hour-created"]'], ["jobs", "#/jobs", "tr[data-job]"],
    ["job", `#/jobs/${spec.event_jobs[0]}`, '[data-testid="siblings"]']]) {
    await go(hash);
    await page.waitForSelector(ready);
    const [sw, iw] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(sw <= iw, `${name}: the page is ${sw}px wide in a ${iw}px window`);
    await page.screenshot({ path: `${spec.out}/${name}-narrow-light.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1440, height: 1000 });
});

await step("a read token sees no action buttons", async () => {
  await page.emulateMedia({ colorScheme: "light" });
  await page.click("#sign-out");
  await page.waitForSelector("#signin:not([hidden])");
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.screenshot({ path: `${spec.out}/signin-${scheme}.png` });
  }
  await signIn(spec.viewer);
  await page.waitForSelector('[data-testid="who"]:has-text("viewer")');
  await go("#/jobs?queue=parked");
  await rows().first().waitFor();
  assert.equal(await page.locator('[data-testid="bulk-cancel"], [data-testid="select"], [data-testid="select-all"]').count(), 0);
  assert.equal(await page.isVisible('[data-testid="bulk"]'), false);
  const pending = await page.locator('tr[data-status="PENDING"]').first().getAttribute("data-job");
  await go(`#/jobs/${pending}`);
  await page.waitForSelector('[data-testid="timeline"]');
  assert.equal(await page.locator('[data-testid="cancel"], [data-testid="retry"]').count(), 0);
  await go(`#/jobs/${spec.cancel_id}`);
  await page.waitForSelector('[data-field="status"] [data-status="FAILED"]');
  assert.equal(await page.locator('[data-testid="retry"]').count(), 0);
  await page.screenshot({ path: `${spec.out}/job-read-token-light.png`, fullPage: true });
});

await step("no console error, and no request left 127.0.0.1", async () => {
  assert.deepEqual(errors, []);
  assert.deepEqual(outside, []);
});
await browser.close();
