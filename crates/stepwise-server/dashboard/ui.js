// Building the page. Everything a run or a step carries (names, outputs, logs,
// errors) comes from users' programs, so text only ever goes in as text nodes,
// never as HTML.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "style") el.setAttribute("style", value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function badge(status) {
  return h("span", { class: "badge s-" + status, "data-status": status }, status.replace(/_/g, " "));
}

export function progress(p) {
  const pct = p.total ? Math.round((100 * p.done) / p.total) : 0;
  return h("span", { class: "nowrap", title: `${p.done} of ${p.total} steps done` },
    h("span", { class: "progress" }, h("span", { style: `width:${pct}%` })),
    `${p.done}/${p.total}`);
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const whole = Math.round(s);
  const m = Math.floor(whole / 60);
  if (m < 60) return `${m}m ${whole % 60}s`;
  const hrs = Math.floor(m / 60);
  return `${hrs}h ${m % 60}m`;
}

// A duration that keeps counting while `end` is not known: the page's clock ticks
// it (see `tick`) without redrawing anything else.
export function elapsed(start, end) {
  const el = h("span", {}, duration(between(start, end)));
  if (start && !end) el.dataset.since = start;
  return el;
}

export function tick(root) {
  for (const el of root.querySelectorAll("[data-since]")) {
    el.textContent = duration(between(el.dataset.since, null));
  }
  for (const el of root.querySelectorAll("[data-at]")) el.textContent = agoText(el.dataset.at);
}

export function between(start, end) {
  if (!start) return null;
  return (end ? Date.parse(end) : Date.now()) - Date.parse(start);
}

// Times come from the database clock and are compared with this browser's, so a
// moment ago can look a little in the future: within 2 s is "just now".
export function ago(when) {
  if (!when) return "—";
  return h("time", { datetime: when, title: new Date(when).toLocaleString(), "data-at": when }, agoText(when));
}

function agoText(when) {
  const ms = Date.now() - Date.parse(when);
  return Math.abs(ms) < 2000 ? "just now" : ms >= 0 ? duration(ms) + " ago" : "in " + duration(-ms);
}

export function clock(when) {
  if (!when) return "—";
  const d = new Date(when);
  return h("time", { datetime: when, title: d.toLocaleString() }, d.toLocaleTimeString());
}

// A fire time as it was meant: in UTC, as the schedule's runs are keyed.
export function fireTime(when) {
  if (!when) return "—";
  return h("time", { datetime: when, title: new Date(when).toLocaleString() }, when.replace("T", " ").replace(/(\.\d+)?Z$/, " UTC"));
}

export function short(id) {
  return id ? String(id).slice(0, 8) + "…" + String(id).slice(-4) : "—";
}

export function json(value) {
  return h("pre", {}, JSON.stringify(value, null, 2));
}

export function table(headers, rows, empty) {
  if (!rows.length) return h("div", { class: "panel empty" }, empty);
  return h("div", { class: "scroll" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map((x) => (typeof x === "string" ? h("th", {}, x) : x)))),
      h("tbody", {}, rows)));
}

let toastTimer = null;
export function toast(message, bad) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = bad ? "bad" : "";
  el.setAttribute("role", bad ? "alert" : "status");
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, bad ? 8000 : 4000);
}

// A modal question; resolves to the form's values (or null when cancelled). `fields`
// are elements placed in the dialog (inputs with a `name`).
export function ask({ title, text, fields = [], ok = "OK", danger = false }) {
  const dialog = document.getElementById("dialog");
  document.getElementById("dialog-title").textContent = title;
  document.getElementById("dialog-text").textContent = text || "";
  const body = document.getElementById("dialog-body");
  body.replaceChildren(...fields);
  const okButton = document.getElementById("dialog-ok");
  okButton.textContent = ok;
  okButton.className = danger ? "danger" : "";
  document.getElementById("dialog-cancel").onclick = () => dialog.close("cancel");
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "ok") return resolve(null);
      const values = {};
      for (const input of body.querySelectorAll("[name]")) values[input.name] = input.value;
      resolve(values);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    const first = body.querySelector("input, select");
    if (first) first.focus();
  });
}

// Calls `fn` at most once per `ms`, `ms` after the first call of a burst: a busy
// stream of events cannot postpone the refresh for ever.
export function debounce(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}

// Wraps a loader so only the newest call may draw: an older answer arriving late
// is dropped. `load(isCurrent)` must check `isCurrent()` before drawing.
export function latest(load) {
  let newest = 0;
  return () => {
    const mine = ++newest;
    return load(() => mine === newest);
  };
}
