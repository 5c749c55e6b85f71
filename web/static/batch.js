// The batch page: upload files to /api/transcriptions, poll the batch, offer the transcripts.
(() => {
  const drop = document.getElementById("drop"), input = document.getElementById("files");
  const list = document.getElementById("list");
  const FORMATS = ["srt", "vtt", "txt", "json"];

  function card(name) {
    const el = document.createElement("div");
    el.className = "file";
    el.innerHTML = `<div class="row"><span class="name"></span><span class="state">uploading…</span>
      <span class="downloads"></span></div><div class="bar"><i></i></div><div class="text"></div>`;
    el.querySelector(".name").textContent = name;
    list.prepend(el);
    return el;
  }

  function show(el, file, batchId) {
    const state = el.querySelector(".state");
    state.className = "state " + file.state;
    state.textContent = file.state === "failed" ? "failed" : file.state;
    const progress = file.state === "finished" || file.state === "failed" ? 1 : (file.progress || (file.state === "started" ? 0.1 : 0.02));
    el.querySelector(".bar i").style.width = `${Math.round(progress * 100)}%`;
    if (file.error) el.querySelector(".text").textContent = file.error.message;
    if (file.text) el.querySelector(".text").textContent = file.text;
    const downloads = el.querySelector(".downloads");
    if (file.state === "finished" && !downloads.childElementCount) {
      for (const format of FORMATS) {
        const a = document.createElement("a");
        a.textContent = format.toUpperCase();
        a.href = Council.withToken(`/api/transcriptions/${batchId}/${file.job_id}?format=${format}`);
        a.download = "";
        a.dataset.format = format;
        downloads.append(a);
      }
    }
  }

  async function upload(files) {
    if (!files.length) return;
    const cards = new Map();
    const form = new FormData();
    for (const f of files) { form.append("files", f); cards.set(f.name, card(f.name)); }
    const response = await Council.fetch("/api/transcriptions", { method: "POST", body: form });
    if (!response.ok) {
      const message = await Council.errorMessage(response);
      cards.forEach((el) => { el.querySelector(".state").textContent = "refused"; el.querySelector(".text").textContent = message; });
      return;
    }
    const batch = await response.json();
    const byJob = new Map();
    for (const job of batch.jobs) {
      const el = cards.get(job.filename) || card(job.filename);
      byJob.set(job.job_id, el);
      show(el, { state: job.state || "queued", ...job }, batch.batch_id);
    }
    while (true) {
      const status = await (await Council.fetch(`/api/transcriptions/${batch.batch_id}`)).json();
      for (const file of status.files) if (byJob.has(file.job_id)) show(byJob.get(file.job_id), file, batch.batch_id);
      if (status.files.every((f) => f.state === "finished" || f.state === "failed")) break;
      await new Promise((r) => setTimeout(r, 700));
    }
  }

  input.addEventListener("change", () => { upload([...input.files]); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); upload([...e.dataTransfer.files]); });
})();
