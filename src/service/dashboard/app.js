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
  if (!response.ok) {
    throw Object.assign(new Error(`${data.error ?? response.status}: ${data.detail ?? ""}`), {
      status: response.status,
    });
  }
  return data;
}

function clock(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = String(Math.floor(total / 60) % 60).padStart(hours > 0 ? 2 : 1, "0");
  return `${hours > 0 ? `${hours}:` : ""}${minutes}:${String(total % 60).padStart(2, "0")}`;
}

function elapsedSeconds(job) {
  if (!job.startedAt) return undefined;
  const end = job.endedAt ? Date.parse(job.endedAt) : Date.now();
  return Math.max(0, (end - Date.parse(job.startedAt)) / 1000);
}

function elapsed(job) {
  const seconds = elapsedSeconds(job);
  if (seconds === undefined) return job.state === "QUEUED" ? "waiting" : "";
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** "42 % · ETA 0:12" while active; a dropped job's bar says where it stopped, never that it completed. */
function progressText(job) {
  const percent = `${Math.floor(job.progress * 100)} %`;
  if (job.state === "DROPPED") return job.progress > 0 ? `stopped at ${percent}` : "–";
  if (job.state !== "ACTIVE") return job.state === "COMPLETED" ? "100 %" : "";
  const seconds = elapsedSeconds(job);
  if (seconds === undefined || job.progress <= 0.01 || job.progress >= 1) return percent;
  return `${percent} · ETA ${clock(seconds * (1 - job.progress) / job.progress)}`;
}

// --- the job list: filtered, sorted (newest first by default) and paged; only the page's rows are in the DOM ---
const PAGE_SIZE = 50;
const STATE_ORDER = { ACTIVE: 0, QUEUED: 1, DROPPED: 2, COMPLETED: 3 };
const SORTS = {
  name: (a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }),
  state: (a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state],
  priority: (a, b) => a.priority - b.priority,
  progress: (a, b) => a.progress - b.progress,
  attempts: (a, b) => a.attempts - b.attempts,
  started: (a, b) => (a.startedAt ?? "").localeCompare(b.startedAt ?? ""),
  time: (a, b) => (elapsedSeconds(a) ?? -1) - (elapsedSeconds(b) ?? -1),
  added: (a, b) => a.seq - b.seq,
};
let sort = { key: "added", descending: true };
let page = 0;
let connected = false;
let sequence = 0;
let pending = 0;

/** Redraw the list at the next frame: a burst of events costs one redraw. */
function scheduleRender() {
  if (pending === 0) pending = requestAnimationFrame(renderList);
}

function visibleJobs() {
  const search = $("#search").value.trim().toLowerCase();
  const list = [...jobs.values()].filter((job) =>
    (filter === "" || job.state === filter) && (search === "" || job.name.toLowerCase().includes(search))
  );
  const compare = SORTS[sort.key];
  const direction = sort.descending ? -1 : 1;
  return list.sort((a, b) => direction * (compare(a, b) || a.seq - b.seq));
}

