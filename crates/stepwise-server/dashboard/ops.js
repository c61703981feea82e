// The operator's pages: queues and concurrency keys, resource locks, workers,
// groups and the event feed. Each refreshes when an event says something changed,
// and on a timer for what moves without events (ages, heartbeats).

import { get, post } from "./api.js";
import { limitsTable } from "./limits.js";
import { ago, ask, badge, debounce, elapsed, h, latest, short, table, tick, toast } from "./ui.js";

// Renders `draw(data)` into a container, now and whenever events of `prefixes`
// arrive or `every` milliseconds pass.
async function livePage(main, ctx, { title, load, draw, prefixes, every }) {
  const body = h("div", {});
  main.replaceChildren(h("h1", {}, title), body);
  let drawn = "";
  const refresh = latest(async (isCurrent) => {
    try {
      const data = await load();
      if (ctx.stopped || !isCurrent()) return;
      // Unchanged data is not redrawn (focus stays); ages tick by themselves.
      const text = JSON.stringify(data);
      if (text === drawn) return;
      drawn = text;
      body.replaceChildren(...[draw(data, refresh)].flat(Infinity).filter(Boolean));
    } catch (e) {
      ctx.fail(e);
    }
  });
  await refresh();
  const soon = debounce(refresh, 300);
  ctx.follow("", (event) => {
    if (event.kind === "stream.reconnected" || prefixes.some((p) => event.kind.startsWith(p))) soon();
  });
  ctx.every(every, refresh);
  ctx.every(1000, () => tick(main));
}

export function queuesPage(main, ctx) {
  return livePage(main, ctx, {
    title: "Queues",
    load: async () => ({ ...(await get("/v1/queues")), limits: (await get("/v1/limits")).limits }),
    prefixes: ["run.", "step.", "lock.", "limit."],
    every: 5000,
    draw: (q, refresh) => [
      table(["Queue", "State", "Pending", "Scheduled", "Running", "Oldest pending"],
        q.queues.map((x) => h("tr", { "data-queue": x.name },
          h("td", {}, x.name),
          h("td", {}, x.paused ? badge("paused") : "serving"),
          h("td", {}, x.pending), h("td", {}, x.scheduled), h("td", {}, x.running),
          h("td", {}, x.oldest_pending_since ? elapsed(x.oldest_pending_since, null) : "—"))),
        "No queues yet: they appear when a workflow is registered."),
      h("h2", {}, "Concurrency keys"),
      table(["Key", "Limit", "Running", "Waiting"],
        q.concurrency_keys.map((k) => h("tr", { "data-key": k.key },
          h("td", { class: "mono" }, k.key),
          h("td", {}, k.limit, k.limit_set ? h("span", { class: "muted" }, " (set by hand)") : ""),
          h("td", {}, k.active), h("td", {}, k.waiting))),
        "No concurrency keys in use."),
      h("h2", {}, "Rate limits"),
      limitsTable(q.limits, refresh, ctx),
    ],
  });
}

export function locksPage(main, ctx) {
  return livePage(main, ctx, {
    title: "Resource locks",
    load: () => get("/v1/locks"),
    prefixes: ["lock.", "step."],
    every: 5000,
    draw: (answer, refresh) => table(["Lock", "Holder", "Taken", "Expires", "Action"],
      answer.locks.map((lock) => h("tr", { "data-lock": lock.key },
        h("td", { class: "mono" }, lock.key),
        h("td", {}, holder(lock)),
        h("td", {}, ago(lock.acquired_at)),
        h("td", {}, ago(lock.expires_at)),
        h("td", {}, h("button", {
          type: "button", class: "danger", "data-force": lock.key,
          onclick: () => forceRelease(lock, refresh, ctx),
        }, "Force release…")))),
      "No lock is held."),
  });
}

// `cli:alice@host` as it is; a step's holder as "step <id>".
function holder(lock) {
  const named = lock.holder_id.startsWith(lock.holder_kind + ":");
  return h("span", {}, named ? "" : lock.holder_kind + " ", h("span", { class: "mono" }, lock.holder_id));
}

