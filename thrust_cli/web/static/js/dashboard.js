// The training dashboard, /dashboard: the runs under the server's --runs directory (GET /api/runs, polled), and
// for the selected run (?run=<id>; default the most recently updated) live curves and the latest metrics rows,
// streamed over WebSocket /ws/runs/<id>?since=<row index> and resumed from the last row after a reconnect.
// Row keys are those thrust_cli/run/logging.py writes to metrics.jsonl (global_step, sps, episode_return, ...).

import { pageView } from "./analytics.js";
import { LineChart, compact } from "./chart.js";

const RUNS_POLL_MS = 3000;
const RECONNECT_MS = [500, 1000, 2000, 5000];
const TABLE_ROWS = 10;
const TABLE_KEYS = [
  "global_step", "time_s", "sps", "episode_return", "episode_length",
  "policy_loss", "value_loss", "entropy", "approx_kl",
];

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

let runs = [];
let selected = params.get("run"); // chosen by the user (URL or click); null: follow the newest
let current = null; // the run whose rows are shown
let rows = [];
let next = 0;
let socket = null;
let retries = 0;
let reconnectTimer = null;

const charts = {
  ret: new LineChart($("chart-return"), { x: "global_step", series: [{ key: "episode_return", label: "return" }] }),
  sps: new LineChart($("chart-sps"), { x: "global_step", series: [{ key: "sps", label: "SPS" }] }),
  loss: new LineChart($("chart-loss"), {
    x: "global_step",
    series: [{ key: "policy_loss", label: "policy" }, { key: "value_loss", label: "value" }],
  }),
  entropy: new LineChart($("chart-entropy"), {
    x: "global_step",
    series: [{ key: "entropy", label: "entropy" }, { key: "approx_kl", label: "approx KL" }],
  }),
};

function showError(message) {
  const box = $("error");
  if (message) {
    box.textContent = message;
    box.classList.add("shown");
  } else {
    box.classList.remove("shown");
  }
}

function runPath(id) {
  return id.split("/").map(encodeURIComponent).join("/");
}

async function pollRuns() {
  try {
    const r = await fetch("/api/runs");
    if (!r.ok) throw new Error(`/api/runs: HTTP ${r.status}`);
    runs = (await r.json()).runs || [];
    runs.sort((a, b) => (b.updated || 0) - (a.updated || 0));
    showError(null);
  } catch (err) {
    showError(`cannot list runs: ${err.message}`);
  }
  renderRuns();
  const want = selected && runs.some((r) => r.id === selected) ? selected : runs.length ? runs[0].id : null;
  if (want && want !== current) open(want);
}

function renderRuns() {
  const body = $("runs").querySelector("tbody");
  body.textContent = "";
  $("no-runs").hidden = runs.length > 0;
  for (const run of runs) {
    const tr = document.createElement("tr");
    tr.dataset.run = run.id;
    if (run.id === current) tr.classList.add("selected");
    const status = run.status || "unknown";
    cells(tr, [run.id, run.env || "", compact(run.global_step ?? 0)]);
    const dot = document.createElement("span");
    dot.className = `dot status-${status}`;
    tr.children[0].prepend(dot);
    tr.children[2].className = "num";
    tr.title = `${status} · ${run.policy || ""} · ${(run.global_step ?? 0).toLocaleString("en-US")} steps · ` +
      `${run.rows ?? 0} rows · updated ${new Date((run.updated || 0) * 1000).toLocaleString()}`;
    tr.addEventListener("click", () => {
      selected = run.id;
      const p = new URLSearchParams(location.search);
      p.set("run", run.id);
      history.replaceState(null, "", `${location.pathname}?${p}`);
      open(run.id);
      renderRuns();
    });
    body.append(tr);
  }
}

function cells(tr, values, tag = "td") {
  for (const v of values) {
    const td = document.createElement(tag);
    td.textContent = v;
    tr.append(td);
  }
}

// ---- one run -----------------------------------------------------------------------------------------------

function open(id) {
  closeSocket();
  current = id;
  rows = [];
  next = 0;
  retries = 0;
  $("run-title").textContent = id;
  $("run-info").textContent = "";
  render();
  fetch(`/api/runs/${runPath(id)}`)
    .then((r) => (r.ok ? r.json() : null))
    .then((info) => {
      if (!info || current !== id) return;
      const cfg = info.config || {};
      const parts = [info.env, info.policy, info.status].filter(Boolean);
      if (cfg.train && cfg.train.total_timesteps) parts.push(`${compact(cfg.train.total_timesteps)} planned steps`);
      if (cfg.seed !== undefined) parts.push(`seed ${cfg.seed}`);
      $("run-info").textContent = parts.join(" · ");
    })
    .catch(() => {});
  connect(id);
}

function connect(id) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/runs/${runPath(id)}?since=${next}`);
  socket = ws;
  ws.onopen = () => {
    retries = 0;
    $("live").classList.add("on");
  };
  ws.onmessage = (e) => {
    if (socket !== ws) return;
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    if (msg.type === "rows") {
      rows.push(...(msg.rows || []));
      next = msg.next ?? next + (msg.rows || []).length;
      render();
    }
  };
  ws.onclose = (e) => {
    if (socket !== ws) return;
    $("live").classList.remove("on");
    socket = null;
    if (e.code === 4404) {
      showError(`run '${id}' is not on this server`);
      return;
    }
    const delay = RECONNECT_MS[Math.min(retries++, RECONNECT_MS.length - 1)];
    reconnectTimer = setTimeout(() => {
      if (current === id) connect(id);
    }, delay);
  };
}

function closeSocket() {
  clearTimeout(reconnectTimer);
  if (socket) {
    const ws = socket;
    socket = null;
    ws.close();
  }
  $("live").classList.remove("on");
}

function render() {
  for (const chart of Object.values(charts)) chart.setRows(rows);
  const newest = rows.length ? rows[rows.length - 1] : null;
  $("latest-step").textContent = newest ? Number(newest.global_step).toLocaleString("en-US") : "–";
  $("latest-step").dataset.step = newest ? String(newest.global_step) : "";
  $("row-count").textContent = String(rows.length);
  const table = $("rows");
  const keys = TABLE_KEYS.filter((k) => rows.some((r) => r[k] !== undefined));
  const head = table.querySelector("thead");
  head.textContent = "";
  const htr = document.createElement("tr");
  cells(htr, keys, "th");
  for (const th of htr.children) th.className = "num";
  head.append(htr);
  const body = table.querySelector("tbody");
  body.textContent = "";
  for (const r of rows.slice(-TABLE_ROWS).reverse()) {
    const tr = document.createElement("tr");
    cells(tr, keys.map((k) => formatCell(k, r[k])));
    for (const td of tr.children) td.className = "num";
    body.append(tr);
  }
}

function formatCell(key, v) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (key === "global_step") return v.toLocaleString("en-US");
  if (key === "sps") return Math.round(v).toLocaleString("en-US");
  if (key === "time_s") return v.toFixed(1);
  return Math.abs(v) >= 100 ? v.toFixed(1) : Number(v.toPrecision(4)).toString();
}

pageView();
pollRuns();
setInterval(pollRuns, RUNS_POLL_MS);