function makeRow(name) {
  const tr = document.createElement("tr");
  tr.dataset.job = name;
  tr.innerHTML = `<td class="name" data-label="Job"><button type="button"></button></td>
    <td data-label="State"><span class="state"></span></td>
    <td class="priority" data-label="Priority"></td>
    <td class="progress" data-label="Progress"><progress max="1" value="0"></progress><span class="pct"></span></td>
    <td class="attempts" data-label="Attempts"></td><td class="started" data-label="Started"></td>
    <td class="time" data-label="Time"></td>
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
  rows.set(name, tr);
  return tr;
}

function fillRow(tr, job) {
  tr.className = job.state + (job.name === selected ? " selected" : "");
  const state = $(".state", tr);
  state.className = `state ${job.state}`;
  state.textContent = job.state + (job.reason ? ` (${job.reason})` : "");
  const bar = $("progress", tr);
  bar.value = job.progress;
  bar.setAttribute("aria-label", `${job.name}: ${progressText(job) || `${Math.floor(job.progress * 100)} %`}`);
  $(".pct", tr).textContent = progressText(job);
  const priority = $(".priority", tr);
  priority.textContent = job.priority;
  priority.classList.toggle("zero", job.priority === 0);
  $(".attempts", tr).textContent = job.attempts;
  $(".started", tr).textContent = job.startedAt ? new Date(job.startedAt).toLocaleTimeString() : "–";
  $(".time", tr).textContent = elapsed(job);
  $(".cancel", tr).disabled = ENDED.has(job.state);
  // A job another client added has no script here until its detail is loaded: the server says if it cannot retry.
  $(".retry", tr).disabled = !ENDED.has(job.state);
}

function renderList() {
  pending = 0;
  const list = visibleJobs();
  const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
  page = Math.min(page, pages - 1);
  const shown = list.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
  const keep = new Set(shown.map((job) => job.name));
  for (const [name, tr] of rows) {
    if (!keep.has(name)) {
      tr.remove();
      rows.delete(name);
    }
  }
  const body = $("#jobs tbody");
  shown.forEach((job, index) => {
    const tr = rows.get(job.name) ?? makeRow(job.name);
    fillRow(tr, job);
    if (body.children[index] !== tr) body.insertBefore(tr, body.children[index] ?? null);
  });
  const first = list.length === 0 ? 0 : page * PAGE_SIZE + 1;
  $("#page-info").textContent = `${first}–${page * PAGE_SIZE + shown.length} of ${list.length.toLocaleString("en")}`;
  $("#page-prev").disabled = page === 0;
  $("#page-next").disabled = page >= pages - 1;
  $("#paging").hidden = list.length <= PAGE_SIZE;
  renderCounts(list.length);
  if (selected && jobs.has(selected)) renderFacts();
}

function renderCounts(shown) {
  const counts = { all: jobs.size, QUEUED: 0, ACTIVE: 0, COMPLETED: 0, DROPPED: 0 };
  for (const job of jobs.values()) counts[job.state]++;
  for (const element of document.querySelectorAll("[data-count]")) element.textContent = counts[element.dataset.count];
  const empty = $("#empty");
  empty.hidden = connected && shown > 0;
  empty.textContent = !connected ? "Connecting…" : jobs.size === 0 ? "No jobs yet." : "No jobs match.";
  $("#retry-dropped").disabled = counts.DROPPED === 0;
  $("#workers").textContent = maxWorkers
    ? `· ${counts.ACTIVE} active of ${maxWorkers} workers · ${counts.QUEUED} queued`
    : "";
}

function renderSortButtons() {
  for (const th of document.querySelectorAll("#jobs th[data-sort]")) {
    const on = th.dataset.sort === sort.key;
    th.setAttribute("aria-sort", on ? (sort.descending ? "descending" : "ascending") : "none");
  }
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
  let job = jobs.get(name);
  if (!job) {
    job = {
      name,
      script: null,
      state: "QUEUED",
      progress: 0,
      attempts: 0,
      priority: 0,
      reason: null,
      addedAt: new Date().toISOString(),
      startedAt: null,
      endedAt: null,
      seq: ++sequence,
    };
    jobs.set(name, job);
  }
  Object.assign(job, patch);
  scheduleRender();
}

function removeJob(name) {
  jobs.delete(name);
  rows.get(name)?.remove();
  rows.delete(name);
  if (selected === name) closeDetail();
  scheduleRender();
}

/**
 * Retry every dropped job, one request at a time. Jobs the service did not start (409) are skipped and counted;
 * any other refusal (a full queue: 429) stops it, saying how far it got.
 */
async function retryDropped() {
  const dropped = [...jobs.values()].filter((job) => job.state === "DROPPED");
  let retried = 0;
  let skipped = 0;
  showAlert("");
  for (const job of dropped) {
    try {
      await api("POST", `jobs/${encodeURIComponent(job.name)}/retry`);
      retried++;
    } catch (error) {
      if (error.status === 409) {
        skipped++;
        continue;
      }
      showAlert(`Retried ${retried} of ${dropped.length} dropped jobs, then: ${error.message}`);
      return;
    }
  }
  if (skipped > 0) showAlert(`Retried ${retried} dropped jobs; ${skipped} were not started here and cannot be retried`);
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
  fact(list, "Priority", String(job.priority));
  fact(list, "Script", job.script ?? "–");
  fact(list, "Progress", `${Math.round(job.progress * 100)} %`);
  fact(list, "Attempts", String(job.attempts));
  fact(list, "Added", new Date(job.addedAt).toLocaleTimeString());
  fact(list, "Started", job.startedAt ? new Date(job.startedAt).toLocaleTimeString() : "–");
  fact(list, "Ended", job.endedAt ? new Date(job.endedAt).toLocaleTimeString() : "–");
  fact(list, "Time", elapsed(job) || "–");
  if (detail?.timeout) fact(list, "Timeout", `${detail.timeout / 1000} s`);
  renderPriorityForm(job);
  // Run again (a retry): the last run's timeline goes until this run ends.
  if (!ENDED.has(job.state)) $("#detail-timeline").hidden = true;
}

// --- a queued job's priority, set from its details ---
let priorityEdited = false; // the user typed a value not sent yet: redraws leave it alone

function renderPriorityForm(job) {
  $("#priority-form").hidden = job.state !== "QUEUED";
  if (!priorityEdited) $("#priority-input").value = String(job.priority);
}

function priorityProblem(text) {
  $("#priority-error").textContent = text;
  $("#priority-input").setAttribute("aria-invalid", text ? "true" : "false");
}

async function setPriority(event) {
  event.preventDefault();
  const name = selected;
  const input = $("#priority-input");
  const value = Number(input.value);
  if (input.value.trim() === "" || input.validity.badInput || !Number.isInteger(value)) {
    priorityProblem("The priority must be a whole number, such as 5 or -1");
    input.focus();
    return;
  }
  priorityProblem("");
  $("#priority-button").disabled = true;
  try {
    const job = await api("POST", `jobs/${encodeURIComponent(name)}/priority`, { priority: value });
    if (selected === name) priorityEdited = false;
    upsert(name, { priority: job.priority });
  } catch (error) {
    // Shown where it was set: a job that started meanwhile answers 409.
    if (selected === name) priorityProblem(error.message);
  } finally {
    $("#priority-button").disabled = false;
  }
}

function renderLog() {
  const pre = $("#detail-log");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = detailLog.map((entry) => (entry.stream === "stderr" ? "! " : "  ") + entry.line).join("\n");
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

// --- the timeline: where an ended job's time went, on one time axis from when it was added to when it ended ---
/** How each attempt's outcome colours its bar. */
const OUTCOME_TONE = {
  completed: "ok",
  error: "bad",
  crashed: "bad",
  "start-failed": "bad",
  "result-too-large": "bad",
  "timed-out": "warn",
  killed: "off",
};

/** "1,414 ms", "0.3 ms": a duration, in milliseconds. */
function ms(value) {
  return `${value.toLocaleString("en", { maximumFractionDigits: value < 10 ? 1 : 0 })} ms`;
}

/** Where `timeMs` is on the axis, in percent of its width. */
function percent(axis, timeMs) {
  return Math.min(100, Math.max(0, (timeMs - axis.from) / axis.span * 100));
}

/** A tick at `timeMs`: a grid line, or the label under it. */
function tick(axis, timeMs) {
  const span = document.createElement("span");
  span.className = "tl-tick";
  span.style.left = `${percent(axis, timeMs)}%`;
  return span;
}

/** A span placed on the axis from `startMs` to `endMs`: always at least a sliver, so a short one can be hovered. */
function placed(className, axis, startMs, endMs) {
  const span = document.createElement("span");
  span.className = className;
  const left = percent(axis, startMs);
  span.style.left = `min(${left}%, calc(100% - 3px))`;
  span.style.width = `${Math.max(0, percent(axis, endMs) - left)}%`;
  return span;
}

/** A bar on the axis with its text inside (hidden by CSS when it does not fit) and all of it in its tooltip. */
function bar(className, axis, startMs, endMs, text, title) {
  const span = placed(className, axis, startMs, endMs);
  span.title = title;
  const inner = document.createElement("span");
  inner.className = "tl-text";
  inner.textContent = text;
  span.append(inner);
  return span;
}

function track(label, ...bars) {
  const div = document.createElement("div");
  div.className = "tl-track";
  div.setAttribute("aria-label", label);
  div.append(...bars);
  return div;
}

function timelineRow(className, label, ...tracks) {
  const li = document.createElement("li");
  li.className = `tl-row ${className}`;
  const name = document.createElement("span");
  name.className = "tl-label";
  name.textContent = label;
  li.append(name, ...tracks);
  return li;
}

/** One attempt's row: its bar, coloured by how it ended, and under it its phases at their real times. */
function attemptRow(attempt, axis) {
  const took = attempt.endMs - attempt.startMs;
  const label = `attempt ${attempt.attempt}: ${attempt.outcome}`;
  const about = [`${label}, ${ms(took)}`, attempt.blender ? `Blender ${attempt.blender}` : "", attempt.ranOn];
  const whole = bar("tl-bar", axis, attempt.startMs, attempt.endMs, ms(took), about.filter(Boolean).join("\n"));
  const phases = attempt.phases.map((phase) => {
    const text = `${phase.phase} ${ms(phase.endMs - phase.startMs)}`;
    const segment = bar("tl-seg", axis, phase.startMs, phase.endMs, text, `${text} (attempt ${attempt.attempt})`);
    segment.dataset.phase = phase.phase;
    return segment;
  });
  const row = timelineRow(
    `attempt ${OUTCOME_TONE[attempt.outcome] ?? "off"}`,
    `${label} · ${ms(took)}`,
    track(label, whole),
    track(`phases of attempt ${attempt.attempt}`, ...phases),
  );
  row.dataset.outcome = attempt.outcome;
  return row;
}

/** Ticks at a round step (1, 2 or 5 × 10ⁿ ms), four or so across the axis. */
function renderAxis(axis) {
  const raw = Math.max(axis.span / 4, 0.001);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= raw);
  const grid = [];
  const labels = [];
  for (let at = 0; at <= axis.span + step / 1000; at += step) {
    grid.push(tick(axis, axis.from + at));
    const label = tick(axis, axis.from + at);
    const value = Number(at.toPrecision(6));
    label.textContent = value >= 10_000 ? `${(value / 1000).toLocaleString("en")} s` : ms(value);
    if (at === 0) label.classList.add("start");
    else if (at / axis.span > 0.8) label.classList.add("end");
    labels.push(label);
  }
  $("#detail-timeline .tl-grid").replaceChildren(...grid);
  $("#detail-timeline .tl-axis").replaceChildren(...labels);
}

/** Every phase the attempts went through, in the order they ran (an attempt may skip some). */
function phaseOrder(attempts) {
  const order = [];
  for (const attempt of attempts) {
    let at = 0;
    for (const { phase } of attempt.phases) {
      const index = order.indexOf(phase);
      if (index === -1) order.splice(at++, 0, phase);
      else at = index + 1;
    }
  }
  return order;
}

function cells(tag, texts) {
  return texts.map((text) => {
    const cell = document.createElement(tag);
    cell.textContent = text;
    return cell;
  });
}

/** The phase durations: a row per phase (its colour swatch is the chart's legend), a column per attempt. */
function renderPhaseTable(attempts) {
  const table = $("#detail-timeline .tl-table");
  table.hidden = attempts.length === 0;
  const head = document.createElement("tr");
  head.append(...cells("th", ["Phase", ...attempts.map((attempt) => `attempt ${attempt.attempt}`)]));
  for (const th of head.children) th.scope = "col";
  const rows = phaseOrder(attempts).map((phase) => {
    const tr = document.createElement("tr");
    tr.dataset.phase = phase;
    const name = cells("th", [phase])[0];
    name.scope = "row";
    const durations = attempts.map((attempt) => {
      const mine = attempt.phases.filter((timing) => timing.phase === phase);
      return mine.length === 0 ? "–" : ms(mine.reduce((sum, timing) => sum + timing.endMs - timing.startMs, 0));
    });
    tr.append(name, ...cells("td", durations));
    return tr;
  });
  const total = document.createElement("tr");
  total.className = "total";
  total.append(...cells("th", ["whole attempt"]), ...cells("td", attempts.map((a) => ms(a.endMs - a.startMs))));
  total.firstChild.scope = "row";
  $("thead", table).replaceChildren(head);
  $("tbody", table).replaceChildren(...rows, total);
}

/** The timeline of an ended job (`timings` from the service), or none (`null`: it has not ended). */
function renderTimeline(timings) {
  const section = $("#detail-timeline");
  section.hidden = !timings;
  if (!timings) return;
  const axis = { from: timings.addedMs, span: Math.max(timings.endMs - timings.addedMs, 0.001) };
  const queueEnd = timings.addedMs + timings.queueWaitMs;
  const waited = ms(timings.queueWaitMs);
  const queue = timelineRow(
    "queue",
    timings.attempts.length === 0 ? `queue wait · ${waited} · no attempt started` : `queue wait · ${waited}`,
    track("queue wait", bar("tl-bar", axis, timings.addedMs, queueEnd, waited, `queue wait: ${waited}`)),
  );
  $(".tl-rows", section).replaceChildren(queue, ...timings.attempts.map((attempt) => attemptRow(attempt, axis)));
  $("#timeline-total").textContent = `(${ms(timings.endMs - timings.addedMs)} from added to ended)`;
  renderAxis(axis);
  renderPhaseTable(timings.attempts);
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
    priority: detail.priority,
    reason: detail.reason ?? null,
    startedAt: detail.startedAt,
    endedAt: detail.endedAt,
    script: detail.script,
  });
  renderFacts(detail);
  renderTimeline(detail.timings ?? null);
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
    const link = newTabLink(url);
    const caption = document.createElement("figcaption");
    caption.textContent = file;
    if ((detail.thumbnails ?? []).includes(file)) {
      const image = document.createElement("img");
      image.src = url;
      image.alt = file;
      image.loading = "lazy";
      link.append(image);
    } else {
      link.textContent = "Too large to preview: open"; // Over 16 MiB: the browser would load all of it.
    }
    figure.append(link, caption);
    return figure;
  }));
  $("#detail-passed pre").textContent = JSON.stringify(detail.passedData ?? null, null, 2);
  detailLog = detail.log ?? [];
  renderLog();
}

function select(name) {
  selected = name;
  $("#detail").hidden = false;
  $("#detail-title").textContent = `Job ${name}`;
  detailLog = [];
  lastDetail = null;
  priorityEdited = false;
  priorityProblem("");
  renderTimeline(null);
  renderLog();
  scheduleRender();
  void loadDetail(name);
  $("#close-detail").focus();
}

function closeDetail() {
  const previous = selected;
  selected = null;
  $("#detail").hidden = true;
  if (previous && rows.has(previous)) {
    rows.get(previous).classList.remove("selected");
    $(".name button", rows.get(previous)).focus();
  }
  scheduleRender();
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
    connected = true;
    renderHealth(snapshot.health);
    scheduleRender();
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
      // Run again (a retry): it counts as newly added; a priority other than 0 follows as its own event.
      Object.assign(patch, {
        progress: 0,
        priority: 0,
        startedAt: null,
        addedAt: new Date().toISOString(),
        seq: ++sequence,
      });
    }
    upsert(change.name, patch);
    if (change.name === selected && ENDED.has(change.state)) void loadDetail(change.name);
    scheduleFarm();
  });
  events.addEventListener("progress", (event) => {
    const change = JSON.parse(event.data);
    upsert(change.name, { progress: change.progress });
    scheduleFarm();
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
  events.addEventListener("priority", (event) => {
    const change = JSON.parse(event.data);
    upsert(change.name, { priority: change.priority });
  });
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

// Passed data per script: what the script declares (`# passed_data: {...}`), or what the user typed for it.
const drafts = new Map(); // script -> the editor's text the user typed for it
const declarations = new Map(); // script -> its declared passed data, as JSON text
let edits = 0; // bumped on every edit, so a late default never overwrites what the user just typed

async function prefill() {
  const script = $("#script").value;
  const textarea = $("#data");
  if (script === "") textarea.value = "{}"; // No scripts in the folder.
  else if (drafts.has(script)) textarea.value = drafts.get(script);
  else if (declarations.has(script)) textarea.value = declarations.get(script);
  else {
    const before = edits;
    textarea.value = "{}";
    try {
      const { passedData: declared } = await api("GET", `scripts/${encodeURIComponent(script)}`);
      declarations.set(script, JSON.stringify(declared ?? {}));
      if (edits === before && $("#script").value === script) textarea.value = declarations.get(script);
    } catch {
      // The script went away: the editor stays empty, and adding says why.
    }
  }
  passedData();
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
  await prefill();
}

$("#data").addEventListener("input", () => {
  edits++;
  drafts.set($("#script").value, $("#data").value);
  passedData();
});
$("#script").addEventListener("change", () => void prefill());
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
  const priority = $("#job-priority");
  if (priority.validity.badInput) {
    showAlert("The priority must be a whole number, such as 5 or -1");
    priority.focus();
    return;
  }
  if (priority.value !== "") body.priority = Number(priority.value); // The service says why a fraction is refused.
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
    page = 0;
    scheduleRender();
  });
}
$("#search").addEventListener("input", () => {
  page = 0;
  scheduleRender();
});
for (const th of document.querySelectorAll("#jobs th[data-sort]")) {
  $("button", th).addEventListener("click", () => {
    const key = th.dataset.sort;
    // A new column starts in its natural order: names and states ascending, numbers and times largest first.
    sort = key === sort.key
      ? { key, descending: !sort.descending }
      : { key, descending: !["name", "state"].includes(key) };
    page = 0;
    renderSortButtons();
    scheduleRender();
  });
}
$("#page-prev").addEventListener("click", () => {
  page = Math.max(0, page - 1);
  scheduleRender();
});
$("#page-next").addEventListener("click", () => {
  page++;
  scheduleRender();
});
$("#retry-dropped").addEventListener("click", () => void retryDropped());
$("#clear-finished").addEventListener("click", () => act("DELETE", "jobs"));
$("#close-detail").addEventListener("click", closeDetail);
$("#priority-input").addEventListener("input", () => {
  priorityEdited = true;
  priorityProblem("");
});
$("#priority-form").addEventListener("submit", (event) => void setPriority(event));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && selected) closeDetail();
});
setInterval(() => {
  for (const job of jobs.values()) {
    if (job.state === "ACTIVE") return scheduleRender();
  }
}, 1000);

