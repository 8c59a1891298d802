// The game page, /play/<game>: the game's wasm module runs every agent and the policy; this file loads it and
// the demo model, steps it on a fixed timestep, draws it, and shows live statistics.
//
// URL parameters: agents (1..4096), seed, speed (0.25..8), policy (trained | random), mode (greedy | sample),
// model (an id from /api/models; default: the game's demo model).
//
// Timing: the env steps STEP_HZ times per second of wall time at speed 1, whatever the display's refresh rate:
// each animation frame adds dt * STEP_HZ * speed to an accumulator and runs its whole part. A frame catches up
// at most MAX_CATCH_UP display frames' worth of steps and stops stepping after STEP_BUDGET_MS, so a slow
// machine or a hidden tab falls behind instead of freezing.
//
// Test hook: window.thrustDemo = {ready, error, stats(), bench(steps)} (tests/browser read the page's own figures).

import { beaconEvent, pageView, sendEvent } from "./analytics.js";
import { CANVAS_SIZE, DRAWERS } from "./render.js";
import { parseSafetensors } from "./safetensors.js";
import { loadModule, MODES } from "./sim.js";

const GAMES = {
  cartpole: {
    title: "CartPole",
    blurb: "Balance a pole on a moving cart for 500 steps: +1 per step, up to 500. The first 16 agents are drawn.",
  },
  snake: {
    title: "Snake",
    blurb: "Every snake shares one board and sees the 11×11 cells around its head: +1 for food, −1 for dying.",
  },
  asteroids: {
    title: "Asteroids",
    blurb: "One ship per field, three lives, waves of splitting rocks; the return is the score / 100. " +
      "The first 16 fields are drawn.",
  },
};
const AGENT_CHOICES = [1, 16, 256, 1024, 4096];
const SPEEDS = [0.25, 0.5, 1, 2, 4, 8];
const STEP_HZ = 60;
const MAX_CATCH_UP = 4;
const STEP_BUDGET_MS = 24;
const STATS_MS = 250;
const SESSION_REPORT_MS = 30000;

const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
const game = location.pathname.replace(/\/+$/, "").split("/").pop();
const state = {
  agents: clampInt(params.get("agents"), 1, 4096, 256),
  seed: clampInt(params.get("seed"), 0, 2 ** 32 - 1, 1),
  speed: SPEEDS.includes(Number(params.get("speed"))) ? Number(params.get("speed")) : 1,
  policy: params.get("policy") === "random" ? "random" : "trained",
  mode: params.get("mode") === "sample" ? "sample" : "greedy",
  paused: false,
};

let sim = null;
let model = null; // the /api/models entry in use, or null
let draw = null;
let acc = 0;
let lastFrame = null;
let frames = 0;
let firstFrameMs = null;
// the current statistics window and the last figures shown
const win = { start: 0, frames: 0, stepMs: 0, agentSteps: 0 };
let shown = { fps: null, usPerAgentStep: null, agentStepsPerSec: null };
// the game_session report: what happened since the last one
const session = { runMs: 0, frames: 0, episodes: 0, fpsSum: 0, fpsCount: 0, lastReport: performance.now() };
let episodesSeen = 0;
// one id per visit: the server counts a visit's reports as one game session
const sessionId = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");

const demo = {
  ready: false,
  error: null,
  game,
  stats() {
    const s = sim ? sim.stats() : null;
    return {
      episodes: s ? s.episodes : 0,
      meanReturn: s ? s.meanReturn : null,
      bestReturn: s ? s.best : null,
      fps: shown.fps,
      usPerAgentStep: shown.usPerAgentStep,
      agentStepsPerSec: shown.agentStepsPerSec,
      agents: sim ? sim.agents : 0,
      agentSteps: s ? s.agentSteps : 0,
      frames,
      policy: effectivePolicy(),
      mode: state.mode,
      speed: state.speed,
      seed: state.seed,
      paused: state.paused,
      model: model ? model.id : null,
      firstFrameMs,
      time: performance.now(),
    };
  },
  /** Time `steps` act+step calls of every agent right now (for tests/browser/measure.py). */
  bench(steps) {
    const mode = effectivePolicy() === "trained" ? MODES[state.mode] : MODES.random;
    const t0 = performance.now();
    sim.run(steps, mode);
    const ms = performance.now() - t0;
    return { ms, steps, agents: sim.agents, usPerAgentStep: (1000 * ms) / (steps * sim.agents) };
  },
};
window.thrustDemo = demo;

