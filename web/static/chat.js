// The chat page: one WebSocket per tab (see web/PROTOCOL.md), turns in, events out; the answer's
// sound through Council.Player, the microphone through Council.Mic.
(() => {
  const $ = (id) => document.getElementById(id);
  const log = $("log"), text = $("text"), micButton = $("mic"), stopButton = $("stop"), voiceSelect = $("voice");
  const modeSelect = $("mode"), headphones = $("headphones");
  const MEMBER_COLORS = ["--m0", "--m1", "--m2", "--m3", "--m4"];
  const debug = new URLSearchParams(location.search).has("debug") || localStorage.getItem("council.debug") === "1";

  // The server makes the session on the first connect and says, once, its id and the secret that
  // resumes it; both are kept so that a reload or a reconnect comes back to the same conversation.
  localStorage.removeItem("council.session");  // an id an older page made up itself
  let sessionId = localStorage.getItem("council.session_id");
  let resume = localStorage.getItem("council.resume");
  let lastEventId = null;       // newest event shown on this page
  let socket = null, backoff = 500;
  const turns = new Map();      // turn id -> {user, members: Map(member -> bubble), done}
  const memberColors = new Map();
  let activeTurn = null;        // the turn the server is still working on
  let resumeAt = null;          // where the last page stopped playing, from the hello (a reload)
  let pendingPcm = null;        // the audio event whose samples the next binary frame carries
  let mic = null, streamId = null, recorder = null, timer = null, reopening = null;

  // ---- the answer's sound ----------------------------------------------------------------------
  // The microphone is never muted: everything the person says reaches the server. Without
  // headphones the answer plays through a loopback peer connection so that the browser's echo
  // canceller removes it from the microphone (player.js), and the server tells what still gets
  // through from the person by its words (`echo_checked`, web/echo.py).
  const player = new Council.Player({
    onPlayed: (where) => send({ type: "played", ...where }, { quiet: true }),
    onBusy: () => { updateStop(); showState(); },
    onBlocked: () => { $("play-banner").hidden = false; showState(); console.info("council: sound is blocked until a click"); },
    onUnblocked: () => { $("play-banner").hidden = true; showState(); },
    onSentence: (turnId, index) => {
      document.querySelectorAll(".clip.playing").forEach((c) => c.classList.remove("playing"));
      if (index !== null) document.querySelector(`.clip[data-turn="${turnId}"][data-index="${index}"]`)?.classList.add("playing");
      caption(turnId, index);
    },
  });
  window.councilPlayer = player;  // tests and benchmarks read its stats
  $("play-resume").addEventListener("click", () => { player.unlock(); $("play-banner").hidden = true; showState(); });

  // Stop stays available while the server works on a turn or any of its sound is to be heard.
  function updateStop() {
    stopButton.disabled = !(activeTurn || player.busy);
  }

  function stopAnswer(why) {
    const since = performance.now();
    const where = player.stop();
    if (where) { turn(where.turn_id).stopped = true; freezeCaptions(where.turn_id); }
    if (activeTurn) turn(activeTurn).stopped = true;
    player.silentAfter(since).then((ms) => { if (why === "stop") console.debug(`silent ${ms.toFixed(1)} ms after Stop`); });
    send({ type: "interrupt", ...(where ? { heard: where } : {}) });
    if (activeTurn || where) note(why === "barge-in" ? "Stopped: you spoke." : "Stopped.");
    activeTurn = null;
    updateStop();
  }

  // The server heard the person over answer `turnId` (not its echo): stop it where it is, and say
  // where, so the conversation keeps what was heard. The turn they started goes on.
  function spokenOver(turnId) {
    if (!player.following(turnId)) return;
    const where = player.stop();
    turn(turnId).stopped = true;
    freezeCaptions(turnId);
    send({ type: "interrupt", ...(where ? { heard: where } : {}) });
    note("Stopped: you spoke.");
    updateStop();
  }

  function debugNote(message) {
    console.debug("council:", message);
    if (debug) note(message, "note debug");
  }

  // ---- rendering ------------------------------------------------------------------------------
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
    if (!turns.has(id)) turns.set(id, { user: null, members: new Map(), done: false });
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

  // One control per sentence; pressed, it plays the sentence again (fetching it if this page
  // never had its sound: old answers are not downloaded until someone asks for them).
  function sentenceControl(turnId, p) {
    const bubble = memberBubble(turn(turnId), p.member || "Council");
    const box = bubble.querySelector(".clips");
    if (box.querySelector(`.clip[data-index="${p.index}"]`)) return;
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "clip";
    chip.dataset.turn = turnId;
    chip.dataset.index = p.index;
    chip.title = p.text;
    chip.textContent = `▶ ${p.index + 1}`;
    chip.addEventListener("click", async () => {
      if (await player.replay(turnId, p.index)) return;
      chip.disabled = true;  // freed once heard (it counted against your stored audio): say so once
      chip.title = "This sentence's sound is no longer kept; its words are above.";
      note("That sentence's sound is no longer kept (answers are not stored once heard); its words are above.");
    });
    const after = [...box.querySelectorAll(".clip")].find((c) => Number(c.dataset.index) > p.index);
    if (after) after.before(chip); else box.append(chip);
  }

  // ---- captions ------------------------------------------------------------------------------
  // A member's bubble holds the whole answer as it is written (`full`, from its tokens). Once its
  // sound plays, the bubble follows it: the sentences heard show plainly, the one sounding now is
  // marked, and what is still to be said waits, dimmed. (The speech engines give no word times, so
  // captions move sentence by sentence.) A stop leaves them at what was heard; the server's `cut`
  // message then says the rest was not heard.
  function setText(bubble, full) {
    bubble.full = full;
    renderText(bubble);
  }

  const renderText = (bubble) => Council.captions.render(bubble);
  const locate = (bubble, index, words) => Council.captions.locate(bubble, index, words);

  function caption(turnId, index) {
    const t = turns.get(turnId);
    if (!t || t.stopped) return;
    if (index === null) {  // between two sentences, or the answer is over
      const over = t.done && !player.busy;
      for (const bubble of t.members.values()) {
        if (!bubble.caption || (!bubble.caption.playing && !over)) continue;
        bubble.caption = over ? null : { ...bubble.caption, playing: false };
        renderText(bubble);
      }
      return;
    }
    const clip = player.clips(turnId).get(`${index}:0`);
    const bubble = clip && t.members.get(clip.member || "Council");
    if (!bubble || (bubble.caption && bubble.caption.index === index && bubble.caption.playing)) return;
    bubble.caption = { ...locate(bubble, index, clip.text), index, playing: true };
    renderText(bubble);
    bubble.querySelector(".now")?.scrollIntoView({ block: "nearest" });
  }

  function freezeCaptions(turnId) {
    for (const bubble of turns.get(turnId)?.members.values() || []) {
      if (bubble.caption && bubble.caption.playing) { bubble.caption = { ...bubble.caption, playing: false }; renderText(bubble); }
    }
  }

  function onAudio(frame) {
    const p = frame.payload;
    const turnId = p.turn_id || frame.job_id;
    const clip = player.describe(turnId, p);
    sentenceControl(turnId, p);
    if (frame.pcm) {  // live: its samples follow in a binary frame
      if (!player.following(turnId) && !turn(turnId).stopped) player.follow(turnId);
      pendingPcm = frame;
      return;
    }
    // History: spoken only if it is where playback of this answer has to go on (a reload, a
    // reconnect), fetched then.
    if (resumeAt && resumeAt.turn_id === turnId && !player.following(turnId)) {
      player.follow(turnId, resumeAt.index, resumeAt.chunk, resumeAt.offset_s);
    }
    if (player.wants(turnId, clip.index, clip.chunk)) player.fetchClip(turnId, clip);
  }

  function onBinary(data) {
    const view = new DataView(data);
    const size = view.getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 4, size)));
    if (pendingPcm && pendingPcm.id === header.id) pendingPcm = null;
    player.addPcm(header, data.slice(4 + size));
  }

  // ---- the conversation's state --------------------------------------------------------------
  // One line above the composer says where the conversation is, from the events as they come:
  // connected or not, the microphone open and hearing the person, the council thinking or
  // speaking, and when the microphone is off, why. Its meter shows the level of the sound the
  // microphone really hands the page (what the server hears), in dBFS. Screen readers hear the
  // line politely, once it has held for a moment: a pause between two words does not make them
  // hear "listening" again.
  const view = { connected: false, everConnected: false, listening: false, hearing: false, blocked: false, needsClick: false, llmDown: false };
  let shown = "", announced = "", announcing = null, streamEndedAt = 0, levelToldAt = 0;

  function conversationState() {
    const hands = modeSelect.value === "hands_free";
    if (!view.connected) return ["offline", view.everConnected ? "Reconnecting to the server…" : "Connecting…"];
    if (player.busy) {
      return ["speaking", !mic ? "Speaking · Esc or Stop interrupts"
        : headphones.checked || !hands ? "Speaking · speak (or press Esc) to interrupt"
          : "Speaking · still listening: speak (or press Esc) to interrupt"];
    }
    if (!$("play-banner").hidden) return ["held", "The answer waits: your browser plays sound only after a click (Play the answer, at the top)"];
    if (view.hearing && mic) return ["hearing", "Hearing you…"];
    if (activeTurn) return ["thinking", "Thinking…"];
    if (recorder) return ["recording", "Recording · click the microphone when you have finished"];
    if (mic) {
      if (!view.listening) return ["opening", "Opening the microphone…"];
      return ["listening", hands ? "Listening · just talk" : "Listening · click the microphone when you have finished"];
    }
    if (view.blocked) return ["blocked", "Mic off: the microphone is blocked for this site. Allow it in the browser's site settings, then click the microphone"];
    if (view.needsClick) return ["paused", "Mic off: hands-free was on; your browser wants a click to open the microphone again"];
    if (view.llmDown) return ["down", "Waiting for a language model (see the notice at the top)"];
    return ["off", "Mic off · click the microphone to talk, or type"];
  }

  function showState() {
    const [key, label] = conversationState();
    $("level").hidden = !mic;
    $("resume-listening").hidden = !(view.needsClick && !mic);
    // Called on every event (each token): only a change is shown, and only a change restarts the
    // wait before a screen reader hears it (else a streaming answer would keep it from ever being said).
    if (label === shown) return;
    shown = label;
    $("convo").dataset.state = key;
    $("state-label").textContent = label;
    clearTimeout(announcing);
    announcing = setTimeout(() => {
      if (label !== announced) { announced = label; $("announce").textContent = label; }
    }, 800);
  }

  function showLevel(level) {
    const db = level > 0 ? Math.max(-60, 20 * Math.log10(level)) : -60;
    const share = ((db + 60) / 60).toFixed(3);
    micButton.style.setProperty("--level", share);
    const meter = $("level");
    meter.style.setProperty("--level", share);
    meter.dataset.db = db.toFixed(1);
    if (performance.now() - levelToldAt > 500) {  // for assistive technology: twice a second is plenty
      levelToldAt = performance.now();
      meter.setAttribute("aria-valuenow", Math.round(db));
      meter.setAttribute("aria-valuetext", db <= -55 ? "silent" : `${Math.round(db)} dB`);
    }
  }

  function streamEnded() {
    streamId = null;
    view.listening = view.hearing = false;
    streamEndedAt = Date.now();
  }

  // ---- messages for people ---------------------------------------------------------------------
  // What a person reads for an error is Council.words' (words.js); the protocol's own text goes to
  // the console only.
  function forPeople(error) {
    console.info("council:", error.code, error.message);
    // Microphone frames still on their way as a stream ended are refused once: nothing was lost.
    if (error.code === "bad_state" && (mic || Date.now() - streamEndedAt < 3000)) return null;
    return Council.words.forError(error);
  }

  // How to allow the microphone in this browser: said once, the first time it is refused.
  let blockedTold = false;

  function micRefused(err, auto) {
    console.info("council: the microphone did not open:", err.name, err.message);
    if (err.name === "NotAllowedError" || err.name === "SecurityError") {
      view.blocked = true;
      if (!blockedTold) { blockedTold = true; note(Council.words.howToAllow(navigator.userAgent), "error"); }
    } else if (auto || err.name === "NeedsClickError") {
      view.needsClick = true;  // the "Resume listening" button does it with the click the browser wants
    } else {
      note(Council.words.micError(err.name), "error");
    }
  }

  // ---- events from the server -----------------------------------------------------------------
  const continuedBubbles = [];  // what was said before a pause the person went on from
  const UNDUCK_MS = 1500;       // the answer's voice comes back this long after the person stops
  let unduck = null;

  // Words heard while the answer played that the server could not tell from its own voice: kept,
  // shown, and one click asks them.
  function overheard(words, turnId) {
    const el = note(`I heard you while I was speaking: “${words}”`);
    turn(turnId).overheard = el;  // gone again if the person goes on: the words join their question
    const ask = document.createElement("button");
    ask.type = "button";
    ask.className = "btn";
    ask.textContent = "Ask this";
    ask.addEventListener("click", () => {
      ask.disabled = true;
      player.unlock();
      if (player.busy || activeTurn) stopAnswer("new-turn");
      send({ type: "text", text: words, voice: voiceSelect.value || undefined, hear_members: hearMembers() });
    });
    el.append(ask);
  }
  const myStreams = new Set();  // microphone streams this page opened
  // A listener may say "listening" before the server's `mic` frame says the stream is ours (the
  // two travel apart): kept, while one is being opened, until that frame comes.
  let heardBeforeMic = null;
  let utterance = null;         // the user bubble of what is being said into the microphone

  function ours(p) {
    return Boolean(p.stream_id) && myStreams.has(p.stream_id);
  }

  function onEvent(frame) {
    handle(frame);
    showState();
    // While a turn is answered its words arrive token by token: a screen reader hears the log
    // once the answer is written, not every token as it comes.
    $("log").setAttribute("aria-busy", activeTurn ? "true" : "false");
  }

  function handle(frame) {
    if (frame.id) lastEventId = frame.id;
    const p = frame.payload || {};
    switch (frame.type) {
      case "session":
        if (frame.resume) {         // a new session: keep what brings this page back to it
          sessionId = frame.session_id;
          resume = frame.resume;
          localStorage.setItem("council.session_id", sessionId);
          localStorage.setItem("council.resume", resume);
        }
        if (frame.played && !frame.played.done && !player.turn) resumeAt = frame.played;
        fillVoices(frame.voices);
        showLLM(frame.llm);
        // Council members speak in their own voices; the picker is for the echo responder.
        voiceSelect.closest("label").hidden = Boolean(frame.llm);
        $("hear-members").closest("label").hidden = !frame.llm;
        if (mic && !streamId) openStream();  // a reconnect while the microphone was on
        else if (!mic && !recorder) resumeListening();  // hands-free was on before a reload
        break;
      case "mic":
        streamId = frame.stream_id;
        myStreams.add(streamId);
        if (!mic) send({ type: "listen_end" });  // closed before the server said it was open
        else if (heardBeforeMic === streamId) { setMicState("listening"); view.listening = true; }
        heardBeforeMic = null;
        break;
      case "listening":
        if (ours(p) && mic) { setMicState("listening"); view.listening = true; }
        else if (mic && !streamId) heardBeforeMic = p.stream_id;
        break;
      case "speech_started":
        if (!ours(p)) break;
        if (mic) { setMicState("hearing"); view.hearing = true; }
        if (p.continues && turns.get(p.continues)?.overheard) {  // kept words the person goes on from
          const kept = turns.get(p.continues);
          kept.overheard.remove();
          kept.overheard = null;
          if (kept.user) continuedBubbles.push(kept.user);
        }
        if (mic && player.busy && headphones.checked) stopAnswer("barge-in");
        // On speakers it may be the answer's own echo: the server decides (`echo_checked`); the
        // answer meanwhile speaks lower, so that less of it blurs what the person says.
        else if (mic && player.busy) { clearTimeout(unduck); player.duck(true); }
        if (!utterance) {
          utterance = add("user", "You", "…");
          utterance.querySelector(".text").classList.add("pending");
        }
        break;
      case "transcript_partial":
        if (ours(p) && utterance) utterance.querySelector(".text").textContent = p.text + " …";
        break;
      case "speech_stopped":
        if (ours(p)) view.hearing = false;
        if (ours(p) && mic) setMicState("listening");
        if (ours(p)) { clearTimeout(unduck); unduck = setTimeout(() => player.duck(false), UNDUCK_MS); }
        break;
      case "listen_done":
        if (frame.job_id === streamId) { streamEnded(); if (mic) reopenSoon(); }
        break;
      case "routed": {
        const el = add("route", null, p.route === "council"
          ? `The council deliberates — ${p.reason}` : `Quick answer — ${p.reason}`);
        el.className = "route";
        el.dataset.turn = frame.job_id;
        break;
      }
      case "member_started":
        memberBubble(turn(frame.job_id), p.member);
        break;
      case "member_dropped": {
        const bubble = memberBubble(turn(frame.job_id), p.member);
        if (!bubble.full) setText(bubble, `(dropped out: ${p.reason})`);
        break;
      }
      case "critique": {
        const c = document.createElement("div");
        c.className = "critique";
        c.textContent = "Critique: " + p.text;
        memberBubble(turn(frame.job_id), p.member).append(c);
        break;
      }
      case "turn_started": {
        const t = turn(frame.job_id);
        t.previous = activeTurn;  // back to it if this turn proves to be the answer's own echo
        activeTurn = frame.job_id;
        if (ours(p)) view.hearing = false;
        if (p.stream_id && ours(p) && utterance) {
          t.user = utterance;  // what was being said is this turn
          utterance = null;
        } else {
          t.user = add("user", "You", p.input === "voice" ? "listening…" : p.text);
          if (p.input === "voice") t.user.querySelector(".text").classList.add("pending");
        }
        updateStop();
        break;
      }
      case "joined": {
        const t = turns.get(frame.job_id);
        if (t && t.user) {
          t.user.title = "Answered together with what you said before: " + p.text;
          // What was said before a pause the listener then saw continued is this question's
          // beginning: one bubble for both.
          const before = continuedBubbles.splice(0);
          before.forEach((el) => el.remove());
          if (before.length) t.user.querySelector(".text").textContent = p.text;
        }
        break;
      }
      case "echo_checked": {
        const t = turns.get(frame.job_id);
        if (p.verdict === "person") spokenOver(p.over);
        else player.duck(false);
        if (p.verdict === "echo") {
          if (t && t.user) t.user.remove();
          debugNote(`Not you: the microphone heard the answer itself (“${p.text}”).`);
        }
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
        const bubble = memberBubble(turn(frame.job_id), p.member);
        setText(bubble, (bubble.full || "") + p.text);
        break;
      }
      case "message": {
        const bubble = memberBubble(turn(frame.job_id), p.member);
        const el = bubble.querySelector(".text");
        if (p.cut) {  // stopped: what was heard, and the rest, unheard
          const whole = bubble.full || "";
          const heardPart = p.text.replace(/…$/, "");
          bubble.caption = null;
          el.textContent = p.text;
          const rest = whole.startsWith(heardPart) ? whole.slice(heardPart.length).trim() : "";
          if (rest) {
            const unheard = document.createElement("span");
            unheard.className = "unheard";
            unheard.title = "Not heard: the council goes on from what you heard";
            unheard.textContent = " " + rest;
            el.append(unheard);
          }
        } else {
          setText(bubble, p.text);
        }
        break;
      }
      case "audio":
        onAudio(frame);
        break;
      case "failed":
        if (frame.job_id === streamId) { streamEnded(); note(forPeople(p), "error"); if (mic) reopenSoon(); break; }
        note(forPeople(p), "error");
        break;
      case "turn_done":
      case "turn_cancelled": {
        const t = turn(frame.job_id);
        t.done = true;
        player.ended(frame.job_id);
        if (p.reason === "continued") {  // the person went on: nothing of it was said; joined next
          for (const bubble of t.members.values()) bubble.remove();
          t.members.clear();
          document.querySelectorAll(`.route[data-turn="${frame.job_id}"]`).forEach((el) => el.remove());
          if (t.user) continuedBubbles.push(t.user);
        }
        if (p.reason === "barge_in") spokenOver(frame.job_id);
        if (p.status === "overheard") overheard(p.text, frame.job_id);
        for (const bubble of t.members.values()) {  // nobody is thinking any more
          if (!bubble.full) setText(bubble, frame.type === "turn_cancelled" ? "(stopped)" : "(no answer)");
        }
        if (frame.job_id === activeTurn) {
          const before = (p.status === "echo" || p.status === "overheard") && t.previous;
          activeTurn = before && !turn(before).done ? before : null;
        }
        if (p.status === "empty" && t.user && t.user.querySelector(".text.pending")) t.user.remove();
        if (p.status === "failed" && p.error) note(forPeople(p.error), "error");
        if (p.speech_failed && p.error) note(`${p.speech_failed} sentence(s) could not be spoken: ${forPeople(p.error)}`, "error");
        updateStop();
        break;
      }
      case "error": {
        const message = forPeople(frame.error);
        if (message) note(message, "error");
        break;
      }
      case "events_trimmed":
        note(frame.message);
        break;
    }
  }

  // With no language model the council cannot answer: one notice that stays in view and says what
  // to do, Send and the microphone off, and a look every 10 s until a model answers.
  let llmPoll = null;
  function showLLM(statuses) {
    const down = (statuses || []).length > 0 && statuses.every((s) => !s.ready);
    const banner = $("banner");
    // Not an error: the small built-in model answers, and the notice says how to get real answers.
    // It may be dismissed (for as long as it says the same); on a phone it shows its first sentence.
    const notice = down ? null : (statuses || []).map((s) => s.ready && s.notice).find(Boolean);
    const words = down
      ? "The council has no language model to answer with: " + statuses.map((s) => s.detail).join(" ") +
        " Or run Council with COUNCIL_RESPONDER=echo to try the voice path without one."
      : notice || "";
    banner.hidden = !words || (notice && localStorage.getItem("council.notice-dismissed") === notice);
    banner.classList.toggle("info", Boolean(notice));
    banner.dataset.notice = notice || "";
    const first = notice ? (notice.match(/^.*?[.!?](\s|$)/) || [notice])[0] : words;
    $("banner-text").textContent = first;
    $("banner-more-text").textContent = words.slice(first.length);
    $("banner-more").hidden = !words.slice(first.length).trim();
    $("banner-close").hidden = !notice;
    view.llmDown = down;
    for (const el of [$("send"), micButton]) {
      if (!("title" in el.dataset)) el.dataset.title = el.title;
      el.disabled = down;
      el.title = down ? "No language model answers yet (see the notice at the top)" : el.dataset.title;
    }
    hint();
    showState();
    clearInterval(llmPoll);
    if (down) {
      llmPoll = setInterval(async () => {
        const response = await Council.fetch("/health").catch(() => null);
        if (response && response.ok) showLLM((await response.json()).llm);
      }, 10000);
    }
  }

  $("banner-close").addEventListener("click", () => {
    localStorage.setItem("council.notice-dismissed", $("banner").dataset.notice);
    $("banner").hidden = true;
  });
  $("banner-more").addEventListener("click", () => {
    const open = $("banner").classList.toggle("open");
    $("banner-more").textContent = open ? "Less" : "More";
    $("banner-more").setAttribute("aria-expanded", String(open));
  });

  // Each voice with what it sounds like. A change applies to the next answer, spoken turns on an
  // open microphone included (`options`: the server takes the choice as each turn starts).
  function fillVoices(voices) {
    const names = Object.keys(voices || {});
    const chosen = localStorage.getItem("council.voice") || voiceSelect.value || "joe";
    voiceSelect.replaceChildren(...names.map((name) =>
      new Option(voices[name] ? `${name} · ${voices[name]}` : name, name, false, name === chosen)));
  }
  const sendOptions = () => send({ type: "options", voice: voiceSelect.value || undefined, hear_members: hearMembers() }, { quiet: true });
  voiceSelect.addEventListener("change", () => {
    localStorage.setItem("council.voice", voiceSelect.value);
    sendOptions();
  });
  $("hear-members").addEventListener("change", sendOptions);

  // ---- the connection -------------------------------------------------------------------------
  function setStatus(online, label) {
    $("status").classList.toggle("online", online);
    $("status").querySelector("span").textContent = label;
    view.connected = online;
    view.everConnected ||= online;
    showState();
  }

  function connect() {
    // A fresh page replays the whole conversation (shown, not spoken); a reconnect, what it missed.
    const after = lastEventId || "0";
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams({ last_event_id: after, audio: "pcm16" });
    if (sessionId && resume) { params.set("session_id", sessionId); params.set("resume", resume); }
    const url = Council.withToken(`${scheme}://${location.host}/ws/chat?${params}`);
    socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => { backoff = 500; setStatus(true, "connected"); };
    socket.onmessage = (m) => {
      if (typeof m.data !== "string") return onBinary(m.data);
      const frame = JSON.parse(m.data);
      // The kept session expired or is another user's (another token): start a new one.
      if (frame.type === "error" && frame.error.code === "forbidden_session") return forgetSession();
      onEvent(frame);
    };
    socket.onclose = async (e) => {
      streamEnded();  // the server let the stream go with the connection
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

  function send(frame, { quiet = false } = {}) {
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(frame)); return true; }
    if (!quiet) note("Not connected to the server right now; try again in a moment.", "error");
    return false;
  }

  // ---- typing ---------------------------------------------------------------------------------
  const MAX_TEXT = 4000;  // what one turn may be (PROTOCOL.md): counted as it is typed, never cut
  function countText() {
    const n = text.value.trim().length;
    const counter = $("counter");
    counter.hidden = n < MAX_TEXT * 0.8;
    counter.textContent = `${n} / ${MAX_TEXT}`;
    counter.classList.toggle("over", n > MAX_TEXT);
    $("send").classList.toggle("blocked", n > MAX_TEXT);
  }
  text.addEventListener("input", countText);
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const words = text.value.trim();
    if (!words) return;
    if (view.llmDown) return hint(true);  // nothing would answer: the words stay in the box, and the hint says why
    if (words.length > MAX_TEXT) {
      note(`That is ${words.length} characters; a message may have ${MAX_TEXT}. Shorten it or send it in parts: it is still in the box.`, "error");
      return;
    }
    player.unlock();
    if (player.busy || activeTurn) stopAnswer("new-turn");
    if (send({ type: "text", text: words, voice: voiceSelect.value || undefined, hear_members: hearMembers() })) {
      text.value = "";
      countText();
    }
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  const hearMembers = () => $("hear-members").checked;
  stopButton.addEventListener("click", () => { player.unlock(); stopAnswer("stop"); });
  // Escape stops the answer and its speech, from anywhere on the page (not while a dialog is open).
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || e.defaultPrevented || document.querySelector("dialog[open]")) return;
    if (!(player.busy || activeTurn)) return;
    e.preventDefault();
    player.unlock();
    stopAnswer("stop");
  });

  // ---- speaking -------------------------------------------------------------------------------
  // Hands-free: the microphone stays open and the server hears where each turn ends. Push to
  // talk: click, speak, click. Both stream 20 ms frames as they are captured.
  modeSelect.value = localStorage.getItem("council.mode") || "hands_free";
  headphones.checked = localStorage.getItem("council.headphones") === "1";
  modeSelect.addEventListener("change", () => { localStorage.setItem("council.mode", modeSelect.value); if (mic) closeMic(); hint(); });
  headphones.addEventListener("change", () => {
    localStorage.setItem("council.headphones", headphones.checked ? "1" : "0");
    player.setCancelEcho(loopback());
    hint();
  });
  // Without headphones the answer plays through the loopback (the echo canceller's reference);
  // `council.loopback` = "0" turns it off, to measure what it does (tests/web/test_speakers.py).
  const loopback = () => !headphones.checked && localStorage.getItem("council.loopback") !== "0";
  player.setCancelEcho(loopback());

  function hint(refused = false) {
    $("hint").classList.toggle("warn", view.llmDown);
    if (view.llmDown) {
      $("hint").textContent = (refused ? "Not sent: " : "Send and the microphone are off: ") +
        "no language model answers yet (see the notice at the top). What you type stays in the box.";
      return;
    }
    $("hint").textContent = modeSelect.value === "hands_free"
      ? (headphones.checked
        ? "Hands-free: talk whenever you like; speaking while the council answers interrupts it."
        : "Hands-free: talk whenever you like, even while the council speaks: it tells your voice from its own, and stops when you speak over it.")
      : "Push to talk: click the microphone, speak, click again.";
    $("hint").textContent += " Esc stops the answer.";
  }
  hint();

  function setMicState(state) {
    micButton.dataset.state = state;
    micButton.classList.toggle("recording", state !== "off");
  }

  function openStream() {
    view.listening = view.hearing = false;
    send({ type: "listen", mode: modeSelect.value, sample_rate: 16000, voice: voiceSelect.value || undefined, hear_members: hearMembers() });
  }

  function reopenSoon() {
    if (modeSelect.value !== "hands_free") { closeMic(); return; }
    clearTimeout(reopening);
    reopening = setTimeout(() => { if (mic && !streamId) openStream(); }, 500);
  }

  // `auto`: no click asked for it (hands-free coming back after a reload): where the browser wants
  // a click first, the page offers "Resume listening" instead.
  async function openMic({ auto = false } = {}) {
    player.unlock();
    if (!Council.Mic.supported()) return recordClip();
    mic = new Council.Mic({
      onFrame: (pcm) => { if (streamId && socket && socket.readyState === WebSocket.OPEN) socket.send(pcm); },
      onLevel: showLevel,
    });
    showState();
    try {
      await mic.start();
    } catch (err) {
      mic = null;
      micRefused(err, auto);
      showState();
      return false;
    }
    view.blocked = view.needsClick = false;
    player.unlock();  // a page that captures may play (Chrome): the answers' sound too, with no click
    // Hands-free is remembered: a reload opens the microphone again (closing it forgets).
    if (modeSelect.value === "hands_free") localStorage.setItem("council.listening", "1");
    window.councilMic = mic;
    openStream();
    setMicState("open");
    showState();
    const started = Date.now();
    $("mic-timer").hidden = false;
    timer = setInterval(() => {
      const s = Math.floor((Date.now() - started) / 1000);
      $("mic-timer").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    }, 250);
  }

  function closeMic() {
    if (streamId) send({ type: "listen_end" });
    streamEnded();
    localStorage.removeItem("council.listening");
    clearTimeout(reopening);
    mic?.stop();
    mic = null;
    clearInterval(timer);
    $("mic-timer").hidden = true;
    $("mic-timer").textContent = "0:00";
    micButton.style.setProperty("--level", 0);
    setMicState("off");
    showState();
  }

  // Hands-free was on when this page was last open: listen again, with no click where the browser
  // allows it; else say why not, with one button that does it.
  let resumeTried = false;
  async function resumeListening() {
    if (resumeTried) return;
    resumeTried = true;
    if (localStorage.getItem("council.listening") !== "1" || modeSelect.value !== "hands_free" || view.llmDown) return;
    const permission = await micPermission();
    if (permission === "denied") view.blocked = true;
    else if (permission === "prompt") view.needsClick = true;  // a question nobody clicked for would surprise
    else if (!mic) await openMic({ auto: true });
    showState();
  }

  async function micPermission() {
    try {
      return (await navigator.permissions.query({ name: "microphone" })).state;
    } catch {
      return null;  // a browser that does not say: try
    }
  }
  $("resume-listening").addEventListener("click", () => { view.needsClick = false; openMic(); });

  async function recordClip() {
    if (recorder) { recorder.stop(); recorder = null; setMicState("off"); showState(); return; }
    recorder = new Council.Recorder({ send, sendBytes: (b) => socket.send(b) });
    let started = false;
    try {
      started = await recorder.start({ voice: voiceSelect.value || undefined, hear_members: hearMembers() });
    } catch (err) {
      micRefused(err, false);
    }
    if (started) setMicState("open");
    else recorder = null;
    showState();
  }

  micButton.addEventListener("click", () => {
    if (recorder) return recordClip();
    if (mic) closeMic(); else openMic();
  });

  // A microphone already blocked for this site shows so before anyone clicks; allowing it in the
  // browser's settings clears it.
  navigator.permissions?.query({ name: "microphone" }).then((status) => {
    const seen = () => { view.blocked = status.state === "denied"; showState(); };
    status.addEventListener("change", seen);
    if (status.state === "denied") seen();
  }).catch(() => {});

  showState();
  connect();
})();
