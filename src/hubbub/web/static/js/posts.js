// Posts on screen: one element per post id, in a list ordered by creation time.
//
// A PostList never holds two elements for one post id: the REST history, the websocket and the
// refetch after a reconnect all go through `upsert`, which replaces an existing element in place.
// That is what makes "never twice" hold whatever path a post took to get here.

import { h, formatBytes, formatDay, formatTime, replaceChildren } from "./dom.js";
import { emojiChar, QUICK_REACTIONS } from "./emoji.js";
import { renderMarkdown } from "./markdown.js";

export class PostList {
  // `actions`: {reply(post), react(post, emoji), edit(post, message), remove(post)};
  // `threaded`: a channel list (replies live in the thread pane) or a thread (all posts).
  constructor({ people, me, actions, threaded, label }) {
    this.people = people;
    this.me = me;
    this.actions = actions;
    this.threaded = threaded;
    this.posts = new Map();
    this.elements = new Map();
    this.el = h("ol", { class: "post-list", "aria-label": label });
  }

  has(id) {
    return this.posts.has(id);
  }

  get(id) {
    return this.posts.get(id);
  }

  ids() {
    return [...this.posts.keys()];
  }

  oldest() {
    let oldest = null;
    for (const post of this.posts.values()) {
      if (!oldest || post.create_at < oldest.create_at) oldest = post;
    }
    return oldest;
  }

  clear() {
    this.posts.clear();
    this.elements.clear();
    this.el.replaceChildren();
  }

  upsert(post) {
    const known = this.posts.get(post.id);
    if (known && known.update_at > post.update_at) return; // an older copy arriving late
    this.posts.set(post.id, post);
    const element = this.render(post);
    const old = this.elements.get(post.id);
    this.elements.set(post.id, element);
    if (old) {
      old.replaceWith(element);
      return;
    }
    // Insert in order: most posts arrive newest-last, so walk from the end.
    let after = this.el.lastElementChild;
    while (after && Number(after.dataset.createAt) > post.create_at) after = after.previousElementSibling;
    if (after) after.after(element);
    else this.el.prepend(element);
  }

  remove(id) {
    this.posts.delete(id);
    const el = this.elements.get(id);
    if (el) el.remove();
    this.elements.delete(id);
  }

  // Reply counts shown under a root, from a reply that carries its thread's count.
  setReplyCount(rootId, count) {
    const root = this.posts.get(rootId);
    if (root && count > (root.reply_count || 0)) this.upsert({ ...root, reply_count: count });
  }

  setReactions(postId, change) {
    const post = this.posts.get(postId);
    if (!post) return;
    const metadata = { ...(post.metadata || {}) };
    metadata.reactions = change(metadata.reactions || []);
    this.upsert({ ...post, metadata, has_reactions: metadata.reactions.length > 0 });
  }

  refresh() {
    for (const post of this.posts.values()) this.upsert(post);
  }

  render(post) {
    const mine = post.user_id === this.me.id;
    const body = h("div", { class: "post-body" }, renderMarkdown(post.message, { myName: this.me.username }));
    const article = h(
      "li",
      {
        class: mine ? "post post-mine" : "post",
        tabindex: "-1",
        dataset: { postId: post.id, createAt: String(post.create_at) },
      },
      h(
        "div",
        { class: "post-head" },
        this.people.dot(post.user_id),
        this.people.name(post.user_id, { class: "post-author" }),
        h("time", { datetime: new Date(post.create_at).toISOString(), title: formatDay(post.create_at) }, formatTime(post.create_at)),
        post.edit_at ? h("span", { class: "edited" }, "(edited)") : null,
      ),
      body,
      this.files(post),
      this.reactions(post),
      this.toolbar(post, mine, body),
    );
    return article;
  }

