// The open channel: its header, the root posts (replies are in the thread pane) with older ones
// loaded when the list is scrolled to the top, who is typing, and the message box.

import { Composer } from "./composer.js";
import { h, replaceChildren } from "./dom.js";
import { PostList } from "./posts.js";

const PAGE = 30;

export function typingText(names) {
  if (!names.length) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return "Several people are typing…";
}

export class ChannelView {
  // `postActions`: for PostList; `send(channel, {message, file_ids})`, `upload(channel, file,
  // onProgress)`, `typing(channel)`.
  constructor({ api, people, me, postActions, send, upload, typing }) {
    this.api = api;
    this.people = people;
    this.me = me;
    this.postActions = postActions;
    this.sendPost = send;
    this.uploadFile = upload;
    this.announceTyping = typing;
    this.channel = null;
    this.list = null;
    this.loadingOlder = false;
    this.exhausted = false;
    this.title = h("h1", { class: "channel-title", id: "channel-title" });
    this.purpose = h("p", { class: "channel-purpose muted" });
    this.scroller = h("div", { class: "scroller", tabindex: "0", "aria-labelledby": "channel-title", onscroll: () => this.scrolled() });
    this.older = h("p", { class: "older muted", "aria-live": "polite" });
    this.typingLine = h("p", { class: "typing muted", "aria-live": "polite" });
    this.composerSlot = h("div", { class: "composer-slot" });
    this.el = h(
      "main",
      { class: "channel-view", id: "main" },
      h("header", { class: "channel-header" }, this.title, this.purpose),
      this.scroller,
      this.typingLine,
      this.composerSlot,
    );
  }

  show(channel, label) {
    this.channel = channel;
    this.title.textContent = label;
    this.purpose.textContent = channel.purpose || channel.header || "";
    this.list = new PostList({ people: this.people, me: this.me, actions: this.postActions, threaded: true, label: `Messages in ${label}` });
    this.exhausted = false;
    replaceChildren(this.scroller, this.older, this.list.el);
    this.older.textContent = "";
    this.composer = new Composer({
      label: `Write to ${label}`,
      placeholder: `Write to ${label}`,
      send: (post) => this.sendPost(channel, post),
      upload: (file, progress) => this.uploadFile(channel, file, progress),
      typing: () => this.announceTyping(channel, ""),
    });
    replaceChildren(this.composerSlot, this.composer.el);
    this.setTyping([]);
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  // Adds posts keeping the reader where they were: at the bottom if they were there.
  add(posts) {
    const stick = this.nearBottom();
    for (const post of posts) if (!post.root_id) this.list.upsert(post);
    if (stick) this.scrollToBottom();
  }

  async loadLatest() {
    const channel = this.channel;
    const page = await this.api.get(`/channels/${channel.id}/posts?page=0&per_page=${PAGE}&collapsedThreads=true`);
    if (channel !== this.channel) return [];
    const posts = page.order.map((id) => page.posts[id]);
    await this.people.ensure(posts.map((p) => p.user_id));
    const fresh = !this.list.ids().length;
    this.add(posts);
    if (fresh) {
      this.exhausted = page.order.length < PAGE;
      this.scrollToBottom();
      this.showOlderState();
      // A tall screen may show the whole first page: without a scroll bar nobody can scroll up.
      for (let i = 0; i < 5 && !this.exhausted && channel === this.channel; i++) {
        if (this.scroller.scrollHeight > this.scroller.clientHeight) break;
        await this.loadOlder();
      }
    }
    return posts;
  }

  showOlderState() {
    this.older.textContent = this.exhausted ? `This is the start of ${this.title.textContent}.` : "";
  }

  scrolled() {
    if (this.scroller.scrollTop < 150) this.loadOlder();
  }

  async loadOlder() {
    const oldest = this.list && this.list.oldest();
    if (!oldest || this.loadingOlder || this.exhausted) return;
    this.loadingOlder = true;
    this.older.textContent = "Loading older messages…";
    const channel = this.channel;
    try {
      const page = await this.api.get(`/channels/${channel.id}/posts?before=${oldest.id}&per_page=${PAGE}&collapsedThreads=true`);
      if (channel !== this.channel) return;
      const posts = page.order.map((id) => page.posts[id]);
      await this.people.ensure(posts.map((p) => p.user_id));
      // Keep the visible posts where they are while older ones appear above them.
      const before = this.scroller.scrollHeight;
      for (const post of posts) if (!post.root_id) this.list.upsert(post);
      this.scroller.scrollTop += this.scroller.scrollHeight - before;
      this.exhausted = page.order.length < PAGE;
    } finally {
      this.loadingOlder = false;
      this.showOlderState();
    }
  }

  setTyping(userIds) {
    this.typingLine.textContent = typingText(userIds.map((id) => this.people.displayName(id)));
  }
}
