// freight UI: progressive enhancement over server-rendered pages. No build step, no framework.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const POLL_MS = 2000;
const STATE_WORDS = { oom_killed: "out of memory", timed_out: "timed out" };

// --- talking to the server ------------------------------------------------------------------------

async function api(method, url, body) {
  const opts = { method, headers: { "X-Freight-UI": "1", Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(url, opts);
  if (res.status === 401) { signInAgain(); throw new Error("signed out"); }
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) {
    const where = data?.where ? `${data.where}: ` : "";
    throw new Error(`${where}${data?.message || res.statusText}${data?.hint ? ` (${data.hint})` : ""}`);
  }
  return data;
}

async function fragment(url) {
  const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (res.status === 401) { signInAgain(); return null; }
  return res.ok ? res.text() : null;
}

function signInAgain() {
  location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
}

function toast(text, bad = false) {
  const box = $("#toast");
  if (!box) return;
  const msg = document.createElement("div");
  msg.className = bad ? "msg bad" : "msg";
  msg.textContent = text;
  box.append(msg);
  setTimeout(() => msg.remove(), bad ? 7000 : 3500);
}

// --- live regions: re-render server fragments while the page is visible -----------------------------

const live = [];

function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (document.visibilityState === "visible") {
      try { await fn(); } catch (err) { /* a blip; the next tick retries */ }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  const stop = () => { stopped = true; clearTimeout(timer); };
  live.push(stop);
  return stop;
}

function keepFocus(root, swap) {
  const active = document.activeElement;
  const key = active && root.contains(active) ? (active.dataset.action || active.id) : null;
  swap();
  if (key) {
    const again = $(`[data-action="${key}"]`, root) || document.getElementById(key);
    if (again) again.focus();
  }
}

// Elements with data-refresh="/ui/..." re-render from that fragment, whose root element has the same
// id. A fragment that says data-terminal="true" (a finished pipeline run) is the last one fetched.
function initRefresh() {
  $$("[data-refresh][id]").forEach((el) => {
    const { id } = el;
    const url = el.dataset.refresh;
    if (el.dataset.terminal === "true") return;
    const stop = every(POLL_MS, async () => {
      const html = await fragment(url);
      if (!html) return;
      const tpl = document.createElement("template");
      tpl.innerHTML = html.trim();
      const fresh = tpl.content.firstElementChild;
      const old = document.getElementById(id);
      if (!fresh || fresh.id !== id || !old) return;
      if (fresh.dataset.terminal === "true") stop();
      if (old.innerHTML === fresh.innerHTML) return;
      const selected = $("tr.sel", old)?.dataset.href;
      keepFocus(old, () => old.replaceWith(fresh));
      if (selected) $(`tr[data-href="${selected}"]`, fresh)?.classList.add("sel");
    });
  });
}

// A filter's select applies itself (keeping the state chip that is on, on the jobs list).
function initFilters() {
  $$("select[data-autosubmit]").forEach((el) =>
    el.addEventListener("change", () => el.form.requestSubmit($("button.chip.on", el.form) || undefined)));
}

// --- jobs list ------------------------------------------------------------------------------------

function initJobs() {
  const table = $("table.jobs");
  if (!table) return;
  every(POLL_MS, async () => {
    const html = await fragment(table.dataset.live);
    if (!html) return;
    const tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    const fresh = tpl.content.firstElementChild;
    const old = $("#job-rows", table);
    const selected = $("tr.sel", old)?.dataset.id;
    if (old.innerHTML === fresh.innerHTML) return;
    keepFocus(old, () => old.replaceWith(fresh));
    if (selected) $(`tr[data-id="${selected}"]`, fresh)?.classList.add("sel");
    const older = $("#older");
    if (older && !table.dataset.live.includes("cursor=")) older.hidden = !fresh.dataset.next;
  });

  const dialog = $("#new-job");
  const form = $("#new-job-form");
  $("#nj-command")?.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); form.requestSubmit(); }
  });
  form?.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const spec = { shell: f.get("shell"), queue: f.get("queue") || "default", resources: {} };
    if (f.get("name")) spec.name = f.get("name");
    if (f.get("cpus")) spec.resources.cpus = f.get("cpus");
    if (f.get("memory")) spec.resources.memory = f.get("memory");
    if (f.get("timeout")) spec.timeout = f.get("timeout");
    const error = $("#nj-error");
    const button = $("button[type=submit]", form);
    button.disabled = true;
    try {
      const job = await api("POST", "/api/v1/jobs", spec);
      dialog.close();
      location.href = `/jobs/${job.id}`;
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}

