// Users and their presence: fetched in batches as names appear on screen, kept up to date by
// `user_updated` events. A presence dot is an element tagged with the user id, so a status change
// repaints every dot of that user at once. The server tells a user only of their own status
// changes (`status_change`, as Mattermost does); the statuses of the others on screen are asked
// for every 15 s (the official app asks every minute), over the websocket when it is open.

const STATUS_POLL_MS = 15000;

import { h } from "./dom.js";

const STATUS_LABEL = { online: "online", away: "away", dnd: "do not disturb", offline: "offline" };

export class People {
  constructor(api) {
    this.api = api;
    this.users = new Map();
    this.statuses = new Map();
    this.wanted = new Set();
    this.batch = null;
  }

  get(id) {
    return this.users.get(id);
  }

  put(user) {
    this.users.set(user.id, user);
    for (const el of document.querySelectorAll(`[data-name-of="${CSS.escape(user.id)}"]`)) {
      el.textContent = this.displayName(user.id);
    }
  }

  // Fetches the users (and statuses) not known yet; one request per batch of calls.
  async ensure(ids) {
    const missing = [...new Set(ids)].filter((id) => id && !this.users.has(id));
    if (!missing.length) return;
    for (const id of missing) this.wanted.add(id);
    if (!this.batch) {
      this.batch = Promise.resolve().then(async () => {
        const wanted = [...this.wanted];
        this.wanted.clear();
        this.batch = null;
        const users = await this.api.post("/users/ids", wanted);
        for (const user of users) this.put(user);
        await this.refreshStatuses(wanted);
      });
    }
    await this.batch;
  }

  async refreshStatuses(ids) {
    const wanted = ids || [...this.users.keys()];
    if (!wanted.length) return;
    const statuses = await this.api.post("/users/status/ids", wanted);
    for (const s of statuses) this.setStatus(s.user_id, s.status);
  }

  // Keeps the dots on screen current: `socket` answers `get_statuses_by_ids` while it is open.
  pollStatuses(socket) {
    clearInterval(this.poller);
    this.poller = setInterval(async () => {
      const ids = [...new Set([...document.querySelectorAll("[data-presence-of]")].map((d) => d.dataset.presenceOf))];
      if (!ids.length) return;
      const reply = await socket.send("get_statuses_by_ids", { user_ids: ids });
      if (reply && reply.status === "OK" && reply.data) {
        for (const [id, status] of Object.entries(reply.data)) this.setStatus(id, status);
      } else {
        await this.refreshStatuses(ids).catch(() => {});
      }
    }, STATUS_POLL_MS);
  }

  stopPolling() {
    clearInterval(this.poller);
  }

  displayName(id) {
    const user = this.users.get(id);
    if (!user) return "someone";
    const full = [user.first_name, user.last_name].filter(Boolean).join(" ");
    return full || user.nickname || user.username;
  }

  username(id) {
    const user = this.users.get(id);
    return user ? user.username : "";
  }

  // A name that follows renames: <span data-name-of=id>.
  name(id, attrs = {}) {
    return h("span", { ...attrs, dataset: { nameOf: id } }, this.displayName(id));
  }

  status(id) {
    return this.statuses.get(id) || "offline";
  }

  setStatus(id, status) {
    this.statuses.set(id, status);
    for (const dot of document.querySelectorAll(`[data-presence-of="${CSS.escape(id)}"]`)) {
      paintDot(dot, status);
    }
  }

  dot(id) {
    const dot = h("span", { class: "presence", role: "img", dataset: { presenceOf: id } });
    paintDot(dot, this.status(id));
    return dot;
  }
}

function paintDot(dot, status) {
  dot.dataset.status = status;
  const label = STATUS_LABEL[status] || status;
  dot.setAttribute("aria-label", label);
  dot.title = label;
}