  files(post) {
    const files = (post.metadata && post.metadata.files) || [];
    if (!files.length) return null;
    return h(
      "ul",
      { class: "files", "aria-label": "Attachments" },
      files.map((file) => {
        const url = `/api/v4/files/${encodeURIComponent(file.id)}`;
        const image = Boolean(file.has_preview_image);
        return h(
          "li",
          { class: "file" },
          image
            ? h("a", { href: url, target: "_blank", rel: "noopener" }, h("img", { class: "thumbnail", src: `${url}/thumbnail`, alt: file.name, loading: "lazy" }))
            : null,
          h("a", { class: "file-name", href: `${url}?download=1` }, file.name),
          h("span", { class: "file-size" }, formatBytes(file.size || 0)),
        );
      }),
    );
  }

  reactions(post) {
    const reactions = (post.metadata && post.metadata.reactions) || [];
    if (!reactions.length) return null;
    const byEmoji = new Map();
    for (const r of reactions) {
      if (!byEmoji.has(r.emoji_name)) byEmoji.set(r.emoji_name, []);
      byEmoji.get(r.emoji_name).push(r.user_id);
    }
    return h(
      "div",
      { class: "reactions" },
      [...byEmoji].map(([emoji, users]) => {
        const mine = users.includes(this.me.id);
        const names = users.map((id) => this.people.displayName(id)).join(", ");
        return h(
          "button",
          {
            class: "reaction",
            type: "button",
            "aria-pressed": String(mine),
            title: `${names} reacted with :${emoji}:`,
            "aria-label": `${emoji} reaction by ${names}${mine ? " (remove yours)" : ""}`,
            dataset: { emoji },
            onclick: () => this.actions.react(post, emoji),
          },
          emojiChar(emoji) || `:${emoji}:`,
          " ",
          h("span", { class: "count" }, String(users.length)),
        );
      }),
    );
  }

  toolbar(post, mine, body) {
    const bar = h("div", { class: "post-actions" });
    if (this.threaded) {
      const count = post.reply_count || 0;
      bar.append(
        h(
          "button",
          { type: "button", class: "reply", onclick: () => this.actions.reply(post) },
          count ? `${count} ${count === 1 ? "reply" : "replies"}` : "Reply",
        ),
      );
    }
    const picker = h(
      "div",
      { class: "picker", hidden: true, role: "group", "aria-label": "Pick a reaction" },
      QUICK_REACTIONS.map((emoji) =>
        h(
          "button",
          {
            type: "button",
            "aria-label": emoji,
            title: `:${emoji}:`,
            dataset: { emoji },
            onclick: () => {
              picker.hidden = true;
              this.actions.react(post, emoji);
            },
          },
          emojiChar(emoji),
        ),
      ),
    );
    bar.append(
      h(
        "button",
        {
          type: "button",
          class: "react",
          "aria-label": "Add a reaction",
          onclick: () => {
            picker.hidden = !picker.hidden;
            if (!picker.hidden) picker.querySelector("button").focus();
          },
        },
        "React",
      ),
      picker,
    );
    if (mine) {
      bar.append(
        h("button", { type: "button", class: "edit", onclick: () => this.startEdit(post, body) }, "Edit"),
        h("button", { type: "button", class: "delete", onclick: () => this.confirmDelete(post, bar) }, "Delete"),
      );
    }
    return bar;
  }

  startEdit(post, body) {
    const input = h("textarea", { class: "edit-box", "aria-label": "Edit message", rows: "3" });
    input.value = post.message;
    const save = () => this.actions.edit(post, input.value.trim());
    const cancel = () => replaceChildren(body, renderMarkdown(post.message, { myName: this.me.username }));
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        save();
      } else if (event.key === "Escape") {
        cancel();
      }
    });
    replaceChildren(
      body,
      input,
      h(
        "div",
        { class: "edit-actions" },
        h("button", { type: "button", class: "primary", onclick: save }, "Save"),
        h("button", { type: "button", onclick: cancel }, "Cancel"),
      ),
    );
    input.focus();
  }

  confirmDelete(post, bar) {
    const box = h(
      "div",
      { class: "confirm", role: "alertdialog", "aria-label": "Delete this message?" },
      "Delete this message? ",
      h("button", { type: "button", class: "danger", onclick: () => this.actions.remove(post) }, "Delete"),
      h("button", { type: "button", onclick: () => box.remove() }, "Cancel"),
    );
    bar.after(box);
    box.querySelector("button").focus();
  }
}
