import { formatDateTime } from "./dates.js";
import { $, dataset, el } from "./dom.js";
import { api } from "./http.js";
import { failed, say } from "./status.js";
import { hideSecret, showSecret } from "./secret.js";

const { orgId } = dataset();
let timezone;

const when = (iso) => (iso ? formatDateTime(iso, timezone) : "–");

async function load() {
  const keys = await api(`/v1/organizations/${orgId}/api-keys?limit=200`);
  $("keys").replaceChildren(
    ...keys.items.map((key) =>
      el(
        "tr",
        { class: "api-key" },
        el("td", { text: key.name }),
        el("td", { text: key.role === "admin" ? "Admin" : "Staff" }),
        el("td", {}, el("code", { text: key.prefix })),
        el("td", { text: when(key.created_at) }),
        el("td", { text: when(key.last_used_at) }),
        el("td", { text: when(key.expires_at) }),
        el(
          "td",
          { class: "row" },
          el("button", { type: "button", class: "secondary small", "aria-label": `Rotate ${key.name} (${key.prefix})`, text: "Rotate", onclick: () => rotate(key).catch(failed) }),
          el("button", { type: "button", class: "danger small", "aria-label": `Revoke ${key.name} (${key.prefix})`, text: "Revoke", onclick: () => revoke(key).catch(failed) }),
        ),
      ),
    ),
  );
}

async function create(event) {
  event.preventDefault();
  const created = await api(`/v1/organizations/${orgId}/api-keys`, {
    method: "POST",
    body: { name: $("key-name").value.trim(), role: $("key-role").value },
  });
  $("key-form").reset();
  say(`Created ${created.name}.`, "success");
  showSecret(created.key);
  await load();
}

async function rotate(key) {
  const created = await api(`/v1/organizations/${orgId}/api-keys/${key.id}/rotate`, { method: "POST" });
  say(`Rotated ${key.name}: the old key keeps working until the expiry shown in its row.`, "success");
  showSecret(created.key);
  await load();
}

async function revoke(key) {
  if (!confirm(`Revoke ${key.name}? Anything using it stops working at once.`)) return;
  await api(`/v1/organizations/${orgId}/api-keys/${key.id}`, { method: "DELETE" });
  hideSecret();
  say(`Revoked ${key.name}.`, "success");
  await load();
}

async function start() {
  const org = await api(`/v1/organizations/${orgId}`);
  timezone = org.timezone;
  $("org-name").textContent = org.name;
  $("key-form").addEventListener("submit", (event) => create(event).catch(failed));
  await load();
}

start().catch(failed);
