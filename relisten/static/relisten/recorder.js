// The microphone (and camera) side of recording: MediaRecorder cutting a chunk every few
// seconds, an input level from a Web Audio AnalyserNode, and elapsed time without the pauses.
// It knows nothing about uploading: each chunk goes to `onChunk(blob, ms)`.

const AUDIO_TYPES = ["audio/webm;codecs=opus", "audio/webm", "audio/mp4"];
const VIDEO_TYPES = ["video/webm;codecs=vp9,opus", "video/webm;codecs=vp8,opus", "video/webm",
                     "video/mp4"];

export function supportedType(kind) {
  if (typeof MediaRecorder === "undefined") return "";
  const candidates = kind === "video" ? VIDEO_TYPES : AUDIO_TYPES;
  return candidates.find((type) => MediaRecorder.isTypeSupported(type)) || "";
}

export function canRecordHere() {
  return Boolean(window.isSecureContext && navigator.mediaDevices?.getUserMedia
                 && typeof MediaRecorder !== "undefined" && window.indexedDB);
}

// Why getUserMedia failed, in words a clinician can act on.
export function inputProblem(error, kind) {
  const device = kind === "video" ? "microphone and camera" : "microphone";
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return `The browser was not allowed to use the ${device}. Allow it in the browser's `
        + "site settings (the icon beside the address), then try again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return `No ${device} was found. Connect one and try again.`;
    case "NotReadableError":
    case "AbortError":
      return `The ${device} is in use by another program or could not be started. `
        + "Close other programs that use it and try again.";
    default:
      return `The ${device} could not be started (${error?.name || "unknown problem"}).`;
  }
}

export class Recorder {
  // options: {kind, timesliceMs, onChunk(blob, ms), onLevel(fraction, dB), onEnded(reason)}
  constructor(options) {
    Object.assign(this, options);
    this.mimeType = supportedType(this.kind);
    this.activeMs = 0;
    this.resumedAt = null;
    this.lastChunkAt = 0;
  }

  async open() {
    const constraints = {
      audio: { channelCount: 1 },
      video: this.kind === "video" ? { width: { ideal: 1280 }, height: { ideal: 720 } } : false,
    };
    this.stream = await navigator.mediaDevices.getUserMedia(constraints);
    for (const track of this.stream.getTracks()) {
      track.addEventListener("ended", () => this.onEnded?.("device"));
    }
    this.watchLevel();
    return this.stream;
  }

  watchLevel() {
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (!AudioContextClass || !this.stream.getAudioTracks().length) return;
    this.audio = new AudioContextClass();
    const source = this.audio.createMediaStreamSource(this.stream);
    const analyser = this.audio.createAnalyser();
    analyser.fftSize = 2048;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    // A timer rather than requestAnimationFrame: it keeps measuring in a background tab.
    this.levelTimer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const value of samples) sum += value * value;
      const rms = Math.sqrt(sum / samples.length);
      const db = rms > 0 ? 20 * Math.log10(rms) : -100;
      this.onLevel?.(Math.max(0, Math.min(1, (db + 60) / 60)), db);
    }, 100);
  }

  start() {
    const options = { mimeType: this.mimeType };
    if (this.kind === "video") {
      options.videoBitsPerSecond = 1_500_000;
      options.audioBitsPerSecond = 96_000;
    } else {
      options.audioBitsPerSecond = 96_000;
    }
    this.media = new MediaRecorder(this.stream, options);
    this.mimeType = this.media.mimeType || this.mimeType;
    this.media.addEventListener("dataavailable", (event) => {
      const ms = this.elapsedMs() - this.lastChunkAt;
      this.lastChunkAt += ms;
      if (event.data && event.data.size > 0) this.onChunk(event.data, ms);
    });
    this.media.addEventListener("error", () => this.onEnded?.("error"));
    this.stopped = new Promise((resolve) => this.media.addEventListener("stop", resolve));
    this.media.start(this.timesliceMs);
    this.resumedAt = performance.now();
  }

  get state() {
    return this.media?.state || "inactive";
  }

  elapsedMs() {
    const running = this.resumedAt === null ? 0 : performance.now() - this.resumedAt;
    return this.activeMs + running;
  }

  pause() {
    if (this.state !== "recording") return;
    this.media.pause();
    this.activeMs = this.elapsedMs();
    this.resumedAt = null;
  }

  resume() {
    if (this.state !== "paused") return;
    this.media.resume();
    this.resumedAt = performance.now();
  }

  // Resolves after the last chunk has been handed to onChunk.
  async stop() {
    if (this.media && this.state !== "inactive") {
      this.activeMs = this.elapsedMs();
      this.resumedAt = null;
      this.media.stop();
      await this.stopped;
    }
    this.release();
  }

  release() {
    clearInterval(this.levelTimer);
    this.stream?.getTracks().forEach((track) => track.stop());
    this.audio?.close().catch(() => {});
  }
}
