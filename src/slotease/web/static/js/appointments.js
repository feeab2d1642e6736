import { addDays, dayKey, formatDateTime } from "./dates.js";
import { $, el } from "./dom.js";
import { api } from "./http.js";
import { failed, say } from "./status.js";

const list = $("appointments");
const names = new Map();

// Service and organization names, fetched once each however many appointments share them.
function lookup(path) {
  if (!names.has(path)) names.set(path, api(path, { auth: false }).catch(() => null));
  return names.get(path);
}

const STATUS_LABELS = {
  booked: "Booked",
  checked_in: "Checked in",
  in_service: "In service",
  completed: "Completed",
  cancelled: "Cancelled",
  no_show: "Missed",
};

async function downloadCalendar(appointment, button) {
  button.disabled = true;
  try {
    const response = await api(`/v1/appointments/${appointment.id}.ics`, { raw: true, headers: { Accept: "text/calendar" } });
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: `appointment-${appointment.id}.ics` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    failed(error);
  } finally {
    button.disabled = false;
  }
}

async function cancel(appointment, label) {
  if (!window.confirm(`Cancel the appointment of ${label}?`)) return;
  try {
    await api(`/v1/appointments/${appointment.id}`, { method: "DELETE" });
    say(`Cancelled: ${label}.`, "success");
    await load();
  } catch (error) {
    failed(error);
  }
}

async function row(appointment) {
  const [service, org] = await Promise.all([
    lookup(`/v1/services/${appointment.service_id}`),
    lookup(`/v1/organizations/${appointment.organization_id}`),
  ]);
  const timeZone = org?.timezone ?? "UTC";
  const when = formatDateTime(appointment.starts_at, timeZone);
  const label = `${service?.name ?? "Appointment"} on ${when}`;
  const actions = el("div", { class: "row" });
  const calendar = el("button", { type: "button", class: "secondary", text: "Add to calendar" });
  calendar.addEventListener("click", () => downloadCalendar(appointment, calendar));
  actions.append(calendar);
  if (appointment.status === "booked") {
    actions.append(
      el("a", { class: "button secondary", href: `/o/${appointment.organization_id}/s/${appointment.service_id}`, text: "Book another time" }),
      el("button", { type: "button", class: "danger", text: "Cancel", "aria-label": `Cancel ${label}`, onclick: () => cancel(appointment, label) }),
    );
  }
  return el(
    "li",
    { class: `appointment status-${appointment.status}`, "data-id": appointment.id },
    el("h2", { class: "h3", text: service?.name ?? "Appointment" }),
    el("p", {}, el("strong", { text: when }), ` (${timeZone}) · ${org?.name ?? ""}`),
    el("p", { class: "badge", "data-status": appointment.status, text: STATUS_LABELS[appointment.status] ?? appointment.status }),
    actions,
  );
}

async function load() {
  // From yesterday: an appointment's date is local to its organization, which may be behind.
  const from = addDays(dayKey(new Date(), Intl.DateTimeFormat().resolvedOptions().timeZone), -1);
  const page = await api(`/v1/appointments?${new URLSearchParams({ from, limit: "200" })}`);
  list.replaceChildren(...(await Promise.all(page.items.map(row))));
  $("empty").hidden = page.items.length > 0;
}

load().catch(failed);
