// The answer's sound: one Web Audio graph, chunks scheduled back to back in (sentence, chunk) order
// as they arrive (binary PCM on the socket, or a clip fetched by its URL), so a sentence streamed in
// chunks (XTTS) plays without gaps. Stop silences it at the next render quantum and says where it
// was: which sentence, which chunk, how far into it. A turn's chunk that never comes (its synthesis
// failed) is skipped once the turn is over.
//
// Without headphones the microphone hears this sound. Chrome's echo canceller removes only what a
// peer connection plays (FACTS.md; Chromium issue 687574), so then the graph's output goes through
// a loopback RTCPeerConnection on this page (Web Audio → MediaStreamDestination → pc1 → pc2 → an
// <audio> element) and the canceller has its reference. It costs the path's delay (measured in
// `delay`, and counted in every figure the page reports) and an Opus encoding at 128 kbit/s; with
// headphones the graph plays directly.
Council.Player = class {
  constructor({ onPlayed, onBusy, onBlocked, onUnblocked, onSentence }) {
    this.onPlayed = onPlayed || (() => {});   // ({turn_id, index, chunk, offset_s, done}) as playback moves
    this.onBusy = onBusy || (() => {});       // (busy): sound playing, or scheduled to
    this.onBlocked = onBlocked || (() => {}); // the browser will not play until the person clicks
    this.onUnblocked = onUnblocked || (() => {});
    this.onSentence = onSentence || (() => {}); // (turnId, index | null): the sentence now playing
    this.context = null;
    this.turn = null;          // the turn being played: {id, clips, next, endAt, timeline, gain, ended, stopped}
    this.turns = new Map();    // turn id -> its clips, for replaying a sentence by hand
    this.busy = false;
    this.stats = { firstSound: {}, stops: [], loopback: [] };
    this.cancelEcho = false;   // route through the loopback peer connection (no headphones)
    this.loop = null;          // {a, b, audio, destination}: the loopback, once it carries sound
    this.connecting = null;    // the loopback being made
    this.measuring = false;    // its delay is being measured (_measureDelay)
    this.delay = 0;            // seconds the loopback adds between the graph and the speakers
    this._reported = "";
    setInterval(() => this._tick(), 100);
  }

  // The AudioContext, made (or resumed) in a click handler where the browser allows sound.
  unlock() {
    if (!this.context) {
      this.context = new AudioContext({ latencyHint: "interactive" });
      this.master = this.context.createGain();
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = 256;
      this.master.connect(this.analyser);
      this._route();
      this.context.onstatechange = () => {
        if (this.context.state === "running") { this.onUnblocked(); this._pump(); }
      };
    }
    if (this.context.state !== "running") this.context.resume().catch(() => {});
    if (this.loop && this.loop.audio.paused) this.loop.audio.play().catch(() => {});
    return this.context;
  }

  // Lower the answer's voice (the person may be speaking over it; on speakers, less of it reaches
  // the microphone to blur their words) or bring it back. 30 ms ramps: no click.
  duck(on) {
    if (!this.master || this.ducked === Boolean(on)) return;
    this.ducked = Boolean(on);
    const now = this.context.currentTime;
    this.master.gain.cancelScheduledValues(now);
    this.master.gain.setValueAtTime(this.master.gain.value, now);
    this.master.gain.linearRampToValueAtTime(on ? 0.25 : 1, now + 0.03);
  }

  // Play through the loopback peer connection (true: the echo canceller hears it) or directly.
  setCancelEcho(on) {
    this.cancelEcho = Boolean(on);
    if (this.context) this._route();
  }

  _route() {
    const loop = this.cancelEcho && window.RTCPeerConnection;
    try { this.analyser.disconnect(); } catch { /* not connected */ }
    if (!loop) { this.analyser.connect(this.context.destination); this.delay = 0; return; }
    if (this.loop) { this.analyser.connect(this.loop.destination); this._measureDelay(); return; }
    // Directly until the loopback carries sound (it connects in a few ms on this page).
    this.analyser.connect(this.context.destination);
    this.connecting ||= this._loopback()
      .catch((err) => console.warn("council: loopback playback failed, playing directly:", err))
      .finally(() => { this.connecting = null; });
  }

  // The loopback is kept (`this.loop`) only once it carries sound; one that fails is closed, and
  // the answers go on playing directly.
  async _loopback() {
    const destination = this.context.createMediaStreamDestination();
    const a = new RTCPeerConnection(), b = new RTCPeerConnection();
    const audio = new Audio();
    audio.autoplay = true;
    try {
      await this._connect(a, b, audio, destination);
    } catch (err) {
      a.close();
      b.close();
      throw err;
    }
    this.loop = { a, b, audio, destination };
    if (!this.cancelEcho) return;  // headphones ticked meanwhile
    try { this.analyser.disconnect(); } catch { /* not connected */ }
    this.analyser.connect(destination);
    console.info("council: answers play through a loopback peer connection (the echo canceller hears them)");
    this._measureDelay();
  }

  async _connect(a, b, audio, destination) {
    a.onicecandidate = (e) => { if (e.candidate) b.addIceCandidate(e.candidate).catch(() => {}); };
    b.onicecandidate = (e) => { if (e.candidate) a.addIceCandidate(e.candidate).catch(() => {}); };
    const playing = new Promise((resolve) => {
      b.ontrack = (e) => {
        if ("jitterBufferTarget" in e.receiver) e.receiver.jitterBufferTarget = 0;  // as little delay as it allows
        audio.srcObject = e.streams[0];
        audio.play().then(resolve, resolve);  // (blocked until a click: unlock() plays it then)
      };
    });
    for (const track of destination.stream.getAudioTracks()) a.addTrack(track, destination.stream);
    const offer = await a.createOffer();
    await a.setLocalDescription(offer);
    await b.setRemoteDescription(offer);
    const answer = await b.createAnswer();
    await b.setLocalDescription(answer);
    // What the receiver asks of the sender: Opus at 128 kbit/s, no DTX to clip the starts of words.
    const pt = (answer.sdp.match(/a=rtpmap:(\d+) opus\/48000/i) || [])[1];
    const sdp = pt ? answer.sdp.replace(new RegExp(`(a=fmtp:${pt} [^\\r\\n]*)`), "$1;maxaveragebitrate=128000;usedtx=0") : answer.sdp;
    await a.setRemoteDescription({ type: "answer", sdp });
    const connected = await new Promise((resolve) => {
      const check = () => { if (b.connectionState === "connected") resolve(true); };
      b.onconnectionstatechange = check;
      check();
      setTimeout(() => resolve(false), 5000);
    });
    if (!connected) throw new Error(`the loopback did not connect (${b.connectionState})`);
    await playing;
  }

  // The loopback's delay, from its receiver's statistics (jitter buffer, and the decoder's
  // playout); counted in where the page says its sound is and in the figures it reports.
  async _measureDelay() {
    if (this.measuring) return;  // one measuring loop at a time (headphones ticked off and on)
    this.measuring = true;
    let before = { delay: 0, count: 0 };
    while (this.loop && this.cancelEcho) {
      const stats = await this.loop.b.getStats();
      stats.forEach((r) => {
        // Over the last second (the buffer grows under load and shrinks again): + one 20 ms Opus frame.
        if (r.type === "inbound-rtp" && r.kind === "audio" && r.jitterBufferEmittedCount > before.count) {
          this.delay = (r.jitterBufferDelay - before.delay) / (r.jitterBufferEmittedCount - before.count) + 0.02;
          before = { delay: r.jitterBufferDelay, count: r.jitterBufferEmittedCount };
        }
      });
      this.stats.loopback.push(Math.round(this.delay * 1000));
      if (this.stats.loopback.length > 100) this.stats.loopback.shift();
      await new Promise((r) => setTimeout(r, 1000));
    }
    this.measuring = false;
  }

  // Seconds from the graph's clock to the person's ear: the device, and the loopback when used.
  get latency() {
    return (this.context?.outputLatency || 0) + (this.loop && this.cancelEcho ? this.delay : 0);
  }

  get blocked() {
    return Boolean(this.context) && this.context.state !== "running";
  }

  clips(turnId) {
    if (!this.turns.has(turnId)) this.turns.set(turnId, new Map());
    return this.turns.get(turnId);
  }

  // A clip of `turnId` as its `audio` event describes it; its sound comes with addPcm or fetch.
  describe(turnId, p) {
    const key = `${p.index}:${p.chunk ?? 0}`;
    const clips = this.clips(turnId);
    const clip = clips.get(key) || { index: p.index, chunk: p.chunk ?? 0, buffer: null };
    Object.assign(clip, { url: p.url, done: p.sentence_done ?? true, duration: p.duration_s, text: p.text, member: p.member });
    clips.set(key, clip);
    return clip;
  }

  // Play `turnId` from (index, chunk, offset): a new answer, or one resumed after a reload.
  follow(turnId, index = 0, chunk = 0, offset = 0) {
    if (this.turn && this.turn.id === turnId) return;
    this.stop();
    this.unlock();
    this.duck(false);  // a new answer: its full voice
    const gain = this.context.createGain();
    gain.connect(this.master);
    this.turn = { id: turnId, next: [index, chunk], offset, endAt: 0, timeline: [], sources: [], gain, ended: false, stopped: false };
    if (this.blocked) this.onBlocked();
    this._pump();
  }

  following(turnId) {
    return Boolean(this.turn && this.turn.id === turnId && !this.turn.stopped);
  }

  wants(turnId, index, chunk) {
    const t = this.turn;
    return this.following(turnId) && (index > t.next[0] || (index === t.next[0] && chunk >= t.next[1]));
  }

  addPcm(header, pcm) {
    const clip = this.clips(header.turn_id).get(`${header.index}:${header.chunk}`);
    if (!clip || !this.context) return;
    const samples = new Int16Array(pcm);
    const buffer = this.context.createBuffer(1, Math.max(1, samples.length), header.sample_rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
    clip.buffer = samples.length ? buffer : "empty";
    if (this.following(header.turn_id)) this._pump();
  }

  async fetchClip(turnId, clip) {
    if (clip.buffer || clip.fetching) return;
    if (!clip.url || clip.duration === 0) { clip.buffer = "empty"; return this._pump(); }
    clip.fetching = true;
    try {
      const response = await Council.fetch(clip.url);
      if (!response.ok) throw new Error(response.statusText);
      clip.buffer = await this.unlock().decodeAudioData(await response.arrayBuffer());
    } catch {
      clip.buffer = "empty";  // expired or gone: skipped
    }
    if (this.following(turnId)) this._pump();
  }

  // The turn's answer is complete: a chunk still missing will not come; skip past it.
  ended(turnId) {
    if (this.following(turnId)) { this.turn.ended = true; this._pump(); }
  }

  _pump() {
    const t = this.turn;
    // Nothing is scheduled while the browser holds sound back: it starts where it should, on the click.
    if (!t || t.stopped || !this.context || this.context.state !== "running") return;
    const clips = this.clips(t.id);
    for (;;) {
      let clip = clips.get(`${t.next[0]}:${t.next[1]}`);
      if (!clip && t.ended) {  // a gap: go on with the next clip there is
        const later = [...clips.values()].filter((c) => c.index > t.next[0] || (c.index === t.next[0] && c.chunk > t.next[1]))
          .sort((a, b) => a.index - b.index || a.chunk - b.chunk);
        if (!later.length) break;
        clip = later[0];
        t.next = [clip.index, clip.chunk];
      }
      if (!clip || !clip.buffer) break;
      if (clip.buffer !== "empty") {
        const source = this.context.createBufferSource();
        source.buffer = clip.buffer;
        source.connect(t.gain);
        const at = Math.max(this.context.currentTime + 0.01, t.endAt);
        const offset = Math.min(t.offset, clip.buffer.duration);
        source.start(at, offset);
        t.sources.push(source);
        if (this.loop && this.loop.audio.muted) {
          setTimeout(() => { this.loop.audio.muted = false; }, Math.max(0, (this.unmuteAt || 0) - performance.now()));
        }
        t.timeline.push({ index: clip.index, chunk: clip.chunk, at, offset, end: at + clip.buffer.duration - offset });
        t.endAt = at + clip.buffer.duration - offset;
        if (!(t.id in this.stats.firstSound)) {
          console.info(`council: playing ${t.id} from sentence ${clip.index + 1}`);
          const wait = (at - this.context.currentTime + this.latency) * 1000;
          this.stats.firstSound[t.id] = performance.now() + wait;
        }
      }
      t.offset = 0;
      t.next = clip.done ? [clip.index + 1, 0] : [clip.index, clip.chunk + 1];
    }
    this._tick();
  }

  // Where the sound is now: {turn_id, index, chunk, offset_s}, or null with nothing playing.
  position() {
    const t = this.turn;
    if (!t || !this.context) return null;
    const now = this.context.currentTime - this.latency;
    const playing = t.timeline.find((e) => e.at <= now && now < e.end) || t.timeline.find((e) => now < e.end);
    if (playing) return { turn_id: t.id, index: playing.index, chunk: playing.chunk, offset_s: Math.max(0, now - playing.at + playing.offset) };
    return { turn_id: t.id, index: t.next[0], chunk: t.next[1], offset_s: 0 };
  }

  // Silence now; where the followed answer stopped (null when there was none).
  stop() {
    const t = this.turn;
    if (!t || t.stopped) return null;
    const where = t.replayOf ? null : this.position();
    t.stopped = true;
    if (this.context) {
      const now = this.context.currentTime;
      t.gain.gain.cancelScheduledValues(now);
      t.gain.gain.setValueAtTime(0, now);
      t.sources.forEach((s) => { try { s.stop(now); } catch { /* not started */ } });
      setTimeout(() => t.gain.disconnect(), 50);
    }
    if (this.loop && this.cancelEcho) {
      // What is already in the loopback's buffers would still play for `delay`: the element that
      // plays it goes quiet now, and speaks again once that has drained.
      this.loop.audio.muted = true;
      this.unmuteAt = performance.now() + (this.delay + 0.05) * 1000;
    }
    this._tick();
    return where;
  }

  // Milliseconds from `since` (performance.now()) until the output is silent, measured on it (the
  // loopback's element is muted at once on a stop, so only the device's latency is added then).
  async silentAfter(since) {
    const data = new Float32Array(this.analyser ? this.analyser.fftSize : 0);
    for (let i = 0; i < 500 && this.analyser; i++) {
      this.analyser.getFloatTimeDomainData(data);
      if (data.every((v) => v === 0)) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    const muted = this.loop && this.cancelEcho && this.loop.audio.muted;
    const ms = performance.now() - since + (muted ? this.context?.outputLatency || 0 : this.latency) * 1000;
    this.stats.stops.push(ms);
    return ms;
  }

  // Play one sentence again, by hand (its clips fetched now if this page never had them). False
  // when its sound is no longer kept (the server frees an answer's clips once they were heard).
  async replay(turnId, index) {
    const clips = [...this.clips(turnId).values()].filter((c) => c.index === index).sort((a, b) => a.chunk - b.chunk);
    await Promise.all(clips.map((c) => this.fetchClip(null, c)));
    if (clips.length && clips.every((c) => c.buffer === "empty")) return false;
    this.stop();
    this.unlock();
    const gain = this.context.createGain();
    gain.connect(this.master);
    const t = { id: `${turnId}#replay`, next: [index, 0], offset: 0, endAt: 0, timeline: [], sources: [], gain, ended: true, stopped: false, replayOf: turnId };
    this.turns.set(t.id, new Map(clips.map((c) => [`${c.index}:${c.chunk}`, { ...c, done: c === clips[clips.length - 1] ? true : c.done }])));
    this.turn = t;
    this.stats.firstSound[t.id] = 0;
    this._pump();
    return true;
  }

  _tick() {
    const t = this.turn;
    const now = this.context ? this.context.currentTime : 0;
    const busy = Boolean(t && !t.stopped && t.endAt > now);
    if (busy !== this.busy) { this.busy = busy; this.onBusy(busy); }
    if (!t || t.stopped || t.replayOf) return;
    const where = this.position();
    const playing = t.timeline.find((e) => e.at <= now && now < e.end);
    this.onSentence(t.id, playing ? playing.index : null);
    const done = t.ended && now >= t.endAt;
    const report = `${t.id}:${where.index}:${where.chunk}:${done}`;
    if (report !== this._reported && (playing || done)) {
      this._reported = report;
      this.onPlayed({ ...where, offset_s: Math.round(where.offset_s * 1000) / 1000, done });
    }
  }
};