renderSortButtons();
renderCounts(0);
// --- the render form, when the service has a blends folder ---
async function loadBlends() {
  let blends;
  try {
    blends = await api("GET", "blends");
  } catch {
    return; // No blends folder: no render form.
  }
  $("#blend").replaceChildren(...blends.map((name) => new Option(name, name)));
  $("#render").hidden = false;
}

$("#render").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { blend: $("#blend").value, frames: $("#frames").value.trim() };
  if ($("#chunk").value !== "") body.chunk = Number($("#chunk").value);
  try {
    showAlert("");
    const render = await api("POST", "renders", body);
    $("#render-result").textContent = `${render.name}: ${render.frames} frames in ${render.jobs.length} jobs, ` +
      `into ${render.outputs}`;
  } catch (error) {
    showAlert(error.message);
  }
});

// --- the Farm view: the workers and the renders, asked for every 2 s while it is shown (and after a job's change) ---
const RENDERS_PAGE = 10;
const FRAME_WORDS = { queued: "queued", active: "rendering", done: "done", dropped: "dropped" };
const RENDER_STATE_CLASS = { queued: "QUEUED", active: "ACTIVE", completed: "COMPLETED", dropped: "DROPPED" };
const renderRows = new Map(); // render name -> <tr>
let farmShown = false;
let farmTimer = 0;
let farmSoon = 0;
let farmLoading = false;
let rendersPage = 0;

