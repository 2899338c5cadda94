// The operator console (/admin): the cluster's nodes with their state and why, the leader, the
// data tier and the websocket figures per node, redrawn every 2 s from
// GET /api/v4/hubbub/console (system admins only: anyone else sees "Forbidden").

import { Api } from "./api.js";
import { showAuth } from "./auth_view.js";
import { h, replaceChildren } from "./dom.js";

const POLL_MS = 2000;
const STATE_WORD = { green: "OK", yellow: "Warning", red: "Problem" };

const api = new Api();
const root = document.getElementById("app");

function ago(seconds) {
  return seconds < 1 ? "just now" : `${Math.round(seconds)} s ago`;
}

function duration(seconds) {
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function stateBadge(state) {
  return h("span", { class: `state state-${state}` }, h("span", { class: "state-dot", "aria-hidden": "true" }), STATE_WORD[state] || state);
}

function pairs(map) {
  const entries = Object.entries(map || {});
  if (!entries.length) return h("span", { class: "muted" }, "none");
  return h("ul", { class: "pairs" }, entries.map(([k, v]) => h("li", {}, h("span", { class: "pair-key" }, k), " ", h("strong", {}, String(v)))));
}

function nodesTable(view) {
  return h(
    "table",
    { class: "nodes", "aria-describedby": "cluster-summary" },
    h("caption", { class: "visually-hidden" }, "Cluster nodes"),
    h("thead", {}, h("tr", {}, ["State", "Node", "Why", "Version", "Heartbeat", "Address"].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      {},
      view.nodes.map((node) =>
        h(
          "tr",
          { dataset: { nodeName: node.node_name, state: node.state } },
          h("td", {}, stateBadge(node.state)),
          h(
            "th",
            { scope: "row" },
            node.node_name,
            node.leader ? h("span", { class: "tag" }, "leader") : null,
            node.this_node ? h("span", { class: "tag tag-quiet" }, "answering") : null,
          ),
          h("td", { class: "reasons" }, h("ul", {}, node.reasons.map((r) => h("li", {}, r)))),
          h("td", {}, node.version, h("br"), h("span", { class: "muted" }, `schema ${node.schema_version || "?"}`)),
          h("td", {}, ago(node.heartbeat_age_seconds)),
          h("td", {}, node.address),
        ),
      ),
    ),
  );
}

function websocketsTable(view) {
  return h(
    "table",
    { class: "websockets" },
    h("caption", { class: "visually-hidden" }, "Websockets per node"),
    h(
      "thead",
      {},
      h("tr", {}, ["Node", "Open now", "Disconnects by reason", "Resumed", "Refetched", "Slow-consumer closes", "Events dropped", "Codes clients reported"].map((c) => h("th", { scope: "col" }, c))),
    ),
    h(
      "tbody",
      {},
      view.nodes.map((node) => {
        const ws = node.websockets || {};
        return h(
          "tr",
          { dataset: { nodeName: node.node_name } },
          h("th", { scope: "row" }, node.node_name, ws.window_seconds !== undefined ? h("div", { class: "muted small" }, `last ${duration(ws.window_seconds)}`) : null),
          h("td", { class: "num" }, String(ws.connections ?? "?")),
          h("td", {}, pairs(ws.disconnects)),
          h("td", { class: "num" }, String(ws.resumes ?? "?")),
          h("td", { class: "num" }, String(ws.refetches ?? "?")),
          h("td", { class: "num" }, String(ws.slow_consumer_closes ?? "?")),
          h("td", { class: "num" }, String(ws.dropped_events ?? "?")),
          h("td", {}, pairs(ws.client_reported_codes)),
        );
      }),
    ),
  );
}

function dataCard(title, info, rows) {
  const status = info.status === "unreachable" ? stateBadge("red") : info.status === "ok" ? stateBadge("green") : null;
  return h(
    "section",
    { class: "card data-card", "aria-label": title },
    h("h3", {}, title, " ", status),
    h(
      "dl",
      {},
      rows
        .filter(([, value]) => value !== undefined && value !== null && value !== "")
        .map(([label, value]) => [h("dt", {}, label), h("dd", {}, value instanceof Node ? value : String(value))]),
    ),
  );
}

function dataTier(data) {
  const db = data.database || {};
  const redis = data.redis || {};
  const files = data.files || {};
  const replicas = db.streaming_replicas || [];
  const bus = redis.event_bus;
  return h(
    "div",
    { class: "data-tier" },
    dataCard("Database", db, [
      ["Driver", db.driver],
      ["Server", db.server_version],
      ["Role", db.role],
      ["Round trip", db.latency_ms !== undefined ? `${db.latency_ms} ms` : undefined],
      ["Streaming replicas", db.driver === "postgres" ? (replicas.length ? h("ul", {}, replicas.map((r) => h("li", {}, `${r.name || r.address}: ${r.state}, lag ${r.lag_seconds ?? 0} s`))) : "none") : undefined],
      ["Replicas configured", db.replicas_configured],
      ["Error", db.error],
    ]),
    dataCard("Redis", redis, redis.used === false ? [["Used", "no"], ["Why", redis.note]] : [
      ["Role", redis.role],
      ["Replicas connected", redis.connected_replicas],
      ["Link to primary", redis.master_link_status],
      ["Server", redis.server_version],
      ["Sentinel", redis.sentinel],
      ["Event bus here", bus ? `${bus.healthy ? "healthy" : "unhealthy"}, probe ${bus.lag_ms} ms, ${bus.reconnects} reconnects` : undefined],
      ["Error", redis.error],
    ]),
    dataCard("File store", files, [
      ["Driver", files.driver],
      ["Location", files.location],
      ["Shared by every node", files.shared === undefined ? undefined : files.shared ? "yes" : "no"],
      ["Problems", files.problems && files.problems.length ? h("ul", {}, files.problems.map((p) => h("li", {}, p))) : undefined],
      ["Error", files.error],
    ]),
  );
}

// A button that asks first, then calls `path` and says what happened.
function action(label, question, path, result) {
  const button = h("button", { type: "button" }, label);
  button.addEventListener("click", () => {
    const box = h(
      "span",
      { class: "confirm", role: "group", "aria-label": question },
      question,
      " ",
      h(
        "button",
        {
          type: "button",
          class: "primary",
          onclick: async () => {
            box.remove();
            button.disabled = false;
            result.textContent = `${label}…`;
            try {
              await api.post(path);
              result.textContent = `${label}: done.`;
            } catch (e) {
              const missing = e.status === 404 || e.status === 405 ? " (this server does not offer it yet)" : "";
              result.textContent = `${label} failed: ${e.status ? `HTTP ${e.status}, ` : ""}${e.message}${missing}`;
            }
          },
        },
        "Yes",
      ),
      h("button", { type: "button", onclick: () => ((button.disabled = false), box.remove(), button.focus()) }, "Cancel"),
    );
    button.disabled = true;
    button.after(box);
    box.querySelector("button").focus();
  });
  return button;
}

function render(view, parts) {
  const leader = view.leader ? `Leader: ${view.leader}.` : "No leader right now.";
  const counts = { green: 0, yellow: 0, red: 0 };
  for (const node of view.nodes) counts[node.state] += 1;
  parts.summary.textContent = `${view.nodes.length} node${view.nodes.length === 1 ? "" : "s"}: ${counts.green} OK, ${counts.yellow} warning, ${counts.red} with problems. ${leader}`;
  replaceChildren(parts.nodes, nodesTable(view));
  replaceChildren(parts.data, dataTier(view.data));
  replaceChildren(parts.websockets, websocketsTable(view));
  parts.updated.textContent = `Updated ${new Date(view.generated_at).toLocaleTimeString()} by ${view.answered_by}${view.cluster_enabled ? "" : " (clustering off)"}.`;
}

function layout() {
  const result = h("p", { class: "action-result", role: "status" });
  const parts = {
    summary: h("p", { id: "cluster-summary" }),
    nodes: h("div", { class: "table-wrap" }),
    data: h("div"),
    websockets: h("div", { class: "table-wrap" }),
    updated: h("p", { class: "muted updated", role: "status" }),
  };
  replaceChildren(
    root,
    h(
      "div",
      { class: "console-shell" },
      h("header", { class: "topbar" }, h("h1", {}, "hubbub console"), parts.updated, h("a", { href: "/", class: "link" }, "Back to chat")),
      h(
        "main",
        { id: "main" },
        h("section", { "aria-labelledby": "cluster-heading" }, h("h2", { id: "cluster-heading" }, "Cluster"), parts.summary, parts.nodes),
        h("section", { "aria-labelledby": "data-heading" }, h("h2", { id: "data-heading" }, "Data tier"), parts.data),
        h("section", { "aria-labelledby": "ws-heading" }, h("h2", { id: "ws-heading" }, "Websockets"), parts.websockets),
        h(
          "section",
          { "aria-labelledby": "actions-heading" },
          h("h2", { id: "actions-heading" }, "Actions"),
          h(
            "div",
            { class: "actions" },
            action("Reload configuration", "Reload config.json on every node?", "/config/reload", result),
            action("Recycle database connections", "Close and reopen every database connection?", "/database/recycle", result),
          ),
          result,
        ),
      ),
    ),
  );
  return parts;
}

function forbidden() {
  replaceChildren(
    root,
    h("main", { class: "auth" }, h("section", { class: "card", role: "alert" }, h("h1", {}, "Forbidden"), h("p", {}, "The console is for system admins."), h("a", { href: "/" }, "Back to chat"))),
  );
}

async function poll(parts) {
  try {
    render(await api.get("/hubbub/console"), parts);
  } catch (e) {
    if (e.status === 403) return forbidden();
    if (e.status === 401) return start();
    parts.updated.textContent = `Cannot reach the server (${e.message}); retrying.`;
  }
  setTimeout(() => poll(parts), POLL_MS);
}

async function start() {
  try {
    await api.get("/users/me");
  } catch (e) {
    if (e.status === 401) {
      const config = await api.get("/config/client").catch(() => ({}));
      showAuth(root, { api, siteName: config.SiteName || "hubbub", allowSignup: false, onDone: () => start() });
      return;
    }
  }
  poll(layout());
}

start();
