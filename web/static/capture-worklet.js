// The microphone's AudioWorklet: runs in the audio thread of a 16 kHz AudioContext, so the browser
// resamples the microphone for us. It posts 20 ms frames of PCM16 (320 samples) and their level
// to the page, which sends them on the chat WebSocket. It never sends silence in place of what it
// hears: the page's own voice is told from the person's by the browser's echo canceller and the
// server (web/echo.py), so nothing the person says is lost.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Int16Array(320);
    this.filled = 0;
    this.sum = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      const s = Math.max(-1, Math.min(1, input[i]));
      this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      this.sum += s * s;
      if (this.filled === this.frame.length) {
        const level = Math.sqrt(this.sum / this.frame.length);
        this.port.postMessage({ pcm: this.frame.buffer, level }, [this.frame.buffer]);
        this.frame = new Int16Array(320);
        this.filled = 0;
        this.sum = 0;
      }
    }
    return true;
  }
}
registerProcessor("pcm-capture", PcmCapture);
