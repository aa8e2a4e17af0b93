// Uploading an existing recording file: file picker or drag and drop, resumable through the
// vendored tus-js-client (a classic script that sets window.tus, loaded before this module).
// The kind (audio or video) follows the file: a container that may hold either (webm, mp4,
// mkv) is opened in a <video> element to see whether it has pictures. Consent, type and size
// are checked here to spare a pointless upload; the server checks all three again.

const AUDIO_EXTENSIONS = new Set(["mp3", "wav", "m4a", "aac", "flac", "ogg", "oga", "opus",
                                  "wma", "aif", "aiff", "amr"]);
const EITHER_EXTENSIONS = new Set(["webm", "mp4", "m4v", "mkv", "mov", "3gp", "ogv", "avi"]);
const CHUNK_BYTES = 16 * 1024 * 1024;
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000];

const extensionOf = (name) => (name.includes(".") ? name.split(".").pop().toLowerCase() : "");

const sizeLabel = (bytes) => {
  for (const [unit, factor] of [["GB", 1024 ** 3], ["MB", 1024 ** 2], ["KB", 1024]]) {
    if (bytes >= factor) return `${(bytes / factor).toFixed(1).replace(/\.0$/, "")} ${unit}`;
  }
  return `${bytes} bytes`;
};

// Whether a file has a picture track, as far as this browser can tell (null: cannot tell).
function hasPictures(file) {
  return new Promise((resolve) => {
    const probe = document.createElement("video");
    const url = URL.createObjectURL(file);
    const done = (answer) => {
      clearTimeout(timer);
      URL.revokeObjectURL(url);
      probe.removeAttribute("src");
      resolve(answer);
    };
    const timer = setTimeout(() => done(null), 5000);
    probe.preload = "metadata";
    probe.muted = true;
    probe.addEventListener("loadedmetadata", () => done(probe.videoWidth > 0));
    probe.addEventListener("error", () => done(null));
    probe.src = url;
  });
}

export async function kindOf(file) {
  const type = (file.type || "").toLowerCase();
  const extension = extensionOf(file.name);
  const audioLike = type.startsWith("audio/") || AUDIO_EXTENSIONS.has(extension);
  const eitherLike = type.startsWith("video/") || EITHER_EXTENSIONS.has(extension);
  if (!audioLike && !eitherLike) return null;
  const pictures = await hasPictures(file);
  if (pictures !== null) return pictures ? "video" : "audio";
  return type.startsWith("video/") || (!audioLike && eitherLike) ? "video" : "audio";
}

async function fingerprintOf(file, session, kind) {
  // Kept in localStorage to resume after a reload: hashed, because a file name can hold a name.
  const text = [session, kind, file.name, file.type, file.size, file.lastModified].join("\n");
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `relisten-upload-${hex}`;
}

function problemOf(error) {
  const response = error?.originalResponse;
  const status = response ? response.getStatus() : 0;
  const body = response ? (response.getBody() || "").trim() : "";
  if (!status) {
    return "The connection to the server was lost. Press “Try again” to continue from where "
      + "the upload stopped.";
  }
  if (status === 401) return "You have been signed out. Sign in again, then choose the file again "
    + "to continue the upload.";
  if (body && body.length < 400 && !body.startsWith("<")) return body;
  return `The server could not take the file (error ${status}). Try again later.`;
}

export class FileUploader {
  // ui: {input, drop, box, progress, percent, retry, cancel, state, error}
  // options: {config, csrf, announce(text), onUploaded(recordingId, kind)}
  constructor(ui, options) {
    this.ui = ui;
    Object.assign(this, options);
    this.upload = null;
    ui.input.addEventListener("change", () => {
      if (ui.input.files.length) this.choose(ui.input.files[0]);
    });
    ui.drop.addEventListener("dragover", (event) => {
      event.preventDefault();
      ui.drop.classList.add("capture-drop-over");
    });
    ui.drop.addEventListener("dragleave", () => ui.drop.classList.remove("capture-drop-over"));
    ui.drop.addEventListener("drop", (event) => {
      event.preventDefault();
      ui.drop.classList.remove("capture-drop-over");
      const files = event.dataTransfer?.files;
      if (files?.length > 1) {
        this.fail("Please drop one file at a time.");
      } else if (files?.length) {
        this.choose(files[0]);
      }
    });
    ui.retry.addEventListener("click", () => this.start());
    ui.cancel.addEventListener("click", () => this.cancel());
  }

