// The operator console (/admin): the cluster's nodes with their state and why, the leader, the
// data tier, the websocket figures per node and the latest jobs, from GET /api/v4/hubbub/console
// and GET /api/v4/jobs (system admins only: anyone else sees "Forbidden"). It redraws at once
// when the websocket says the cluster changed (`hubbub_console_changed`, sent by the leader),
// when it had to resync, after an action, and every POLL_MS anyway (figures, job progress).

import { Api } from "./api.js";
import { showAuth } from "./auth_view.js";
import { h, replaceChildren } from "./dom.js";
import { Socket } from "./socket.js";

const POLL_MS = 5000;
const STATE_WORD = { green: "OK", yellow: "Warning", red: "Problem" };
const JOBS_SHOWN = 10;
// The jobs an operator starts from here; an import needs a file in the store (hubbub jobs run).
const STARTABLE = [
  ["data_retention", "Data retention"],
  ["export_process", "Bulk export"],
  ["cleanup", "Cleanup"],
];
const ACTIVE = new Set(["pending", "in_progress", "cancel_requested"]);

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

function sentinelText(sentinel) {
  if (!sentinel || typeof sentinel === "string") return sentinel;
  return `master "${sentinel.master_name}" at ${sentinel.master}, named by ${sentinel.sentinels.join(", ")}`;
}

// A configured read or search replica as this node's replica monitor sees it: in rotation, or out
// and why, and how far behind the primary it last was.
function routedReplicaText(r) {
  const state = r.healthy ? "in rotation" : !r.online ? `out: down (${r.reason || "unreachable"})` : r.lagging ? "out: lagging" : "out";
  const lag = [r.lag_bytes != null ? `${r.lag_bytes} bytes` : "", r.lag_seconds != null ? `${r.lag_seconds} s` : ""].filter(Boolean).join(", ");
  return `${r.name} at ${r.address}: ${state}${lag ? `, behind by ${lag}` : ""}`;
}

