// Building DOM nodes without HTML strings.
//
// Everything on screen that came from the server (posts, names, file names, channel names) is
// untrusted. It only ever reaches the page as a text node or as the value of a vetted attribute:
// this module has no way to parse HTML, and nothing in the client uses innerHTML.

const URL_ATTRIBUTES = new Set(["href", "src", "action", "formaction"]);

// h("button", {class: "x", onclick: f, "aria-label": "Close"}, "text", child, [more])
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name.startsWith("on")) {
      throw new Error(`event handler ${name} must be a function`);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (URL_ATTRIBUTES.has(name)) {
      el.setAttribute(name, safeUrl(value));
    } else if (name === "value") {
      el.value = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function replaceChildren(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

// A URL for href/src: relative URLs of this site, or http(s)/mailto; anything else (javascript:,
// data:, vbscript:) becomes "#".
export function safeUrl(value) {
  const text = String(value);
  try {
    const url = new URL(text, window.location.href);
    if (url.origin === window.location.origin || SAFE_PROTOCOLS.has(url.protocol)) return url.href;
  } catch {
    // not a URL at all
  }
  return "#";
}

export function formatTime(ms) {
  const date = new Date(ms);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function formatDay(ms) {
  return new Date(ms).toLocaleDateString([], { weekday: "long", month: "long", day: "numeric" });
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
