import { $, dataset, el } from "./dom.js";
import { api } from "./http.js";
import { failed } from "./status.js";
import { Live } from "./realtime.js";
import { chime, enableSound } from "./sound.js";

const { queueId } = dataset();
let latest = null;

function render(state) {
  $("waiting-count").textContent = state.waiting_count;
  const rows = state.now_serving.map((entry) =>
    el(
      "tr",
      { class: entry.number === latest ? "fresh" : undefined },
      el("td", { class: "number", text: entry.number }),
      el("td", { text: entry.counter ?? "" }),
    ),
  );
  $("serving").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "2", class: "muted", text: "Nobody is being served yet" }))]));
}

async function refetch() {
  const state = await api(`/v1/queues/${queueId}`, { auth: false });
  document.title = `${state.name} · Now serving`;
  $("queue-name").textContent = state.name;
  render(state);
}

$("fullscreen").addEventListener("click", () => {
  enableSound();
  document.documentElement.requestFullscreen?.().catch(() => {});
});

refetch().catch(failed);
new Live({
  topics: [`queue:${queueId}`],
  indicator: $("live"),
  resync: () => refetch().catch(failed),
  onEvent: ({ event, payload }) => {
    if (event === "ticket.called") {
      latest = payload.number;
      chime();
    } else if (event === "queue.updated") {
      render(payload);
    }
  },
});
