// The websocket, with the official client's rules for never missing an event:
//
// * every event carries `seq`; the next expected one is `serverSeq`. A gap means events were
//   lost on the way: close (4001) and reconnect at once;
// * a reconnect asks to resume: `?connection_id=<id>&sequence_number=<serverSeq>`. If the server
//   can, it replays what was missed and sends no hello (this works on any node of a cluster);
// * if it cannot, it sends a fresh `hello` with a new connection id: events were lost, so the
//   app refetches over REST (`onResync`) and `serverSeq` starts again at 0;
// * an app-level `ping` every 30 s; one unanswered by the next tick closes (4000) and reconnects.
//   The ping reply names the node serving the socket;
// * the close code of an abnormal close is reported on the next attempt (`disconnect_err_code`),
//   which the server logs and counts.
// * `onOpen` runs each time a socket opens (the first and every reconnect, resumed or not): the
//   server keeps per-connection state such as the `presence` scope only as long as the socket.
//
// The app dedupes posts by id, so an event seen through the REST refetch and again through the
// socket is shown once.

const PING_INTERVAL_MS = 30000;
const REPLY_TIMEOUT_MS = 10000;

export class Socket {
  constructor({ url, onEvent, onResync, onState, onOpen = () => {} }) {
    this.url = url;
    this.onOpen = onOpen;
    this.onEvent = onEvent;
    this.onResync = onResync;
    this.onState = onState;
    this.connectionId = "";
    this.serverSeq = 0;
    this.node = "";
    this.state = "idle"; // idle | connecting | open | reconnecting | closed
    this.failures = 0;
    this.lastCloseCode = 0;
    this.ws = null;
    this.pending = new Map();
    this.requestSeq = 1;
    this.pingTimer = null;
    this.retryTimer = null;
    this.waitingPing = 0;
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.ping());
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState(state);
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const params = new URLSearchParams({
      connection_id: this.connectionId,
      sequence_number: String(this.serverSeq),
    });
    if (this.lastCloseCode && this.lastCloseCode !== 1000) {
      params.set("disconnect_err_code", String(this.lastCloseCode));
    }
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${window.location.host}${this.url}?${params}`);
    this.ws = ws;
    if (this.state === "idle") this.setState("connecting");
    ws.onopen = () => this.opened(ws);
    ws.onmessage = (message) => this.received(ws, message);
    ws.onclose = (event) => this.closed(ws, event.code);
  }

  opened(ws) {
    if (ws !== this.ws) return;
    this.failures = 0;
    this.requestSeq = 1;
    this.waitingPing = 0;
    this.setState("open");
    this.onOpen();
    this.ping();
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.ping(), PING_INTERVAL_MS);
  }

  received(ws, message) {
    if (ws !== this.ws) return;
    let msg;
    try {
      msg = JSON.parse(message.data);
    } catch {
      return;
    }
    if (msg.seq_reply) {
      const waiter = this.pending.get(msg.seq_reply);
      if (waiter) {
        this.pending.delete(msg.seq_reply);
        waiter(msg);
      }
      return;
    }
    if (!msg.event) return;
    let resync = false;
    if (msg.event === "hello") {
      const id = msg.data.connection_id;
      if (this.connectionId && id !== this.connectionId) {
        // A new stream: what happened since the old one ended is not coming. Refetch.
        resync = true;
        this.serverSeq = 0;
      }
      this.connectionId = id;
      if (msg.data.server_hostname) this.node = msg.data.server_hostname;
    }
    if (msg.seq !== this.serverSeq) {
      console.warn(`missed websocket event: expected seq ${this.serverSeq}, got ${msg.seq}`);
      this.restart(4001);
      return;
    }
    this.serverSeq = msg.seq + 1;
    if (resync) this.onResync();
    this.onEvent(msg);
  }

  // Requests of a socket that is gone get no reply (the next socket numbers its own from 1).
  dropPending() {
    for (const waiter of this.pending.values()) waiter(null);
    this.pending.clear();
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this.pingTimer);
    this.dropPending();
    if (this.state === "closed") return;
    this.lastCloseCode = code;
    this.failures += 1;
    this.setState("reconnecting");
    // Soon after the first failure (a node restart or a drain hands us to another node), then
    // backing off up to 30 s, with jitter so that a cluster's clients do not come back at once.
    const base = this.failures === 1 ? 200 : Math.min(30000, 1000 * 2 ** (this.failures - 2));
    this.retryTimer = setTimeout(() => this.connect(), base + Math.random() * 800);
  }

  // Closes the current socket with `code` and reconnects at once (a seq gap or a dead socket).
  restart(code) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    clearInterval(this.pingTimer);
    this.dropPending();
    this.lastCloseCode = code;
    this.setState("reconnecting");
    try {
      ws.close(code);
    } catch {
      // already closing
    }
    this.connect();
  }

  reconnectNow() {
    if (this.state === "reconnecting" && !this.ws) this.connect();
  }

  ping() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.waitingPing) {
      this.restart(4000);
      return;
    }
    const seq = this.requestSeq;
    this.waitingPing = seq;
    this.send("ping").then((reply) => {
      if (reply && this.waitingPing === seq) {
        this.waitingPing = 0;
        if (reply.data && reply.data.node_id) {
          this.node = reply.data.node_id;
          this.onState(this.state);
        }
      }
    });
  }

  // Sends an action; resolves with the reply frame (null if the socket closed or no reply came).
  send(action, data = {}) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.resolve(null);
    const seq = this.requestSeq++;
    ws.send(JSON.stringify({ action, seq, data }));
    return new Promise((resolve) => {
      this.pending.set(seq, resolve);
      setTimeout(() => {
        if (this.pending.delete(seq)) resolve(null);
      }, REPLY_TIMEOUT_MS);
    });
  }

  close() {
    this.setState("closed");
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }
}
