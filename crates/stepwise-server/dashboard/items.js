// A `for_each` step's items on the run page: the step is one section with its items
// counted by status (a run of 10,000 items draws as many sections as a run of one),
// and its items are read a page at a time, only while the reader has the list open.
// An item opens like a step: its attempts, errors and logs.

import { get } from "./api.js";
import { badge, clock, elapsed, h, short } from "./ui.js";

export const ITEM_PAGE = 50;
const COUNTED = ["completed", "failed", "running", "waiting", "pending", "stopped"];
const TERMINAL_STEP = ["completed", "failed", "skipped", "cancelled"];

// The status a reader sees: an expanded step is `blocked` in the store while its
// items run.
export function shownStatus(step) {
  return step.items && !TERMINAL_STEP.includes(step.status) ? "running" : step.status;
}

// What the page must fetch for the item lists and items the reader has open:
// `{ pages: {step: ItemPage}, logs: {"STEP[i]": {n: log}} }`.
export async function loadItems(path, run, root, nav) {
  const openLists = new Set([...root.querySelectorAll("details[open][data-key^='items:']")].map((d) => d.dataset.key.slice(6)));
  const openItems = [...root.querySelectorAll("details[open][data-key^='item:']")].map((d) => d.dataset.key.slice(5));
  for (const name of nav.opening) {
    openItems.push(name);
    openLists.add(name.replace(/\[\d+\]$/, ""));
  }
  const expanded = run.steps.filter((s) => s.items && openLists.has(s.name));
  const pages = {};
  await Promise.all(expanded.map(async (s) => {
    const start = nav.from(s.name);
    pages[s.name] = await get(`${path}/steps/${encodeURIComponent(s.name)}/items?from=${start}&limit=${ITEM_PAGE}`);
  }));
  // Logs only of the open items that are on a page shown now.
  const shown = new Set(Object.values(pages).flatMap((p) => p.items.map((i) => i.name)));
  const logs = {};
  await Promise.all([...new Set(openItems)].filter((n) => shown.has(n)).map(async (name) => {
    try {
      const answer = await get(`${path}/steps/${encodeURIComponent(name)}/logs`);
      logs[name] = Object.fromEntries(answer.logs.map((l) => [l.number, l]));
    } catch {
      logs[name] = {};
    }
  }));
  return { pages, logs };
}

// The counts of an expanded step by status, each a badge with its number.
export function itemCounts(counts) {
  const done = counts.completed + counts.failed + counts.stopped;
  return h("div", { class: "item-counts", "data-items-total": counts.total },
    h("strong", { "data-items-done": done }, `${done}/${counts.total} items`),
    COUNTED.filter((s) => counts[s]).map((s) =>
      h("span", { class: "badge s-" + (s === "stopped" ? "cancelled" : s), "data-count": s }, `${counts[s]} ${s}`)));
}

// The item list of one expanded step: closed, it costs nothing; open, a page of
// items with previous / next and a way to jump to any index.
// `nav` = { from(step), go(step, index, item?), refresh() }; `render(item, logs)`
// draws an opened item.
export function itemList(step, page, logs, nav, render) {
  const key = "items:" + step.name;
  const from = nav.from(step.name);
  const total = step.items.total;
  const body = [];
  if (page) {
    const last = from + page.items.length;
    body.push(h("div", { class: "item-nav" },
      h("button", { type: "button", class: "quiet", "data-page": "previous", disabled: from === 0,
        onclick: () => nav.go(step.name, Math.max(0, from - ITEM_PAGE)) }, "← Previous"),
      h("span", { class: "muted", "data-range": `${from}-${last}` },
        page.items.length ? `items ${from}–${last - 1} of ${total}` : `no items from ${from}`),
      h("button", { type: "button", class: "quiet", "data-page": "next", disabled: page.next === null || page.next === undefined,
        onclick: () => nav.go(step.name, page.next) }, "Next →"),
      jump(step, total, nav)));
    body.push(h("div", { class: "items", "data-items-of": step.name },
      page.items.map((item) => itemRow(item, logs[item.name], render, nav))));
  } else {
    body.push(h("div", { class: "muted" }, "Loading…"));
  }
  // A click, not `toggle`: re-opening what the reader had open after a redraw
  // fires `toggle` too, and must not fetch again.
  return h("details", { "data-key": key, class: "item-list" },
    h("summary", { onclick: () => setTimeout(() => nav.go(step.name, from)) }, `Items (${total})`), body);
}

// "Open item N": the page starting at N, with N opened.
function jump(step, total, nav) {
  const input = h("input", { type: "number", min: 0, max: Math.max(0, total - 1), name: "item", "aria-label": "Item index", placeholder: "index", class: "item-index" });
  return h("form", {
    class: "item-jump",
    onsubmit: (e) => {
      e.preventDefault();
      const n = Number.parseInt(input.value, 10);
      if (Number.isInteger(n) && n >= 0 && n < total) nav.go(step.name, n, `${step.name}[${n}]`);
    },
  }, input, h("button", { type: "submit", class: "quiet" }, "Open item"));
}

function itemRow(item, logs, render, nav) {
  const error = item.error && item.status !== "completed" ? item.error.split("\n")[0] : "";
  const started = item.attempts > 0 || item.history.length > 0;
  return h("details", { "data-key": "item:" + item.name, "data-item": item.name, class: "item" },
    h("summary", { onclick: () => setTimeout(nav.refresh) },
      h("span", { class: "item-name mono" }, item.name),
      badge(item.status),
      h("span", { class: "muted" }, `${item.attempts}/${item.max_attempts} attempts`),
      item.worker_id ? h("span", { class: "muted mono", title: item.worker_id }, "worker ", short(item.worker_id)) : null,
      item.started_at ? h("span", { class: "muted" }, "started ", clock(item.started_at), " · ", elapsed(item.started_at, item.finished_at)) : null,
      error ? h("span", { class: "item-error" }, error) : null),
    started ? render(item, logs || {}) : h("div", { class: "muted" }, "Not started yet."));
}