function showView(name) {
  for (const view of ["jobs", "farm"]) {
    const tab = $(`#tab-${view}`);
    const on = view === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`#${view}-section`).hidden = !on;
  }
  farmShown = name === "farm";
  history.replaceState(null, "", farmShown ? "#farm" : location.pathname + location.search);
  clearInterval(farmTimer);
  if (farmShown) {
    void loadFarm();
    farmTimer = setInterval(() => void loadFarm(), 2000);
  }
}

/** A job changed: the Farm view asks again shortly (a burst of events costs one request). */
function scheduleFarm() {
  if (!farmShown || farmSoon !== 0) return;
  farmSoon = setTimeout(() => {
    farmSoon = 0;
    void loadFarm();
  }, 300);
}

async function loadFarm() {
  if (farmLoading) return;
  farmLoading = true;
  try {
    const [workers, renders] = await Promise.all([
      api("GET", "workers"),
      api("GET", `renders?offset=${rendersPage * RENDERS_PAGE}&limit=${RENDERS_PAGE}`),
    ]);
    renderWorkers(workers);
    if (renders.renders.length === 0 && rendersPage > 0) {
      rendersPage = Math.max(0, Math.ceil(renders.total / RENDERS_PAGE) - 1); // The page emptied: go to the last.
      farmLoading = false;
      return void loadFarm();
    }
    renderRenders(renders);
  } catch (error) {
    showAlert(error.message);
  } finally {
    farmLoading = false;
  }
}

