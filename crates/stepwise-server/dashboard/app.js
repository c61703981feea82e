// The dashboard's shell: one page per path, switched without reloading, each
// kept live by the event stream. A page is a function `(main, ctx)` that renders
// into `main` and returns a function that stops whatever it started.

import { follow, setToken, token } from "./api.js";
import { ask, h, toast } from "./ui.js";
import { runsPage } from "./runs.js";
import { runPage } from "./run.js";
import { schedulesPage } from "./schedules.js";
import { eventsPage, groupsPage, locksPage, queuesPage, workersPage } from "./ops.js";

const routes = [
  [/^\/$/, "runs", runsPage],
  [/^\/runs\/([^/]+)$/, "runs", runPage],
  [/^\/schedules$/, "schedules", schedulesPage],
  [/^\/queues$/, "queues", queuesPage],
  [/^\/locks$/, "locks", locksPage],
  [/^\/workers$/, "workers", workersPage],
  [/^\/groups$/, "groups", groupsPage],
  [/^\/events$/, "events", eventsPage],
];

const main = document.getElementById("main");
let stopPage = null;

function setLive(on) {
  const el = document.getElementById("live");
  el.className = "live " + (on ? "on" : "off");
  el.textContent = on ? "live" : "offline";
}

// A 401: the page stops and asks for a token; a page re-renders once one is given.
// Left alone while it is up, so a poll does not wipe what is being typed.
function needToken(message) {
  const banner = document.getElementById("banner");
  if (!banner.hidden) return;
  const input = h("input", { type: "password", name: "token", placeholder: "sw_…", autocomplete: "off", "aria-label": "API token" });
  banner.replaceChildren(...[
    h("strong", {}, "This server needs an API token. "),
    message ? h("span", { class: "muted" }, message) : null,
    h("form", {
      onsubmit: (e) => {
        e.preventDefault();
        setToken(input.value);
        banner.hidden = true;
        render();
      },
    }, input, h("button", { type: "submit" }, "Use token")),
    h("div", { class: "muted" }, "Create one with `stepwise tokens create --scope admin` (read is enough to look; write to cancel and retry; admin for locks). It is kept for this tab only."),
  ].filter(Boolean));
  banner.hidden = false;
  input.focus();
}

// What every page gets: its path parameters and query, a way to follow events and
// to poll, and error reporting. Once the page is left (`stopped`), nothing it
// started runs on and nothing it awaited may draw.
function context(params) {
  const stops = [];
  const ctx = {
    params,
    query: new URLSearchParams(location.search),
    stopped: false,
    follow(query, onEvent, from) {
      if (ctx.stopped) return;
      stops.push(follow(query, onEvent, (on, error) => {
        setLive(on);
        if (error && error.status === 401) ctx.fail(error);
      }, from));
    },
    every(ms, fn) {
      if (ctx.stopped) return;
      const timer = setInterval(fn, ms);
      stops.push(() => clearInterval(timer));
    },
    fail(error) {
      if (ctx.stopped) return;
      if (error.status === 401) {
        ctx.stop();
        setLive(false);
        needToken(error.message);
      } else {
        // 403 (a token of too low a scope) and every other refusal: the API's words.
        toast(error.message, true);
      }
    },
    stop() {
      ctx.stopped = true;
      stops.splice(0).forEach((s) => s());
    },
  };
  return ctx;
}

export function navigate(path) {
  history.pushState(null, "", path);
  render();
}

async function render() {
  if (stopPage) stopPage();
  setLive(false);
  const path = location.pathname;
  const route = routes.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll("#nav a")) {
    const active = Boolean(route) && a.dataset.page === route[1];
    a.classList.toggle("active", active);
    if (active) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (!route) {
    main.replaceChildren(h("div", { class: "panel empty" }, "No such page. ", h("a", { href: "/" }, "See the runs.")));
    return;
  }
  let ctx = null;
  try {
    ctx = context(path.match(route[0]).slice(1).map(decodeURIComponent));
    stopPage = () => ctx.stop();
    await route[2](main, ctx);
  } catch (error) {
    if (ctx && ctx.stopped) return;
    if (ctx) ctx.fail(error); else toast(error.message, true);
    if (!main.querySelector("h1")) main.replaceChildren(h("div", { class: "panel empty" }, error.message));
  }
}

// Links inside the app switch pages without a reload.
document.addEventListener("click", (e) => {
  const a = e.target.closest("a");
  if (!a || a.target || e.ctrlKey || e.metaKey || e.shiftKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/v1/")) return;
  // A link within the page (the graph's steps) just scrolls.
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);

document.getElementById("token-button").addEventListener("click", async () => {
  const input = h("input", { type: "password", name: "token", id: "token-input", placeholder: token() ? "(a token is set)" : "sw_…", autocomplete: "off" });
  const label = h("label", { for: "token-input" }, "Token");
  const answer = await ask({
    title: "API token",
    text: "Used for every request of this tab (kept in session storage). Leave empty to forget it.",
    fields: [label, input],
    ok: "Save",
  });
  if (answer) {
    setToken(answer.token);
    toast(answer.token ? "Token saved for this tab" : "Token forgotten");
    render();
  }
});

render();
