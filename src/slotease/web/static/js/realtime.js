// One WebSocket to /v1/realtime that survives restarts: reconnects with capped, jittered
// backoff, resubscribes with since_seq, and calls `resync` whenever events may have been
// missed (a reconnect, a gap in seq, or the server's own "resync"), so the page refetches.
export class Live {
  constructor({ topics, onEvent, resync, token = null, indicator = null }) {
    this.topics = topics;
    this.onEvent = onEvent;
    this.resync = resync;
    this.token = token;
    this.indicator = indicator;
    this.seq = new Map();
    this.attempt = 0;
    this.connected = false;
    this.connect();
  }

  show(text, state) {
    if (!this.indicator) return;
    this.indicator.textContent = text;
    this.indicator.dataset.state = state;
  }

  async connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${scheme}//${location.host}/v1/realtime`;
    try {
      if (this.token) url += `?token=${encodeURIComponent(await this.token())}`;
    } catch {
      this.retry();
      return;
    }
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempt = 0;
      for (const topic of this.topics) {
        const message = { type: "subscribe", topic };
        if (this.seq.has(topic)) message.since_seq = this.seq.get(topic);
        socket.send(JSON.stringify(message));
      }
      this.pinger = setInterval(() => socket.send('{"type":"ping"}'), 25000);
    });
    socket.addEventListener("message", (message) => this.receive(JSON.parse(message.data)));
    socket.addEventListener("close", () => {
      clearInterval(this.pinger);
      this.connected = false;
      this.show("Reconnecting…", "down");
      this.retry();
    });
  }

  close() {
    this.stopped = true;
    this.socket?.close();
  }

  retry() {
    if (this.stopped) return;
    const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    setTimeout(() => this.connect(), delay);
  }

  receive(frame) {
    if (frame.type === "subscribed") {
      this.connected = true;
      this.show("Live", "up");
      // The state may have changed while the socket was down; refetch once per subscription.
      this.resync();
    } else if (frame.type === "event") {
      const last = this.seq.get(frame.topic);
      this.seq.set(frame.topic, frame.seq);
      if (frame.event === "resync" || (last !== undefined && frame.seq !== last + 1)) {
        this.resync();
        if (frame.event === "resync") return;
      }
      this.onEvent(frame);
    } else if (frame.type === "error") {
      this.show("Live updates unavailable", "down");
    }
  }
}
