// vidagent web chat: vanilla JS, no build step.
// Text from the server (answers, evidence text read out of videos) is always inserted with
// textContent, never as markup: it is data.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "vidagent-api-key"; // sessionStorage: the key lives as long as the tab
const state = { videos: [], video: null, session: null, thumbUrl: null, busy: false };

// --- HTTP (with the API key when the server asks for one) -----------------------------------

function authHeaders() {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { ...authHeaders(), ...(options.headers || {}) };
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401 || attempt >= 2) return response;
    await askForKey();
  }
}

async function json(response) {
  if (!response.ok) throw new Error(await problem(response));
  return response.json();
}

async function problem(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch (_) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

function askForKey() {
  return new Promise((resolve) => {
    const dialog = $("key-dialog");
    $("key-form").onsubmit = () => {
      sessionStorage.setItem(KEY, $("key-input").value.trim());
      resolve();
    };
    dialog.showModal();
  });
}

// Server-sent events over fetch (EventSource cannot POST or send an Authorization header).
async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let type = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      yield { type, data: data ? JSON.parse(data) : {} };
    }
  }
}

// --- small DOM helpers ----------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const seconds = (t) => `${Number(t).toFixed(1)}s`;

function setStatus(text, bad = false) {
  const status = $("upload-status");
  status.textContent = text;
  status.classList.toggle("bad", bad);
}

function enableChat(on) {
  $("question").disabled = !on;
  $("ask").disabled = !on || state.busy;
}

// --- videos ---------------------------------------------------------------------------------

async function loadVideos(selectId) {
  state.videos = await json(await api("/api/videos"));
  renderVideos();
  const wanted = selectId || sessionStorage.getItem("vidagent-video");
  const video = state.videos.find((v) => v.id === wanted);
  if (video) await selectVideo(video);
}

function renderVideos() {
  const list = $("videos");
  list.replaceChildren();
  for (const video of state.videos) {
    const button = el("button", "", video.name);
    button.type = "button";
    button.dataset.id = video.id;
    button.setAttribute("aria-current", String(state.video?.id === video.id));
    button.append(el("small", "", `${seconds(video.duration)} · ${video.width}×${video.height}` +
      (video.indexed ? " · indexed" : "")));
    button.onclick = () => selectVideo(video);
    const item = el("li");
    item.append(button);
    list.append(item);
  }
}

async function selectVideo(video) {
  state.video = video;
  sessionStorage.setItem("vidagent-video", video.id);
  renderVideos();
  $("player").src = video.url;
  $("evidence-view").hidden = true;
  $("chat-title").textContent = `Chat about ${video.name}`;
  $("messages").replaceChildren();
  await openSession(video);
  if (video.indexed) {
    enableChat(true);
  } else {
    await indexVideo(video);
  }
}

async function upload(file) {
  setStatus(`Uploading ${file.name}…`);
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const video = await json(await api("/api/videos", { method: "POST", body: form }));
    setStatus(`Uploaded ${video.name}`);
    await loadVideos(video.id);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("upload").value = "";
  }
}

// Start (or join) the video's index job and show its progress until it ends.
async function indexVideo(video) {
  enableChat(false);
  const box = $("index-state");
  const bar = $("index-progress");
  const label = $("index-label");
  box.hidden = false;
  let job = await json(await api(`/api/videos/${video.id}/index`, { method: "POST" }));
  while (job.state === "queued" || job.state === "running") {
    bar.max = Math.max(job.total, 1);
    bar.value = job.done;
    label.textContent = job.total ? `Indexing: ${job.done}/${job.total} frames` : "Indexing…";
    await new Promise((resolve) => setTimeout(resolve, 400));
    job = await json(await api(`/api/jobs/${job.id}`));
  }
  if (state.video?.id !== video.id) return; // the user moved on
  if (job.state === "done") {
    video.indexed = true;
    bar.max = 1;
    bar.value = 1;
    label.textContent = `Indexed (${job.total} frames)`;
    renderVideos();
    enableChat(true);
  } else {
    label.textContent = `Indexing failed: ${job.error}`;
  }
}

// --- sessions -------------------------------------------------------------------------------

async function openSession(video) {
  const remembered = sessionStorage.getItem(`vidagent-session-${video.id}`);
  if (remembered) {
    const response = await api(`/api/sessions/${remembered}`);
    if (response.ok) {
      state.session = remembered;
      renderHistory(await response.json());
      return;
    }
  }
  const created = await json(await api(`/api/videos/${video.id}/sessions`, { method: "POST" }));
  state.session = created.session;
  sessionStorage.setItem(`vidagent-session-${video.id}`, created.session);
}