async function forceRelease(lock, refresh, ctx) {
  const answer = await ask({
    title: `Force-release ${lock.key}?`,
    text: `It is held by ${lock.holder_id}. A step holding it is not stopped; the release is recorded with your reason.`,
    fields: [h("label", { for: "force-reason" }, "Reason (required)"),
      h("input", { type: "text", name: "reason", id: "force-reason", required: true, maxlength: 2000 })],
    ok: "Force release",
    danger: true,
  });
  if (!answer) return;
  try {
    await post(`/v1/locks/${encodeURIComponent(lock.key)}/force-release`, { reason: answer.reason });
    toast(`Lock ${lock.key} released`);
    refresh();
  } catch (e) {
    ctx.fail(e);
  }
}

export function workersPage(main, ctx) {
  return livePage(main, ctx, {
    title: "Workers",
    load: () => get("/v1/workers"),
    prefixes: ["worker.", "step."],
    every: 3000,
    draw: (answer) => table(["Worker", "State", "Queues", "Running steps", "Last heartbeat", "Started"],
      answer.workers.map((w) => h("tr", { "data-worker": w.id },
        h("td", {}, w.name, h("div", { class: "muted mono" }, short(w.id))),
        h("td", {}, badge(w.status)),
        h("td", {}, w.queues.join(", ")),
        h("td", {}, w.running_steps),
        h("td", {}, ago(w.heartbeat_at)),
        h("td", {}, ago(w.started_at)))),
      "No worker has registered. Start one with `stepwise worker`."),
  });
}

export function groupsPage(main, ctx) {
  return livePage(main, ctx, {
    title: "Groups",
    load: () => get("/v1/groups?limit=100"),
    prefixes: ["run.", "group."],
    every: 10000,
    draw: (answer) => table(["Group", "Runs", "Remaining", "By status", "Created", "Completed"],
      answer.groups.map((g) => h("tr", { "data-group": g.name },
        h("td", {}, h("a", { href: "/?group=" + encodeURIComponent(g.name) }, g.name)),
        h("td", {}, g.total), h("td", {}, g.remaining),
        h("td", {}, Object.entries(g.counts).map(([s, n]) => h("span", { style: "margin-right:6px" }, badge(s), " ", n))),
        h("td", {}, ago(g.created_at)),
        h("td", {}, g.completed_at ? ago(g.completed_at) : "—"))),
      "No groups. `stepwise run W --inputs FILE.jsonl --group G` or POST /v1/groups makes one."),
  });
}

// The feed: the newest events on load, then each one as it is committed, newest
// on top, up to a cap.
const FEED_CAP = 500;
const FEED_FIRST = 100;

export async function eventsPage(main, ctx) {
  const rows = h("tbody", {});
  const shown = new Set();
  const row = (event, fresh) => h("tr", { class: fresh ? "fresh" : null, "data-kind": event.kind },
    h("td", {}, ago(event.at)),
    h("td", {}, h("code", {}, event.kind)),
    h("td", {}, event.run_id ? h("a", { class: "mono", href: "/runs/" + event.run_id }, short(event.run_id)) : "—"),
    h("td", {}, event.step || event.group || ""),
    h("td", { class: "hide-narrow mono" }, event.data === null || event.data === undefined ? "" : JSON.stringify(event.data).slice(0, 160)));
  const empty = h("div", { class: "panel empty" }, "No events yet; they appear here as they are committed.");
  const add = (event, fresh) => {
    if (shown.has(event.cursor)) return;
    shown.add(event.cursor);
    rows.prepend(row(event, fresh));
    while (rows.children.length > FEED_CAP) rows.lastChild.remove();
    empty.hidden = true;
  };
  const first = await get("/v1/events?last=" + FEED_FIRST);
  if (ctx.stopped) return;
  main.replaceChildren(h("h1", {}, "Events"),
    h("p", { class: "muted" }, `The newest ${FEED_FIRST} events, then each new one at the top as it is committed.`),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["At", "Kind", "Run", "Step / group", "Data"].map((x) => h("th", {}, x)))),
      rows)),
    empty);
  first.events.forEach((e) => add(e, false));
  ctx.follow("", (event) => {
    if (event.cursor) add(event, true);
  }, first.next);
  ctx.every(1000, () => tick(main));
}
