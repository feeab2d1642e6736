import { api, dataset, failed } from "./api.js";

const { queueId } = dataset();

async function load() {
  const queue = await api(`/v1/queues/${queueId}`, { auth: false });
  document.title = `${queue.name} · SlotEase`;
  document.getElementById("queue-name").textContent = queue.name;
  document.getElementById("waiting-count").textContent = queue.waiting_count;
}

document.getElementById("join").addEventListener("click", async (event) => {
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