// --- one job --------------------------------------------------------------------------------------

async function refreshJob() {
  const panel = $("#job-panel");
  const html = panel && await fragment(panel.dataset.live);
  if (!html) return false;
  const tpl = document.createElement("template");
  tpl.innerHTML = html;
  const top = $('[data-part="top"]', tpl.content);
  const bottom = $('[data-part="bottom"]', tpl.content);
  if (top) keepFocus(panel, () => panel.replaceChildren(top));
  const history = $("#job-history");
  if (bottom && history) keepFocus(history, () => history.replaceChildren(bottom));
  return true;
}

function initJob() {
  const panel = $("#job-panel");
  if (!panel) return;
  const viewer = logViewer(panel.dataset.job);
  let last = panelData();
  viewer.start(last);
  every(1500, async () => {
    if (!(await refreshJob())) return;
    const now = panelData();
    viewer.jobChanged(last, now);
    last = now;
  });

  function panelData() {
    const d = $(".panel-data", panel).dataset;
    return { state: d.state, terminal: d.terminal === "true", attempts: Number(d.attempts) };
  }
}

function logViewer(jobId) {
  const pre = $("#log");
  const status = $("#log-status");
  const follow = $("#log-follow");
  const wrap = $("#log-wrap");
  const tabs = $("#log-attempts");
  const raw = $("#log-raw");
  const MAX_CHARS = 2_000_000;
  let source = null;
  let chars = 0;
  let pinned = null; // an attempt the user picked; null follows the latest
  let shown = 0; // the attempt whose output is on screen (when following the latest)
  let attempts = 0;

  wrap.addEventListener("change", () => pre.classList.toggle("wrap", wrap.checked));
  follow.addEventListener("change", () => { if (follow.checked) { pinned = null; open(null); } else stop("Paused."); });

  function stop(text) {
    if (source) { source.close(); source = null; }
    if (text !== undefined) status.textContent = text;
  }

  function append(text) {
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    pre.append(document.createTextNode(text));
    chars += text.length;
    while (chars > MAX_CHARS && pre.firstChild) {
      chars -= pre.firstChild.textContent.length;
      pre.firstChild.remove();
    }
    if (atBottom && follow.checked) pre.scrollTop = pre.scrollHeight;
  }

  function renderTabs() {
    tabs.replaceChildren();
    for (let n = 1; n <= attempts; n++) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "tab";
      b.textContent = `#${n}`;
      b.setAttribute("role", "tab");
      b.setAttribute("aria-selected", String((pinned ?? shown) === n));
      b.addEventListener("click", () => { pinned = n === attempts && follow.checked ? null : n; open(n, true); });
      tabs.append(b);
    }
    tabs.hidden = attempts < 2;
  }

  // Open the log of `attempt` (null: the latest, waiting for it to start when following).
  function open(attempt, fresh = true) {
    stop();
    if (fresh) { pre.replaceChildren(); chars = 0; }
    const following = follow.checked && (pinned === null || pinned === attempt);
    const params = new URLSearchParams({ sse: "true", follow: String(following) });
    if (attempt) params.set("attempt", String(attempt));
    raw.href = `/api/v1/jobs/${jobId}/logs${attempt ? `?attempt=${attempt}` : ""}`;
    pre.dataset.empty = following ? "Waiting for output…" : "No output.";
    status.textContent = following ? "Following…" : "";
    source = new EventSource(`/api/v1/jobs/${jobId}/logs?${params}`);
    source.addEventListener("log", (ev) => {
      const d = JSON.parse(ev.data);
      if (d.attempt !== shown && pinned === null) {
        if (shown && chars) append(`\n── attempt ${d.attempt} ──\n`);
        shown = d.attempt;
        renderTabs();
      }
      append(d.text);
    });
    source.addEventListener("end", (ev) => {
      const d = JSON.parse(ev.data);
      stop(d.terminal ? `Ended: ${STATE_WORDS[d.state] || d.state}.` : "");
      pre.dataset.empty = "No output.";
      if (following && pinned === null && !d.terminal) {
        // another attempt follows (retry): wait for it and append its output
        setTimeout(() => open(Math.max(d.attempts, shown) + 1, false), 500);
      }
    });
    source.onerror = () => {
      if (source && source.readyState === EventSource.CLOSED) stop("The log stream closed.");
      else status.textContent = "Reconnecting…";
    };
  }

  return {
    start(data) {
      attempts = data.attempts;
      shown = data.attempts;
      renderTabs();
      open(null);
    },
    jobChanged(before, now) {
      if (now.attempts !== attempts) { attempts = now.attempts; renderTabs(); }
      // a finished job queued again (retry): follow its next attempt
      if (before.terminal && !now.terminal && follow.checked && pinned === null && !source) {
        open(now.attempts + 1, false);
      }
    },
    toggleFollow() { follow.checked = !follow.checked; follow.dispatchEvent(new Event("change")); },
    toggleWrap() { wrap.checked = !wrap.checked; wrap.dispatchEvent(new Event("change")); },
  };
}

