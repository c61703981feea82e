// Talking to the API: the bearer token (kept in session storage), JSON calls with
// the API's error shape, and the event stream. EventSource cannot send an
// Authorization header, so the stream is read with fetch and parsed here.

const TOKEN_KEY = "stepwise.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value.trim());
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  const h = { Accept: "application/json", ...extra };
  if (token()) h.Authorization = "Bearer " + token();
  return h;
}

export async function api(method, path, body) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "unreachable", "the server does not answer: " + e.message);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const e = data && data.error;
    throw new ApiError(response.status, e ? e.code : "http_" + response.status,
      e ? e.message : text || response.statusText);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body === undefined ? {} : body);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Follows `/v1/events` (with `query`, e.g. "run=ID") as Server-Sent Events from
// now on. "Now" is pinned to a cursor before the stream opens, and every reconnect
// resumes with Last-Event-ID, so nothing is missed across drops. Calls
// `onEvent(event)` per event — and `{kind: "stream.reconnected"}` after a drop, as
// the page may have missed changes while it was away — and `onState(connected,
// error)` when that changes. `from`, when given, is the cursor to follow on from
// instead of now. Returns a function that stops following.
export function follow(query, onEvent, onState, from) {
  let stopped = false;
  let controller = null;
  let lastId = from || null;
  let connections = 0;
  async function pinNow() {
    const page = await api("GET", "/v1/events?after=now&limit=1" + (query ? "&" + query : ""));
    lastId = page.next;
  }
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      try {
        if (!lastId) await pinNow();
        const h = headers({ Accept: "text/event-stream" });
        const q = (query ? query + "&" : "") + (lastId ? "" : "after=now");
        if (lastId) h["Last-Event-ID"] = lastId;
        const response = await fetch("/v1/events?" + q, { headers: h, signal: controller.signal });
        if (!response.ok) {
          let message = response.statusText;
          try { message = (await response.json()).error.message; } catch { /* keep the status text */ }
          throw new ApiError(response.status, "stream", message);
        }
        connections += 1;
        onState(true, null);
        if (connections > 1) onEvent({ kind: "stream.reconnected" });
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = parseFrame(frame);
            if (event) {
              lastId = event.id;
              onEvent(event);
            }
          }
        }
      } catch (e) {
        if (stopped) return;
        onState(false, e);
        if (e.status === 401 || e.status === 403) return;
        // A cursor the server no longer knows (the database was replaced): start
        // again from now.
        if (e.status === 400) lastId = null;
      }
      onState(false, null);
      await sleep(1000 + Math.random() * 1000);
    }
  }
  run();
  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}

function parseFrame(frame) {
  let id = null;
  let kind = null;
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try {
    return { id, kind, ...JSON.parse(data.join("\n")) };
  } catch {
    return null;
  }
}