function textCell(label, text, className = "") {
  const td = document.createElement("td");
  td.dataset.label = label;
  td.className = className;
  td.textContent = text;
  return td;
}

function renderWorkers({ backend, workers }) {
  $("#farm-backend").textContent = backend === "nats"
    ? "Jobs run on the workers of a NATS cluster"
    : "Jobs run in this machine's Blenders";
  $("#workers-count").textContent = workers.length;
  const empty = $("#workers-empty");
  empty.hidden = workers.length > 0;
  empty.textContent = "No live workers: none has sent a heartbeat in the last 5 s.";
  $("#workers-table tbody").replaceChildren(...workers.map(workerRow));
}

function workerRow(worker) {
  const tr = document.createElement("tr");
  tr.dataset.worker = worker.name;
  tr.className = worker.stale ? "stale" : "";
  const beat = textCell("Heartbeat", "", "heartbeat");
  const time = document.createElement("time");
  time.dateTime = worker.heartbeatAt;
  time.title = new Date(worker.heartbeatAt).toLocaleString();
  time.textContent = `${(worker.heartbeatAgeMs / 1000).toFixed(1)} s ago`;
  beat.append(time);
  if (worker.stale) {
    const mark = document.createElement("strong");
    mark.className = "stale-mark";
    mark.textContent = "stale";
    beat.append(" ", mark);
  }
  const running = worker.running.length === 0 ? "idle" : `${worker.running.length}: ${worker.running.join(", ")}`;
  tr.append(
    textCell("Worker", worker.name, "worker-name"),
    textCell("Machine", worker.machine),
    textCell("Tags", worker.tags.join(", ") || "–"),
    textCell("Slots", String(worker.slots), "num"),
    textCell("GPUs", worker.gpus === null ? "not known" : worker.gpus.join(", ") || "none"),
    textCell("Blender", worker.blenderVersion),
    textCell("Mode", worker.mode),
    textCell("Running", running, "running"),
    beat,
    textCell("Done", worker.completed === null ? "–" : String(worker.completed), "num done"),
    textCell("Failed", worker.failed === null ? "–" : String(worker.failed), "num failed"),
    textCell("Blocked", blockedText(worker.blocked ?? []), "blocked"),
  );
  return tr;
}