function clampInt(text, lo, hi, fallback) {
  const v = Number.parseInt(text ?? "", 10);
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : fallback;
}

function effectivePolicy() {
  return state.policy === "trained" && sim && sim.hasPolicy ? "trained" : "random";
}

function showError(message) {
  demo.error = demo.error ? `${demo.error}\n${message}` : message;
  const box = $("error");
  box.textContent = demo.error;
  box.classList.add("shown");
  console.error(message);
}

function syncUrl() {
  const p = new URLSearchParams(location.search);
  p.set("agents", state.agents);
  p.set("seed", state.seed);
  p.set("speed", state.speed);
  p.set("policy", state.policy);
  p.set("mode", state.mode);
  history.replaceState(null, "", `${location.pathname}?${p}`);
}

// ---- loading -----------------------------------------------------------------------------------------------

async function fetchJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

function pickModel(models) {
  const wanted = params.get("model");
  const mine = models.filter((m) => m.game === game);
  if (wanted) {
    const m = models.find((x) => x.id === wanted);
    if (!m) throw new Error(`no model '${wanted}' on this server`);
    if (m.game !== game) throw new Error(`model '${wanted}' is for ${m.game}, not ${game}`);
    return m;
  }
  return mine.find((m) => m.source === "demo") || mine[0] || null;
}

async function loadModel() {
  const { models } = await fetchJson("/api/models");
  const m = pickModel(models || []);
  if (!m) throw new Error(`no trained model for ${game} on this server: running the random policy`);
  const r = await fetch(m.urls.weights);
  if (!r.ok) throw new Error(`${m.urls.weights}: HTTP ${r.status}`);
  return { entry: m, parsed: parseSafetensors(await r.arrayBuffer()) };
}

async function start() {
  if (!GAMES[game]) {
    $("title").textContent = "Unknown game";
    showError(`unknown game '${game}'; try ${Object.keys(GAMES).map((g) => `/play/${g}`).join(", ")}`);
    return;
  }
  document.title = `Thrust · ${GAMES[game].title}`;
  $("title").textContent = GAMES[game].title;
  $("blurb").textContent = GAMES[game].blurb;
  for (const a of document.querySelectorAll("nav a[data-game]")) a.classList.toggle("current", a.dataset.game === game);
  const [w, h] = CANVAS_SIZE[game];
  $("canvas").width = w;
  $("canvas").height = h;
  draw = DRAWERS[game];

  // the module and the model download in parallel
  const modelPromise = loadModel().then(
    (v) => v,
    (err) => ({ error: err }),
  );
  try {
    sim = await loadModule(`/wasm/${game}.wasm`);
    sim.init(state.agents, state.seed);
  } catch (err) {
    showError(`the game could not start: ${err.message}`);
    return;
  }
  const loaded = await modelPromise;
  if (loaded.error) {
    showError(loaded.error.message);
  } else {
    try {
      sim.loadPolicy(loaded.parsed);
      model = loaded.entry;
    } catch (err) {
      showError(`the model could not be loaded: ${err.message}; running the random policy`);
    }
  }
  showModel(loaded.entry || null, loaded.parsed ? loaded.parsed.metadata : null);
  setupControls();
  syncUrl();
  win.start = performance.now();
  frame(win.start); // the first frame now, not at the next vsync; it schedules the rest
  setInterval(() => report(false), SESSION_REPORT_MS);
  addEventListener("pagehide", () => report(true));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") report(true);
  });
}

