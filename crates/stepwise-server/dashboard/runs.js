// The runs list: newest first, filtered by status and workflow, refreshed as events
// arrive, with each run's progress and duration.

import { get } from "./api.js";
import { ago, badge, debounce, elapsed, h, latest, progress, short, table, tick } from "./ui.js";

const STATUSES = ["pending", "running", "completed", "failed", "cancelled", "timed_out",
  "compensating", "compensated", "compensation_failed"];
const PAGE = 50;
const MOST = 1000; // the API's largest page

export async function runsPage(main, ctx) {
  const status = ctx.query.get("status") || "";
  const workflow = ctx.query.get("workflow") || "";
  const group = ctx.query.get("group") || "";
  const parent = ctx.query.get("parent") || "";
  let seen = null; // ids shown before, to mark the new ones
  let pages = 1;

  const body = h("div", {});
  const count = h("span", { class: "muted" });
  const filter = (name, value) => {
    const q = new URLSearchParams(location.search);
    if (value) q.set(name, value); else q.delete(name);
    const search = q.toString();
    history.pushState(null, "", "/" + (search ? "?" + search : ""));
    window.dispatchEvent(new PopStateEvent("popstate"));
  };
  const statusSelect = h("select", { "aria-label": "Status", id: "filter-status", onchange: (e) => filter("status", e.target.value) },
    h("option", { value: "" }, "every status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s.replace(/_/g, " "))));
  const workflowSelect = h("select", { "aria-label": "Workflow", id: "filter-workflow", onchange: (e) => filter("workflow", e.target.value) },
    h("option", { value: "" }, "every workflow"));
  main.replaceChildren(
    h("h1", {}, "Runs", group ? ` of group ${group}` : "", parent ? [" started by run ", h("a", { href: "/runs/" + encodeURIComponent(parent), class: "mono" }, short(parent))] : ""),
    h("div", { class: "filters" }, statusSelect, workflowSelect,
      group ? h("a", { href: "/" }, "× group " + group) : null,
      parent ? h("a", { href: "/" }, "× parent run") : null, count),
    body);

  get("/v1/workflows").then((answer) => {
    for (const w of answer.workflows) {
      workflowSelect.append(h("option", { value: w.name, selected: w.name === workflow }, w.name));
    }
  }).catch((e) => ctx.fail(e));

  let drawn = "";
  const load = latest(async (isCurrent) => {
    const q = new URLSearchParams({ limit: String(Math.min(PAGE * pages, MOST)) });
    if (status) q.set("status", status);
    if (workflow) q.set("workflow", workflow);
    if (group) q.set("group", group);
    if (parent) q.set("parent", parent);
    const page = await get("/v1/runs?" + q);
    if (ctx.stopped || !isCurrent()) return;
    // Unchanged data is not redrawn (focus and selection stay); ages and
    // durations tick by themselves.
    const text = JSON.stringify(page);
    if (text === drawn) return;
    drawn = text;
    const fresh = seen ? page.runs.filter((r) => !seen.has(r.id)).map((r) => r.id) : [];
    seen = new Set(page.runs.map((r) => r.id));
    count.textContent = page.runs.length + (page.next_cursor ? "+" : "") + " runs";
    body.replaceChildren(...[
      table(["Status", "Run", "Workflow", "Progress", "Created", "Duration",
        h("th", { class: "hide-narrow" }, "Error")],
      page.runs.map((run) => h("tr", { class: fresh.includes(run.id) ? "fresh" : null, "data-run": run.id },
        h("td", {}, badge(run.status)),
        h("td", { class: "mono" }, h("a", { href: "/runs/" + run.id }, short(run.id))),
        h("td", {}, run.workflow, run.group ? h("div", { class: "muted" }, "group ", run.group) : null),
        h("td", {}, progress(run.progress)),
        h("td", {}, ago(run.created_at)),
        h("td", {}, elapsed(run.started_at || run.created_at, run.finished_at)),
        h("td", { class: "hide-narrow" }, run.error ? firstLine(run.error) : ""))),
      "No runs yet. Start one with `stepwise run WORKFLOW` or POST /v1/runs."),
      page.next_cursor && PAGE * pages < MOST
        ? h("p", {}, h("button", { class: "quiet", type: "button", onclick: () => { pages += 1; refresh(); } }, "Show more"))
        : null,
      page.next_cursor && PAGE * pages >= MOST
        ? h("p", { class: "muted" }, `The newest ${MOST} runs are shown; filter by status or workflow to see others.`)
        : null,
    ].filter(Boolean));
  });
  const refresh = () => load().catch((e) => ctx.fail(e));
  await load();
  const soon = debounce(refresh, 250);
  ctx.follow("", (event) => {
    if (/^(run|step|stream)\./.test(event.kind)) soon();
  });
  ctx.every(5000, refresh);
  ctx.every(1000, () => tick(main));
}

function firstLine(text) {
  const line = String(text).split("\n")[0];
  return line.length > 120 ? line.slice(0, 120) + "…" : line;
}
