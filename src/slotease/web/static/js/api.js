// The page's access to the JSON API: a short-lived access token kept in memory only,
// obtained from the session cookie through POST /session/token with the CSRF token.
let token = null;
let tokenExpires = 0;
let pendingToken = null;

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrf="));
  return cookie ? decodeURIComponent(cookie.slice(5)) : "";
}

function toLogin() {
  location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
  return new Promise(() => {});
}

export async function accessToken() {
  if (token && Date.now() < tokenExpires) return token;
  // One request at a time: several callers at page load share it.
  pendingToken ??= fetch("/session/token", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrfToken() },
  })
    .then(async (response) => {
      if (response.status === 401) return toLogin();
      if (!response.ok) throw new ApiError(response.status, "Could not start the session.");
      const body = await response.json();
      token = body.access_token;
      // Renewed a little early so a request never leaves with a token about to expire.
      tokenExpires = Date.now() + Math.max(body.expires_in - 30, 5) * 1000;
      return token;
    })
    .finally(() => {
      pendingToken = null;
    });
  return pendingToken;
}

export async function api(path, { method = "GET", body, auth = true, headers = {}, raw = false } = {}) {
  const request = { method, headers: { Accept: "application/json", ...headers } };
  if (auth) request.headers.Authorization = `Bearer ${await accessToken()}`;
  if (body !== undefined) {
    request.headers["Content-Type"] = "application/json";
    request.body = JSON.stringify(body);
  }
  const response = await fetch(path, request);
  if (response.status === 401 && auth) return toLogin();
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || detail;
    } catch {
      // Not a problem document; the status text will do.
    }
    throw new ApiError(response.status, detail);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

// Builds DOM nodes (never HTML strings), so API data cannot inject markup.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function say(message, kind = "info") {
  const status = document.getElementById("status");
  status.textContent = message;
  status.dataset.kind = kind;
}

export function failed(error) {
  say(error instanceof ApiError ? error.message : "Something went wrong; try again.", "error");
}

export function dataset() {
  return document.getElementById("main").dataset;
}

// Dates in an organization's timezone: `YYYY-MM-DD` keys and human labels.
export function dayKey(date, timeZone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(date);
}

export function addDays(key, days) {
  const [y, m, d] = key.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

export function weekdayOf(key) {
  const [y, m, d] = key.split("-").map(Number);
  return (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;
}

export function formatDay(key, options = { weekday: "short", day: "numeric", month: "short" }) {
  const [y, m, d] = key.split("-").map(Number);
  return new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" }).format(new Date(Date.UTC(y, m - 1, d, 12)));
}

export function formatTime(iso, timeZone) {
  return new Intl.DateTimeFormat(undefined, { timeZone, hour: "2-digit", minute: "2-digit" }).format(new Date(iso));
}

export function formatDateTime(iso, timeZone) {
  return new Intl.DateTimeFormat(undefined, { timeZone, dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

// The UTC instant of a wall-clock time (`YYYY-MM-DDTHH:MM`, as a datetime-local input gives
// it) in a timezone, so admins type times as the organization lives them.
export function wallClockToIso(value, timeZone) {
  const [y, m, d, hh, mm] = value.split(/[-T:]/).map(Number);
  const wanted = Date.UTC(y, m - 1, d, hh, mm);
  let instant = wanted;
  // A second pass settles the offset next to a daylight-saving change.
  for (let pass = 0; pass < 2; pass += 1) instant = wanted - (zoneClock(instant, timeZone) - instant);
  return new Date(instant).toISOString();
}

function zoneClock(instant, timeZone) {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
  });
  const parts = Object.fromEntries(format.formatToParts(new Date(instant)).map((part) => [part.type, Number(part.value)]));
  return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute);
}
