// The microphone, streamed: 16 kHz PCM16 frames of 20 ms from an AudioWorklet, handed to `onFrame`
// as they come (see capture-worklet.js and PROTOCOL.md, `listen`). Where AudioWorklet is missing,
// `Council.Recorder` records a whole clip with MediaRecorder instead (`audio_start`).
Council.Mic = class {
  constructor({ onFrame, onLevel }) {
    this.onFrame = onFrame;
    this.onLevel = onLevel || (() => {});
    this.context = null;
    this.stream = null;
    this.node = null;
    this.startedAt = null;  // performance.now() of the first frame: where the fed audio begins
    this.frames = 0;
  }

  static supported() {
    return Boolean(window.AudioWorkletNode && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.context = new AudioContext({ sampleRate: 16000, latencyHint: "interactive" });
    // Without a click on the page a browser may hold the context back (its autoplay policy): then
    // the microphone is let go and the error says so (NeedsClickError), rather than wait forever.
    if (this.context.state !== "running") {
      const running = await Promise.race([
        this.context.resume().then(() => true, () => false),
        new Promise((resolve) => setTimeout(() => resolve(false), 3000)),
      ]);
      if (!running) {
        this.stop();
        throw Object.assign(new Error("the browser waits for a click before it processes sound"), { name: "NeedsClickError" });
      }
    }
    await this.context.audioWorklet.addModule("/static/capture-worklet.js");
    const source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, "pcm-capture", { numberOfInputs: 1, numberOfOutputs: 0 });
    this.node.port.onmessage = (e) => {
      if (this.startedAt === null) this.startedAt = performance.now() - 20;
      this.frames += 1;
      this.onFrame(e.data.pcm);
      this.onLevel(e.data.level);
    };
    source.connect(this.node);
  }

  stop() {
    this.stream?.getTracks().forEach((t) => t.stop());
    this.node?.disconnect();
    this.context?.close();
    this.context = this.stream = this.node = null;
  }
};

// A whole recording, uploaded at the end: for browsers without AudioWorklet. The last chunk is
// sent before `audio_end` (each send waits for the one before), and `audio_start` names the
// container MediaRecorder really chose.
Council.Recorder = class {
  constructor({ send, sendBytes }) {
    this.send = send;
    this.sendBytes = sendBytes;
    this.recorder = null;
  }

  async start(options) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
    const wanted = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/ogg"];
    const type = wanted.find((t) => MediaRecorder.isTypeSupported(t)) || "";
    this.recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    const format = this.recorder.mimeType.includes("ogg") ? "ogg" : "webm";
    if (!this.send({ type: "audio_start", format, ...options })) {
      stream.getTracks().forEach((t) => t.stop());
      this.recorder = null;
      return false;
    }
    let sending = Promise.resolve();
    this.recorder.ondataavailable = (e) => {
      if (e.data.size) sending = sending.then(() => e.data.arrayBuffer()).then((b) => this.sendBytes(b));
    };
    this.done = new Promise((resolve) => {
      this.recorder.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        // onstop comes after the last dataavailable: once its bytes are sent, the recording ends.
        sending.then(() => { this.send({ type: "audio_end" }); resolve(); });
      };
    });
    this.recorder.start(250);
    return true;
  }

  stop() {
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
    this.recorder = null;
  }
};
