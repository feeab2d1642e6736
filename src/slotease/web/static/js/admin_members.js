import { api, dataset, el, failed, say } from "./api.js";

const { orgId } = dataset();
const $ = (id) => document.getElementById(id);

async function load() {
  const members = await api(`/v1/organizations/${orgId}/members?limit=200`);
  $("members").replaceChildren(
    ...members.items.map((member) =>
      el(
        "tr",
        { class: "member" },
        el("td", { text: member.full_name }),
        el("td", { text: member.role === "admin" ? "Admin" : "Staff" }),
        el(
          "td",
          {},
          el("button", {
            type: "button",
            class: "danger small",
            "aria-label": `Remove ${member.full_name}`,
            text: "Remove",
            onclick: () => remove(member).catch(failed),
          }),
        ),
      ),
    ),
  );
}

async function remove(member) {
  if (!confirm(`Remove ${member.full_name} from the organization?`)) return;
  await api(`/v1/organizations/${orgId}/members/${member.user_id}`, { method: "DELETE" });
  say(`${member.full_name} was removed.`, "success");
  await load();
}

async function add(event) {
  event.preventDefault();
  const member = await api(`/v1/organizations/${orgId}/members`, {
    method: "POST",
    body: { email: $("member-email").value.trim(), role: $("member-role").value },
  });
  $("member-form").reset();
  say(`Added as ${member.role}.`, "success");
  await load();
}

async function start() {
  const org = await api(`/v1/organizations/${orgId}`);
  $("org-name").textContent = org.name;
  $("member-form").addEventListener("submit", (event) => add(event).catch(failed));
  await load();
}

start().catch(failed);
