// The dashboard in a real browser: Debian's Chromium driven by playwright-core,
// against `stepwise dev` (SQLite, in-process worker) serving real workflows whose
// steps are real processes. Screenshots of the run go to docs/screenshots.
//
// Run by .ci/browser; needs the stepwise binary (STEPWISE_BIN, default
// ../../../../target/debug/stepwise) and /usr/bin/chromium (CHROMIUM).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../../..");
const bin = process.env.STEPWISE_BIN || join(process.env.CARGO_TARGET_DIR || join(root, "target"), "debug/stepwise");
const shots = process.env.SCREENSHOT_DIR || join(root, "docs/screenshots");
const port = 18000 + (process.pid % 1000);
const base = `http://127.0.0.1:${port}`;

const WORKFLOWS = {
  // Fails in its second step, twice, printing to stderr first: the failure a person
  // has to diagnose from the page.
  "report.toml": `
name = "report"
[defaults]
max_attempts = 2
backoff = { initial = "100ms", factor = 1.0, max = "100ms" }
[[steps]]
name = "fetch"
exec = ["sh", "-c", "echo 'fetched 3 rows' >&2; echo '{\\"rows\\": 3}'"]
[[steps]]
name = "render"
exec = ["sh", "-c", "echo 'loading template report.html' >&2; echo 'rendering 3 rows' >&2; echo 'error: template not found: report.html' >&2; exit 3"]
`,
  // Reserves, then waits: something to cancel, with a step to compensate.
  "slow.toml": `
name = "slow"
[[steps]]
name = "reserve"
exec = ["sh", "-c", "echo '{\\"seat\\": 12}'"]
compensate = ["sh", "-c", "echo released seat >&2; echo '{}'"]
[[steps]]
name = "wait"
exec = ["sleep", "60"]
`,
  // Waits for an approval without a worker, then deploys.
  "approval.toml": `
name = "approval"
[[steps]]
name = "approve"
wait = { signal = "approved", timeout = "72h" }
[[steps]]
name = "deploy"
after = ["approve"]
exec = ["sh", "-c", "cat > /dev/null; echo '{\\"deployed\\": true}'"]
`,
  // One start an hour on its key: the first run's step starts, the others wait.
  "metered.toml": `
name = "metered"
[[steps]]
name = "call"
exec = ["sh", "-c", "cat > /dev/null; echo '{}'"]
rate_limit = { key = "mock:acme", limit = 1, per = "1h" }
`,
  // Two schedules that are not due while the tests run: their runs are started by
  // hand ("Run now").
  "digest.toml": `
name = "digest"
[[steps]]
name = "send"
exec = ["sh", "-c", "cat > /dev/null; echo '{\\"sent\\": true}'"]
[[schedules]]
name = "nightly-digest"
cron = "0 2 * * *"
timezone = "Europe/Paris"
overlap = "skip"
[[schedules]]
name = "hourly-sync"
every = "1h"
`,
  // Sixty items, four at a time; item 7 fails and the others go on.
  "fanout.toml": `
name = "fanout"
[[steps]]
name = "plan"
exec = ["sh", "-c", "cat > /dev/null; echo '{\\"hooks\\": [${[...Array(60).keys()].join(", ")}]}'"]
[[steps]]
name = "hooks"
after = ["plan"]
for_each = "steps.plan.output.hooks"
exec = ["sh", "-c", "ctx=$(cat); sleep 0.2; case \\"$ctx\\" in *'\\"item_index\\":7,'*|*'\\"item_index\\":7}'*) echo 'hook 7: checksum mismatch' >&2; exit 3;; esac; echo '{\\"ok\\": true}'"]
max_parallel = 4
max_attempts = 1
on_item_failure = "continue"
`,
  // A parent that starts one child run per element of its input.
  "family.toml": `
name = "family"
[[steps]]
name = "each"
for_each = "input.names"
run = { workflow = "greeting" }
`,
  "greeting.toml": `
name = "greeting"
[[steps]]
name = "hello"
exec = ["sh", "-c", "cat > /dev/null; echo '{\\"hello\\": true}'"]
`,
};

let server;
let browser;
let page;
let work;