  say(text) {
    this.ui.state.textContent = text;
    this.ui.state.hidden = !text;
    if (text) this.announce(text);
  }

  fail(text) {
    this.ui.error.textContent = text;
    this.ui.error.hidden = !text;
  }

  busy() {
    return this.upload !== null && this.running;
  }

  async choose(file) {
    if (this.busy()) {
      this.fail("Another file is still uploading. Wait for it to finish, or cancel it first.");
      return;
    }
    this.fail("");
    this.say("");
    const { config } = this;
    if (file.size === 0) {
      this.fail(`“${file.name}” is empty (0 bytes). Choose the recording file itself.`);
      return;
    }
    if (file.size > config.maxBytes) {
      this.fail(`“${file.name}” is ${sizeLabel(file.size)}; the largest file this clinic accepts `
                + `is ${config.maxLabel}. Shorten or compress the recording first.`);
      return;
    }
    const kind = await kindOf(file);
    if (!kind) {
      this.fail(`“${file.name}” is not an audio or video file. Choose a recording, for example `
                + ".mp3, .m4a, .wav, .webm or .mp4.");
      return;
    }
    if (!config.allowedKinds.includes(kind)) {
      this.fail(kind === "video"
        ? "This file contains video, but the client has not agreed to video recording. "
          + "Record their consent on the consent page first."
        : "The client has not agreed to audio recording, so this file cannot be uploaded. "
          + "Record their consent on the consent page first.");
      return;
    }
    this.file = file;
    this.kind = kind;
    await this.prepare();
    this.start();
  }

  async prepare() {
    const { file, kind, config } = this;
    const fingerprint = await fingerprintOf(file, config.session, kind);
    this.upload = new window.tus.Upload(file, {
      endpoint: config.uploadUrl,
      metadata: { session: config.session, kind },
      headers: { "X-CSRFToken": this.csrf },
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS,
      fingerprint: () => Promise.resolve(fingerprint),
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onProgress: (sent, total) => this.progress(sent, total),
      onSuccess: (payload) => this.succeeded(payload),
      onError: (error) => this.failed(error),
    });
    const previous = await this.upload.findPreviousUploads();
    if (previous.length) {
      this.upload.resumeFromPreviousUpload(previous[0]);
      this.resumed = true;
    } else {
      this.resumed = false;
    }
  }

  start() {
    if (!this.upload) return;
    const { ui } = this;
    this.fail("");
    this.running = true;
    ui.box.hidden = false;
    ui.retry.hidden = true;
    ui.cancel.hidden = false;
    this.say(this.resumed ? `Continuing the earlier upload of “${this.file.name}”…`
                          : `Uploading “${this.file.name}” (${this.kind === "video" ? "video" : "audio"})…`);
    this.upload.start();
  }

  progress(sent, total) {
    const percent = total ? Math.floor((sent / total) * 100) : 0;
    this.ui.progress.value = percent;
    this.ui.progress.textContent = `${percent}%`;
    this.ui.percent.textContent = `${percent}% (${sizeLabel(sent)} of ${sizeLabel(total)})`;
  }

  succeeded(payload) {
    this.running = false;
    this.ui.progress.value = 100;
    this.ui.progress.textContent = "100%";
    this.ui.percent.textContent = "100%";
    this.ui.cancel.hidden = true;
    const recordingId = payload?.lastResponse?.getHeader("Relisten-Recording") || "";
    this.say(`“${this.file.name}” is uploaded. It is being checked; it will appear in the list of `
             + "recordings when it is ready.");
    this.ui.input.value = "";
    this.upload = null;
    this.onUploaded?.(recordingId, this.kind);
  }

  failed(error) {
    this.running = false;
    this.ui.retry.hidden = false;
    this.say("");
    this.fail(problemOf(error));
  }

  async cancel() {
    if (!this.upload) return;
    this.running = false;
    try {
      await this.upload.abort(true); // true: tell the server to delete what arrived
    } catch {
      // The server may not be reachable; the unfinished upload expires on its own.
    }
    this.upload = null;
    this.ui.box.hidden = true;
    this.ui.input.value = "";
    this.fail("");
    this.say("The upload was cancelled and nothing was kept.");
  }
}
