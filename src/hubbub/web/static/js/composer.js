// The message box: Enter sends, Shift+Enter starts a new line; files upload as soon as they are
// picked (with a progress bar each) and go out with the next message; typing is announced to the
// channel at most every 3 s, as the official client does.

import { h, formatBytes } from "./dom.js";

const TYPING_EVERY_MS = 3000;

export class Composer {
  // `send({message, file_ids})` posts; `upload(file, onProgress)` returns a FileInfo;
  // `typing()` announces typing.
  constructor({ label, placeholder, send, upload, typing }) {
    this.send = send;
    this.upload = upload;
    this.typing = typing;
    this.lastTyping = 0;
    this.attachments = []; // {file, info, element, promise}
    this.input = h("textarea", {
      class: "composer-input",
      rows: "2",
      "aria-label": label,
      placeholder,
      onkeydown: (event) => this.keydown(event),
      oninput: () => this.announceTyping(),
    });
    // Hidden: the 📎 button opens it.
    this.fileInput = h("input", { type: "file", hidden: true, multiple: true, onchange: () => this.pick() });
    this.list = h("ul", { class: "uploads", "aria-label": "Attachments to send" });
    this.error = h("p", { class: "form-error", role: "alert", hidden: true });
    this.el = h(
      "form",
      { class: "composer", onsubmit: (event) => (event.preventDefault(), this.submit()) },
      this.list,
      this.error,
      h(
        "div",
        { class: "composer-row" },
        h("button", { type: "button", class: "attach", "aria-label": "Attach files", title: "Attach files", onclick: () => this.fileInput.click() }, "📎"),
        this.fileInput,
        this.input,
        h("button", { type: "submit", class: "primary send" }, "Send"),
      ),
    );
  }

  focus() {
    this.input.focus();
  }

  keydown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    }
  }

  announceTyping() {
    const now = Date.now();
    if (now - this.lastTyping > TYPING_EVERY_MS && this.input.value.trim()) {
      this.lastTyping = now;
      this.typing();
    }
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  pick() {
    for (const file of this.fileInput.files) this.attach(file);
    this.fileInput.value = "";
  }

  attach(file) {
    const progress = h("progress", { max: "1", value: "0", "aria-label": `Uploading ${file.name}` });
    const item = { file, info: null };
    const remove = h("button", { type: "button", class: "link", "aria-label": `Remove ${file.name}`, onclick: () => this.detach(item) }, "✕");
    item.element = h("li", { class: "upload" }, h("span", { class: "file-name" }, file.name), " ", h("span", { class: "file-size" }, formatBytes(file.size)), progress, remove);
    item.promise = this.upload(file, (fraction) => (progress.value = fraction)).then(
      (info) => {
        item.info = info;
        progress.value = 1;
        item.element.classList.add("done");
        return info;
      },
      (error) => {
        this.detach(item);
        this.showError(`${file.name}: ${error.message}`);
        return null;
      },
    );
    this.attachments.push(item);
    this.list.append(item.element);
  }

  detach(item) {
    this.attachments = this.attachments.filter((a) => a !== item);
    item.element.remove();
  }

  async submit() {
    const message = this.input.value.trim();
    if (this.sending || (!message && !this.attachments.length)) return;
    this.sending = true;
    try {
      await this.post(message);
    } finally {
      this.sending = false;
    }
  }

  async post(message) {
    this.showError("");
    const infos = await Promise.all(this.attachments.map((a) => a.promise));
    const fileIds = infos.filter(Boolean).map((info) => info.id);
    if (!message && !fileIds.length) return;
    try {
      await this.send({ message, file_ids: fileIds });
    } catch (error) {
      this.showError(error.message);
      return;
    }
    this.input.value = "";
    this.attachments = [];
    this.list.replaceChildren();
    this.lastTyping = 0;
  }
}
