import { dayKey, formatTime } from "./dates.js";
import { $, dataset, el } from "./dom.js";
import { accessToken, api } from "./http.js";
import { failed, say } from "./status.js";
import { Live } from "./realtime.js";

const { orgId } = dataset();
const queueSelect = $("queue");
const counterInput = $("counter");
let timeZone = "UTC";
let queues = [];
let current = null;
let live = null;
let refetchTimer = null;

const STATUS_LABELS = { waiting: "Waiting", called: "Called", serving: "Serving" };

counterInput.value = localStorage.getItem("slotease.counter") ?? counterInput.value;
counterInput.addEventListener("change", () => {
  localStorage.setItem("slotease.counter", counterInput.value.trim());
  loadLine().catch(failed);
});

function showCurrent(ticket) {
  current = ticket;
  $("actions").hidden = !ticket;
  $("current").textContent = ticket ? `${ticket.number} · ${STATUS_LABELS[ticket.status] ?? ticket.status}` : "Nobody yet.";
  if (!ticket) return;
  $("actions").querySelector('[data-action="start"]').disabled = ticket.status !== "called";
  $("actions").querySelector('[data-action="complete"]').disabled = ticket.status !== "serving";
  $("actions").querySelector('[data-action="no_show"]').disabled = ticket.status !== "called";
}

async function loadLine() {
  const state = await api(`/v1/queues/${queueSelect.value}`);
  $("waiting-count").textContent = state.waiting_count;
  const tickets = state.tickets ?? [];
  $("line").replaceChildren(
    ...tickets.map((ticket) =>
      el(
        "tr",
        { "data-status": ticket.status },
        el("td", { text: ticket.number }),
        el("td", { text: STATUS_LABELS[ticket.status] ?? ticket.status }),
        el("td", { text: ticket.counter ?? (ticket.position ? `#${ticket.position}` : "") }),
      ),
    ),
  );
  const counter = counterInput.value.trim();
  showCurrent(tickets.find((t) => t.counter === counter && (t.status === "called" || t.status === "serving")) ?? null);
}

// Bursts of events (a call moves every position) become one refetch.
function scheduleRefetch() {
  clearTimeout(refetchTimer);
  refetchTimer = setTimeout(() => loadLine().catch(failed), 150);
}

function follow() {
  live?.close();
  live = new Live({
    topics: [`queue:${queueSelect.value}`],
    token: accessToken,
    indicator: $("live"),
    resync: scheduleRefetch,
    onEvent: scheduleRefetch,
  });
}

$("desk").addEventListener("submit", async (event) => {
  event.preventDefault();
  const counter = counterInput.value.trim();
  if (!counter) return;
  localStorage.setItem("slotease.counter", counter);
  try {
    const ticket = await api(`/v1/queues/${queueSelect.value}/call-next`, { method: "POST", body: { counter } });
    if (ticket) {
      say(`Called ${ticket.number} to ${counter}.`, "success");
      showCurrent(ticket);
    } else {
      say("Nobody is waiting.");
    }
    await loadLine();
  } catch (error) {
    failed(error);
  }
});

$("actions").addEventListener("click", async (event) => {
  const action = event.target.dataset?.action;
  if (!action || !current) return;
  const body = { ticket_id: current.id, action, counter: counterInput.value.trim() };
  if (action === "transfer") body.target_queue_id = $("transfer-to").value;
  try {
    const ticket = await api("/v1/queue/update", { method: "POST", body });
    say(`${ticket.number}: ${action.replace("_", "-")} done.`, "success");
    await loadLine();
  } catch (error) {
    failed(error);
  }
});

async function checkIn(appointment, button) {
  button.disabled = true;
  try {
    await api(`/v1/appointments/${appointment.id}`, { method: "PUT", body: { status: "checked_in" } });
    say("Checked in.", "success");
    await loadToday();
  } catch (error) {
    failed(error);
    button.disabled = false;
  }
}

async function loadToday() {
  const today = dayKey(new Date(), timeZone);
  const page = await api(`/v1/appointments?${new URLSearchParams({ organization_id: orgId, from: today, to: today, limit: "200" })}`);
  $("today").replaceChildren(
    ...(page.items.length
      ? page.items.map((appointment) => {
          const item = el("li", { "data-status": appointment.status }, el("strong", { text: formatTime(appointment.starts_at, timeZone) }), ` · ${appointment.status.replace("_", " ")} `);
          if (appointment.status === "booked") {
            const button = el("button", { type: "button", class: "small", text: "Check in" });
            button.addEventListener("click", () => checkIn(appointment, button));
            item.append(button);
          }
          return item;
        })
      : [el("li", { class: "muted", text: "No appointments today." })]),
  );
}

async function start() {
  const [org, page] = await Promise.all([api(`/v1/organizations/${orgId}`), api(`/v1/organizations/${orgId}/queues`)]);
  timeZone = org.timezone;
  $("org-name").textContent = org.name;
  queues = page.items.filter((queue) => queue.is_active);
  const remembered = localStorage.getItem(`slotease.queue.${orgId}`);
  queueSelect.replaceChildren(...queues.map((queue) => el("option", { value: queue.id, text: queue.name, selected: queue.id === remembered })));
  const fillTransfer = () =>
    $("transfer-to").replaceChildren(...queues.filter((q) => q.id !== queueSelect.value).map((queue) => el("option", { value: queue.id, text: `to ${queue.name}` })));
  fillTransfer();
  for (const node of document.querySelectorAll('#transfer-to, [data-action="transfer"]')) node.hidden = queues.length < 2;
  queueSelect.addEventListener("change", () => {
    localStorage.setItem(`slotease.queue.${orgId}`, queueSelect.value);
    fillTransfer();
    follow();
  });
  if (queues.length) follow();
  else say("This organization has no active queue.");
  await loadToday();
}

start().catch(failed);