/** A worker's blocklist as text: each script it keeps away from, and until when (its own clock). */
function blockedText(blocked) {
  if (blocked.length === 0) return "–";
  return blocked.map((entry) => `${entry.name} until ${new Date(entry.until).toLocaleTimeString()}`).join(", ");
}

function renderRenders(page) {
  $("#renders-count").textContent = page.total;
  const empty = $("#renders-empty");
  empty.hidden = page.total > 0;
  empty.textContent = "No renders yet.";
  const keep = new Set(page.renders.map((render) => render.name));
  for (const [name, tr] of renderRows) {
    if (!keep.has(name)) {
      tr.remove();
      renderRows.delete(name);
    }
  }
  const body = $("#renders-table tbody");
  page.renders.forEach((render, index) => {
    const tr = renderRows.get(render.name) ?? makeRenderRow(render.name);
    fillRenderRow(tr, render);
    if (body.children[index] !== tr) body.insertBefore(tr, body.children[index] ?? null);
  });
  const pages = Math.max(1, Math.ceil(page.total / RENDERS_PAGE));
  const first = page.total === 0 ? 0 : page.offset + 1;
  $("#renders-info").textContent = `${first}–${page.offset + page.renders.length} of ${page.total}`;
  $("#renders-prev").disabled = rendersPage === 0;
  $("#renders-next").disabled = rendersPage >= pages - 1;
  $("#renders-paging").hidden = page.total <= RENDERS_PAGE;
}

