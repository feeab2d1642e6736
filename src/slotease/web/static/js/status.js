// The page's one status line (#status, a live region), for outcomes and errors.
import { $ } from "./dom.js";
import { ApiError } from "./http.js";

export function say(message, kind = "info") {
  const status = $("status");
  status.textContent = message;
  status.dataset.kind = kind;
}

export function failed(error) {
  say(error instanceof ApiError ? error.message : "Something went wrong; try again.", "error");
}