function showModel(entry, metadata) {
  const box = $("model");
  const downloads = $("downloads");
  box.textContent = "";
  downloads.textContent = "";
  if (!entry) {
    box.textContent = "No trained model: the random policy runs.";
    return;
  }
  const p = (metadata && metadata.policy) || {};
  const lines = [
    entry.title || entry.id,
    `${entry.architecture}${p.hidden_size ? `, hidden ${p.hidden_size}` : ""}` +
      `${p.num_layers ? ` × ${p.num_layers} layers` : ""}${p.activation ? `, ${p.activation}` : ""}`,
  ];
  if (entry.eval && entry.eval.mean_return != null) {
    lines.push(`evaluated return ${fmt(entry.eval.mean_return)}` +
      (entry.random && entry.random.mean_return != null ? ` (random ${fmt(entry.random.mean_return)})` : ""));
  }
  if (metadata && metadata.source && metadata.source.global_step) {
    lines.push(`trained for ${metadata.source.global_step.toLocaleString("en-US")} steps`);
  }
  for (const text of lines) {
    const div = document.createElement("div");
    div.textContent = text;
    box.append(div);
  }
  for (const [format, label] of [["safetensors", "safetensors"], ["onnx", "ONNX"]]) {
    const url = entry.urls && entry.urls[format];
    if (!url) continue;
    const a = document.createElement("a");
    a.href = url;
    a.download = `${entry.id}.${format}`;
    a.id = `download-${format}`;
    const bytes = entry.bytes && entry.bytes[format];
    a.textContent = `Download ${label}${bytes ? ` (${(bytes / 1024).toFixed(1)} KB)` : ""}`;
    downloads.append(a);
  }
}

// ---- controls ----------------------------------------------------------------------------------------------

function selectValue(select, value) {
  const text = String(value);
  if (![...select.options].some((o) => o.value === text)) {
    const o = document.createElement("option");
    o.value = o.textContent = text;
    select.append(o);
  }
  select.value = text;
}

function setupControls() {
  selectValue($("speed"), state.speed);
  selectValue($("agents"), state.agents);
  $("policy").value = state.policy;
  $("mode").value = state.mode;
  $("seed").value = state.seed;
  if (!sim.hasPolicy) {
    $("policy").value = "random";
    $("policy").disabled = true;
    $("mode").disabled = true;
  }
  $("pause").addEventListener("click", togglePause);
  $("reset").addEventListener("click", () => restart());
  $("speed").addEventListener("change", (e) => {
    state.speed = Number(e.target.value);
    syncUrl();
  });
  $("agents").addEventListener("change", (e) => {
    state.agents = Number(e.target.value);
    restart();
  });
  $("policy").addEventListener("change", (e) => {
    state.policy = e.target.value;
    restart();
  });
  $("mode").addEventListener("change", (e) => {
    state.mode = e.target.value;
    restart();
  });
  $("seed").addEventListener("change", (e) => {
    state.seed = clampInt(e.target.value, 0, 2 ** 32 - 1, state.seed);
    e.target.value = state.seed;
    restart();
  });
  addEventListener("keydown", (e) => {
    if (e.code === "Space" && e.target === document.body) {
      e.preventDefault();
      togglePause();
    }
  });
}

function togglePause() {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "Resume" : "Pause";
}

/** Rebuild every agent from the seed (new statistics); the policy stays loaded. */
function restart() {
  report(false);
  try {
    sim.init(state.agents, state.seed);
  } catch (err) {
    showError(err.message);
    return;
  }
  sim.resetPolicyState();
  episodesSeen = 0;
  acc = 0;
  Object.assign(win, { start: performance.now(), frames: 0, stepMs: 0, agentSteps: 0 });
  shown = { fps: null, usPerAgentStep: null, agentStepsPerSec: null };
  syncUrl();
}

// ---- the loop ----------------------------------------------------------------------------------------------

