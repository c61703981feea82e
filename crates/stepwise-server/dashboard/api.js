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

// Follows `/v1/events` (with `query`, e.g. "after=now&run=ID") as Server-Sent Events,
// reconnecting after a drop with Last-Event-ID so nothing is missed. Calls
// `onEvent(event)` per event and `onState(connected, error)` when that changes.
// Returns a function that stops following.
export function follow(query, onEvent, onState) {
  let stopped = false;
  let controller = null;
  let lastId = null;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const h = headers({ Accept: "text/event-stream" });
        if (lastId) h["Last-Event-ID"] = lastId;
        const response = await fetch("/v1/events?" + query, { headers: h, signal: controller.signal });
        if (!response.ok) {
          let message = response.statusText;
          try { message = (await response.json()).error.message; } catch { /* keep the status text */ }
          throw new ApiError(response.status, "stream", message);
        }
        onState(true, null);
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
      }
      onState(false, null);
      await sleep(1000);
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
