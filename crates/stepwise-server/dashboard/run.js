// One run: what failed and why first, then every step on a shared timeline with
// its attempts (worker, start, duration, error) and captured logs, the `explain`
// answer for whatever is not running, what a waiting step waits for, and cancel /
// retry / send a signal. A `for_each` step is one section with its items counted
// (items.js); a child run links to its parent and a parent lists its children.

import { get, post } from "./api.js";
import { ago, ask, badge, clock, debounce, duration, elapsed, fireTime, h, json, latest, progress, short, table, tick, toast } from "./ui.js";
import { itemCounts, itemList, loadItems, shownStatus } from "./items.js";

const TERMINAL = ["completed", "failed", "cancelled", "timed_out", "compensated", "compensation_failed"];
const RETRYABLE = ["failed", "cancelled", "timed_out", "compensation_failed"];
const TAIL_LINES = 30;
// Child runs listed on their parent's page (the rest are one link away).
const CHILDREN_SHOWN = 20;

export async function runPage(main, ctx) {
  const id = ctx.params[0];
  const path = "/v1/runs/" + encodeURIComponent(id);

  let ended = false;
  let drawn = "";
  // Which page of each expanded step's items is shown, and items to open once drawn.
  const nav = {
    steps: {},
    opening: new Set(),
    from: (step) => nav.steps[step] || 0,
    go(step, index, item) {
      nav.steps[step] = index;
      if (item) nav.opening.add(item);
      refresh();
    },
    refresh: () => refresh(),
  };
  const load = latest(async (isCurrent) => {
    const run = await get(path);
    const [explanation, logs, children, items] = await Promise.all([
      // A finished run is explained too: its answer names what the http steps call.
      get(path + "/explain").catch(() => null),
      loadLogs(path, run),
      get(`/v1/runs?parent=${encodeURIComponent(id)}&limit=${CHILDREN_SHOWN}`).catch(() => null),
      loadItems(path, run, main, nav),
    ]);
    if (ctx.stopped || !isCurrent()) return;
    ended = TERMINAL.includes(run.status);
    // A run that did not change is not redrawn (focus and selection stay); its
    // running durations tick on by themselves.
    // A running step's lease moves with every heartbeat and is not shown: it does
    // not count as a change.
    const shown = explanation && {
      calls: explanation.calls,
      message: explanation.message,
      steps: explanation.steps.filter((s) => s.reason !== "running"),
    };
    const text = JSON.stringify([run, shown, logs, children, items, nav.steps]);
    if (text === drawn && !nav.opening.size) return;
    drawn = text;
    // Whatever the reader opened stays open across live re-renders.
    const open = new Set([...main.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
    for (const item of nav.opening) {
      open.add("item:" + item);
      open.add("items:" + item.replace(/\[\d+\]$/, ""));
    }
    const family = { children };
    main.replaceChildren(...view(run, explanation, logs, { refresh, ctx, items, nav, family }).flat(Infinity).filter(Boolean));
    for (const d of main.querySelectorAll("details[data-key]")) if (open.has(d.dataset.key)) d.open = true;
    for (const item of nav.opening) {
      const el = main.querySelector(`details[data-key="item:${CSS.escape(item)}"]`);
      if (el) el.scrollIntoView({ block: "center" });
    }
    nav.opening.clear();
  });
  const refresh = () => load().catch((e) => ctx.fail(e));
  await load();
  const soon = debounce(refresh, 200);
  ctx.follow("run=" + encodeURIComponent(id), soon);
  // Backoffs and leases move on without events, until the run has ended.
  ctx.every(5000, () => { if (!ended) refresh(); });
  ctx.every(1000, () => tick(main));
}

// The logs of every step that has run, by step name and attempt number, in
// workflow order (so an unchanged run reads back identical).
async function loadLogs(path, run) {
  const steps = run.steps.filter((s) => s.history.length || s.status === "running");
  const answers = await Promise.all(steps.map(async (s) => {
    try {
      const answer = await get(`${path}/steps/${encodeURIComponent(s.name)}/logs`);
      return Object.fromEntries(answer.logs.map((l) => [l.number, l]));
    } catch {
      return {};
    }
  }));
  const logs = {};
  steps.forEach((s, i) => { logs[s.name] = answers[i]; });
  return logs;
}

function view(run, explanation, logs, actions) {
  const start = Date.parse(run.started_at || run.created_at);
  const end = run.finished_at ? Date.parse(run.finished_at) : Date.now();
  const span = Math.max(end - start, 1);
  return [
    h("p", { class: "muted" }, h("a", { href: "/" }, "Runs"), " / ", run.workflow),
    h("h1", {}, run.workflow, " ", badge(run.status)),
    summary(run),
    h("div", { class: "panel" },
      h("div", { class: "facts" },
        fact("Run", h("span", { class: "mono" }, run.id)),
        fact("Progress", progress(run.progress)),
        fact("Created", ago(run.created_at)),
        fact("Duration", elapsed(run.started_at || run.created_at, run.finished_at)),
        fact("Workflow version", run.workflow_version),
        run.parent_run ? fact("Parent run", h("span", { "data-parent": run.parent_run },
          h("a", { href: "/runs/" + run.parent_run, class: "mono" }, short(run.parent_run)),
          run.parent_step ? [" (step ", h("code", {}, run.parent_step), ")"] : "")) : null,
        run.group ? fact("Group", h("a", { href: "/?group=" + encodeURIComponent(run.group) }, run.group)) : null,
        run.schedule ? fact("Scheduled", h("span", { "data-scheduled": run.schedule },
          "by ", h("a", { href: "/schedules" }, run.schedule), " for ", fireTime(run.scheduled_for))) : null,
        run.concurrency_key ? fact("Concurrency key", run.concurrency_key) : null,
        run.idempotency_key ? fact("Idempotency key", run.idempotency_key) : null),
      buttons(run, actions),
      h("details", { "data-key": "input" }, h("summary", {}, "Input"), json(run.input))),
    why(explanation),
    graph(run.steps),
    childRuns(run, actions.family.children),
    h("h2", {}, "Steps"),
    run.steps.map((step) => step.items
      ? expandedView(step, { start, span, explanation, ...actions })
      : stepView(step, logs[step.name] || {}, { start, span, explanation })),
  ];
}

// An item as a page lists it has no attempt history: its attempts are read back
// from its logs (one per finished attempt), the last one with the item's own
// worker, times and error.
function withAttempts(item, logs) {
  if (item.history.length) return item;
  const last = (n) => n === item.attempts;
  const history = Object.keys(logs).map(Number).sort((a, b) => a - b)
    .filter((n) => !(item.status === "running" && last(n)))
    .map((n) => ({
      number: n,
      outcome: logs[n].outcome,
      worker_id: last(n) ? item.worker_id : null,
      started_at: last(n) ? item.started_at : null,
      finished_at: last(n) ? item.finished_at : null,
      error: last(n) ? item.error : null,
    }));
  if (!history.length && item.status === "failed") {
    history.push({ number: item.attempts, outcome: "failed", worker_id: item.worker_id, started_at: item.started_at, finished_at: item.finished_at, error: item.error });
  }
  return { ...item, history };
}

// The runs this run started (its `run = {...}` steps), newest first.
function childRuns(run, page) {
  if (!page || !page.runs.length) return null;
  const more = page.next_cursor
    ? h("p", {}, h("a", { href: "/?parent=" + encodeURIComponent(run.id) }, "Every child run of this run"))
    : null;
  return h("div", { id: "children" },
    h("h2", {}, "Child runs (", page.runs.length, page.next_cursor ? "+" : "", ")"),
    table(["Status", "Run", "Workflow", "Started by", "Progress", "Created"],
      page.runs.map((child) => h("tr", { "data-child": child.id },
        h("td", {}, badge(child.status)),
        h("td", { class: "mono" }, h("a", { href: "/runs/" + child.id }, short(child.id))),
        h("td", {}, child.workflow),
        h("td", {}, child.parent_step ? h("code", {}, child.parent_step) : "—"),
        h("td", {}, progress(child.progress)),
        h("td", {}, ago(child.created_at)))),
      ""),
    more);
}

// A `for_each` step: its items counted by status, and its item list on demand.
function expandedView(step, { explanation, items, nav }) {
  const explained = explanation && explanation.steps.find((s) => s.step === step.name);
  const status = shownStatus(step);
  const page = items.pages[step.name];
  const render = (item, logs) => h("div", { class: "item-body" }, stepBody(withAttempts(item, logs), logs, null));
  return h("section", { class: "step expanded" + (status === "failed" ? " failed" : ""), "data-step": step.name, "data-items": step.items.total, id: "step-" + encodeURIComponent(step.name) },
    h("div", { class: "head" },
      h("div", {},
        h("div", { class: "name" }, step.name),
        h("div", { class: "muted" },
          step.after.length ? `after ${step.after.join(", ")} · ` : "",
          `for each item · queue ${step.queue}`, step.resource ? ` · lock ${step.resource}` : "")),
      h("div", {}, badge(status)),
      itemCounts(step.items)),
    h("div", { class: "body" },
      explained ? h("div", { class: "muted", "data-explain": "" }, explained.message) : null,
      itemList(step, page, items.logs, nav, render),
      step.output !== null && step.output !== undefined
        ? h("details", { "data-key": "output:" + step.name }, h("summary", {}, "Output (every item's, in order)"), json(step.output))
        : null));
}

// The run's graph by layers: a step sits one column right of the last step it
// runs after, so a column's steps can run side by side. Compensations are not part
// of the forward graph: they run afterwards, in their own order, so they get a lane
// of their own below it.
function graph(steps) {
  if (steps.length < 2) return null;
  const forward = steps.filter((s) => !s.compensates);
  const undo = steps.filter((s) => s.compensates);
  const layer = {};
  for (const step of forward) {
    layer[step.name] = Math.max(0, ...step.after.map((a) => (layer[a] ?? -1) + 1));
  }
  const columns = [];
  for (const step of forward) (columns[layer[step.name]] ||= []).push(step);
  const lanes = [h("div", { class: "lane-row", "data-lane": "forward" },
    columns.filter(Boolean).map((column, i) => [
      i ? arrow() : null,
      h("div", { class: "layer" }, column.map(node)),
    ]))];
  if (undo.length) {
    lanes.push(h("div", { class: "lane-row", "data-lane": "compensation", "aria-label": "Compensations, in the order they run" },
      h("span", { class: "lane-label" }, "undo"),
      undo.map((step, i) => [i ? arrow() : null, node(step)])));
  }
  return h("div", { class: "panel graph", id: "graph", "aria-label": "The run's steps by dependency" }, lanes);
}

function arrow() {
  return h("span", { class: "arrow", "aria-hidden": "true" }, "→");
}

function node(step) {
  const what = step.compensates ? `undoes ${step.compensates}` : step.after.length ? `after ${step.after.join(", ")}` : "";
  const status = shownStatus(step);
  const items = step.items ? `, ${step.items.completed + step.items.failed + step.items.stopped}/${step.items.total} items` : "";
  return h("a", {
    href: "#step-" + encodeURIComponent(step.name),
    class: "node s-" + status,
    title: (what ? `${step.name}: ${status}, ${what}` : `${step.name}: ${status}`) + items,
  }, step.name, step.items ? ` ×${step.items.total}` : "");
}

function fact(label, value) {
  return h("div", {}, h("span", {}, label), value);
}

// What a person needs first when a run failed: which step, which attempt, the error.
const ENDINGS = {
  failed: "Failed",
  timed_out: "Timed out",
  cancelled: "Cancelled",
  compensated: "Undone",
  compensating: "Undoing",
  compensation_failed: "Compensation failed",
};

// Why a run stopped early, for the statuses that do not say it (compensating...).
const STOPPED = {
  failed: "it failed",
  timed_out: "it timed out",
  cancelled: "it was cancelled",
};

function summary(run) {
  if (!run.error && !ENDINGS[run.status]) return null;
  const failed = run.steps.filter((s) => s.status === "failed");
  const bad = ["failed", "timed_out", "compensation_failed"].includes(run.status);
  const because = run.stop_reason && run.stop_reason !== run.status && STOPPED[run.stop_reason];
  return h("div", { class: bad ? "error-box" : "why-box", id: "run-error", "data-stop-reason": run.stop_reason || "" },
    h("strong", {}, ENDINGS[run.status] || run.status,
      because ? ` because ${because}` : "",
      failed.length ? ` at step ${failed.map((s) => s.name).join(", ")}` : "",
      failed.length === 1 ? ` after ${failed[0].attempts} of ${failed[0].max_attempts} attempts` : ""),
    (run.error || (failed[0] && failed[0].error)) ? ": " + (run.error || failed[0].error) : "");
}

function why(explanation) {
  if (!explanation) return null;
  const lines = [];
  if (explanation.message) lines.push(h("div", {}, h("strong", {}, "Run: "), explanation.message));
  for (const s of explanation.steps) {
    if (s.reason === "running") continue;
    lines.push(h("div", {}, h("strong", {}, s.step, ": "), s.message));
  }
  if (!lines.length) return null;
  return h("div", { class: "why-box", id: "explain" }, h("h3", {}, "Why it is not running"), lines);
}

function buttons(run, { refresh, ctx }) {
  const cancel = async () => {
    // A run already undoing its steps can only be stopped without compensating.
    const undoing = run.status === "compensating";
    const answer = await ask({
      title: "Cancel this run?",
      text: undoing
        ? "The run is undoing its completed steps. Cancelling now stops that: the run ends compensation_failed."
        : "Running steps are stopped. Completed steps with a compensation are undone in reverse order unless you say otherwise.",
      fields: [h("label", { for: "compensate" }, "Compensate completed steps"),
        h("select", { name: "compensate", id: "compensate" },
          undoing ? null : h("option", { value: "true" }, "yes, undo them"),
          h("option", { value: "false" }, undoing ? "no, stop the compensation" : "no"))],
      ok: "Cancel run",
      danger: true,
    });
    if (!answer) return;
    try {
      const r = await post(`/v1/runs/${run.id}/cancel`, { compensate: answer.compensate === "true" });
      toast("Cancel requested" + (r.stopping_steps ? `; stopping ${r.stopping_steps} running step(s)` : ""));
      refresh();
    } catch (e) { ctx.fail(e); }
  };
  const retry = async () => {
    // After a failed compensation only the compensation is retried, not a step.
    const forward = run.status === "compensation_failed" ? [] : run.steps.filter((s) => !s.compensates);
    const answer = await ask({
      title: "Retry this run?",
      text: "The run gets a fresh attempt budget.",
      fields: [h("label", { for: "retry-from" }, "From"),
        h("select", { name: "from", id: "retry-from" },
          h("option", { value: "" }, "the steps that did not complete"),
          forward.map((s) => h("option", { value: s.name }, "step " + s.name + " and after")))],
      ok: "Retry run",
    });
    if (!answer) return;
    try {
      const r = await post(`/v1/runs/${run.id}/retry`, answer.from ? { from: answer.from } : {});
      toast(`Run is ${r.status} again; steps reset: ${r.steps.join(", ")}`);
      refresh();
    } catch (e) { ctx.fail(e); }
  };
  return h("div", { class: "actions" },
    TERMINAL.includes(run.status) ? null : h("button", { type: "button", id: "signal-run", onclick: () => sendSignal(run, { refresh, ctx }) }, "Send signal…"),
    TERMINAL.includes(run.status) ? null : h("button", { type: "button", class: "danger", id: "cancel-run", onclick: cancel }, "Cancel run…"),
    RETRYABLE.includes(run.status) ? h("button", { type: "button", id: "retry-run", onclick: retry }, "Retry…") : null);
}

// A signal to the run's mailbox (a write token is needed; the API says so
// otherwise). The name starts as the one a waiting step waits for.
async function sendSignal(run, { refresh, ctx }) {
  const waiting = run.steps.find((s) => s.waiting && s.waiting.kind === "signal");
  const answer = await ask({
    title: "Send a signal to this run",
    text: "A step waiting for a signal of this name takes it, with the data as its output; otherwise it stays in the run's mailbox until one waits for it.",
    fields: [
      h("label", { for: "signal-name" }, "Name"),
      h("input", { type: "text", name: "name", id: "signal-name", required: true, value: waiting ? waiting.waiting.signal : "" }),
      h("label", { for: "signal-data" }, "Data (JSON)"),
      h("textarea", { name: "data", id: "signal-data", rows: 4, spellcheck: "false" }, "{}"),
    ],
    ok: "Send signal",
  });
  if (!answer) return;
  let data;
  try {
    data = answer.data.trim() ? JSON.parse(answer.data) : null;
  } catch (e) {
    toast("The data is not JSON: " + e.message, true);
    return;
  }
  try {
    const r = await post(`/v1/runs/${run.id}/signals/${encodeURIComponent(answer.name.trim())}`, { data });
    toast(`Signal ${r.name} sent` + (r.consumed_by ? `; step ${r.consumed_by} took it` : "; it waits in the run's mailbox"));
    refresh();
  } catch (e) { ctx.fail(e); }
}

// "sleeping until T", "waiting for signal S (until T)", "waiting for the callback
// of attempt N (until T)": the words of `runs show` and `explain`, with the time in
// this browser's clock.
function waitingView(waiting) {
  const until = waiting.until ? [" (until ", moment(waiting.until), ")"] : [];
  let what;
  if (waiting.kind === "sleep") what = waiting.until ? ["sleeping until ", moment(waiting.until)] : ["sleeping"];
  else if (waiting.kind === "signal") what = ["waiting for signal ", h("code", {}, waiting.signal), until];
  else if (waiting.kind === "callback") what = [`waiting for the callback of attempt ${waiting.attempt}`, until];
  else if (waiting.kind === "child") what = waiting.child
    ? ["waiting for child run ", h("a", { href: "/runs/" + waiting.child, class: "mono" }, short(waiting.child))]
    : ["waiting for its child run"];
  else what = ["waiting"];
  return h("div", { class: "why-box", "data-waiting": waiting.kind }, what);
}

// A time with its date unless it is today: a wait may last days.
function moment(when) {
  const d = new Date(when);
  const today = d.toDateString() === new Date().toDateString();
  return h("time", { datetime: when, title: d.toLocaleString() }, today ? d.toLocaleTimeString() : d.toLocaleString());
}

// A step's attempts so far: its finished ones and, while it runs, the current one.
function attemptsOf(step) {
  const attempts = step.history.map((a) => ({ ...a }));
  if (step.status === "running") {
    attempts.push({ number: step.attempts, worker_id: step.worker_id, started_at: step.started_at, finished_at: null, outcome: "running", error: null });
  }
  return attempts;
}

function stepView(step, logs, { start, span, explanation }) {
  const attempts = attemptsOf(step);
  const lane = h("div", { class: "lane", title: "attempts on the run's timeline" },
    attempts.filter((a) => a.started_at).map((a) => {
      const from = Date.parse(a.started_at);
      const to = a.finished_at ? Date.parse(a.finished_at) : Date.now();
      const left = Math.max(0, Math.min(100, ((from - start) / span) * 100));
      const width = Math.max(0.4, Math.min(100 - left, ((to - from) / span) * 100));
      const label = `attempt ${a.number}: ${a.outcome}, ${duration(to - from)}`;
      return h("span", { class: "o-" + a.outcome, style: `left:${left}%;width:${width}%`, title: label, role: "img", "aria-label": label });
    }));
  return h("section", { class: "step" + (step.status === "failed" ? " failed" : ""), "data-step": step.name, id: "step-" + encodeURIComponent(step.name) },
    h("div", { class: "head" },
      h("div", {},
        h("div", { class: "name" }, step.name),
        h("div", { class: "muted" },
          step.compensates ? `undoes ${step.compensates} · ` : "",
          step.after.length ? `after ${step.after.join(", ")} · ` : "",
          `queue ${step.queue}`, step.resource ? ` · lock ${step.resource}` : "",
          ` · ${step.attempts}/${step.max_attempts} attempts`)),
      h("div", {}, badge(step.status)),
      lane),
    h("div", { class: "body" }, stepBody(step, logs, explanation)));
}

// What a step (or an opened item) shows under its head: what it calls and waits
// for, why it is not running, its attempts with their logs, its output.
function stepBody(step, logs, explanation) {
  const attempts = attemptsOf(step);
  const explained = explanation && explanation.steps.find((s) => s.step === step.name);
  // The method and URL as written (`${NAME}` unexpanded); headers are never shown.
  const calls = explanation && explanation.calls && explanation.calls[step.name];
  const failed = step.status === "failed" || attempts.some((a) => a.outcome === "failed");
  return [
    calls ? h("div", { class: "muted", "data-calls": "" }, "Calls ", h("code", {}, calls)) : null,
    step.waiting ? waitingView(step.waiting) : null,
    explained && !["running", "waiting"].includes(explained.reason) ? h("div", { class: "muted" }, "Why: ", explained.message) : null,
    step.run_after && step.status === "pending" ? h("div", { class: "muted" }, "Not before ", clock(step.run_after)) : null,
    attempts.map((a) => attemptView(step.name, a, logs[a.number])),
    step.output !== null && step.output !== undefined
      ? (failed ? h("details", { "data-key": "output:" + step.name }, h("summary", {}, "Output"), json(step.output)) : h("div", {}, h("h3", {}, "Output"), json(step.output)))
      : null,
  ];
}

function attemptView(stepName, attempt, log) {
  const key = `log:${stepName}:${attempt.number}`;
  const text = log && log.log ? log.log : "";
  const lines = text ? text.replace(/\n$/, "").split("\n") : [];
  const tail = lines.slice(-TAIL_LINES).join("\n");
  const bad = attempt.outcome === "failed" || attempt.outcome === "reaped";
  let logView = null;
  if (text && bad) {
    logView = h("div", { class: "log-tail" },
      h("div", { class: "muted" }, lines.length > TAIL_LINES ? `last ${TAIL_LINES} of ${lines.length} log lines` : "log"),
      h("pre", {}, tail),
      lines.length > TAIL_LINES ? h("details", { "data-key": key }, h("summary", {}, "whole log"), h("pre", {}, text)) : null);
  } else if (text) {
    logView = h("details", { "data-key": key }, h("summary", {}, `log (${lines.length} ${lines.length === 1 ? "line" : "lines"})`), h("pre", {}, text));
  }
  return h("div", { class: "attempt", "data-attempt": attempt.number },
    h("div", { class: "line" },
      h("strong", {}, "Attempt ", attempt.number),
      badge(attempt.outcome),
      h("span", { class: "mono", title: attempt.worker_id || "" }, "worker ", short(attempt.worker_id)),
      h("span", {}, "started ", clock(attempt.started_at)),
      elapsed(attempt.started_at, attempt.finished_at)),
    attempt.error ? h("div", { class: "error-box" }, attempt.error) : null,
    logView);
}