function dataTier(data) {
  const db = data.database || {};
  const redis = data.redis || {};
  const files = data.files || {};
  const replicas = db.streaming_replicas || [];
  const routing = db.routing || {};
  const routed = [...(routing.replicas || []), ...(routing.search_replicas || [])];
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
      ["Replicas from this node", routed.length ? h("ul", { class: "routed-replicas" }, routed.map((r) => h("li", { dataset: { replica: r.name, healthy: String(r.healthy) } }, routedReplicaText(r)))) : undefined],
      ["Error", db.error],
    ]),
    dataCard("Redis", redis, redis.used === false ? [["Used", "no"], ["Why", redis.note]] : [
      ["Role", redis.role],
      ["Replicas connected", redis.connected_replicas],
      ["Link to primary", redis.master_link_status],
      ["Server", redis.server_version],
      ["Sentinel", sentinelText(redis.sentinel)],
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

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "—";
}

function jobsTable(jobs, result, refresh) {
  if (!jobs.length) return h("p", { class: "muted" }, "No jobs yet.");
  return h(
    "table",
    { class: "jobs" },
    h("caption", { class: "visually-hidden" }, "Latest jobs"),
    h("thead", {}, h("tr", {}, ["Type", "Status", "Progress", "Created", "Last activity", "Details", ""].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      {},
      jobs.map((job) => {
        const data = job.data || {};
        const details = data.error || data.message || (data.export_file ? `file ${data.export_file}` : "");
        let control = null;
        if (ACTIVE.has(job.status) && job.status !== "cancel_requested") {
          control = h("button", { type: "button", onclick: () => run(`Cancel ${job.type}`, () => api.post(`/jobs/${encodeURIComponent(job.id)}/cancel`), result, refresh) }, "Cancel");
        } else if (job.status === "success" && job.type === "export_process") {
          control = h("a", { href: `/api/v4/jobs/${encodeURIComponent(job.id)}/download` }, "Download");
        }
        return h(
          "tr",
          { dataset: { jobId: job.id, status: job.status } },
          h("th", { scope: "row" }, job.type),
          h("td", { class: "job-status" }, job.status),
          h("td", { class: "num" }, h("progress", { max: "100", value: String(job.progress ?? 0), "aria-label": `${job.type} progress` }), ` ${job.progress ?? 0} %`),
          h("td", {}, when(job.create_at)),
          h("td", {}, when(job.last_activity_at)),
          h("td", { class: "details" }, details),
          h("td", {}, control),
        );
      }),
    ),
  );
}

// Runs `call`, saying in `result` what is happening and what came back, then refreshes.
async function run(label, call, result, refresh) {
  result.textContent = `${label}…`;
  try {
    await call();
    result.textContent = `${label}: done.`;
  } catch (e) {
    result.textContent = `${label} failed: ${e.status ? `HTTP ${e.status}, ` : ""}${e.message}`;
  }
  refresh();
}

function jobStarter(result, refresh) {
  const select = h("select", { id: "job-type" }, STARTABLE.map(([type, label]) => h("option", { value: type }, label)));
  const start = h("button", { type: "button" }, "Start job");
  start.addEventListener("click", () => {
    const type = select.value;
    run(`Start ${type}`, () => api.post("/jobs", { type }), result, refresh);
  });
  return h("div", { class: "actions" }, h("label", { for: "job-type" }, "New job"), select, start);
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

function render(view, jobs, parts) {
  const leader = view.leader ? `Leader: ${view.leader}.` : "No leader right now.";
  const counts = { green: 0, yellow: 0, red: 0 };
  for (const node of view.nodes) counts[node.state] += 1;
  parts.summary.textContent = `${view.nodes.length} node${view.nodes.length === 1 ? "" : "s"}: ${counts.green} OK, ${counts.yellow} warning, ${counts.red} with problems. ${leader}`;
  replaceChildren(parts.nodes, nodesTable(view));
  replaceChildren(parts.data, dataTier(view.data));
  replaceChildren(parts.websockets, websocketsTable(view));
  if (jobs) replaceChildren(parts.jobs, jobsTable(jobs, parts.jobResult, parts.refresh));
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
    jobs: h("div", { class: "table-wrap" }),
    jobResult: h("p", { class: "job-result", role: "status" }),
    refresh: () => {},
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
          { "aria-labelledby": "jobs-heading" },
          h("h2", { id: "jobs-heading" }, "Jobs"),
          jobStarter(parts.jobResult, () => parts.refresh()),
          parts.jobResult,
          parts.jobs,
        ),
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

// One refresh of everything; `poll` repeats it every POLL_MS, an action asks for one at once.
async function refresh(parts) {
  try {
    const [view, jobs] = await Promise.all([
      api.get("/hubbub/console"),
      api.get(`/jobs?page=0&per_page=${JOBS_SHOWN}`).catch(() => null),
    ]);
    render(view, jobs, parts);
    return true;
  } catch (e) {
    if (e.status === 403) {
      forbidden();
      return false;
    }
    if (e.status === 401) {
      start();
      return false;
    }
    parts.updated.textContent = `Cannot reach the server (${e.message}); retrying.`;
    return true;
  }
}

async function poll(parts) {
  if (await refresh(parts)) setTimeout(() => poll(parts), POLL_MS);
}

// Live updates: the cluster changed (or the stream had to start over): redraw now.
function listen(parts) {
  const socket = new Socket({
    url: "/api/v4/websocket",
    onEvent: (msg) => {
      if (msg.event === "hubbub_console_changed") parts.refresh();
    },
    onResync: () => parts.refresh(),
    onState: (state) => {
      document.body.dataset.wsState = state;
    },
    // No channel or thread is open here: typing and reactions need not come (realtime/scope.py).
    onOpen: () => {
      socket.send("presence", { channel_id: "" });
      socket.send("presence", { thread_channel_id: "", is_thread_view: false });
      socket.send("presence", { thread_channel_id: "", is_thread_view: true });
    },
  });
  socket.connect();
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
  const parts = layout();
  parts.refresh = () => refresh(parts);
  listen(parts);
  poll(parts);
}

start();
