// The batch page: upload files to /api/transcriptions, poll the batch, offer the transcripts.
//
// A card is made per chosen file, in the order chosen, and tied to its file by position: the API
// answers with one job per file in the order sent, and from then on the card is known by its job
// id (two files may share a name: two folders' memo.wav). Downloads are fetched with the token in
// a header and saved under the upload's whole name plus the format (memo.mp3 -> memo.mp3.srt), so
// the same stem in several formats, or the same name twice, never saves over another download.
(() => {
  const drop = document.getElementById("drop"), input = document.getElementById("files");
  const list = document.getElementById("list");
  const FORMATS = ["srt", "vtt", "txt", "json"];
  const POLL_MS = 700, RETRY_MAX_MS = 10000;
  const seen = new Map(); // file name -> how many cards have had it on this page

  // The how-many-th file of this name on the page: 1, then 2 for a second memo.wav.
  function countName(name) {
    const count = (seen.get(name) || 0) + 1;
    seen.set(name, count);
    return count;
  }

  // What a file's downloads are named after: memo.wav, then memo (2).wav, as browsers number copies.
  function downloadBase(name, count) {
    if (count === 1) return name;
    const dot = name.lastIndexOf(".");
    return dot > 0 ? `${name.slice(0, dot)} (${count})${name.slice(dot)}` : `${name} (${count})`;
  }

  function card(file) {
    const el = document.createElement("div");
    el.className = "file";
    el.dataset.state = "uploading";
    el.innerHTML = `<div class="row"><span class="name"></span><span class="state">uploading…</span>
      <span class="downloads"></span></div><div class="bar"><i></i></div><div class="text"></div>`;
    const count = countName(file.name);
    el.dataset.name = downloadBase(file.name, count);
    const label = el.querySelector(".name");
    label.textContent = file.name;
    if (count > 1) label.append(Object.assign(document.createElement("span"), { className: "copy", textContent: ` (${count})` }));
    list.append(el);
    return el;
  }

  function setState(el, state, label) {
    el.dataset.state = state;
    el.classList.remove("uploading", "queued", "started", "finished", "failed");
    el.classList.add(state);
    const badge = el.querySelector(".state");
    badge.className = "state " + state;
    badge.textContent = label || state;
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
    if (file.text) el.querySelector(".text").textContent = file.text;
    const downloads = el.querySelector(".downloads");
    if (file.state === "finished" && !downloads.childElementCount) {
      for (const format of FORMATS) downloads.append(downloadLink(el, `/api/transcriptions/${batchId}/${file.job_id}`, format));
    }
  }

  function downloadLink(el, url, format) {
    const a = document.createElement("a");
    a.textContent = format.toUpperCase();
    a.href = Council.withToken(`${url}?format=${format}`);
    a.download = `${el.dataset.name}.${format}`;
    a.dataset.format = format;
    // The server names the file after the upload's stem (memo.srt), and a browser prefers that
    // name to the link's: fetch it and save it under ours.
    a.addEventListener("click", async (event) => {
      event.preventDefault();
      const response = await Council.fetch(`${url}?format=${format}`);
      if (!response.ok) return note(el, `Download failed: ${await Council.errorMessage(response)}`);
      const blobUrl = URL.createObjectURL(await response.blob());
      const save = Object.assign(document.createElement("a"), { href: blobUrl, download: a.download });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
    });
    return a;
  }

  // A line under the card's text (which keeps the transcript or the error).
  function note(el, message) {
    let line = el.querySelector(".note");
    if (!line) el.append(line = Object.assign(document.createElement("div"), { className: "note" }));
    line.textContent = message;
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // Polls until every file of the batch has finished or failed; a status call that fails is
  // said on the cards still waiting and tried again, later each time.
  async function follow(batchId, byJob) {
    let wait = POLL_MS;
    while (true) {
      let response = null;
      try { response = await Council.fetch(`/api/transcriptions/${batchId}`); } catch { /* offline: try again */ }
      if (response && response.status === 404) {
        const message = await Council.errorMessage(response);
        byJob.forEach((el) => { if (el.dataset.state !== "finished") fail(el, message); });
        return;
      }
      if (response && response.ok) {
        const status = await response.json();
        for (const file of status.files) if (byJob.has(file.job_id)) show(byJob.get(file.job_id), file, batchId);
        byJob.forEach((el) => el.querySelector(".note")?.remove());
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

  async function upload(files) {
    if (!files.length) return;
    const cards = files.map(card);
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
      return;
    }
    const batch = await response.json();
    const byJob = new Map();
    // One job per file, in the order sent.
    cards.forEach((el, i) => {
      const job = batch.jobs[i];
      if (!job) return fail(el, "The server did not list this file in the batch.");
      el.dataset.job = job.job_id;
      byJob.set(job.job_id, el);
      show(el, { ...job, state: job.state || "queued" }, batch.batch_id);
    });
    await follow(batch.batch_id, byJob);
  }

  input.addEventListener("change", () => { upload([...input.files]); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); upload([...e.dataTransfer.files]); });
})();
