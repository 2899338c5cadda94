// hubbub's web client: the entry point and the chat session.
//
// Data flow. Everything that changes what is on screen goes through one queue, in order: the
// first load (run when the websocket says hello, so nothing published after that can be missed),
// each websocket event, and the refetch after a reconnect that could not resume. A post reaches
// the screen through `showPost` whether it came from REST, from the socket or from our own POST,
// and the lists key posts by id, so it is shown once.

import { Api } from "./api.js";
import { showAuth } from "./auth_view.js";
import { ChannelView } from "./channel_view.js";
import { browseChannelsDialog, createChannelDialog, directMessageDialog, teamChooser } from "./dialogs.js";
import { h, replaceChildren } from "./dom.js";
import { People } from "./people.js";
import { SidePane } from "./side_pane.js";
import { Sidebar, channelLabel } from "./sidebar.js";
import { Socket } from "./socket.js";

const TYPING_SHOWN_MS = 5000;
const CHANNEL_EVENTS = new Set(["channel_created", "channel_updated", "channel_deleted", "channel_restored", "user_added", "user_removed", "direct_added", "group_added"]);

class Chat {
  constructor(root, api, me, config) {
    Object.assign(this, { root, api, me, config });
    this.people = new People(api);
    this.people.put(me);
    this.team = null;
    this.channels = new Map();
    this.members = new Map();
    this.current = null;
    this.typing = new Map(); // "channel:parent" -> Map(user -> timer)
    this.queue = Promise.resolve();
    this.loaded = false;
    const postActions = {
      reply: (post) => this.openThread(post),
      react: (post, emoji) => this.react(post, emoji),
      edit: (post, message) => this.edit(post, message),
      remove: (post) => this.remove(post),
    };
    const io = {
      send: (channel, post) => this.send(channel, post),
      upload: (channel, file, progress) => api.upload(channel.id, file, progress),
      typing: (channel, parentId) => this.socket.send("user_typing", { channel_id: channel.id, parent_id: parentId }),
    };
    this.sidebar = new Sidebar({
      people: this.people,
      me,
      actions: {
        open: (channel) => this.enqueue(() => this.open(channel)),
        create: () => createChannelDialog({ api, teamId: this.team.id, onCreated: (c) => this.joined(c) }),
        browse: () => browseChannelsDialog({ api, teamId: this.team.id, joined: new Set(this.channels.keys()), me, onJoined: (c) => this.joined(c) }),
        directMessage: () => directMessageDialog({ api, me, people: this.people, onOpened: (c) => this.joined(c) }),
      },
    });
    this.view = new ChannelView({ api, people: this.people, me, postActions, ...io });
    this.pane = new SidePane({
      api,
      people: this.people,
      me,
      postActions,
      ...io,
      jump: (post) => this.jump(post),
      channelName: (id) => (this.channels.has(id) ? channelLabel(this.channels.get(id), this.people, me) : "another channel"),
      threadChanged: () => this.tellThread(),
    });
    this.socket = new Socket({
      url: "/api/v4/websocket",
      onEvent: (msg) => this.enqueue(() => this.event(msg)),
      onResync: () => this.enqueue(() => this.refetch()),
      onState: (state) => this.socketState(state),
      onOpen: () => this.tellScope(),
    });
  }

  enqueue(work) {
    this.queue = this.queue.then(work).catch((error) => console.error(error));
    return this.queue;
  }

  // Layout

  async start() {
    const teams = await this.api.get("/users/me/teams");
    if (!teams.length) {
      teamChooser(this.root, { api: this.api, me: this.me, onTeam: () => this.start() });
      return;
    }
    this.teams = teams.sort((a, b) => a.display_name.localeCompare(b.display_name));
    const saved = localStorage.getItem("hubbub.team");
    this.team = this.teams.find((t) => t.id === saved) || this.teams[0];
    this.layout();
    this.socket.connect();
    this.people.pollStatuses(this.socket);
    // Normally the first hello starts the load; without a websocket (a proxy refusing upgrades)
    // the client still works over REST.
    setTimeout(() => this.loaded || this.enqueue(() => this.loadTeam()), 5000);
  }

