// The right-hand pane: a thread (the root and its replies, with its own message box) or search
// results. On a phone it covers the screen; Escape or the close button closes it.

import { Composer } from "./composer.js";
import { h, formatDay, formatTime, replaceChildren } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { PostList } from "./posts.js";
import { typingText } from "./channel_view.js";

export class SidePane {
  // `send(channel, post)`, `upload(channel, file, progress)`, `typing(channel, rootId)`,
  // `jump(post)`: open a search result; `channelName(channelId)`; `threadChanged()`: a thread was
  // opened or closed (the socket's event scope follows `threadChannelId()`).
  constructor({ api, people, me, postActions, send, upload, typing, jump, channelName, threadChanged }) {
    Object.assign(this, { api, people, me, postActions, send, upload, typing, jump, channelName, threadChanged });
    this.rootId = null;
    this.list = null;
    this.title = h("h2", { id: "pane-title" });
    this.body = h("div", { class: "pane-body" });
    this.typingLine = h("p", { class: "typing muted", "aria-live": "polite" });
    this.el = h(
      "aside",
      { class: "side-pane", hidden: true, "aria-labelledby": "pane-title", onkeydown: (e) => e.key === "Escape" && this.close() },
      h("div", { class: "pane-head" }, this.title, h("button", { type: "button", class: "link close", "aria-label": "Close", onclick: () => this.close() }, "✕")),
      this.body,
    );
  }

  close() {
    this.el.hidden = true;
    this.rootId = null;
    this.list = null;
    document.body.classList.remove("pane-open");
    this.threadChanged();
  }

  // The channel of the thread on screen, or "" when no thread is.
  threadChannelId() {
    return this.rootId && this.channel ? this.channel.id : "";
  }

  openPane(title) {
    this.title.textContent = title;
    this.el.hidden = false;
    document.body.classList.add("pane-open");
  }

  async openThread(channel, rootId) {
    this.rootId = rootId;
    this.channel = channel;
    this.threadChanged();
    this.openPane("Thread");
    this.list = new PostList({ people: this.people, me: this.me, actions: this.postActions, threaded: false, label: "Messages in this thread" });
    const composer = new Composer({
      label: "Reply to this thread",
      placeholder: "Reply…",
      send: (post) => this.send(channel, { ...post, root_id: rootId }),
      upload: (file, progress) => this.upload(channel, file, progress),
      typing: () => this.typing(channel, rootId),
    });
    this.scroller = h("div", { class: "scroller" }, this.list.el);
    replaceChildren(this.body, this.scroller, this.typingLine, composer.el);
    this.typingLine.textContent = "";
    await this.reloadThread();
    composer.focus();
  }

  async reloadThread() {
    if (!this.rootId) return;
    const rootId = this.rootId;
    const thread = await this.api.get(`/posts/${rootId}/thread`);
    if (rootId !== this.rootId) return;
    const posts = thread.order.map((id) => thread.posts[id]);
    await this.people.ensure(posts.map((p) => p.user_id));
    this.add(posts);
  }

  add(posts) {
    if (!this.list) return;
    const s = this.scroller;
    const stick = s.scrollHeight - s.scrollTop - s.clientHeight < 80;
    for (const post of posts) {
      if (post.id === this.rootId || post.root_id === this.rootId) this.list.upsert(post);
    }
    if (stick) s.scrollTop = s.scrollHeight;
  }

  setTyping(userIds) {
    this.typingLine.textContent = typingText(userIds.map((id) => this.people.displayName(id)));
  }

  async search(teamId, terms) {
    const hadThread = Boolean(this.rootId);
    this.rootId = null;
    this.list = null;
    if (hadThread) this.threadChanged();
    this.openPane(`Search: ${terms}`);
    const status = h("p", { class: "muted", role: "status" }, "Searching…");
    replaceChildren(this.body, status);
    try {
      const found = await this.api.post(`/teams/${teamId}/posts/search`, { terms, is_or_search: false, page: 0, per_page: 60 });
      const posts = found.order.map((id) => found.posts[id]);
      await this.people.ensure(posts.map((p) => p.user_id));
      status.textContent = posts.length ? `${posts.length} result${posts.length === 1 ? "" : "s"}` : "No results.";
      this.body.append(
        h(
          "ol",
          { class: "search-results", "aria-label": "Search results" },
          posts.map((post) =>
            h(
              "li",
              { class: "search-result", dataset: { postId: post.id } },
              h(
                "div",
                { class: "post-head" },
                h("span", { class: "muted" }, `${this.channelName(post.channel_id)} · `),
                this.people.name(post.user_id, { class: "post-author" }),
                h("time", { title: formatDay(post.create_at) }, formatTime(post.create_at)),
              ),
              h("div", { class: "post-body" }, renderMarkdown(post.message, { myName: this.me.username })),
              h("button", { type: "button", class: "link", onclick: () => this.jump(post) }, "Jump"),
            ),
          ),
        ),
      );
    } catch (e) {
      status.textContent = e.message;
    }
  }
}
