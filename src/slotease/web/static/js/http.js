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
