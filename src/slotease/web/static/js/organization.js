import { $, dataset, el } from "./dom.js";
import { api } from "./http.js";
import { failed } from "./status.js";

const { orgId } = dataset();

async function load() {
  const [org, services, queues] = await Promise.all([
    api(`/v1/organizations/${orgId}`, { auth: false }),
    api(`/v1/organizations/${orgId}/services`, { auth: false }),
    api(`/v1/organizations/${orgId}/queues`, { auth: false }),
  ]);
  document.title = `${org.name} · SlotEase`;
  $("org-name").textContent = org.name;
  $("org-address").textContent = [org.address, org.timezone].filter(Boolean).join(" · ");
  $("services").replaceChildren(
    ...services.items.map((service) =>
      el(
        "li",
        {},
        el("a", { href: `/o/${orgId}/s/${service.id}`, text: service.name }),
        el("span", {
          class: "muted",
          text: ` · ${service.duration_minutes} min${service.price ? ` · ${service.price} ${service.currency ?? ""}` : ""}`,
        }),
      ),
    ),
  );
  const activeQueues = queues.items.filter((queue) => queue.is_active);
  $("queues").replaceChildren(
    ...(activeQueues.length
      ? activeQueues.map((queue) =>
          el(
            "li",
            {},
            el("a", { href: `/q/${queue.id}/join`, text: `Join “${queue.name}”` }),
            " · ",
            el("a", { href: `/board/${queue.id}`, text: "Now-serving board" }),
          ),
        )
      : [el("li", { class: "muted", text: "No walk-in queue." })]),
  );
}

load().catch(failed);