  layout() {
    this.banner = h("div", { class: "banner", role: "status", hidden: true });
    const teamSelect = h(
      "select",
      {
        id: "team-select",
        onchange: () => {
          if (teamSelect.value === "") {
            teamChooser(this.root, { api: this.api, me: this.me, onTeam: (t) => this.switchTeam(t), onBack: () => this.switchTeam(this.team) });
            return;
          }
          this.switchTeam(this.teams.find((t) => t.id === teamSelect.value));
        },
      },
      this.teams.map((t) => h("option", { value: t.id, selected: t.id === this.team.id }, t.display_name)),
      h("option", { value: "" }, "Join or create a team…"),
    );
    const search = h("input", { id: "search", type: "search", placeholder: "Search messages", autocomplete: "off" });
    const menu = h("button", { type: "button", class: "icon menu", "aria-controls": "sidebar", "aria-expanded": "false", "aria-label": "Show channels" }, "☰");
    menu.addEventListener("click", () => {
      const open = document.body.classList.toggle("sidebar-open");
      menu.setAttribute("aria-expanded", String(open));
    });
    const header = h(
      "header",
      { class: "topbar" },
      menu,
      h("label", { for: "team-select", class: "visually-hidden" }, "Team"),
      teamSelect,
      h(
        "form",
        { role: "search", class: "search", onsubmit: (e) => (e.preventDefault(), search.value.trim() && this.pane.search(this.team.id, search.value.trim())) },
        h("label", { for: "search", class: "visually-hidden" }, "Search messages"),
        search,
      ),
      h("span", { class: "me" }, this.people.dot(this.me.id), this.people.name(this.me.id)),
      this.me.roles.split(" ").includes("system_admin") ? h("a", { href: "/admin", class: "link" }, "Console") : null,
      h("button", { type: "button", class: "link", onclick: () => this.logout() }, "Log out"),
    );
    this.menu = menu;
    replaceChildren(this.root, h("div", { class: "shell" }, h("a", { href: "#main", class: "skip" }, "Skip to messages"), header, this.banner, h("div", { class: "layout" }, this.sidebar.el, this.view.el, this.pane.el)));
    if (!this.listening) {
      this.listening = true;
      document.addEventListener("visibilitychange", () => !document.hidden && this.current && this.markViewed(this.current));
      window.addEventListener("hashchange", () => {
        const channel = this.channels.get(location.hash.slice(1));
        if (channel && channel !== this.current) this.enqueue(() => this.open(channel));
      });
    }
  }

  socketState(state) {
    const b = document.body.dataset;
    b.wsState = state;
    b.wsConnectionId = this.socket.connectionId;
    b.wsNode = this.socket.node;
    if (!this.banner) return;
    const text = state === "reconnecting" ? "Reconnecting…" : state === "connecting" ? "Connecting…" : "";
    this.banner.textContent = text;
    this.banner.hidden = !text;
  }

  // What is on screen, for the server's event scope (FeatureFlags.WebSocketEventScope,
  // realtime/scope.py): with the open channel and both thread slots told, typing and reaction
  // events of other channels are not sent to this page. Told on every channel switch and thread
  // change, and again whenever a socket opens (the server forgets it with the connection). Until
  // a channel is open the channel is left untold, which means "send everything".
  tellScope() {
    if (this.team) this.socket.send("presence", { team_id: this.team.id });
    if (this.current) this.tellChannel();
    this.tellThread();
    this.socket.send("presence", { thread_channel_id: "", is_thread_view: true }); // no threads view
  }

  tellChannel() {
    this.socket.send("presence", { channel_id: this.current.id });
  }

  tellThread() {
    this.socket.send("presence", { thread_channel_id: this.pane.threadChannelId(), is_thread_view: false });
  }

  // Loading

  async loadTeam() {
    this.loaded = true;
    localStorage.setItem("hubbub.team", this.team.id);
    await this.loadChannels();
    // Our own status too: it changed before this page listened (and only changes are sent).
    await this.people.refreshStatuses();
    const wanted = this.channels.get(location.hash.slice(1)) || this.channels.get(localStorage.getItem(`hubbub.channel.${this.team.id}`));
    const fallback = [...this.channels.values()].find((c) => c.name === "town-square") || this.channels.values().next().value;
    if (wanted || fallback) await this.open(wanted || fallback);
  }

  async loadChannels() {
    const [channels, members] = await Promise.all([
      this.api.get(`/users/me/teams/${this.team.id}/channels`),
      this.api.get(`/users/me/teams/${this.team.id}/channels/members`),
    ]);
    this.channels = new Map(channels.map((c) => [c.id, c]));
    this.members = new Map(members.map((m) => [m.channel_id, m]));
    const partners = channels.filter((c) => c.type === "D").flatMap((c) => c.name.split("__"));
    await this.people.ensure(partners);
    if (this.current) this.current = this.channels.get(this.current.id) || null;
    this.renderSidebar();
  }

  renderSidebar() {
    this.sidebar.render(this.channels.values(), this.members, this.current && this.current.id);
  }

