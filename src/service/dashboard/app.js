// The bgproc dashboard: one shared EventSource for every job, plain DOM, no build step.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const jobs = new Map(); // name -> summary
const rows = new Map(); // name -> <tr>
const ENDED = new Set(["COMPLETED", "DROPPED"]);
let filter = "";
let selected = null;
let detailLog = [];

function showAlert(text) {
  const alert = $("#alert");
  alert.textContent = text;
  alert.hidden = !text;
}

async function api(method, path, body) {
  const init = { method, headers: { accept: "application/json" } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${data.error ?? response.status}: ${data.detail ?? ""}`);
  return data;
}

function elapsed(job) {
  if (!job.startedAt) return job.state === "QUEUED" ? "waiting" : "";
  const end = job.endedAt ? Date.parse(job.endedAt) : Date.now();
  const seconds = Math.max(0, (end - Date.parse(job.startedAt)) / 1000);
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function makeRow(name) {
  const tr = document.createElement("tr");
  tr.dataset.job = name;
  tr.innerHTML = `<td class="name" data-label="Job"><button type="button"></button></td>
    <td data-label="State"><span class="state"></span></td>
    <td data-label="Progress"><progress max="1" value="0"></progress></td>
    <td class="attempts" data-label="Attempts"></td><td class="time" data-label="Time"></td>
    <td class="actions"><button type="button" class="cancel">Cancel</button>
      <button type="button" class="retry">Retry</button>
      <button type="button" class="remove">Remove</button></td>`;
  const open = $(".name button", tr);
  open.textContent = name;
  open.setAttribute("aria-label", `Show details of job ${name}`);
  open.addEventListener("click", () => select(name));
  $(".cancel", tr).setAttribute("aria-label", `Cancel job ${name}`);
  $(".retry", tr).setAttribute("aria-label", `Retry job ${name}`);
  $(".remove", tr).setAttribute("aria-label", `Remove job ${name}`);
  $(".cancel", tr).addEventListener("click", () => act("POST", `jobs/${encodeURIComponent(name)}/cancel`));
  $(".retry", tr).addEventListener("click", () => act("POST", `jobs/${encodeURIComponent(name)}/retry`));
  $(".remove", tr).addEventListener("click", () => act("DELETE", `jobs/${encodeURIComponent(name)}`));
  $("#jobs tbody").append(tr);
  rows.set(name, tr);
  return tr;
}

function render(name) {
  const job = jobs.get(name);
  if (!job) return;
  const tr = rows.get(name) ?? makeRow(name);
  tr.className = job.state + (name === selected ? " selected" : "");
  const state = $(".state", tr);
  state.className = `state ${job.state}`;
  state.textContent = job.state + (job.reason ? ` (${job.reason})` : "");
  const bar = $("progress", tr);
  bar.value = job.progress;
  bar.setAttribute("aria-label", `${name}: ${Math.round(job.progress * 100)} %`);
  $(".attempts", tr).textContent = job.attempts;
  $(".time", tr).textContent = elapsed(job);
  $(".cancel", tr).disabled = ENDED.has(job.state);
  $(".retry", tr).disabled = !ENDED.has(job.state) || job.script === null;
  tr.hidden = (filter !== "" && job.state !== filter) ||
    !name.toLowerCase().includes($("#search").value.trim().toLowerCase());
  if (name === selected) renderFacts();
}

function renderCounts() {
  const counts = { all: jobs.size, QUEUED: 0, ACTIVE: 0, COMPLETED: 0, DROPPED: 0 };
  for (const job of jobs.values()) counts[job.state]++;
  for (const element of document.querySelectorAll("[data-count]")) element.textContent = counts[element.dataset.count];
  $("#empty").hidden = jobs.size > 0;
  $("#workers").textContent = maxWorkers
    ? `· ${counts.ACTIVE} active of ${maxWorkers} workers · ${counts.QUEUED} queued`
    : "";
}

let maxWorkers = 0;
function renderHealth(health) {
  $("#health-dot").className = `dot ${health.status}`;
  $("#health-text").textContent = health.status === "ok"
    ? "Blender OK"
    : `Blender failing: ${health.reason} (${health.failures} failures, retry at ${
      new Date(health.retryAt).toLocaleTimeString()
    })`;
}

function upsert(name, patch) {
  const job = jobs.get(name) ?? {
    name,
    script: null,
    state: "QUEUED",
    progress: 0,
    attempts: 0,
    reason: null,
    addedAt: new Date().toISOString(),
    startedAt: null,
    endedAt: null,
  };
  Object.assign(job, patch);
  jobs.set(name, job);
  render(name);
  renderCounts();
}

function removeJob(name) {
  jobs.delete(name);
  rows.get(name)?.remove();
  rows.delete(name);
  if (selected === name) closeDetail();
  renderCounts();
}

async function act(method, path) {
  try {
    showAlert("");
    await api(method, path);
  } catch (error) {
    showAlert(error.message);
  }
}

// --- detail panel ---
function fact(list, term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  list.append(dt, dd);
}

let lastDetail = null;
function renderFacts(detail = lastDetail) {
  const job = jobs.get(selected);
  if (!job) return;
  const list = $("#detail-facts");
  list.replaceChildren();
  fact(list, "State", job.state + (job.reason ? ` (${job.reason})` : ""));
  fact(list, "Script", job.script ?? "–");
  fact(list, "Progress", `${Math.round(job.progress * 100)} %`);
  fact(list, "Attempts", String(job.attempts));
  fact(list, "Added", new Date(job.addedAt).toLocaleTimeString());
  fact(list, "Started", job.startedAt ? new Date(job.startedAt).toLocaleTimeString() : "–");
  fact(list, "Ended", job.endedAt ? new Date(job.endedAt).toLocaleTimeString() : "–");
  fact(list, "Time", elapsed(job) || "–");
  if (detail?.timeout) fact(list, "Timeout", `${detail.timeout / 1000} s`);
}

function renderLog() {
  const pre = $("#detail-log");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = detailLog.map((entry) => (entry.stream === "stderr" ? "! " : "  ") + entry.line).join("\n");
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

async function loadDetail(name) {
  let detail;
  try {
    detail = await api("GET", `jobs/${encodeURIComponent(name)}`);
  } catch (error) {
    showAlert(error.message);
    return;
  }
  if (selected !== name) return;
  lastDetail = detail;
  upsert(name, {
    state: detail.state,
    progress: detail.progress,
    attempts: detail.attempts,
    reason: detail.reason ?? null,
    startedAt: detail.startedAt,
    endedAt: detail.endedAt,
    script: detail.script,
  });
  renderFacts(detail);
  const report = $("#detail-report");
  report.hidden = !detail.report;
  $("pre", report).textContent = detail.report ?? "";
  const data = $("#detail-data");
  data.hidden = detail.pythonData === undefined;
  $("pre", data).textContent = JSON.stringify(detail.pythonData ?? null, null, 2);
  const blocks = $("#detail-blocks");
  const entries = Object.entries(detail.dataBlocks ?? {});
  blocks.hidden = entries.length === 0;
  $("ul", blocks).replaceChildren(...entries.flatMap(([collection, list]) =>
    list.map((block) => {
      const li = document.createElement("li");
      li.textContent = `${collection}: ${block.name} (${block.type})`;
      return li;
    })
  ));
  const outputs = $("#detail-outputs");
  outputs.hidden = !(detail.outputs?.length > 0);
  $(".thumbs", outputs).replaceChildren(...(detail.outputs ?? []).map((file) => {
    const url = `jobs/${encodeURIComponent(name)}/outputs/${encodeURIComponent(file)}`;
    const figure = document.createElement("figure");
    const link = document.createElement("a");
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener";
    const image = document.createElement("img");
    image.src = url;
    image.alt = file;
    image.loading = "lazy";
    const caption = document.createElement("figcaption");
    caption.textContent = file;
    link.append(image);
    figure.append(link, caption);
    return figure;
  }));
  $("#detail-passed pre").textContent = JSON.stringify(detail.passedData ?? null, null, 2);
  detailLog = detail.log ?? [];
  renderLog();
}

function select(name) {
  const previous = selected;
  selected = name;
  if (previous) render(previous);
  $("#detail").hidden = false;
  $("#detail-title").textContent = `Job ${name}`;
  detailLog = [];
  lastDetail = null;
  renderLog();
  render(name);
  void loadDetail(name);
  $("#close-detail").focus();
}

function closeDetail() {
  const previous = selected;
  selected = null;
  $("#detail").hidden = true;
  if (previous && rows.has(previous)) {
    render(previous);
    $(".name button", rows.get(previous)).focus();
  }
}

// --- the one event stream ---
function connect() {
  const events = new EventSource("events");
  events.addEventListener("snapshot", (event) => {
    const snapshot = JSON.parse(event.data);
    maxWorkers = snapshot.maxWorkers;
    const names = new Set(snapshot.jobs.map((job) => job.name));
    for (const name of [...jobs.keys()]) if (!names.has(name)) removeJob(name);
    for (const job of snapshot.jobs) upsert(job.name, job);
    renderHealth(snapshot.health);
    renderCounts();
  });
  events.addEventListener("state", (event) => {
    const change = JSON.parse(event.data);
    const patch = { state: change.state, attempts: change.attempt, reason: change.reason ?? null };
    const job = jobs.get(change.name);
    if (change.state === "ACTIVE" && !job?.startedAt) patch.startedAt = new Date().toISOString();
    if (ENDED.has(change.state)) {
      patch.endedAt = job?.endedAt ?? new Date().toISOString();
      if (change.state === "COMPLETED") patch.progress = 1;
    } else patch.endedAt = null;
    if (change.state === "QUEUED" && job && ENDED.has(job.state)) {
      Object.assign(patch, { progress: 0, startedAt: null });
    }
    upsert(change.name, patch);
    if (change.name === selected && ENDED.has(change.state)) void loadDetail(change.name);
  });
  events.addEventListener("progress", (event) => {
    const change = JSON.parse(event.data);
    upsert(change.name, { progress: change.progress });
  });
  events.addEventListener("log", (event) => {
    const line = JSON.parse(event.data);
    if (line.name !== selected) return;
    detailLog.push(line);
    if (detailLog.length > 200) detailLog.shift();
    renderLog();
  });
  events.addEventListener("health", (event) => renderHealth(JSON.parse(event.data).health));
  events.addEventListener("removed", (event) => removeJob(JSON.parse(event.data).name));
  events.addEventListener("open", () => showAlert(""));
  events.addEventListener("error", () => {
    $("#health-text").textContent = "reconnecting…";
    $("#health-dot").className = "dot";
  });
}

// --- the new-job form ---
/** Where a JSON text first goes wrong, and how (browsers' own messages often give no position). */
function jsonProblem(text) {
  let at = 0;
  const fail = (what) => {
    throw { at, what };
  };
  const space = () => {
    while (at < text.length && " \t\r\n".includes(text[at])) at++;
  };
  const literal = (word) => text.startsWith(word, at) ? (at += word.length) : fail(`expected a value`);
  const string = () => {
    at++;
    while (at < text.length && text[at] !== '"') {
      if (text[at] === "\\") at++;
      else if (text.charCodeAt(at) < 32) fail("control character in a string");
      at++;
    }
    if (at >= text.length) fail("unterminated string");
    at++;
  };
  const value = () => {
    space();
    const char = text[at];
    if (char === "{") {
      at++;
      space();
      if (text[at] === "}") return at++;
      while (true) {
        space();
        if (text[at] !== '"') fail('expected a "key" in double quotes');
        string();
        space();
        if (text[at] !== ":") fail("expected ':' after the key");
        at++;
        value();
        space();
        if (text[at] === ",") at++;
        else if (text[at] === "}") return at++;
        else fail("expected ',' or '}'");
      }
    }
    if (char === "[") {
      at++;
      space();
      if (text[at] === "]") return at++;
      while (true) {
        value();
        space();
        if (text[at] === ",") at++;
        else if (text[at] === "]") return at++;
        else fail("expected ',' or ']'");
      }
    }
    if (char === '"') return string();
    if (char === "t") return literal("true");
    if (char === "f") return literal("false");
    if (char === "n") return literal("null");
    const number = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(at));
    if (number) return at += number[0].length;
    fail(at >= text.length ? "unexpected end" : "expected a value");
  };
  try {
    value();
    space();
    if (at < text.length) fail("unexpected text after the value");
    return undefined;
  } catch (problem) {
    const before = text.slice(0, problem.at);
    const line = before.split("\n").length;
    const column = problem.at - before.lastIndexOf("\n");
    return `Not valid JSON at line ${line}, column ${column}: ${problem.what}`;
  }
}

function passedData() {
  const textarea = $("#data");
  const error = $("#data-error");
  const text = textarea.value.trim();
  let value;
  let problem = "";
  if (text === "") value = {};
  else {
    try {
      value = JSON.parse(text);
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        problem = "Passed data must be a JSON object: { … }";
      }
    } catch (caught) {
      problem = jsonProblem(text) ?? `Not valid JSON: ${caught.message}`;
    }
  }
  textarea.setAttribute("aria-invalid", problem ? "true" : "false");
  error.textContent = problem;
  $("#add-button").disabled = problem !== "" || $("#script").value === "";
  return problem ? undefined : value;
}

async function loadScripts() {
  const select = $("#script");
  try {
    const scripts = await api("GET", "scripts");
    select.replaceChildren(...scripts.map((name) => new Option(name, name)));
    if (scripts.includes("add_monkey.py")) select.value = "add_monkey.py";
  } catch (error) {
    showAlert(error.message);
  }
  passedData();
}

$("#data").addEventListener("input", passedData);
$("#add").addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = passedData();
  if (data === undefined) {
    $("#data").focus();
    return;
  }
  const body = { script: $("#script").value, passedData: data };
  const name = $("#job-name").value.trim();
  if (name) body.name = name;
  const timeout = $("#timeout").value;
  if (timeout !== "") body.timeout = Number(timeout) * 1000;
  try {
    showAlert("");
    const job = await api("POST", "jobs", body);
    // The event stream may already have moved the job on (a warm worker starts it at once): the response's
    // state is older than the stream's, so it only fills in a row the stream has not made yet.
    if (jobs.has(job.name)) {
      const {
        state: _state,
        progress: _progress,
        attempts: _attempts,
        reason: _reason,
        startedAt: _started,
        endedAt: _ended,
        ...rest
      } = job;
      upsert(job.name, rest);
    } else {
      upsert(job.name, job);
    }
    $("#job-name").value = "";
  } catch (error) {
    showAlert(error.message);
  }
});
for (const button of document.querySelectorAll("#filters button")) {
  button.addEventListener("click", () => {
    filter = button.dataset.filter;
    for (const other of document.querySelectorAll("#filters button")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    for (const name of jobs.keys()) render(name);
  });
}
$("#search").addEventListener("input", () => {
  for (const name of jobs.keys()) render(name);
});
$("#clear-finished").addEventListener("click", () => act("DELETE", "jobs"));
$("#close-detail").addEventListener("click", closeDetail);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && selected) closeDetail();
});
setInterval(() => {
  for (const [name, job] of jobs) if (job.state === "ACTIVE") $(".time", rows.get(name)).textContent = elapsed(job);
}, 1000);

void loadScripts();
connect();
