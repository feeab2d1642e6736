import { addDays, formatDateTime, wallClockToIso } from "./dates.js";
import { $, dataset, el } from "./dom.js";
import { api } from "./http.js";
import { failed } from "./status.js";

const { orgId } = dataset();
let timezone;
let cursor = null;

// The filter's days are the organization's own, both inclusive.
function query() {
  const params = new URLSearchParams({ limit: "50" });
  const table = $("audit-table").value.trim();
  const actor = $("audit-actor").value.trim();
  if (table) params.set("table", table);
  if (actor) params.set("actor_id", actor);
  if ($("audit-from").value) params.set("from", wallClockToIso(`${$("audit-from").value}T00:00`, timezone));
  if ($("audit-to").value) {
    // The last instant of that day: `to` is inclusive.
    const nextDay = wallClockToIso(`${addDays($("audit-to").value, 1)}T00:00`, timezone);
    params.set("to", new Date(Date.parse(nextDay) - 1).toISOString());
  }
  if (cursor) params.set("cursor", cursor);
  return params;
}

function changes(entry) {
  return Object.entries(entry.changes)
    .map(([field, value]) =>
      entry.operation === "UPDATE" ? `${field}: ${JSON.stringify(value.old)} → ${JSON.stringify(value.new)}` : `${field}: ${JSON.stringify(value)}`,
    )
    .join("\n");
}

async function load({ more = false } = {}) {
  if (!more) cursor = null;
  const page = await api(`/v1/organizations/${orgId}/audit?${query()}`);
  const rows = page.items.map((entry) =>
    el(
      "tr",
      { class: "audit-entry" },
      el("td", { text: formatDateTime(entry.at, timezone) }),
      el("td", {}, el("code", { text: entry.actor_id || "system" })),
      el("td", { text: `${entry.operation} ${entry.table}` }),
      el("td", {}, el("code", { text: entry.row_id || "–" })),
      el("td", {}, el("pre", { text: changes(entry) })),
    ),
  );
  if (more) $("entries").append(...rows);
  else $("entries").replaceChildren(...rows);
  cursor = page.next_cursor;
  $("audit-more").hidden = cursor === null;
}

async function start() {
  const org = await api(`/v1/organizations/${orgId}`);
  timezone = org.timezone;
  $("org-name").textContent = org.name;
  $("audit-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    load().catch(failed);
  });
  $("audit-more").addEventListener("click", () => load({ more: true }).catch(failed));
  await load();
}

start().catch(failed);
