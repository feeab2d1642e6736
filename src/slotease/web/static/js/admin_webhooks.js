import { formatDateTime } from "./dates.js";
import { $, dataset, el } from "./dom.js";
import { api } from "./http.js";
import { failed, say } from "./status.js";
import { hideSecret, showSecret } from "./secret.js";

const { orgId } = dataset();
let timezone;

function state(webhook) {
  if (webhook.disabled_at) return `Disabled after ${webhook.consecutive_failures} failures`;
  return webhook.is_active ? "Active" : "Paused";
}

async function load() {
  const webhooks = await api(`/v1/organizations/${orgId}/webhooks?limit=200`);
  $("webhooks").replaceChildren(
    ...webhooks.items.map((webhook) =>
      el(
        "tr",
        { class: "webhook" },
        el("td", {}, el("code", { text: webhook.url })),
        el("td", { text: webhook.events.join(", ") }),
        el("td", { text: state(webhook) }),
        el(
          "td",
          { class: "row" },
          el("button", { type: "button", class: "secondary small", "aria-label": `Deliveries to ${webhook.url}`, text: "Deliveries", onclick: () => deliveries(webhook).catch(failed) }),
          el("button", { type: "button", class: "danger small", "aria-label": `Delete ${webhook.url}`, text: "Delete", onclick: () => remove(webhook).catch(failed) }),
        ),
      ),
    ),
  );
}

async function deliveries(webhook) {
  const page = await api(`/v1/organizations/${orgId}/webhooks/${webhook.id}/deliveries?limit=50`);
  $("deliveries-url").textContent = webhook.url;
  $("deliveries").replaceChildren(
    ...(page.items.length
      ? page.items.map((delivery) =>
          el(
            "tr",
            {},
            el("td", { text: delivery.event }),
            el("td", { text: delivery.last_error ? `${delivery.status} · ${delivery.last_error}` : delivery.status }),
            el("td", { text: String(delivery.attempts) }),
            el("td", { text: delivery.response_code === null ? "–" : String(delivery.response_code) }),
            el("td", { text: formatDateTime(delivery.created_at, timezone) }),
          ),
        )
      : [el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No delivery yet." }))]),
  );
  $("deliveries-section").hidden = false;
}

async function remove(webhook) {
  if (!confirm(`Delete the webhook to ${webhook.url}?`)) return;
  await api(`/v1/webhooks/${webhook.id}`, { method: "DELETE" });
  hideSecret();
  $("deliveries-section").hidden = true;
  say("Webhook deleted.", "success");
  await load();
}

async function create(event) {
  event.preventDefault();
  const form = $("webhook-form");
  const events = [...form.querySelectorAll("input[name=events]:checked")].map((box) => box.value);
  if (!events.length) {
    say("Pick at least one event.", "error");
    return;
  }
  const created = await api(`/v1/organizations/${orgId}/webhooks`, {
    method: "POST",
    body: { url: $("webhook-url").value.trim(), events },
  });
  form.reset();
  say("Webhook added.", "success");
  showSecret(created.secret);
  await load();
}

async function start() {
  const org = await api(`/v1/organizations/${orgId}`);
  timezone = org.timezone;
  $("org-name").textContent = org.name;
  $("webhook-form").addEventListener("submit", (event) => create(event).catch(failed));
  await load();
}

start().catch(failed);
