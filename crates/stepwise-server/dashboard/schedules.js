// The schedules page: each schedule's expression and zone, its next fire time, its
// last runs (linked) with their status, and pause/resume and "run now" buttons
// (admin scope: with a lower token the API's refusal is shown). Live: it redraws
// when a schedule fires or one of its runs changes, and on a timer, since a fire
// time coming closer changes nothing in the database.

import { get, post } from "./api.js";
import { ago, badge, debounce, fireTime, h, latest, short, table, tick, toast } from "./ui.js";

// `cron "0 2 * * *"` or `every 15m`, in a zone.
function recurrence(spec) {
  const r = spec.recurrence;
  const what = r.cron !== undefined ? h("code", {}, r.cron) : ["every ", h("code", {}, every(r.every_ms))];
  return h("span", {}, what, h("div", { class: "muted" }, spec.timezone));
}

function every(ms) {
  const units = [["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000], ["ms", 1]];
  let left = ms;
  const parts = [];
  for (const [unit, size] of units) {
    if (left >= size) {
      parts.push(Math.floor(left / size) + unit);
      left %= size;
    }
  }
  return parts.join("") || "0s";
}

function recentRuns(runs) {
  if (!runs.length) return h("span", { class: "muted" }, "none yet");
  return h("div", { class: "schedule-runs" }, runs.map((r) => h("div", { "data-run": r.run_id },
    h("a", { class: "mono", href: "/runs/" + r.run_id }, short(r.run_id)), " ",
    badge(r.status), " ", h("span", { class: "muted" }, "for "), fireTime(r.scheduled_for))));
}

async function act(name, action, refresh, ctx) {
  try {
    const answer = await post(`/v1/schedules/${encodeURIComponent(name)}/${action}`);
    if (action === "trigger") toast(`Schedule ${name} started run ${short(answer.run_id)}`);
    else toast(`Schedule ${name} ${action === "pause" ? "paused" : "resumed"}`);
    refresh();
  } catch (e) {
    ctx.fail(e);
  }
}

function row(s, refresh, ctx) {
  const name = s.spec.name;
  return h("tr", { "data-schedule": name, "data-paused": String(s.paused) },
    h("td", {}, h("strong", {}, name), h("div", { class: "muted" }, "workflow ", s.spec.workflow)),
    h("td", {}, recurrence(s.spec)),
    h("td", {}, s.paused ? badge("paused") : badge("active")),
    h("td", { "data-next": s.next_fire_at || "" }, s.paused ? h("span", { class: "muted" }, "paused") : [fireTime(s.next_fire_at), h("div", { class: "muted" }, ago(s.next_fire_at))]),
    h("td", {}, recentRuns(s.recent_runs)),
    h("td", { class: "nowrap" },
      h("button", {
        type: "button", "data-action": s.paused ? "resume" : "pause",
        onclick: () => act(name, s.paused ? "resume" : "pause", refresh, ctx),
      }, s.paused ? "Resume" : "Pause"), " ",
      h("button", { type: "button", class: "quiet", "data-action": "trigger", onclick: () => act(name, "trigger", refresh, ctx) }, "Run now")));
}

export async function schedulesPage(main, ctx) {
  const body = h("div", {});
  main.replaceChildren(h("h1", {}, "Schedules"),
    h("p", { class: "muted" }, "Every worker and server fires due schedules; each fire time starts one run. Pausing, resuming and running now need an admin token."),
    body);
  let drawn = "";
  const refresh = latest(async (isCurrent) => {
    try {
      const answer = await get("/v1/schedules");
      if (ctx.stopped || !isCurrent()) return;
      const text = JSON.stringify(answer);
      if (text === drawn) return;
      drawn = text;
      body.replaceChildren(table(["Schedule", "When", "State", "Next fire", "Last runs", "Action"],
        answer.schedules.map((s) => row(s, refresh, ctx)),
        "No schedules. Declare [[schedules]] in a workflow file and apply it."));
    } catch (e) {
      ctx.fail(e);
    }
  });
  await refresh();
  const soon = debounce(refresh, 300);
  ctx.follow("", (event) => {
    if (event.kind === "stream.reconnected" || event.kind.startsWith("schedule.") || event.kind.startsWith("run.")) soon();
  });
  ctx.every(5000, refresh);
  ctx.every(1000, () => tick(main));
}
