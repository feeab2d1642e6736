import { $, dataset } from "./dom.js";
import { accessToken, api } from "./http.js";
import { failed } from "./status.js";
import { Live } from "./realtime.js";
import { chime, enableSound } from "./sound.js";

const { ticketId } = dataset();
const STATUS_LABELS = {
  waiting: "Waiting",
  called: "Called",
  serving: "Being served",
  served: "Done, thank you",
  no_show: "Missed",
  cancelled: "Cancelled",
};
let lastStatus = null;

function render(ticket) {
  $("ticket-number").textContent = ticket.number;
  $("ticket-status").textContent = STATUS_LABELS[ticket.status] ?? ticket.status;
  $("ticket-status").dataset.status = ticket.status;
  const waiting = ticket.status === "waiting";
  $("position").textContent = waiting && ticket.position != null ? ticket.position : "–";
  $("wait").textContent = waiting && ticket.estimated_wait_minutes != null ? `about ${ticket.estimated_wait_minutes} min` : "–";
  const call = $("call");
  call.hidden = ticket.status !== "called";
  if (ticket.status === "called") {
    call.textContent = `Please go to ${ticket.counter ?? "the counter"}`;
    if (lastStatus !== null && lastStatus !== "called") chime();
    document.title = `Your turn: ${ticket.counter ?? ""} · SlotEase`;
  }
  lastStatus = ticket.status;
}

async function refetch() {
  const ticket = await api(`/v1/tickets/${ticketId}`);
  render(ticket);
  return ticket;
}

$("sound").addEventListener("click", async (event) => {
  await enableSound();
  event.target.textContent = "Sound alert on";
  event.target.disabled = true;
});

refetch()
  .then(async (ticket) => {
    const queue = await api(`/v1/queues/${ticket.queue_id}`, { auth: false });
    $("queue-name").textContent = queue.name;
    new Live({
      topics: [`ticket:${ticketId}`],
      token: accessToken,
      indicator: $("live"),
      resync: () => refetch().catch(failed),
      onEvent: ({ payload }) => {
        Object.assign(ticket, payload);
        render(ticket);
      },
    });
  })
  .catch(failed);
