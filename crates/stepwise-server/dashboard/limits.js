// The rate limit keys on the queues page: each key's limit, the starts it admitted,
// the steps waiting on it (its delay) and its pause, with pause and resume buttons
// (admin scope: with a lower token the API's refusal is shown).

import { post } from "./api.js";
import { ago, ask, badge, h, table, toast } from "./ui.js";

// `600 / 1m`, as the workflow file writes it.
function rate(l) {
  const units = [["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000], ["ms", 1]];
  let left = l.per_ms;
  const parts = [];
  for (const [unit, size] of units) {
    if (left >= size) {
      parts.push(Math.floor(left / size) + unit);
      left %= size;
    }
  }
  return `${l.limit} / ${parts.join("") || "0s"}`;
}

function state(l) {
  if (l.paused_until) return h("span", {}, badge("paused"), " ends ", ago(l.paused_until));
  if (l.next_start) return h("span", {}, "next start ", ago(l.next_start));
  return h("span", { class: "muted" }, "admitting");
}

async function pause(l, refresh, ctx) {
  const answer = await ask({
    title: `Pause ${l.key}?`,
    text: "None of its steps start until the pause ends (running ones go on).",
    fields: [h("label", { for: "pause-for" }, "For (e.g. 30s, 10m, 2h)"),
      h("input", { type: "text", name: "for", id: "pause-for", required: true, value: "10m" })],
    ok: "Pause",
  });
  if (!answer) return;
  await act(l, "pause", { for: answer.for.trim() }, refresh, ctx);
}

async function act(l, action, body, refresh, ctx) {
  try {
    const view = await post(`/v1/limits/${encodeURIComponent(l.key)}/${action}`, body);
    toast(action === "pause" ? `Rate limit ${l.key} paused until ${new Date(view.paused_until).toLocaleString()}` : `Rate limit ${l.key} resumed`);
    refresh();
  } catch (e) {
    ctx.fail(e);
  }
}

export function limitsTable(limits, refresh, ctx) {
  return table(["Rate limit key", "Limit", "Burst", "Admitted", "Waiting", "State", "Action"],
    limits.map((l) => h("tr", { "data-limit": l.key, "data-paused": String(!!l.paused_until) },
      h("td", { class: "mono" }, l.key),
      h("td", {}, rate(l), l.overridden ? h("span", { class: "muted" }, " (set by hand)") : ""),
      h("td", {}, l.burst),
      h("td", {}, l.admitted),
      h("td", {}, l.waiting),
      h("td", {}, state(l)),
      h("td", { class: "nowrap" }, l.paused_until
        ? h("button", { type: "button", "data-action": "resume", onclick: () => act(l, "resume", {}, refresh, ctx) }, "Resume")
        : h("button", { type: "button", "data-action": "pause", onclick: () => pause(l, refresh, ctx) }, "Pause…")))),
    "No rate limits. A step with rate_limit = { key, limit, per } makes its key when its run starts.");
}
