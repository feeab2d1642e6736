import { formatDateTime } from "./dates.js";
import { $, dataset, el } from "./dom.js";
import { api } from "./http.js";
import { failed, say } from "./status.js";

const { orgId } = dataset();
let timezone;

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

async function loadInvitations() {
  const invitations = await api(`/v1/organizations/${orgId}/invitations?limit=200`);
  $("invitations").replaceChildren(
    ...invitations.items.map((invitation) =>
      el(
        "tr",
        { class: "invitation" },
        el("td", { text: invitation.email }),
        el("td", { text: invitation.role === "admin" ? "Admin" : "Staff" }),
        el("td", { text: formatDateTime(invitation.expires_at, timezone) }),
        el(
          "td",
          {},
          el("button", {
            type: "button",
            class: "danger small",
            "aria-label": `Revoke the invitation of ${invitation.email}`,
            text: "Revoke",
            onclick: () => revoke(invitation).catch(failed),
          }),
        ),
      ),
    ),
  );
}

async function revoke(invitation) {
  if (!confirm(`Revoke the invitation of ${invitation.email}?`)) return;
  await api(`/v1/invitations/${invitation.invitation_id}`, { method: "DELETE" });
  say(`The invitation of ${invitation.email} was revoked.`, "success");
  await loadInvitations();
}

async function remove(member) {
  if (!confirm(`Remove ${member.full_name} from the organization?`)) return;
  await api(`/v1/organizations/${orgId}/members/${member.user_id}`, { method: "DELETE" });
  say(`${member.full_name} was removed.`, "success");
  await load();
}

async function invite(event) {
  event.preventDefault();
  const invitation = await api(`/v1/organizations/${orgId}/members`, {
    method: "POST",
    body: { email: $("member-email").value.trim(), role: $("member-role").value },
  });
  $("member-form").reset();
  say(`Invitation sent to ${invitation.email}.`, "success");
  await loadInvitations();
}

async function start() {
  const org = await api(`/v1/organizations/${orgId}`);
  $("org-name").textContent = org.name;
  timezone = org.timezone;
  $("member-form").addEventListener("submit", (event) => invite(event).catch(failed));
  await Promise.all([load(), loadInvitations()]);
}

start().catch(failed);