function frame(now) {
  requestAnimationFrame(frame);
  const dt = lastFrame === null ? 0 : Math.max(0, Math.min(now - lastFrame, 1000));
  lastFrame = now;
  if (!state.paused) {
    acc += (dt / 1000) * STEP_HZ * state.speed;
    let steps = Math.floor(acc);
    acc -= steps;
    const cap = Math.max(1, Math.ceil(MAX_CATCH_UP * state.speed));
    if (steps > cap) {
      steps = cap;
      acc = 0;
    }
    if (steps > 0) {
      const mode = effectivePolicy() === "trained" ? MODES[state.mode] : MODES.random;
      const t0 = performance.now();
      let done = 0;
      while (done < steps) {
        sim.run(1, mode);
        done++;
        if (performance.now() - t0 > STEP_BUDGET_MS) {
          acc = 0;
          break;
        }
      }
      win.stepMs += performance.now() - t0;
      win.agentSteps += done * sim.agents;
    }
    session.runMs += dt;
    session.frames++;
  }
  draw(sim, $("canvas").getContext("2d"));
  frames++;
  win.frames++;
  if (firstFrameMs === null) {
    firstFrameMs = performance.now();
    demo.ready = true;
  }
  if (now - win.start >= STATS_MS) updateStats(now);
}

function updateStats(now) {
  const seconds = (now - win.start) / 1000;
  shown = {
    fps: win.frames / seconds,
    usPerAgentStep: win.agentSteps > 0 ? (1000 * win.stepMs) / win.agentSteps : shown.usPerAgentStep,
    agentStepsPerSec: win.agentSteps / seconds,
  };
  if (!state.paused) {
    session.fpsSum += shown.fps;
    session.fpsCount++;
  }
  Object.assign(win, { start: now, frames: 0, stepMs: 0, agentSteps: 0 });
  const s = sim.stats();
  session.episodes += s.episodes - episodesSeen;
  episodesSeen = s.episodes;
  $("s-episodes").textContent = s.episodes.toLocaleString("en-US");
  $("s-return").textContent = s.meanReturn === null ? "–" : fmt(s.meanReturn);
  $("s-best").textContent = s.best === null ? "–" : fmt(s.best);
  $("s-fps").textContent = shown.fps.toFixed(1);
  $("s-us").textContent = shown.usPerAgentStep === null ? "–" : shown.usPerAgentStep.toFixed(3);
  $("s-sps").textContent = Math.round(shown.agentStepsPerSec).toLocaleString("en-US");
  $("caption").textContent =
    `${sim.agents.toLocaleString("en-US")} agents · ${effectivePolicy()}` +
    `${effectivePolicy() === "trained" ? ` (${state.mode})` : ""} · seed ${state.seed} · ${state.speed}×` +
    `${state.paused ? " · paused" : ""}`;
}

function fmt(v) {
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(2);
}

/** One game_session event for the time played since the last report (none if under a second). */
function report(beacon) {
  if (!sim || session.runMs < 1000) return;
  const s = sim.stats();
  session.episodes += s.episodes - episodesSeen;
  episodesSeen = s.episodes;
  const event = {
    type: "game_session",
    game,
    agents: sim.agents,
    seconds: Math.round(session.runMs) / 1000,
    episodes: session.episodes,
    mean_fps: session.fpsCount ? Math.round((10 * session.fpsSum) / session.fpsCount) / 10 : 0,
    policy: effectivePolicy(),
    mean_return: s.meanReturn,
    session: sessionId,
  };
  Object.assign(session, { runMs: 0, frames: 0, episodes: 0, fpsSum: 0, fpsCount: 0, lastReport: performance.now() });
  if (beacon) beaconEvent(event);
  else sendEvent(event);
}

// the page view is posted once the first frame is up (or the page failed), so it never delays the downloads
start()
  .catch((err) => showError(`unexpected error: ${err.message}`))
  .finally(pageView);