function makeRenderRow(name) {
  const tr = document.createElement("tr");
  tr.dataset.render = name;
  tr.innerHTML = `<td class="render-name" data-label="Render"><strong></strong> <span class="hint blend"></span></td>
    <td class="frames" data-label="Frames"><span class="frames-done"></span> <span class="hint range"></span></td>
    <td data-label="State"><span class="state"></span></td>
    <td data-label="Frame by frame"><div class="frame-grid" role="group"></div></td>
    <td class="thumb" data-label="Last frame"></td>`;
  $("strong", tr).textContent = name;
  renderRows.set(name, tr);
  return tr;
}

function fillRenderRow(tr, render) {
  $(".blend", tr).textContent = render.blend;
  $(".frames-done", tr).textContent = `${render.framesDone} / ${render.frameCount} done`;
  $(".range", tr).textContent = `frames ${render.frames} in ${render.chunks} jobs`;
  const state = $(".state", tr);
  state.className = `state ${RENDER_STATE_CLASS[render.state]}`;
  state.textContent = render.state;
  tr.className = RENDER_STATE_CLASS[render.state];
  const grid = $(".frame-grid", tr);
  grid.setAttribute("aria-label", `Frames of ${render.name}: ${render.framesDone} of ${render.frameCount} done`);
  const key = render.grid.map((cell) => `${cell.first}-${cell.last}:${cell.state}`).join(",");
  if (grid.dataset.key !== key) {
    grid.dataset.key = key;
    grid.replaceChildren(...render.grid.map(frameCell));
  }
  fillThumb($(".thumb", tr), render);
}

