import { $, dataset } from "./dom.js";
import { api } from "./http.js";
import { failed } from "./status.js";

const { queueId } = dataset();

async function load() {
  const queue = await api(`/v1/queues/${queueId}`, { auth: false });
  document.title = `${queue.name} · SlotEase`;
  $("queue-name").textContent = queue.name;
  $("waiting-count").textContent = queue.waiting_count;
}

$("join").addEventListener("click", async (event) => {
  event.target.disabled = true;
  try {
    const ticket = await api(`/v1/queues/${queueId}/tickets`, { method: "POST", body: {} });
    location.assign(`/t/${ticket.id}`);
  } catch (error) {
    failed(error);
    event.target.disabled = false;
  }
});

load().catch(failed);
