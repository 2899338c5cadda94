// The channel sidebar: the team's channels, then direct messages, each with its unread state
// (bold, plus a count of mentions). Unread = the channel has more messages than the member has
// seen (`total_msg_count` > `msg_count`); mentions come from the member's `mention_count`.

import { h, replaceChildren } from "./dom.js";

export function channelLabel(channel, people, me) {
  if (channel.type === "D") return people.displayName(otherUser(channel, me));
  return channel.display_name || channel.name;
}

export function otherUser(channel, me) {
  const [a, b] = channel.name.split("__");
  return a === me.id ? b || a : a;
}

export class Sidebar {
  // `actions`: {open(channel), create(), browse(), directMessage()}
  constructor({ people, me, actions }) {
    this.people = people;
    this.me = me;
    this.actions = actions;
    this.channels = h("ul", { class: "channel-list", "aria-labelledby": "channels-heading" });
    this.directs = h("ul", { class: "channel-list", "aria-labelledby": "directs-heading" });
    this.el = h(
      "nav",
      { class: "sidebar", id: "sidebar", "aria-label": "Channels" },
      h(
        "div",
        { class: "sidebar-head" },
        h("h2", { id: "channels-heading" }, "Channels"),
        h("button", { type: "button", class: "icon", "aria-label": "Create a channel", title: "Create a channel", onclick: () => actions.create() }, "+"),
        h("button", { type: "button", class: "icon", "aria-label": "Browse channels", title: "Browse channels", onclick: () => actions.browse() }, "☰"),
      ),
      this.channels,
      h(
        "div",
        { class: "sidebar-head" },
        h("h2", { id: "directs-heading" }, "Direct messages"),
        h("button", { type: "button", class: "icon", "aria-label": "Write a direct message", title: "Write a direct message", onclick: () => actions.directMessage() }, "+"),
      ),
      this.directs,
    );
  }

  render(channels, members, currentId) {
    const sorted = [...channels].sort((a, b) =>
      channelLabel(a, this.people, this.me).localeCompare(channelLabel(b, this.people, this.me)),
    );
    const item = (channel) => {
      const member = members.get(channel.id) || {};
      const unread = (channel.total_msg_count || 0) > (member.msg_count || 0) && channel.id !== currentId;
      const mentions = channel.id === currentId ? 0 : member.mention_count || 0;
      const label = channelLabel(channel, this.people, this.me);
      const prefix =
        channel.type === "D"
          ? this.people.dot(otherUser(channel, this.me))
          : h("span", { class: "channel-icon", "aria-hidden": "true" }, channel.type === "P" ? "🔒" : "#");
      const description = [label, unread ? "unread" : "", mentions ? `${mentions} mention${mentions === 1 ? "" : "s"}` : ""].filter(Boolean).join(", ");
      return h(
        "li",
        {},
        h(
          "a",
          {
            href: `#${channel.id}`,
            class: `channel${unread ? " unread" : ""}`,
            "aria-current": channel.id === currentId ? "page" : false,
            "aria-label": description,
            dataset: { channelId: channel.id, channelName: channel.name },
            onclick: (event) => {
              event.preventDefault();
              this.actions.open(channel);
            },
          },
          prefix,
          h("span", { class: "channel-name" }, label),
          mentions ? h("span", { class: "badge", "aria-hidden": "true" }, String(mentions)) : null,
        ),
      );
    };
    replaceChildren(this.channels, sorted.filter((c) => c.type === "O" || c.type === "P").map(item));
    replaceChildren(this.directs, sorted.filter((c) => c.type === "D" || c.type === "G").map(item));
  }
}
