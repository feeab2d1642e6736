import { $, dataset, el } from "./dom.js";
import { api } from "./http.js";
import { failed, say } from "./status.js";

const { invitationId } = dataset();
const roleName = (role) => (role === "admin" ? "an admin" : "staff");

async function answer(invitation, accepted) {
  $("answers").hidden = true;
  if (accepted) {
    await api(`/v1/invitations/${invitationId}/accept`, { method: "POST" });
    $("invitation-text").replaceChildren(
      `You joined ${invitation.organization_name}. `,
      el("a", { href: `/staff/${invitation.organization_id}`, text: "Open its staff page" }),
    );
    say(`You joined ${invitation.organization_name}.`, "success");
  } else {
    await api(`/v1/invitations/${invitationId}`, { method: "DELETE" });
    $("invitation-text").textContent = `You declined to join ${invitation.organization_name}.`;
    say("Invitation declined.", "success");
  }
}

async function load() {
  const mine = await api("/v1/me/invitations?limit=200");
  const invitation = mine.items.find((item) => item.invitation_id === invitationId);
  if (!invitation) {
    $("invitation-text").textContent =
      "There is no pending invitation for this account here: it may be addressed to another email, used, revoked or expired.";
    return;
  }
  $("invitation-text").textContent = `${invitation.organization_name} invites you to join as ${roleName(invitation.role)}.`;
  $("answers").hidden = false;
  const respond = (accepted) => answer(invitation, accepted).catch((error) => {
    $("answers").hidden = false;
    failed(error);
  });
  $("accept").addEventListener("click", () => respond(true));
  $("decline").addEventListener("click", () => respond(false));
}

load().catch(failed);
