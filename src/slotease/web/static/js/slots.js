import { addDays, dayKey, formatDateTime, formatDay, formatTime, weekdayOf } from "./dates.js";
import { $, dataset, el } from "./dom.js";
import { api } from "./http.js";
import { failed, say } from "./status.js";

const { orgId, serviceId, signedIn } = dataset();
const week = $("week");
const confirmBox = $("confirm");
let timeZone = "UTC";
let thisMonday = null;
let monday = null;
let chosen = null;

async function showWeek() {
  const to = addDays(monday, 6);
  $("week-label").textContent = `${formatDay(monday)} – ${formatDay(to)}`;
  $("prev-week").disabled = monday <= thisMonday;
  week.setAttribute("aria-busy", "true");
  const answer = await api(`/v1/available-slots?${new URLSearchParams({ service_id: serviceId, from: monday, to })}`, { auth: false });
  const byDay = new Map();
  for (const slot of answer.slots) {
    const key = dayKey(new Date(slot.starts_at), timeZone);
    if (!byDay.has(key)) byDay.set(key, []);
    byDay.get(key).push(slot);
  }
  const days = [];
  for (let i = 0; i < 7; i += 1) {
    const key = addDays(monday, i);
    const slots = byDay.get(key) ?? [];
    days.push(
      el(
        "section",
        { class: "day", "aria-label": formatDay(key, { weekday: "long", day: "numeric", month: "long" }) },
        el("h3", { text: formatDay(key) }),
        slots.length
          ? el(
              "ul",
              { class: "slots" },
              slots.map((slot) =>
                el(
                  "li",
                  {},
                  el("button", {
                    type: "button",
                    class: "slot",
                    "data-starts-at": slot.starts_at,
                    "aria-label": `${formatDateTime(slot.starts_at, timeZone)}, ${slot.remaining} left`,
                    text: formatTime(slot.starts_at, timeZone),
                    onclick: () => choose(slot),
                  }),
                ),
              ),
            )
          : el("p", { class: "muted", text: "No free time" }),
      ),
    );
  }
  week.replaceChildren(...days);
  week.removeAttribute("aria-busy");
}

function choose(slot) {
  chosen = slot;
  $("confirm-text").textContent = `${formatDateTime(slot.starts_at, timeZone)} (${timeZone})`;
  confirmBox.hidden = false;
  $("book").focus();
}

async function book() {
  if (signedIn !== "yes") {
    location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    return;
  }
  const button = $("book");
  button.disabled = true;
  try {
    const notes = $("notes").value.trim();
    await api("/v1/appointments", {
      method: "POST",
      // A retried click after a lost answer must not book twice.
      headers: { "Idempotency-Key": crypto.randomUUID() },
      body: { service_id: serviceId, starts_at: chosen.starts_at, ...(notes ? { notes } : {}) },
    });
    confirmBox.hidden = true;
    say(`Booked for ${formatDateTime(chosen.starts_at, timeZone)}. See “My appointments”.`, "success");
    await showWeek();
  } catch (error) {
    failed(error);
    await showWeek();
  } finally {
    button.disabled = false;
  }
}

async function start() {
  const [org, service] = await Promise.all([
    api(`/v1/organizations/${orgId}`, { auth: false }),
    api(`/v1/services/${serviceId}`, { auth: false }),
  ]);
  timeZone = org.timezone;
  document.title = `${service.name} · ${org.name} · SlotEase`;
  $("service-name").textContent = `${service.name} · ${org.name}`;
  $("service-info").textContent = `${service.duration_minutes} minutes · times shown in ${timeZone}`;
  const today = dayKey(new Date(), timeZone);
  thisMonday = addDays(today, -weekdayOf(today));
  monday = thisMonday;
  await showWeek();
}

$("prev-week").addEventListener("click", () => {
  monday = addDays(monday, -7);
  showWeek().catch(failed);
});
$("next-week").addEventListener("click", () => {
  monday = addDays(monday, 7);
  showWeek().catch(failed);
});
$("book").addEventListener("click", book);
$("cancel-choice").addEventListener("click", () => {
  confirmBox.hidden = true;
});

start().catch(failed);
