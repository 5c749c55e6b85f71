// The batch page: upload files to /api/transcriptions, follow each batch, offer the transcripts.
//
// The page shows the user's batches oldest first, each a section of cards, one card per file in
// the order chosen; a reload brings them back from the server (GET /api/transcriptions) and goes
// on following those still running. A card is tied to its file by position: the API answers with
// one job per file in the order sent, and from then on the card is known by its job id (two files
// may share a name: two folders' memo.wav). Downloads are fetched with the token in a header and
// saved under the upload's whole name plus the format (memo.mp3 -> memo.mp3.srt; a second memo.wav
// of the batch -> memo (2).wav.srt, as the batch's zip names it), so nothing saves over another.
(() => {
  const drop = document.getElementById("drop"), input = document.getElementById("files");
  const list = document.getElementById("list"), older = document.getElementById("older");
  const FORMATS = ["srt", "vtt", "txt", "json"];
  const POLL_MS = 700, RETRY_MAX_MS = 10000, PAGE = 10;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let nextPage = null;  // the cursor of the older batches not shown yet

  // What a file's downloads are named after: memo.wav, then memo (2).wav, as browsers number copies.
  function downloadBase(name, count) {
    if (count === 1) return name;
    const dot = name.lastIndexOf(".");
    return dot > 0 ? `${name.slice(0, dot)} (${count})${name.slice(dot)}` : `${name} (${count})`;
  }

  // ---- a batch: a section with its files' cards, "cancel all" and "download all" ----------------
  function section(createdAt, where = "end") {
    const el = document.createElement("section");
    el.className = "batch";
    el.innerHTML = `<div class="batch-head"><span class="when"></span><span class="spacer"></span>
      <button type="button" class="btn small cancel-all" hidden>Cancel all</button>
      <span class="zip" hidden>Download all: </span></div><div class="cards"></div>`;
    el.querySelector(".when").textContent = createdAt
      ? new Date(createdAt).toLocaleString() : "Uploading…";
    el.seen = new Map();  // file name -> how many cards of this batch have had it
    if (where === "start") list.prepend(el); else list.append(el);
    return el;
  }

  function bindSection(el, batchId) {
    el.dataset.batch = batchId;
    el.querySelector(".cancel-all").addEventListener("click", () => cancel(el, `/api/transcriptions/${batchId}`));
    const zip = el.querySelector(".zip");
    for (const format of FORMATS) zip.append(zipLink(batchId, format));
  }

  function card(box, name) {
    const el = document.createElement("div");
    el.className = "file";
    el.dataset.state = "uploading";
    el.innerHTML = `<div class="row"><span class="name"></span><span class="state">uploading…</span>
      <span class="downloads"></span><button type="button" class="btn small cancel" hidden>Cancel</button></div>
      <div class="bar"><i></i></div><div class="text"></div>`;
    const count = (box.seen.get(name) || 0) + 1;
    box.seen.set(name, count);
    el.dataset.name = downloadBase(name, count);
    const label = el.querySelector(".name");
    label.textContent = name;
    if (count > 1) label.append(Object.assign(document.createElement("span"), { className: "copy", textContent: ` (${count})` }));
    box.querySelector(".cards").append(el);
    return el;
  }

  function setState(el, state, label) {
    el.dataset.state = state;
    el.classList.remove("uploading", "queued", "started", "finished", "failed");
    el.classList.add(state);
    const badge = el.querySelector(".state");
    badge.className = "state " + state;
    badge.textContent = label || state;
    el.querySelector(".cancel").hidden = !["queued", "started"].includes(state);
  }

  function fail(el, message) {
    setState(el, "failed");
    el.querySelector(".bar i").style.width = "100%";
    const text = el.querySelector(".text");
    text.classList.add("error");
    text.textContent = message;
  }

  function show(el, file, batchId) {
    if (file.state === "failed") return fail(el, file.error ? file.error.message : "The transcription failed.");
    setState(el, file.state);
    const progress = file.state === "finished" ? 1 : (file.progress || (file.state === "started" ? 0.1 : 0.02));
    el.querySelector(".bar i").style.width = `${Math.round(progress * 100)}%`;
    const text = el.querySelector(".text");
    if (file.no_speech) {
      text.classList.add("none");
      text.textContent = "No speech found in this file: its transcript is empty.";
    } else if (file.text) {
      text.textContent = file.text;
    }
    const downloads = el.querySelector(".downloads");
    if (file.state === "finished" && !downloads.childElementCount) {
      for (const format of FORMATS) downloads.append(downloadLink(el, `/api/transcriptions/${batchId}/${file.job_id}`, format));
    }
  }

  function showBatch(box, status) {
    box.querySelector(".cancel-all").hidden = status.done;
    box.querySelector(".zip").hidden = !status.totals.finished;
  }

  // A link that fetches with the token and saves under `name` (the server's name would be the
  // upload's stem, memo.srt, which a browser prefers to the link's).
  function savingLink(label, url, name, onError) {
    const a = document.createElement("a");
    a.textContent = label;
    a.href = Council.withToken(url);
    a.download = name;
    a.addEventListener("click", async (event) => {
      event.preventDefault();
      const response = await Council.fetch(url);
      if (!response.ok) return onError(await Council.errorMessage(response));
      const blobUrl = URL.createObjectURL(await response.blob());
      const save = Object.assign(document.createElement("a"), { href: blobUrl, download: name });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
    });
    return a;
  }

  function downloadLink(el, url, format) {
    const a = savingLink(format.toUpperCase(), `${url}?format=${format}`, `${el.dataset.name}.${format}`,
      (message) => note(el, `Download failed: ${message}`));
    a.dataset.format = format;
    return a;
  }

  function zipLink(batchId, format) {
    const a = savingLink(format.toUpperCase(), `/api/transcriptions/${batchId}/archive?format=${format}`,
      `transcripts-${batchId.slice(0, 8)}-${format}.zip`, (message) => alert(`Download failed: ${message}`));
    a.dataset.zip = format;
    return a;
  }

  async function cancel(el, url) {
    el.querySelectorAll(".cancel, .cancel-all").forEach((b) => { b.disabled = true; });
    const response = await Council.fetch(url, { method: "DELETE" }).catch(() => null);
    el.querySelectorAll(".cancel, .cancel-all").forEach((b) => { b.disabled = false; });
    if (!response || !response.ok) {
      const message = response ? await Council.errorMessage(response) : "the server cannot be reached";
      note(el.closest(".file") || el.querySelector(".file"), `Could not cancel: ${message}`);
    }
  }

  // A line under the card's text (which keeps the transcript or the error).
  function note(el, message) {
    if (!el) return;
    let line = el.querySelector(".note");
    if (!line) el.append(line = Object.assign(document.createElement("div"), { className: "note" }));
    line.textContent = message;
  }

  // Polls until every file of the batch has finished or failed; a status call that fails is
  // said on the cards still waiting and tried again, later each time.
  async function follow(box, batchId, byJob) {
    let wait = POLL_MS;
    while (true) {
      let response = null;
      try { response = await Council.fetch(`/api/transcriptions/${batchId}`); } catch { /* offline: try again */ }
      if (response && response.status === 404) {
        const message = await Council.errorMessage(response);
        byJob.forEach((el) => { if (el.dataset.state !== "finished") fail(el, message); });
        box.querySelector(".cancel-all").hidden = true;
        return;
      }
      if (response && response.ok) {
        const status = await response.json();
        for (const file of status.files) if (byJob.has(file.job_id)) show(byJob.get(file.job_id), file, batchId);
        byJob.forEach((el) => el.querySelector(".note")?.remove());
        showBatch(box, status);
        if (status.done) return;
        wait = POLL_MS;
      } else {
        const message = response ? await Council.errorMessage(response) : "the server cannot be reached";
        byJob.forEach((el) => { if (!["finished", "failed"].includes(el.dataset.state)) note(el, `Status unavailable: ${message}; trying again.`); });
        wait = Math.min(wait * 2, RETRY_MAX_MS);
      }
      await sleep(wait);
    }
  }

  // A batch the server listed (a reload, or "older"): its cards as they stand, followed if running.
  function restore(status, where) {
    const box = section(status.created_at, where);
    bindSection(box, status.batch_id);
    const byJob = new Map();
    status.files.forEach((file) => {
      const el = card(box, file.filename);
      el.dataset.job = file.job_id;
      byJob.set(file.job_id, el);
      el.querySelector(".cancel").addEventListener("click", () => cancel(el, `/api/transcriptions/${status.batch_id}/${file.job_id}`));
      show(el, file, status.batch_id);
    });
    showBatch(box, status);
    if (!status.done) follow(box, status.batch_id, byJob);
  }

  async function loadOlder() {
    const params = new URLSearchParams({ limit: PAGE });
    if (nextPage) params.set("before", nextPage);
    const response = await Council.fetch(`/api/transcriptions?${params}`).catch(() => null);
    if (!response || !response.ok) {
      older.hidden = false;
      older.textContent = "Your earlier batches could not be loaded: try again";
      return;
    }
    const page = await response.json();
    page.batches.forEach((status) => restore(status, "start"));  // newest first: each goes on top
    nextPage = page.next;
    older.hidden = !nextPage;
    older.textContent = "Show older batches";
  }

  async function upload(files) {
    if (!files.length) return;
    const box = section(null);
    const cards = files.map((f) => card(box, f.name));
    const form = new FormData();
    for (const f of files) form.append("files", f);
    let response;
    try {
      response = await Council.fetch("/api/transcriptions", { method: "POST", body: form });
    } catch {
      cards.forEach((el) => fail(el, "Upload failed: the server cannot be reached."));
      return;
    }
    if (!response.ok) {
      const message = await Council.errorMessage(response);
      cards.forEach((el) => fail(el, `Upload refused: ${message}`));
      box.querySelector(".when").textContent = "Not uploaded";
      return;
    }
    const batch = await response.json();
    bindSection(box, batch.batch_id);
    box.querySelector(".when").textContent = new Date().toLocaleString();
    const byJob = new Map();
    // One job per file, in the order sent.
    cards.forEach((el, i) => {
      const job = batch.jobs[i];
      if (!job) return fail(el, "The server did not list this file in the batch.");
      el.dataset.job = job.job_id;
      byJob.set(job.job_id, el);
      el.querySelector(".cancel").addEventListener("click", () => cancel(el, `/api/transcriptions/${batch.batch_id}/${job.job_id}`));
      show(el, { ...job, state: job.state || "queued" }, batch.batch_id);
    });
    await follow(box, batch.batch_id, byJob);
  }

  input.addEventListener("change", () => { upload([...input.files]); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); upload([...e.dataTransfer.files]); });
  older.addEventListener("click", loadOlder);
  loadOlder();
})();
