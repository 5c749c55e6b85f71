// The chat page: one WebSocket per tab (see web/PROTOCOL.md), turns in, events out.
(() => {
  const $ = (id) => document.getElementById(id);
  const log = $("log"), text = $("text"), mic = $("mic"), stop = $("stop"), voiceSelect = $("voice");
  const MEMBER_COLORS = ["--m0", "--m1", "--m2", "--m3", "--m4"];
  const loadedAt = Date.now();

  // The server makes the session on the first connect and says, once, its id and the secret that
  // resumes it; both are kept so that a reload or a reconnect comes back to the same conversation.
  localStorage.removeItem("council.session");  // an id an older page made up itself
  let sessionId = localStorage.getItem("council.session_id");
  let resume = localStorage.getItem("council.resume");
  let lastEventId = null;       // newest event shown on this page
  let socket = null, backoff = 500;
  const turns = new Map();      // turn id -> {user, members: Map(member -> bubble), clips, next, playing}
  const memberColors = new Map();
  let activeTurn = null;

  // ---- rendering ----------------------------------------------------------------------------
  function add(kind, who, body) {
    $("empty")?.remove();
    const el = document.createElement("div");
    el.className = "msg " + kind;
    if (who) {
      const w = document.createElement("div");
      w.className = "who";
      w.textContent = who;
      el.append(w);
    }
    const t = document.createElement("div");
    t.className = "text";
    t.textContent = body;
    el.append(t);
    log.append(el);
    el.scrollIntoView({ behavior: "smooth", block: "end" });
    return el;
  }
  const note = (message, kind = "note") => add(kind, null, message);

  function turn(id) {
    if (!turns.has(id)) turns.set(id, { user: null, members: new Map(), clips: new Map(), next: 0, playing: false });
    return turns.get(id);
  }

  function memberBubble(t, member) {
    if (!t.members.has(member)) {
      if (!memberColors.has(member)) memberColors.set(member, MEMBER_COLORS[memberColors.size % MEMBER_COLORS.length]);
      const el = add("member", member, "");
      el.style.setProperty("--member", `var(${memberColors.get(member)})`);
      el.dataset.member = member;
      const clips = document.createElement("div");
      clips.className = "clips";
      el.append(clips);
      t.members.set(member, el);
    }
    return t.members.get(member);
  }

  // ---- speech, sentence by sentence and chunk by chunk, in (index, chunk) order ---------------
  // t.next is the sentence to play, t.chunk its chunk; a clip with sentence_done moves on to the
  // next sentence's chunk 0. Events from before chunks existed count as chunk 0, done.
  // A sentence shows one player (its first chunk's); its other chunks are hidden players that
  // follow it when someone plays the sentence again by hand.
  const clipKey = (index, chunk) => `${index}:${chunk}`;

  function placeInOrder(parent, el, selector, key, otherwise) {
    const after = [...parent.querySelectorAll(selector)].find((o) => Number(o.dataset[key]) > Number(el.dataset[key]));
    if (after) after.before(el); else otherwise(el);
  }

  function sentenceBox(bubble, index) {
    let box = bubble.querySelector(`.sentence[data-index="${index}"]`);
    if (!box) {
      box = document.createElement("div");
      box.className = "sentence";
      box.dataset.index = index;
      placeInOrder(bubble, box, ".sentence", "index", (el) => bubble.querySelector(".clips").before(el));
    }
    return box;
  }

  function queueClip(turnId, payload, live) {
    const t = turn(turnId);
    const bubble = memberBubble(t, payload.member || "Council");
    const chunk = payload.chunk ?? 0, done = payload.sentence_done ?? true;
    let audio = null;                            // an empty chunk only closes its sentence
    if (!(payload.duration_s === 0 && done)) {
      const box = sentenceBox(bubble, payload.index);
      audio = document.createElement("audio");
      audio.preload = "auto";
      audio.src = Council.withToken(payload.url);
      audio.dataset.index = payload.index;
      audio.dataset.chunk = chunk;
      audio.title = payload.text;
      placeInOrder(box, audio, "audio", "chunk", (el) => box.append(el));
      box.querySelectorAll("audio").forEach((a, i) => { a.controls = i === 0; a.hidden = i > 0; });
      audio.addEventListener("ended", () => {
        if (audio.dataset.auto) return;          // played in turn by playNext, which goes on itself
        const rest = [...box.querySelectorAll("audio")];
        rest[rest.indexOf(audio) + 1]?.play().catch(() => {});
      });
    }
    t.clips.set(clipKey(payload.index, chunk), { audio, live, done });
    playNext(t);
  }

  function playNext(t) {
    if (t.playing) return;
    const clip = t.clips.get(clipKey(t.next, t.chunk || 0));
    if (!clip) return;
    if (clip.done) { t.next += 1; t.chunk = 0; } else t.chunk = (t.chunk || 0) + 1;
    if (!clip.live || !clip.audio) return playNext(t);  // replayed history: shown, not spoken
    t.playing = true;
    clip.audio.dataset.auto = "1";
    const done = () => { delete clip.audio.dataset.auto; t.playing = false; playNext(t); };
    clip.audio.addEventListener("ended", done, { once: true });
    clip.audio.addEventListener("error", done, { once: true });
    clip.audio.play().catch(done);
  }

  function silence() {
    for (const t of turns.values()) {
      t.clips.forEach((c) => c.audio?.pause());
      t.next = Number.MAX_SAFE_INTEGER;
      t.playing = false;
    }
  }

  // ---- events from the server -----------------------------------------------------------------
  function onEvent(frame) {
    if (frame.id) lastEventId = frame.id;
    const p = frame.payload || {};
    const live = Date.parse(frame.time || 0) > loadedAt - 2000;
    switch (frame.type) {
      case "session":
        if (frame.resume) {         // a new session: keep what brings this page back to it
          sessionId = frame.session_id;
          resume = frame.resume;
          localStorage.setItem("council.session_id", sessionId);
          localStorage.setItem("council.resume", resume);
        }
        fillVoices(frame.voices);
        showLLM(frame.llm);
        // Council members speak in their own voices; the picker is for the echo responder.
        voiceSelect.closest("label").hidden = Boolean(frame.llm);
        $("hear-members").closest("label").hidden = !frame.llm;
        break;
      case "routed": {
        const el = add("route", null, p.route === "council"
          ? `The council deliberates — ${p.reason}` : `Quick answer — ${p.reason}`);
        el.className = "route";
        break;
      }
      case "member_started":
        memberBubble(turn(frame.job_id), p.member);
        break;
      case "member_dropped":
        note(`${p.member} dropped out: ${p.reason}`);
        break;
      case "critique": {
        const c = document.createElement("div");
        c.className = "critique";
        c.textContent = "Critique: " + p.text;
        memberBubble(turn(frame.job_id), p.member).append(c);
        break;
      }
      case "turn_started": {
        activeTurn = frame.job_id;
        stop.disabled = false;
        const t = turn(frame.job_id);
        t.user = add("user", "You", p.input === "voice" ? "listening…" : p.text);
        if (p.input === "voice") t.user.querySelector(".text").classList.add("pending");
        break;
      }
      case "transcript": {
        const t = turns.get(frame.job_id.replace(/-stt$/, ""));
        if (t && t.user) {
          const el = t.user.querySelector(".text");
          el.textContent = p.text || "(nothing heard)";
          el.classList.remove("pending");
        }
        break;
      }
      case "token": {
        const el = memberBubble(turn(frame.job_id), p.member).querySelector(".text");
        el.textContent += p.text;
        break;
      }
      case "message":
        memberBubble(turn(frame.job_id), p.member).querySelector(".text").textContent = p.text;
        break;
      case "audio":
        queueClip(p.turn_id || frame.job_id, p, live);
        break;
      case "failed":
        note(p.message, "error");
        break;
      case "turn_done":
      case "turn_cancelled":
        if (frame.job_id === activeTurn) { activeTurn = null; stop.disabled = true; }
        if (frame.type === "turn_cancelled") note("Stopped.");
        if (p.status === "failed" && p.error) note(p.error.message, "error");
        break;
      case "error":
        note(frame.error.message, "error");
        break;
    }
  }

  function showLLM(statuses) {
    const down = (statuses || []).filter((s) => !s.ready);
    const banner = $("banner");
    banner.hidden = !down.length;
    banner.textContent = down.length
      ? "The council's language model is not reachable, so questions cannot be answered yet: " + down.map((s) => s.detail).join(" ")
      : "";
  }

  function fillVoices(voices) {
    const names = Object.keys(voices || {});
    const chosen = localStorage.getItem("council.voice") || voiceSelect.value || "joe";
    voiceSelect.replaceChildren(...names.map((name) => new Option(`${name}`, name, false, name === chosen)));
    voiceSelect.title = voices[voiceSelect.value] || "";
  }
  voiceSelect.addEventListener("change", () => localStorage.setItem("council.voice", voiceSelect.value));

  // ---- the connection -------------------------------------------------------------------------
  function setStatus(online, label) {
    $("status").classList.toggle("online", online);
    $("status").querySelector("span").textContent = label;
  }

  function connect() {
    // A fresh page replays the whole conversation (shown, not spoken); a reconnect, what it missed.
    const after = lastEventId || "0";
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams({ last_event_id: after });
    if (sessionId && resume) { params.set("session_id", sessionId); params.set("resume", resume); }
    const url = Council.withToken(`${scheme}://${location.host}/ws/chat?${params}`);
    socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => { backoff = 500; setStatus(true, "connected"); };
    socket.onmessage = (m) => {
      const frame = JSON.parse(m.data);
      // The kept session expired or is another user's (another token): start a new one.
      if (frame.type === "error" && frame.error.code === "forbidden_session") return forgetSession();
      onEvent(frame);
    };
    socket.onclose = async (e) => {
      setStatus(false, "reconnecting…");
      if (e.code === 4401) {
        await Council.askToken();
        return connect();
      }
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 8000);
    };
  }

  function forgetSession() {
    sessionId = resume = lastEventId = null;
    localStorage.removeItem("council.session_id");
    localStorage.removeItem("council.resume");
    note("That conversation has expired or belongs to another user; a new one starts.");
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(frame)); return true; }
    note("Not connected yet; try again in a moment.", "error");
    return false;
  }

  // ---- typing ---------------------------------------------------------------------------------
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const words = text.value.trim();
    if (!words) return;
    silence();
    if (send({ type: "text", text: words, voice: voiceSelect.value || undefined, hear_members: hearMembers() })) text.value = "";
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  const hearMembers = () => $("hear-members").checked;
  stop.addEventListener("click", () => { silence(); send({ type: "interrupt" }); });

  // ---- speaking -------------------------------------------------------------------------------
  let recorder = null;
  mic.addEventListener("click", async () => {
    if (recorder) { recorder.stop(); return; }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
    } catch (err) {
      note("The microphone is not available: " + err.message, "error");
      return;
    }
    silence();
    const type = MediaRecorder.isTypeSupported("audio/webm;codecs=opus") ? "audio/webm;codecs=opus" : "";
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    if (!send({ type: "audio_start", format: "webm", voice: voiceSelect.value || undefined, hear_members: hearMembers() })) {
      stream.getTracks().forEach((t) => t.stop());
      recorder = null;
      return;
    }
    recorder.ondataavailable = (e) => { if (e.data.size) e.data.arrayBuffer().then((b) => socket.send(b)); };
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      // Let the last chunk go out first: it is queued behind the dataavailable above.
      setTimeout(() => send({ type: "audio_end" }), 50);
      mic.classList.remove("recording");
      recorder = null;
    };
    recorder.start(250);
    mic.classList.add("recording");
  });

  connect();
})();