function frameCell(cell) {
  const span = document.createElement("span");
  span.className = `cell ${cell.state}`;
  span.setAttribute("role", "img");
  const label = cell.count === 1
    ? `frame ${cell.first}: ${FRAME_WORDS[cell.state]}`
    : `frames ${cell.first}–${cell.last} (${cell.count}): ${FRAME_WORDS[cell.state]}`;
  span.setAttribute("aria-label", label);
  span.title = label;
  return span;
}

/** A link that opens `url` (an output, a frame) in a new tab, without handing it this page. */
function newTabLink(url) {
  const link = document.createElement("a");
  link.href = url;
  link.target = "_blank";
  link.rel = "noopener";
  return link;
}

function fillThumb(td, render) {
  const url = render.lastFrame?.url ?? "";
  if (td.dataset.url === url) return; // Unchanged: the link keeps its focus, the image is not fetched again.
  td.dataset.url = url;
  if (!render.lastFrame) {
    td.replaceChildren(document.createTextNode("–"));
    return;
  }
  const link = newTabLink(url);
  const image = document.createElement("img");
  image.src = url;
  image.alt = `${render.name}, frame ${render.lastFrame.frame}`;
  const caption = document.createElement("span");
  caption.className = "hint";
  caption.textContent = `frame ${render.lastFrame.frame}`;
  link.append(image);
  td.replaceChildren(link, caption);
}

$("#tab-jobs").addEventListener("click", () => showView("jobs"));
$("#tab-farm").addEventListener("click", () => showView("farm"));
$("#tabs").addEventListener("keydown", (event) => {
  // The tabs' arrow keys (WAI-ARIA): the other tab is focused and shown.
  if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
  event.preventDefault();
  const next = farmShown ? "jobs" : "farm";
  const target = event.key === "Home" ? "jobs" : event.key === "End" ? "farm" : next;
  showView(target);
  $(`#tab-${target}`).focus();
});
$("#renders-prev").addEventListener("click", () => {
  rendersPage = Math.max(0, rendersPage - 1);
  void loadFarm();
});
$("#renders-next").addEventListener("click", () => {
  rendersPage++;
  void loadFarm();
});

void loadBlends();
void loadScripts();
connect();
if (location.hash === "#farm") showView("farm");