  async refetch() {
    await this.loadChannels();
    if (this.current) {
      await this.view.loadLatest();
      this.markViewed(this.current);
    }
    await this.pane.reloadThread();
    await this.people.refreshStatuses();
  }

  async switchTeam(team) {
    if (!this.teams.some((t) => t.id === team.id)) {
      this.teams = await this.api.get("/users/me/teams");
    }
    this.team = team;
    this.current = null;
    this.socket.send("presence", { team_id: team.id });
    this.pane.close();
    this.layout();
    this.socketState(this.socket.state);
    this.enqueue(() => this.loadTeam());
  }

  joined(channel) {
    this.enqueue(async () => {
      await this.loadChannels();
      await this.open(this.channels.get(channel.id) || channel);
    });
  }

  async open(channel) {
    this.current = channel;
    document.body.classList.remove("sidebar-open");
    this.menu.setAttribute("aria-expanded", "false");
    localStorage.setItem(`hubbub.channel.${this.team.id}`, channel.id);
    if (location.hash.slice(1) !== channel.id) history.replaceState(null, "", `#${channel.id}`);
    const label = channelLabel(channel, this.people, this.me);
    document.title = `${label} - ${this.config.SiteName || "hubbub"}`;
    this.view.show(channel, label);
    this.renderSidebar();
    this.showTyping();
    this.tellChannel();
    await this.view.loadLatest();
    this.markViewed(channel);
    this.view.composer.focus();
  }

  markViewed(channel) {
    const member = this.members.get(channel.id);
    if (document.hidden || !member) return;
    const seen = member.msg_count === channel.total_msg_count && !member.mention_count;
    member.msg_count = channel.total_msg_count;
    member.mention_count = 0;
    this.renderSidebar();
    if (!seen) this.api.post("/channels/members/me/view", { channel_id: channel.id }).catch(() => {});
  }

  // Posts

  async send(channel, { message, file_ids, root_id = "" }) {
    const post = await this.api.post("/posts", {
      channel_id: channel.id,
      message,
      file_ids,
      root_id,
      pending_post_id: `${this.me.id}:${Date.now()}`,
    });
    this.enqueue(() => this.showPost(post, []));
  }

  // `channelType` comes with a `posted` event: a message in a direct channel not listed yet
  // (someone just opened it) makes the list reload.
  async showPost(post, mentions, channelType = "") {
    await this.people.ensure([post.user_id]);
    this.stopTyping(post.channel_id, post.root_id, post.user_id);
    const channel = this.channels.get(post.channel_id);
    if (!channel) {
      if (channelType === "D" || channelType === "G") await this.loadChannels();
      return;
    }
    // Count a post once: the channel's newest post time only moves forward.
    const fresh = post.create_at > (channel.last_post_at || 0);
    if (fresh) {
      channel.last_post_at = post.create_at;
      channel.total_msg_count = (channel.total_msg_count || 0) + 1;
    }
    const member = this.members.get(channel.id);
    if (channel === this.current) {
      if (post.root_id) this.view.list.setReplyCount(post.root_id, post.reply_count || 0);
      else this.view.add([post]);
      this.markViewed(channel);
    } else if (fresh && member && post.user_id !== this.me.id) {
      if (mentions.includes(this.me.id)) member.mention_count = (member.mention_count || 0) + 1;
    } else if (fresh && member) {
      member.msg_count = channel.total_msg_count;
    }
    this.pane.add([post]);
    this.renderSidebar();
  }

  openThread(post) {
    const channel = this.channels.get(post.channel_id);
    if (channel) this.pane.openThread(channel, post.root_id || post.id);
  }

  jump(post) {
    this.enqueue(async () => {
      const channel = this.channels.get(post.channel_id);
      if (!channel) return;
      if (channel !== this.current) await this.open(channel);
      await this.pane.openThread(channel, post.root_id || post.id);
    });
  }

  lists() {
    return [this.view.list, this.pane.list].filter(Boolean);
  }

  async react(post, emoji) {
    const mine = ((post.metadata && post.metadata.reactions) || []).some((r) => r.user_id === this.me.id && r.emoji_name === emoji);
    if (mine) {
      await this.api.del(`/users/me/posts/${post.id}/reactions/${encodeURIComponent(emoji)}`);
      this.reaction({ user_id: this.me.id, post_id: post.id, emoji_name: emoji }, false);
    } else {
      const reaction = await this.api.post("/reactions", { user_id: this.me.id, post_id: post.id, emoji_name: emoji });
      this.reaction(reaction, true);
    }
  }