async function jobAction(button) {
  const { action, job } = button.dataset;
  if (action === "cancel" && !confirm(`Cancel job ${job}?`)) return;
  button.disabled = true;
  try {
    const view = await api("POST", `/api/v1/jobs/${job}/${action}`);
    toast(action === "cancel" ? (view.state === "cancelled" ? "Cancelled." : "Cancelling…") : "Queued again.");
    await refreshJob();
  } catch (err) {
    toast(err.message, true);
    button.disabled = false;
  }
}

// --- queues ---------------------------------------------------------------------------------------

function initQueues() {
  const box = $("#queues");
  if (!box) return;
  const refresh = async () => {
    const html = await fragment(box.dataset.live);
    if (html && html !== box.innerHTML) keepFocus(box, () => { box.innerHTML = html; });
  };
  every(POLL_MS * 2, refresh);
  box.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b) return;
    ev.stopPropagation();
    const name = b.dataset.queue;
    if (b.dataset.action === "edit-queue") return editQueue(name, b.dataset.priority, b.dataset.weight);
    b.disabled = true;
    try {
      await api("POST", `/api/v1/queues/${encodeURIComponent(name)}/${b.dataset.action}`);
      toast(`${name} ${b.dataset.action === "pause" ? "paused" : "resumed"}.`);
      await refresh();
    } catch (err) { toast(err.message, true); b.disabled = false; }
  });
  const dialog = $("#queue-dialog");
  const form = $("#queue-form");
  function editQueue(name, priority, weight) {
    form.name.value = name || "";
    form.name.readOnly = Boolean(name);
    form.priority.value = priority ?? 0;
    form.weight.value = weight ?? 1;
    $("#q-error").hidden = true;
    dialog.showModal();
    (name ? form.priority : form.name).focus();
  }
  document.addEventListener("freight:new-queue", () => editQueue(null));
  form?.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("PUT", `/api/v1/queues/${encodeURIComponent(form.name.value)}`, {
        priority: Number(form.priority.value), weight: Number(form.weight.value),
      });
      dialog.close();
      toast(`Saved ${form.name.value}.`);
      await refresh();
    } catch (err) { const e = $("#q-error"); e.textContent = err.message; e.hidden = false; }
  });
}

