// A safe subset of Mattermost's Markdown, rendered straight to DOM nodes.
//
// Blocks: paragraphs (single newlines kept), ``` fenced code ```, > quotes, - and 1. lists,
// # headings. Inline: `code`, **bold**, *italic* and _italic_, ~~strike~~, [text](url),
// bare http(s) links, @mentions and :emoji: names. Text only ever becomes text nodes; link
// targets go through safeUrl (http, https, mailto or this site), so a post cannot carry markup,
// script or a javascript: link.

import { h, safeUrl } from "./dom.js";
import { emojiChar } from "./emoji.js";

const INLINE = new RegExp(
  [
    "(?<code>`[^`\\n]+`)",
    "(?<link>\\[[^\\]\\n]+\\]\\([^)\\s]+\\))",
    "(?<url>\\bhttps?:\\/\\/[^\\s<>]*[^\\s<>.,:;\"')\\]!?])",
    "(?<bold>\\*\\*[^*\\n]+\\*\\*|__[^_\\n]+__)",
    "(?<strike>~~[^~\\n]+~~)",
    "(?<italic>\\*[^*\\s][^*\\n]*\\*|\\b_[^_\\s][^_\\n]*_\\b)",
    "(?<mention>(?<![\\w@])@[a-z0-9](?:[a-z0-9._-]*[a-z0-9_])?)",
    "(?<emoji>:[a-z0-9_+-]+:)",
  ].join("|"),
  "gi",
);

function inline(text, ctx, depth = 0) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    const token = match[0];
    const groups = match.groups;
    if (match.index > last) out.push(text.slice(last, match.index));
    last = match.index + token.length;
    if (groups.code) {
      out.push(h("code", {}, token.slice(1, -1)));
    } else if (groups.link) {
      const close = token.indexOf("](");
      const label = token.slice(1, close);
      const href = token.slice(close + 2, -1);
      out.push(link(href, depth < 3 ? inline(label, ctx, depth + 1) : label));
    } else if (groups.url) {
      out.push(link(token, token));
    } else if (groups.bold) {
      out.push(h("strong", {}, nested(token.slice(2, -2), ctx, depth)));
    } else if (groups.strike) {
      out.push(h("del", {}, nested(token.slice(2, -2), ctx, depth)));
    } else if (groups.italic) {
      out.push(h("em", {}, nested(token.slice(1, -1), ctx, depth)));
    } else if (groups.mention) {
      const name = token.slice(1).toLowerCase();
      const mine = ctx.myName && (name === ctx.myName || ["all", "channel", "here"].includes(name));
      out.push(h("span", { class: mine ? "mention mention-me" : "mention" }, token));
    } else if (groups.emoji) {
      const char = emojiChar(token.slice(1, -1));
      out.push(char ? h("span", { class: "emoji", title: token, role: "img", "aria-label": token }, char) : token);
    }
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function nested(text, ctx, depth) {
  return depth < 3 ? inline(text, ctx, depth + 1) : [text];
}

// A link only to http(s), mailto or this site; any other target (javascript:, data:) leaves
// just the text.
function link(href, label) {
  const url = safeUrl(href);
  if (url === "#") return h("span", { class: "unsafe-link" }, label);
  return h("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow" }, label);
}

const FENCE = /^\s*```/;
const QUOTE = /^\s*>\s?/;
const ITEM = /^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/;
const HEADING = /^(#{1,6})\s+(.+)$/;

// Renders `text` (a post's message) into a DocumentFragment. `ctx.myName`: the viewer's
// username, to highlight mentions of them.
export function renderMarkdown(text, ctx = {}, depth = 0) {
  const fragment = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let paragraph = [];
  const flush = () => {
    if (!paragraph.length) return;
    const p = h("p");
    paragraph.forEach((line, i) => {
      if (i) p.append(h("br"));
      p.append(...inline(line, ctx).map((n) => (n instanceof Node ? n : document.createTextNode(n))));
    });
    fragment.append(p);
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (FENCE.test(line)) {
      flush();
      const body = [];
      for (i += 1; i < lines.length && !FENCE.test(lines[i]); i++) body.push(lines[i]);
      fragment.append(h("pre", {}, h("code", {}, body.join("\n"))));
    } else if (QUOTE.test(line) && depth < 3) {
      flush();
      const body = [];
      for (; i < lines.length && QUOTE.test(lines[i]); i++) body.push(lines[i].replace(QUOTE, ""));
      i -= 1;
      fragment.append(h("blockquote", {}, renderMarkdown(body.join("\n"), ctx, depth + 1)));
    } else if (ITEM.test(line)) {
      flush();
      const ordered = Boolean(ITEM.exec(line)[2]);
      const list = h(ordered ? "ol" : "ul");
      for (; i < lines.length && ITEM.test(lines[i]); i++) {
        const [, , , content] = ITEM.exec(lines[i]);
        list.append(h("li", {}, inline(content, ctx)));
      }
      i -= 1;
      fragment.append(list);
    } else if (HEADING.test(line)) {
      flush();
      const [, marks, content] = HEADING.exec(line);
      fragment.append(h("p", { class: `md-heading md-h${marks.length}` }, h("strong", {}, inline(content, ctx))));
    } else if (!line.trim()) {
      flush();
    } else {
      paragraph.push(line);
    }
  }
  flush();
  return fragment;
}