async function api(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function until(what, fn, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function runStatus(id) {
  return (await api("GET", "/v1/runs/" + id)).body.status;
}

async function start(workflow) {
  const r = await api("POST", "/v1/runs", { workflow, input: {} });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}

async function shot(name, p = page) {
  mkdirSync(shots, { recursive: true });
  await p.screenshot({ path: join(shots, name), fullPage: false });
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "stepwise-browser-"));
  const flows = join(work, "workflows");
  mkdirSync(flows);
  for (const [name, text] of Object.entries(WORKFLOWS)) writeFileSync(join(flows, name), text);
  server = spawn(bin, ["dev", "--workflows", flows, "--listen", `127.0.0.1:${port}`, "--pool", "*=4", "--shutdown-timeout", "1s"], {
    cwd: work,
    env: { ...process.env, STEPWISE_DATABASE_URL: `sqlite://${join(work, "dashboard.db")}`, RUST_LOG: "warn" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  await until("the server", async () => {
    if (server.exitCode !== null) throw new Error("stepwise dev exited: " + server.exitCode);
    try {
      return (await fetch(base + "/readyz")).ok;
    } catch {
      return false;
    }
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("pageerror", (e) => console.error("page error:", e));
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill("SIGTERM");
  if (work) rmSync(work, { recursive: true, force: true });
});

test("the list shows a new run without a reload", async () => {
  await page.goto(base + "/");
  await page.locator("h1", { hasText: "Runs" }).waitFor();
  await page.locator("#live.on").waitFor();
  await page.evaluate(() => { window.__notReloaded = true; });
  const id = await start("report");
  await page.locator(`tr[data-run="${id}"]`).waitFor({ timeout: 10000 });
  assert.equal(await page.evaluate(() => window.__notReloaded), true, "the page was not reloaded");
  // It moves on by itself to failed.
  await page.locator(`tr[data-run="${id}"] [data-status="failed"]`).waitFor({ timeout: 20000 });
  await start("report");
  await start("slow");
  await page.waitForTimeout(800);
  await shot("runs.png");
});

test("a failed step's error and log are visible on its run page without a click", async () => {
  const id = await start("report");
  await until("the run to fail", async () => (await runStatus(id)) === "failed", 20000);
  await page.goto(`${base}/runs/${id}`);
  const summary = page.locator("#run-error");
  await summary.waitFor();
  assert.match(await summary.innerText(), /render/);
  const render = page.locator('section.step[data-step="render"]');
  // Both attempts, each with its error and the tail of its log, in the first render.
  for (const n of [1, 2]) {
    const attempt = render.locator(`.attempt[data-attempt="${n}"]`);
    assert.match(await attempt.locator(".error-box").innerText(), /exit|status|3/);
    const log = attempt.locator(".log-tail pre");
    assert.ok(await log.isVisible(), `attempt ${n}'s log is visible`);
    assert.match(await log.innerText(), /template not found: report\.html/);
  }
  // The graph: fetch, then render, coloured by status.
  const nodes = page.locator("#graph .node");
  assert.deepEqual(await nodes.allInnerTexts(), ["fetch", "render"]);
  assert.match(await nodes.nth(1).getAttribute("class"), /s-failed/);
  await shot("run-failed.png");
  const narrow = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await narrow.goto(`${base}/runs/${id}`);
  await narrow.locator("#run-error").waitFor();
  const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no sideways scrolling on a narrow screen (${overflow}px)`);
  await shot("run-narrow.png", narrow);
  await narrow.close();
});

test("cancel and retry work from the run page", async () => {
  const id = await start("slow");
  await until("the wait step to run", async () => {
    const run = (await api("GET", "/v1/runs/" + id)).body;
    return run.steps.find((s) => s.name === "wait").status === "running";
  });
  await page.goto(`${base}/runs/${id}`);
  // While nothing changes the page is not redrawn (it polls every 5 s): focus stays,
  // and the running duration ticks on by itself.
  await page.locator("#cancel-run").focus();
  const ticking = page.locator('section.step[data-step="wait"] .attempt [data-since]');
  const before = await ticking.innerText();
  await page.waitForTimeout(5500);
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), "cancel-run");
  assert.notEqual(await ticking.innerText(), before, "the running attempt's duration moves on");
  await page.locator("#cancel-run").click();
  await page.locator("#dialog[open]").waitFor();
  await page.locator("#compensate").selectOption("true");
  await page.locator("#dialog-ok").click();
  await until("the run to be compensated", async () => (await runStatus(id)) === "compensated");
  await page.locator('h1 [data-status="compensated"]').waitFor({ timeout: 10000 });
  await page.locator('section.step[data-step="compensate:reserve"] .head [data-status="completed"]').waitFor();
  // Compensations are drawn in a lane of their own after the forward graph.
  assert.deepEqual(await page.locator('#graph [data-lane="compensation"] .node').allInnerTexts(), ["compensate:reserve"]);
  assert.ok(!(await page.locator('#graph [data-lane="forward"] .node').allInnerTexts()).includes("compensate:reserve"),
    "no compensation among the forward steps");
  await shot("run-compensated.png");

  // A failed run retried from its first step runs both steps again.
  const failed = await start("report");
  await until("the run to fail", async () => (await runStatus(failed)) === "failed", 20000);
  await page.goto(`${base}/runs/${failed}`);
  // A log the reader opened stays open while the page follows the run.
  const fetchLog = page.locator('details[data-key="log:fetch:1"]');
  await fetchLog.locator("summary").click();
  await page.locator("#retry-run").click();
  await page.locator("#dialog[open]").waitFor();
  await page.locator("#retry-from").selectOption("fetch");
  await page.locator("#dialog-ok").click();
  await until("the retried run to fail again with fresh attempts", async () => {
    const run = (await api("GET", "/v1/runs/" + failed)).body;
    const fetch = run.steps.find((s) => s.name === "fetch");
    return run.status === "failed" && fetch.history.length === 2;
  }, 20000);
  // The page follows the run live: the second round of attempts appears.
  await page.locator('section.step[data-step="render"] .attempt[data-attempt="4"]').waitFor({ timeout: 10000 });
  assert.equal(await fetchLog.evaluate((d) => d.open), true, "the opened log is still open");
});

test("a waiting step says what it waits for, and the run page sends its signal", async () => {
  const id = await start("approval");
  await until("the approval step to wait", async () => {
    const run = (await api("GET", "/v1/runs/" + id)).body;
    return run.steps.find((s) => s.name === "approve").status === "waiting";
  });
  await page.goto(`${base}/runs/${id}`);
  const step = page.locator('section.step[data-step="approve"]');
  await step.locator('.head [data-status="waiting"]').waitFor();
  const waiting = await step.locator('[data-waiting="signal"]').innerText();
  assert.match(waiting, /^waiting for signal approved \(until .+\)$/);
  await shot("run-waiting.png");
  await page.locator("#signal-run").click();
  await page.locator("#dialog[open]").waitFor();
  assert.equal(await page.locator("#signal-name").inputValue(), "approved", "the name the step waits for");
  await page.locator("#signal-data").fill('{"by": "ann"}');
  await page.locator("#dialog-ok").click();
  await until("the run to complete", async () => (await runStatus(id)) === "completed");
  const run = (await api("GET", "/v1/runs/" + id)).body;
  assert.deepEqual(run.steps.find((s) => s.name === "approve").output, { by: "ann" });
  await page.locator('h1 [data-status="completed"]').waitFor({ timeout: 10000 });
});

test("a for_each step is one row with its items counted, and any item opens", async () => {
  const id = await start("fanout");
  await page.goto(`${base}/runs/${id}`);
  const hooks = page.locator('section.step[data-step="hooks"][data-items="60"]');
  await hooks.waitFor({ timeout: 30000 });
  assert.equal(await page.locator("section.step").count(), 2, "plan and hooks: no section per item");
  // The list is read only once opened, and then follows the run live.
  await hooks.locator("details.item-list > summary").click();
  const rows = hooks.locator('.items[data-items-of="hooks"] details[data-item]');
  await until("the first page of items", async () => (await rows.count()) === 50, 30000);
  assert.equal(await rows.first().getAttribute("data-item"), "hooks[0]");
  await hooks.locator('details[data-item="hooks[49]"] [data-status="completed"]').waitFor({ timeout: 60000 });
  await hooks.locator('[data-count="completed"]', { hasText: "59 completed" }).waitFor({ timeout: 60000 });
  assert.equal(await hooks.locator('[data-count="failed"]').innerText(), "1 failed");
  await page.locator('h1 [data-status="completed"]').waitFor({ timeout: 30000 });
  await hooks.scrollIntoViewIfNeeded();
  await shot("run-items.png");
  await hooks.locator('button[data-page="next"]').click();
  await until("the second page", async () => (await rows.count()) === 10 &&
    (await rows.first().getAttribute("data-item")) === "hooks[50]", 10000);
  // Any item by its index: its page, opened, with its error and log.
  await hooks.locator("input.item-index").fill("7");
  await hooks.locator("form.item-jump button").click();
  const seventh = hooks.locator('details[data-item="hooks[7]"][open]');
  await seventh.waitFor({ timeout: 10000 });
  assert.match(await seventh.locator('.attempt .error-box').innerText(), /exit|status|3/);
  await seventh.locator(".log-tail pre", { hasText: "checksum mismatch" }).waitFor({ timeout: 10000 });
  const run = (await api("GET", "/v1/runs/" + id)).body;
  assert.equal(run.steps.length, 2, "the API counts items, it does not list them");
  assert.equal(run.steps[1].items.total, 60);
});

test("a parent run lists its children and a child links to its parent", async () => {
  const r = await api("POST", "/v1/runs", { workflow: "family", input: { names: ["ann", "bob"] } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const id = r.body.id;
  await until("the parent to complete", async () => (await runStatus(id)) === "completed", 30000);
  await page.goto(`${base}/runs/${id}`);
  const children = page.locator("#children tr[data-child]");
  await until("both children listed", async () => (await children.count()) === 2, 10000);
  const steps = await page.locator("#children tr[data-child] code").allInnerTexts();
  assert.deepEqual(steps.sort(), ["each[0]", "each[1]"]);
  await children.first().locator("a").click();
  const parent = page.locator("[data-parent]");
  await parent.waitFor({ timeout: 10000 });
  assert.equal(await parent.getAttribute("data-parent"), id);
  assert.match(await parent.innerText(), /\(step each\[\d\]\)/);
  await parent.locator("a").click();
  await page.locator("#children").waitFor({ timeout: 10000 });
  assert.equal(new URL(page.url()).pathname, `/runs/${id}`);
});

test("the locks page force-releases a lock with a reason", async () => {
  const taken = await api("POST", "/v1/locks/db:main", { ttl: "10m" });
  assert.equal(taken.status, 200, JSON.stringify(taken.body));
  await page.goto(base + "/locks");
  const row = page.locator('tr[data-lock="db:main"]');
  await row.waitFor();
  await shot("locks.png");
  await row.locator("button[data-force]").click();
  await page.locator("#dialog[open]").waitFor();
  // An empty reason is not sent; Enter in the field confirms.
  await page.locator("#force-reason").press("Enter");
  assert.equal(await page.locator("#dialog[open]").count(), 1, "the dialog waits for a reason");
  await page.locator("#force-reason").fill("the deploy holding it crashed");
  await page.locator("#force-reason").press("Enter");
  await row.waitFor({ state: "detached", timeout: 10000 });
  assert.deepEqual((await api("GET", "/v1/locks")).body.locks, []);
  const events = (await api("GET", "/v1/events?limit=5000")).body.events;
  const forced = events.find((e) => e.kind === "lock.force_released");
  assert.ok(forced, "a lock.force_released event");
  assert.equal(forced.data.reason, "the deploy holding it crashed");
});

test("queues, workers, groups and events pages render live data", async () => {
  await api("POST", "/v1/groups", { name: "nightly", runs: [{ workflow: "report" }, { workflow: "report" }] });
  await page.goto(base + "/queues");
  await page.locator('tr[data-queue="default"]').waitFor();
  await shot("queues.png");
  await page.goto(base + "/workers");
  await page.locator('tr[data-worker] [data-status="alive"]').first().waitFor();
  await page.goto(base + "/groups");
  await page.locator('tr[data-group="nightly"]').waitFor();
  await page.goto(base + "/events");
  // The newest events are there at once, the newest on top.
  await page.locator('tbody tr[data-kind="group.completed"], tbody tr[data-kind="run.created"]').first().waitFor();
  const kinds = await page.locator("tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.kind));
  assert.ok(kinds.length >= 10, `${kinds.length} events shown`);
  await page.locator("#live.on").waitFor();
  await start("report");
  await page.locator("tbody tr code", { hasText: "run.created" }).first().waitFor({ timeout: 10000 });
});

test("the queues page shows each rate limit key, its delay, and pauses and resumes it", async () => {
  for (let i = 0; i < 3; i++) await start("metered");
  await until("the key to admit one start and hold two", async () => {
    const key = (await api("GET", "/v1/limits")).body.limits.find((l) => l.key === "mock:acme");
    return key && key.admitted === 1 && key.waiting === 2;
  }, 20000);
  await page.goto(base + "/queues");
  const row = page.locator('tr[data-limit="mock:acme"]');
  await row.waitFor();
  const text = await row.innerText();
  assert.match(text, /1 \/ 1h/);
  assert.match(text, /next start in/);
  await row.locator('button[data-action="pause"]').click();
  await page.locator("#pause-for").fill("2h");
  await page.locator("#pause-for").press("Enter");
  await page.locator('tr[data-limit="mock:acme"][data-paused="true"]').waitFor({ timeout: 10000 });
  assert.match(await row.innerText(), /paused ends in 1h 59m|paused ends in 2h/);
  await shot("queues-limits.png");
  await row.locator('button[data-action="resume"]').click();
  await page.locator('tr[data-limit="mock:acme"][data-paused="false"]').waitFor({ timeout: 10000 });
  const kinds = (await api("GET", "/v1/events?limit=5000")).body.events.map((e) => e.kind);
  assert.ok(kinds.includes("limit.paused") && kinds.includes("limit.resumed"), kinds.join(" "));
});

test("the schedules page shows each schedule, runs one now and pauses it", async () => {
  await page.goto(base + "/schedules");
  const row = page.locator('tr[data-schedule="nightly-digest"]');
  await row.waitFor();
  const text = await row.innerText();
  assert.match(text, /0 2 \* \* \*/);
  assert.match(text, /Europe\/Paris/);
  assert.match(await page.locator('tr[data-schedule="hourly-sync"]').innerText(), /every 1h/);
  const listed = (await api("GET", "/v1/schedules")).body.schedules;
  const next = listed.find((s) => s.spec.name === "nightly-digest").next_fire_at;
  assert.equal(await row.locator("[data-next]").getAttribute("data-next"), next);
  // "Run now": the run shows up in the row by itself, links to its page, and that
  // page says which schedule started it.
  await row.locator('button[data-action="trigger"]').click();
  const link = row.locator("[data-run] a");
  await link.waitFor({ timeout: 10000 });
  await row.locator('[data-run] [data-status="completed"]').waitFor({ timeout: 20000 });
  await shot("schedules.png");
  await link.click();
  const scheduled = page.locator("[data-scheduled]");
  await scheduled.waitFor();
  assert.match(await scheduled.innerText(), /^by nightly-digest for \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  // Pause, then resume, from the page.
  await page.goto(base + "/schedules");
  await row.locator('button[data-action="pause"]').click();
  await page.locator('tr[data-schedule="nightly-digest"][data-paused="true"]').waitFor({ timeout: 10000 });
  const paused = (await api("GET", "/v1/schedules")).body.schedules.find((s) => s.spec.name === "nightly-digest");
  assert.equal(paused.paused, true);
  await row.locator('button[data-action="resume"]').click();
  await page.locator('tr[data-schedule="nightly-digest"][data-paused="false"]').waitFor({ timeout: 10000 });
});

test("with tokens, the page asks for one and keeps it for the tab", async () => {
  // A second server on the same database, with tokens and no worker.
  const url = `sqlite://${join(work, "dashboard.db")}`;
  const env = { ...process.env, STEPWISE_DATABASE_URL: url, RUST_LOG: "warn" };
  const created = spawnSync(bin, ["tokens", "create", "--scope", "read", "--name", "browser"], { env, encoding: "utf8" });
  assert.equal(created.status, 0, created.stderr);
  const secret = created.stdout.trim().split("\n").pop();
  const failed = await start("report");
  await until("the run to fail", async () => (await runStatus(failed)) === "failed", 20000);
  const guarded = `http://127.0.0.1:${port + 1}`;
  const other = spawn(bin, ["server", "--no-worker", "--listen", `127.0.0.1:${port + 1}`], { env, stdio: "inherit" });
  try {
    await until("the guarded server", async () => {
      if (other.exitCode !== null) throw new Error("stepwise server exited: " + other.exitCode);
      try { return (await fetch(guarded + "/readyz")).ok; } catch { return false; }
    });
    const tab = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await tab.goto(guarded + "/");
    const banner = tab.locator("#banner");
    await banner.waitFor();
    assert.match(await banner.innerText(), /needs an API token/);
    await banner.locator("input[name=token]").fill(secret);
    await banner.locator("button[type=submit]").click();
    await tab.locator("tr[data-run]").first().waitFor();
    assert.equal(await tab.evaluate(() => sessionStorage.getItem("stepwise.token")), secret);
    // It survives a reload; a read token may look but not retry: the refusal is
    // shown and nothing changes.
    await tab.goto(`${guarded}/runs/${failed}`);
    await tab.locator("#retry-run").click();
    await tab.locator("#dialog-ok").click();
    await tab.locator("#toast", { hasText: "needs a write token" }).waitFor();
    assert.equal(await runStatus(failed), "failed");
    await tab.close();
  } finally {
    other.kill("SIGTERM");
  }
});