  reaction(reaction, added) {
    const same = (r) => r.user_id === reaction.user_id && r.emoji_name === reaction.emoji_name;
    for (const list of this.lists()) {
      list.setReactions(reaction.post_id, (all) => {
        const others = all.filter((r) => !same(r));
        return added ? [...others, reaction] : others;
      });
    }
  }

  async edit(post, message) {
    const updated = await this.api.put(`/posts/${post.id}/patch`, { message });
    for (const list of this.lists()) if (list.has(updated.id)) list.upsert(updated);
  }

  async remove(post) {
    await this.api.del(`/posts/${post.id}`);
    this.removed(post);
  }

  removed(post) {
    for (const list of this.lists()) list.remove(post.id);
    if (this.pane.rootId === post.id) this.pane.close();
  }

  // Typing

  stopTyping(channelId, parentId, userId) {
    const users = this.typing.get(`${channelId}:${parentId || ""}`);
    if (users && users.has(userId)) {
      clearTimeout(users.get(userId));
      users.delete(userId);
      this.showTyping();
    }
  }

  startTyping(channelId, parentId, userId) {
    const key = `${channelId}:${parentId || ""}`;
    if (!this.typing.has(key)) this.typing.set(key, new Map());
    const users = this.typing.get(key);
    clearTimeout(users.get(userId));
    users.set(userId, setTimeout(() => this.stopTyping(channelId, parentId, userId), TYPING_SHOWN_MS));
    this.people.ensure([userId]).then(() => this.showTyping());
  }

  showTyping() {
    const who = (key) => [...(this.typing.get(key) || new Map()).keys()];
    if (this.current) this.view.setTyping(who(`${this.current.id}:`));
    if (this.pane.rootId && this.pane.channel) this.pane.setTyping(who(`${this.pane.channel.id}:${this.pane.rootId}`));
  }

  // Websocket events

  async event(msg) {
    const data = msg.data || {};
    const broadcast = msg.broadcast || {};
    switch (msg.event) {
      case "hello":
        if (!this.loaded) await this.loadTeam();
        else if (!this.socketSeen) await this.refetch(); // loaded over REST while it was not up
        this.socketSeen = true;
        break;
      case "posted":
        await this.showPost(JSON.parse(data.post), data.mentions ? JSON.parse(data.mentions) : [], data.channel_type);
        break;
      case "post_edited": {
        const post = JSON.parse(data.post);
        for (const list of this.lists()) if (list.has(post.id)) list.upsert(post);
        break;
      }
      case "post_deleted":
        this.removed(JSON.parse(data.post));
        break;
      case "reaction_added":
      case "reaction_removed":
        this.reaction(JSON.parse(data.reaction), msg.event === "reaction_added");
        break;
      case "typing":
        if (data.user_id !== this.me.id) this.startTyping(broadcast.channel_id, data.parent_id, data.user_id);
        break;
      case "status_change":
        this.people.setStatus(data.user_id, data.status);
        break;
      case "user_updated":
        if (data.user) this.people.put(data.user);
        break;
      case "channel_viewed":
      case "multiple_channels_viewed": {
        const ids = data.channel_id ? [data.channel_id] : Object.keys(data.channel_times || {});
        for (const id of ids) {
          const member = this.members.get(id);
          const channel = this.channels.get(id);
          if (member && channel) {
            member.msg_count = channel.total_msg_count;
            member.mention_count = 0;
          }
        }
        this.renderSidebar();
        break;
      }
      default:
        if (CHANNEL_EVENTS.has(msg.event)) await this.loadChannels();
        else if (msg.event === "added_to_team" || msg.event === "leave_team") this.teams = await this.api.get("/users/me/teams");
    }
  }

  stop() {
    this.socket.close();
    this.people.stopPolling();
  }

  async logout() {
    this.stop();
    await this.api.post("/users/logout").catch(() => {});
    location.hash = "";
    location.reload();
  }
}

async function main() {
  const root = document.getElementById("app");
  const api = new Api();
  const config = await api.get("/config/client").catch(() => ({}));
  let chat = null;
  const begin = (me) => {
    chat = new Chat(root, api, me, config);
    chat.start().catch((error) => console.error(error));
  };
  const signIn = () => showAuth(root, { api, siteName: config.SiteName || "hubbub", onDone: begin });
  let me = null;
  try {
    me = await api.get("/users/me");
  } catch (error) {
    if (error.status !== 401) console.error(error);
  }
  // From here on, a session that ends (logged out elsewhere, revoked) brings the login back.
  api.onUnauthorized = () => {
    if (chat) chat.stop();
    chat = null;
    signIn();
  };
  if (me) begin(me);
  else signIn();
}

main();