// --- capacity chart -------------------------------------------------------------------------------

function fmtBytes(n) {
  const units = ["B", "K", "M", "G", "T"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n.toFixed(0)}${units[i]}`;
}
const fmtCpu = (v) => `${Math.round(v * 100) / 100}`;
// 24-hour HH:MM:SS like every other time on the pages (a locale could say 03:04:05 PM)
const pad2 = (n) => String(n).padStart(2, "0");
const hhmm = (t) => {
  const d = new Date(t * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
};

function initCapacity() {
  const stats = $("#cap-stats");
  if (!stats) return;
  const interval = Number(stats.dataset.interval) || 2;
  let windowSec = 300;
  let series = [];
  const charts = $$(".chart").map((el) => ({ el, kind: el.dataset.kind, hover: null }));

  async function load(full) {
    const since = full || !series.length ? Date.now() / 1000 - 3600 : series[series.length - 1].t;
    const data = await api("GET", `/api/v1/capacity?since=${since}`);
    series = full ? data.series : series.concat(data.series);
    const cutoff = Date.now() / 1000 - 3700;
    series = series.filter((s) => s.t > cutoff);
    const n = data.now;
    $('[data-stat="cpu"]').textContent = `${fmtCpu(n.used_cpus)} / ${fmtCpu(n.cpus)}`;
    $('[data-stat="mem"]').textContent = `${fmtBytes(n.used_memory)} / ${fmtBytes(n.memory)}`;
    $('[data-stat="running"]').textContent = n.running;
    $('[data-stat="queued"]').textContent = n.queued;
    charts.forEach(draw);
  }

  function draw(chart) {
    const { el, kind } = chart;
    const W = el.clientWidth, H = el.clientHeight;
    const L = 56, R = 12, T = 10, B = 24;
    const now = Date.now() / 1000, t0 = now - windowSec;
    const pts = series.filter((s) => s.t >= t0 - interval);
    const cap = (s) => (kind === "cpu" ? s.cpus : s.memory);
    const used = (s) => (kind === "cpu" ? s.used_cpus : s.used_memory);
    const fmt = kind === "cpu" ? fmtCpu : fmtBytes;
    const top = Math.max(1e-9, ...pts.map(cap)) * 1.08;
    const x = (t) => L + ((Math.max(t, t0) - t0) / windowSec) * (W - L - R);
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const add = (tag, attrs, text) => {
      const e = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text !== undefined) e.textContent = text;
      svg.append(e);
      return e;
    };
    // y grid at 0, half and the capacity
    const capNow = pts.length ? cap(pts[pts.length - 1]) : 0;
    for (const v of [0, capNow / 2, capNow]) {
      add("line", { class: "axis", x1: L, x2: W - R, y1: y(v), y2: y(v) });
      add("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v));
    }
    for (let i = 0; i <= 4; i++) {
      const t = t0 + (windowSec * i) / 4;
      add("text", { x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, hhmm(t));
    }
    if (pts.length) {
      const line = (f) => pts.map((s) => `${x(s.t).toFixed(1)},${y(f(s)).toFixed(1)}`);
      const base = `${x(pts[pts.length - 1].t).toFixed(1)},${y(0)} ${x(pts[0].t).toFixed(1)},${y(0)}`;
      add("polygon", { class: "free", points: `${line(cap).join(" ")} ${line(used).reverse().join(" ")}` });
      add("polygon", { class: "used", points: `${line(used).join(" ")} ${base}` });
      add("polyline", { class: "cap", points: line(cap).join(" ") });
    } else {
      add("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "Collecting samples…");
    }
    const cross = add("line", { class: "cross", x1: -10, x2: -10, y1: T, y2: H - B, visibility: "hidden" });
    el.replaceChildren(svg);
    const readout = document.createElement("div");
    readout.className = "readout";
    const lastPt = pts[pts.length - 1];
    const say = (s) => `${hhmm(s.t)} · ${fmt(used(s))} in use, ${fmt(Math.max(0, cap(s) - used(s)))} free of ${fmt(cap(s))}`;
    readout.textContent = lastPt ? say(lastPt) : "";
    el.append(readout);
    svg.addEventListener("mousemove", (ev) => {
      if (!pts.length) return;
      const r = svg.getBoundingClientRect();
      const t = t0 + ((ev.clientX - r.left - L) / (W - L - R)) * windowSec;
      const s = pts.reduce((a, b) => (Math.abs(b.t - t) < Math.abs(a.t - t) ? b : a));
      cross.setAttribute("x1", x(s.t)); cross.setAttribute("x2", x(s.t)); cross.setAttribute("visibility", "visible");
      readout.textContent = say(s);
    });
    svg.addEventListener("mouseleave", () => { cross.setAttribute("visibility", "hidden"); readout.textContent = lastPt ? say(lastPt) : ""; });
    el.setAttribute("aria-label", `${kind === "cpu" ? "CPUs" : "Memory"}: ${readout.textContent}`);
  }

  $$("#cap-window .tab").forEach((b) => b.addEventListener("click", () => {
    windowSec = Number(b.dataset.window);
    $$("#cap-window .tab").forEach((o) => o.setAttribute("aria-pressed", String(o === b)));
    charts.forEach(draw);
  }));
  window.addEventListener("resize", () => charts.forEach(draw));
  load(true).catch((err) => toast(err.message, true));
  every(interval * 1000, () => load(false));
}

// --- definitions ----------------------------------------------------------------------------------

async function runDefinition(button) {
  button.disabled = true;
  try {
    const job = await api("POST", `/api/v1/definitions/${encodeURIComponent(button.dataset.definition)}/jobs`, {});
    location.href = `/jobs/${job.id}`;
  } catch (err) { toast(err.message, true); button.disabled = false; }
}

// --- one pipeline run: cancel it, or run it again (the server follows the new run) -------------------

async function runAction(button) {
  const { action, run } = button.dataset;
  if (action === "cancel-run" && !confirm(`Cancel pipeline run ${run}? Its unfinished steps are cancelled.`)) return;
  button.disabled = true;
  const url = `/api/v1/pipelines/runs/${encodeURIComponent(run)}`;
  try {
    if (action === "cancel-run") {
      await api("POST", `${url}/cancel`);
      toast("Cancelling…");
    } else {
      const fresh = await api("POST", `${url}/rerun`, { from_failed: button.dataset.fromFailed === "true" });
      location.href = `/pipelines/runs/${encodeURIComponent(fresh.id)}`;
    }
  } catch (err) {
    toast(err.message, true);
    button.disabled = false;
  }
}

// --- apps: deploy and roll back (admin; the API checks the token too) -------------------------------

function deployRelease(button) {
  const dialog = $("#deploy-dialog");
  const form = $("#deploy-form");
  form.release.value = button.dataset.release;
  $("#deploy-release").textContent = button.dataset.release;
  $("#deploy-error").hidden = true;
  dialog.showModal();
  form.env.focus();
  form.env.select();
}

function initApp() {
  const form = $("#deploy-form");
  form?.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const app = form.dataset.app;
    const button = $("button[type=submit]", form);
    button.disabled = true;
    try {
      await api("POST", `/api/v1/apps/${encodeURIComponent(app)}/deploy`, { release: form.release.value, env: form.env.value });
      location.reload();
    } catch (err) {
      const error = $("#deploy-error");
      error.textContent = err.message;
      error.hidden = false;
      button.disabled = false;
    }
  });
}

async function rollbackApp(button) {
  const { app, env } = button.dataset;
  if (!confirm(`Roll ${app} in ${env} back to the release it replaced?`)) return;
  button.disabled = true;
  try {
    await api("POST", `/api/v1/apps/${encodeURIComponent(app)}/rollback`, { env });
    location.reload();
  } catch (err) { toast(err.message, true); button.disabled = false; }
}

// --- keyboard -------------------------------------------------------------------------------------

function rows() { return $$("table.grid tbody tr[data-href]"); }

function moveSelection(step) {
  const all = rows();
  if (!all.length) return;
  const at = all.findIndex((r) => r.classList.contains("sel"));
  const next = all[Math.min(all.length - 1, Math.max(0, at < 0 ? 0 : at + step))];
  all.forEach((r) => r.classList.remove("sel"));
  next.classList.add("sel");
  next.scrollIntoView({ block: "nearest" });
  $("a", next)?.focus({ preventScroll: true });
}

function typing(ev) {
  const t = ev.target;
  return t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) || $("dialog[open]");
}

let pendingG = 0;

function onKey(ev) {
  if (ev.metaKey || ev.ctrlKey || ev.altKey) return;
  if (ev.key === "Escape") { pendingG = 0; return; }
  if (typing(ev)) return;
  const go = { j: "/jobs", q: "/queues", p: "/pipelines", a: "/apps", s: "/services", c: "/capacity", n: "/nodes", d: "/definitions" };
  if (pendingG && Date.now() - pendingG < 1200 && go[ev.key]) { ev.preventDefault(); pendingG = 0; location.href = go[ev.key]; return; }
  pendingG = 0;
  const click = (sel) => { const b = $(sel); if (b) { ev.preventDefault(); b.click(); } };
  switch (ev.key) {
    case "g": pendingG = Date.now(); break;
    case "?": ev.preventDefault(); $("#help").showModal(); break;
    case "/": { const f = $("[data-filter]"); if (f) { ev.preventDefault(); f.focus(); f.select?.(); } break; }
    case "j": ev.preventDefault(); moveSelection(1); break;
    case "k": ev.preventDefault(); moveSelection(-1); break;
    case "Enter": { const sel = $("tr.sel[data-href]"); if (sel && !ev.target.closest("a,button")) { ev.preventDefault(); location.href = sel.dataset.href; } break; }
    case "n": click('[data-action="new-job"]'); break;
    case "c": click('#job-panel [data-action="cancel"], #run-panel [data-action="cancel-run"]'); break;
    case "r": click('#job-panel [data-action="retry"], #run-panel [data-action="rerun"]'); break;
    case "f": if ($("#log-follow")) { ev.preventDefault(); $("#log-follow").click(); } break;
    case "w": if ($("#log-wrap")) { ev.preventDefault(); $("#log-wrap").click(); } break;
    default: break;
  }
}

// --- wiring ---------------------------------------------------------------------------------------

document.addEventListener("keydown", onKey);
document.addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-action]");
  if (b) {
    const a = b.dataset.action;
    if (a === "help") { $("#help").showModal(); return; }
    if (a === "new-job") { const d = $("#new-job"); d.showModal(); $("#nj-command").focus(); return; }
    if (a === "new-queue") { document.dispatchEvent(new Event("freight:new-queue")); return; }
    if (a === "cancel" || a === "retry") { jobAction(b); return; }
    if (a === "run-definition") { runDefinition(b); return; }
    if (a === "cancel-run" || a === "rerun") { runAction(b); return; }
    if (a === "deploy-release") { deployRelease(b); return; }
    if (a === "rollback-app") { rollbackApp(b); return; }
  }
  const close = ev.target.closest("[data-close]");
  if (close) { close.closest("dialog")?.close(); return; }
  const row = ev.target.closest("tr[data-href]");
  if (row && !ev.target.closest("a,button,input,select")) location.href = row.dataset.href;
});

document.addEventListener("DOMContentLoaded", () => {
  initFilters();
  initRefresh();
  initJobs();
  initJob();
  initQueues();
  initCapacity();
  initApp();
});
