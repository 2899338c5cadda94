// Modal dialogs (the native <dialog>: focus is trapped and Escape closes it): create a channel,
// browse and join channels, open a direct message, create or join a team.

import { h, replaceChildren } from "./dom.js";

export function modal(title, ...content) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const dialog = h(
    "dialog",
    { class: "card dialog", "aria-labelledby": "dialog-title" },
    h("div", { class: "dialog-head" }, h("h2", { id: "dialog-title" }, title), h("button", { type: "button", class: "link close", "aria-label": "Close", onclick: () => dialog.close() }, "✕")),
    ...content,
    error,
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return {
    dialog,
    close: () => dialog.close(),
    fail: (message) => {
      error.textContent = message;
      error.hidden = false;
    },
  };
}

export function urlName(displayName) {
  const name = displayName
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60);
  return name.length >= 2 ? name : `${name || "c"}-${Math.random().toString(36).slice(2, 8)}`;
}

export function createChannelDialog({ api, teamId, onCreated }) {
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(form);
        const displayName = String(data.get("display_name")).trim();
        try {
          const channel = await api.post("/channels", {
            team_id: teamId,
            name: urlName(displayName),
            display_name: displayName,
            purpose: String(data.get("purpose") || ""),
            type: data.get("private") ? "P" : "O",
          });
          m.close();
          onCreated(channel);
        } catch (e) {
          m.fail(e.message);
        }
      },
    },
    h("div", { class: "field" }, h("label", { for: "new-channel-name" }, "Name"), h("input", { id: "new-channel-name", name: "display_name", required: true, maxlength: "64" })),
    h("div", { class: "field" }, h("label", { for: "new-channel-purpose" }, "Purpose (optional)"), h("input", { id: "new-channel-purpose", name: "purpose", maxlength: "250" })),
    h("div", { class: "field checkbox" }, h("input", { id: "new-channel-private", name: "private", type: "checkbox" }), h("label", { for: "new-channel-private" }, "Private: only people you add can see it")),
    h("button", { type: "submit", class: "primary" }, "Create channel"),
  );
  const m = modal("Create a channel", form);
  form.querySelector("input").focus();
}

export async function browseChannelsDialog({ api, teamId, joined, me, onJoined }) {
  const list = h("ul", { class: "choices", "aria-label": "Channels you can join" }, h("li", {}, "Loading…"));
  const m = modal("Browse channels", list);
  try {
    const channels = (await api.get(`/teams/${teamId}/channels?per_page=200`)).filter((c) => !joined.has(c.id));
    if (!channels.length) {
      replaceChildren(list, h("li", {}, "You are in every public channel of this team."));
      return;
    }
    replaceChildren(
      list,
      channels.map((channel) =>
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "choice",
              onclick: async () => {
                try {
                  await api.post(`/channels/${channel.id}/members`, { user_id: me.id });
                  m.close();
                  onJoined(channel);
                } catch (e) {
                  m.fail(e.message);
                }
              },
            },
            h("strong", {}, channel.display_name),
            channel.purpose ? h("span", { class: "muted" }, ` — ${channel.purpose}`) : null,
          ),
        ),
      ),
    );
    list.querySelector("button").focus();
  } catch (e) {
    m.fail(e.message);
  }
}

export function directMessageDialog({ api, me, people, onOpened }) {
  const results = h("ul", { class: "choices", "aria-label": "People", "aria-live": "polite" });
  const search = async (term) => {
    const users = await api.post("/users/search", { term, limit: 20 });
    replaceChildren(
      results,
      users
        .filter((u) => u.id !== me.id && !u.is_bot)
        .map((user) => {
          people.put(user);
          return h(
            "li",
            {},
            h(
              "button",
              {
                type: "button",
                class: "choice",
                dataset: { username: user.username },
                onclick: async () => {
                  try {
                    const channel = await api.post("/channels/direct", [me.id, user.id]);
                    m.close();
                    onOpened(channel);
                  } catch (e) {
                    m.fail(e.message);
                  }
                },
              },
              people.dot(user.id),
              h("strong", {}, people.displayName(user.id)),
              h("span", { class: "muted" }, ` @${user.username}`),
            ),
          );
        }),
    );
  };
  const input = h("input", { id: "dm-search", type: "search", autocomplete: "off", oninput: () => search(input.value.trim()) });
  const m = modal("Direct message", h("div", { class: "field" }, h("label", { for: "dm-search" }, "Find someone by name or username"), input), results);
  input.focus();
  search("").catch((e) => m.fail(e.message));
}

// The team picker: the teams one can join, and a form to create one.
// `onBack`, when given, offers a way back to the current team.
export function teamChooser(root, { api, me, onTeam, onBack }) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const fail = (message) => {
    error.textContent = message;
    error.hidden = false;
  };
  const list = h("ul", { class: "choices", "aria-label": "Teams you can join" }, h("li", {}, "Loading…"));
  const create = h(
    "form",
    {
      class: "inline-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const displayName = String(new FormData(create).get("display_name")).trim();
        try {
          const name = /^[a-z]/.test(urlName(displayName)) ? urlName(displayName) : `t-${urlName(displayName)}`;
          onTeam(await api.post("/teams", { name, display_name: displayName, type: "O" }));
        } catch (e) {
          fail(e.message);
        }
      },
    },
    h("label", { for: "new-team-name" }, "Team name"),
    h("input", { id: "new-team-name", name: "display_name", required: true, maxlength: "64" }),
    h("button", { type: "submit", class: "primary" }, "Create team"),
  );
  replaceChildren(
    root,
    h(
      "main",
      { class: "auth" },
      h(
        "section",
        { class: "card", "aria-labelledby": "teams-title" },
        h("h1", { id: "teams-title" }, "Pick a team"),
        h("h2", {}, "Join a team"),
        list,
        h("h2", {}, "Or create one"),
        create,
        error,
        onBack ? h("button", { type: "button", class: "link", onclick: onBack }, "Back") : null,
      ),
    ),
  );
  api
    .get("/teams?per_page=100")
    .then(async (teams) => {
      const mine = new Set((await api.get("/users/me/teams")).map((t) => t.id));
      const open = teams.filter((t) => !mine.has(t.id));
      if (!open.length) {
        replaceChildren(list, h("li", { class: "muted" }, "No open team to join yet."));
        return;
      }
      replaceChildren(
        list,
        open.map((team) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                type: "button",
                class: "choice",
                onclick: async () => {
                  try {
                    await api.post(`/teams/${team.id}/members`, { team_id: team.id, user_id: me.id });
                    onTeam(team);
                  } catch (e) {
                    fail(e.message);
                  }
                },
              },
              h("strong", {}, team.display_name),
            ),
          ),
        ),
      );
    })
    .catch((e) => fail(e.message));
}