function renderHistory(session) {
  const rows = new Map(session.evidence.map((row) => [row.id, row]));
  for (const message of session.messages) {
    if (message.role === "user") {
      addMessage("user", "you", message.content);
      if (message.interrupted) {
        addMessage("error", "vidagent", "No answer: this question was interrupted (the server stopped or " +
          "failed while answering). Ask it again.");
      }
    } else {
      const item = addMessage("assistant", "vidagent", message.content);
      addChips(item, (message.cited || []).map((id) => rows.get(id)).filter(Boolean));
    }
  }
}

// --- chat -----------------------------------------------------------------------------------

function addMessage(kind, who, text) {
  const item = el("li", `msg ${kind}`);
  item.append(el("div", "who", who), el("div", "text", text));
  $("messages").append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function describeStep(event) {
  switch (event.type) {
    case "plan": {
      const calls = (event.calls || []).map((c) => `${c.tool}(${JSON.stringify(c.args)})`).join(", ");
      return `plan${event.fallback ? " (fallback)" : ""}: ${calls || "answer now"}`;
    }
    case "tool_call":  // recall: the question looked up in what the video says and shows, before planning
      return `${event.recall ? "recall " : ""}→ ${event.tool} ${JSON.stringify(event.args)}`;
    case "tool_result":
      return event.error ? `✗ ${event.error}` :
        `✓ ${event.recall ? "recall " : ""}${event.tool}: ${event.evidence_ids.length} rows in ${seconds(event.seconds)}`;
    default:
      return event.type;
  }
}

function addChips(item, rows) {
  if (!rows.length) return;
  const chips = el("div", "chips");
  for (const row of rows) {
    const chip = el("button", "chip", `[${row.id}] ${row.tool} ${seconds(row.start)}–${seconds(row.end)}`);
    chip.type = "button";
    chip.dataset.row = row.id;
    chip.dataset.start = row.start;
    chip.dataset.end = row.end;
    chip.title = row.text || (row.data?.label ?? "");
    chip.onclick = () => showEvidence(row, chip);
    chips.append(chip);
  }
  item.append(chips);
}

async function ask(question) {
  state.busy = true;
  enableChat(true);
  addMessage("user", "you", question);
  const item = addMessage("assistant", "vidagent", "…");
  const text = item.querySelector(".text");
  const steps = el("ol", "steps");
  item.insertBefore(steps, text);
  try {
    const response = await api("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ video: state.video.id, session: state.session, question }),
    });
    if (!response.ok) throw new Error(await problem(response));
    for await (const { type, data } of readEvents(response)) {
      if (type === "answer") {
        text.textContent = data.text;
        item.append(el("div", "confidence",
          `confidence ${data.confidence.toFixed(2)} · ${seconds(data.seconds)} · ${data.used.tool_calls || 0} tool calls`));
        addChips(item, data.evidence || []);
      } else if (type === "error") {
        item.classList.add("error");
        text.textContent = data.message;
      } else if (type !== "done") {
        steps.append(el("li", "", describeStep(data)));
      }
      item.scrollIntoView({ block: "end" });
    }
  } catch (error) {
    item.classList.add("error");
    text.textContent = error.message;
  } finally {
    state.busy = false;
    enableChat(true);
  }
}

// Seek the player to the evidence span and show its frame with boxes and masks drawn.
async function showEvidence(row, chip) {
  for (const other of document.querySelectorAll(".chip")) other.setAttribute("aria-pressed", "false");
  chip.setAttribute("aria-pressed", "true");
  const player = $("player");
  player.pause();
  player.currentTime = row.start;
  const caption = [`[${row.id}] ${row.tool}`, `${seconds(row.start)}–${seconds(row.end)}`,
    `score ${Number(row.score).toFixed(2)}`];
  if (row.data?.label) caption.push(row.data.label);
  if (row.text) caption.push(JSON.stringify(row.text));
  $("thumb-caption").textContent = caption.join(" · ");
  const response = await api(`/api/sessions/${state.session}/evidence/${row.id}/thumbnail`);
  if (!response.ok) {
    $("thumb-caption").textContent += ` (no thumbnail: ${await problem(response)})`;
    $("evidence-view").hidden = false;
    return;
  }
  if (state.thumbUrl) URL.revokeObjectURL(state.thumbUrl);
  state.thumbUrl = URL.createObjectURL(await response.blob());
  $("thumb").src = state.thumbUrl;
  $("evidence-view").hidden = false;
}

// --- wiring ---------------------------------------------------------------------------------

$("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) upload(file);
});

$("ask-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || state.busy || !state.video) return;
  $("question").value = "";
  ask(question);
});

loadVideos().catch((error) => setStatus(error.message, true));
