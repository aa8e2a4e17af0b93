// The capture panel of a therapy session's page: record in the browser (chunks to IndexedDB,
// then to the tus server), recover recordings an earlier tab left unfinished, upload a file.
// Loaded as a same-origin module (the CSP allows no inline script); settings come from the
// #capture-config JSON that relisten/recordings/capture.py renders.
import {
  addChunk, chunksOf, deleteRecording, openStore, recordingsForSession, saveRecording,
} from "./chunk-store.js";
import { canRecordHere, inputProblem, Recorder, supportedType } from "./recorder.js";
import { ChunkUploader } from "./tus-queue.js";
import { FileUploader } from "./uploader.js";

const panel = document.getElementById("capture");
const $ = (id) => document.getElementById(id);

const clock = (ms) => {
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
};
const spoken = (seconds) => {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${s % 60} s`;
};
const timeOfDay = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function setText(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

if (panel) {
  const config = JSON.parse($("capture-config").textContent);
  const csrf = $("capture-csrf").value;
  const announcer = $("capture-announce");
  const announce = (text) => {
    // Re-setting the same text is not announced again; clear first.
    announcer.textContent = "";
    setTimeout(() => { announcer.textContent = text; }, 50);
  };
  const ui = {
    start: $("capture-start"), why: $("capture-start-why"), agreed: $("capture-agreed"),
    live: $("capture-live"), state: $("capture-state"), elapsed: $("capture-elapsed"),
    level: $("capture-level"), levelWords: $("capture-level-words"), preview: $("capture-preview"),
    pause: $("capture-pause"), stop: $("capture-stop"), upload: $("capture-upload-state"),
    error: $("capture-error"), result: $("capture-result"), recovery: $("capture-recovery"),
  };
  const kinds = [...panel.querySelectorAll('input[name="capture-kind"]')];
  const firstAllowed = kinds.find((input) => !input.disabled);
  if (firstAllowed) firstAllowed.checked = true;
  const chosenKind = () => kinds.find((input) => input.checked && !input.disabled)?.value || "";

  let dbPromise = null;
  const db = () => {
    dbPromise ||= openStore();
    return dbPromise;
  };

  // ---- following a finished upload until the server has checked it ---------------------------

  async function follow(recordingId, where, what) {
    if (!recordingId) return;
    for (let attempt = 0; attempt < 900; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, attempt < 10 ? 1000 : 3000));
      let status;
      try {
        const response = await fetch(config.statusUrl, { credentials: "same-origin",
                                                          cache: "no-store" });
        if (!response.ok) continue;
        status = (await response.json()).recordings.find((r) => r.id === recordingId);
      } catch {
        continue;
      }
      if (!status) continue;
      if (status.state === "ready") {
        where.replaceChildren(`${what} is ready`
          + (status.duration_s ? ` (${spoken(status.duration_s)})` : "") + ". ");
        const link = document.createElement("a");
        link.href = status.url;
        link.textContent = "Open the new recording";
        where.append(link);
        where.hidden = false;
        announce(`${what} is ready.`);
        return;
      }
      if (status.state === "failed") {
        setText(where, `${what} could not be used: ${status.failure}`);
        announce(`${what} could not be used.`);
        return;
      }
    }
  }

  // ---- holding a recording so that two tabs never upload the same one ------------------------

  function holdLock(name) {
    if (!navigator.locks) return Promise.resolve(() => {});
    return new Promise((resolve) => {
      navigator.locks.request(name, { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(null);
          return undefined;
        }
        return new Promise((release) => resolve(release));
      });
    });
  }

  // ---- the start button: enabled only when everything needed is there ------------------------

  let recorder = null;
  let active = null; // {rec, uploader, release}
  const canRecord = canRecordHere();

  function refreshStart() {
    const kind = chosenKind();
    let reason = "";
    if (!config.allowedKinds.length) {
      reason = "Recording needs the client's consent first (see above).";
    } else if (!canRecord) {
      reason = "This browser cannot record here (it needs a secure connection and a recent "
        + "browser). You can still upload a recording file below.";
    } else if (!kind) {
      reason = "Choose what to record.";
    } else if (!supportedType(kind)) {
      reason = "This browser cannot record video. Choose audio only, or use another browser.";
    } else if (active || recorder) {
      reason = "A recording is in progress.";
    } else if (!ui.agreed?.checked) {
      reason = "Tick the box to confirm the client has agreed today to this recording.";
    }
    ui.start.disabled = Boolean(reason);
    // Nothing about the recording can change while it runs.
    const fieldset = panel.querySelector(".capture-kinds");
    if (fieldset) fieldset.disabled = Boolean(active || recorder);
    if (ui.agreed) ui.agreed.disabled = Boolean(active || recorder);
    ui.why.textContent = reason || "Ready to record. Recording starts as soon as you press the button.";
  }
  kinds.forEach((input) => input.addEventListener("change", refreshStart));
  ui.agreed?.addEventListener("change", refreshStart);
  refreshStart();

  // ---- the upload state line ------------------------------------------------------------------

  async function showUploadState(uploader) {
    const seconds = await uploader.backlogSeconds();
    let text;
    if (uploader.waiting) {
      const wait = Math.max(1, Math.round((uploader.retryAt - Date.now()) / 1000));
      text = `${uploader.waiting} ${seconds} s not yet uploaded; trying again in ${wait} s. `
        + "Nothing is lost: the recording is kept in this browser.";
    } else if (seconds > 0) {
      text = `${seconds} s not yet uploaded.`;
    } else {
      text = "Everything recorded so far is uploaded.";
    }
    setText(ui.upload, text);
    ui.upload.dataset.backlog = String(seconds);
  }

  function uploaderFor(store, rec, { what, where, onFinished }) {
    const uploader = new ChunkUploader({
      db: store, rec, csrf, createUrl: config.uploadUrl,
      onChange: () => showUploadState(uploader),
      onDone: (done) => {
        onFinished?.();
        setText(ui.upload, "");
        setText(where, `${what} is uploaded and being checked. Transcription starts once it is `
          + "ready (if the client agreed to it).");
        announce(`${what} is uploaded and being checked.`);
        follow(done.recordingId, where, what);
      },
      onGone: (gone, message) => {
        onFinished?.();
        reportGone(gone, message);
      },
      onRefused: (refused, message) => {
        onFinished?.();
        setText(ui.error, `${what} could not be uploaded: ${message} It is still kept in this `
          + "browser; reload the page to try again.");
      },
    });
    return uploader;
  }

  // ---- recording ------------------------------------------------------------------------------

  let tick = null;
  let quietSince = null;

  function showLevel(fraction, db) {
    ui.level.value = fraction;
    ui.level.dataset.db = db.toFixed(1);
    if (db < -55) {
      quietSince ??= Date.now();
    } else {
      quietSince = null;
    }
    const silent = quietSince !== null && Date.now() - quietSince > 5000;
    ui.levelWords.textContent = silent ? "No sound is reaching the microphone. Check that it is "
      + "connected and not muted." : db > -3 ? "Very loud: move the microphone further away." : "";
  }

  function setRecordingState(state) {
    const words = { recording: "Recording", paused: "Paused", stopping: "Stopping…" };
    ui.state.textContent = words[state];
    ui.live.dataset.state = state;
    ui.pause.textContent = state === "paused" ? "Resume" : "Pause";
    ui.pause.disabled = state === "stopping";
    ui.stop.disabled = state === "stopping";
  }

  async function startRecording() {
    const kind = chosenKind();
    if (!kind || ui.start.disabled) return;
    setText(ui.error, "");
    setText(ui.result, "");
    ui.start.disabled = true;
    const store = await db();
    const rec = {
      id: crypto.randomUUID(), session: config.session, kind, startedAt: Date.now(),
      produced: 0, durationMs: 0, stopped: false, uploadUrl: "", recordingId: "", gone: false,
      mimeType: supportedType(kind), seq: 0,
    };
    const release = await holdLock(`relisten-capture-${rec.id}`);
    const pendingWrites = [];
    recorder = new Recorder({
      kind, timesliceMs: config.timesliceMs,
      onLevel: showLevel,
      onChunk: (blob, ms) => {
        // Offsets are assigned here, in order, before the (asynchronous) write.
        const chunk = { seq: rec.seq, start: rec.produced, size: blob.size, ms, blob };
        rec.seq += 1;
        rec.produced += blob.size;
        rec.durationMs += ms;
        const written = addChunk(store, rec, chunk).then(() => active?.uploader.kick());
        written.catch(() => setText(ui.error, "This browser could not store the recording "
          + "(its storage may be full). Stop the recording, free some disk space and try again."));
        pendingWrites.push(written);
      },
      onEnded: (reason) => {
        if (recorder?.state !== "inactive") {
          setText(ui.error, reason === "device"
            ? "The microphone or camera stopped (unplugged or switched off). What was recorded "
              + "until then is being saved."
            : "The browser stopped the recording because of a problem. What was recorded until "
              + "then is being saved.");
          stopRecording();
        }
      },
    });
    try {
      const stream = await recorder.open();
      if (kind === "video") {
        ui.preview.srcObject = stream;
        ui.preview.hidden = false;
        ui.preview.play().catch(() => {});
      }
    } catch (error) {
      recorder.release();
      recorder = null;
      release?.();
      setText(ui.error, inputProblem(error, kind));
      refreshStart();
      return;
    }
    rec.mimeType = recorder.mimeType;
    await saveRecording(store, rec);
    const uploader = uploaderFor(store, rec, {
      what: "The recording", where: ui.result, onFinished: () => release?.(),
    });
    active = { rec, uploader, release, pendingWrites };
    uploader.kick(); // creates the tus upload straight away
    recorder.start();
    ui.live.hidden = false;
    setRecordingState("recording");
    refreshStart();
    announce("Recording started.");
    tick = setInterval(() => { ui.elapsed.textContent = clock(recorder.elapsedMs()); }, 250);
    window.addEventListener("beforeunload", warnBeforeLeaving);
    ui.pause.focus();
  }

  function warnBeforeLeaving(event) {
    // Leaving is safe (the chunks are kept), but stopping properly keeps the last seconds.
    event.preventDefault();
    event.returnValue = "";
  }

  // A pause sends nothing, and an idle sign-in lapses: keep it alive while paused.
  let keepAlive = null;
  const stopKeepAlive = () => {
    clearInterval(keepAlive);
    keepAlive = null;
  };

  function togglePause() {
    if (!recorder) return;
    if (recorder.state === "recording") {
      recorder.pause();
      keepAlive = setInterval(() => {
        fetch(config.statusUrl, { credentials: "same-origin", cache: "no-store" }).catch(() => {});
      }, 5 * 60 * 1000);
      setRecordingState("paused");
      announce("Recording paused.");
    } else if (recorder.state === "paused") {
      stopKeepAlive();
      recorder.resume();
      setRecordingState("recording");
      announce("Recording resumed.");
    }
  }

  async function stopRecording() {
    if (!recorder || !active) return;
    const { rec, uploader, pendingWrites } = active;
    setRecordingState("stopping");
    stopKeepAlive();
    await recorder.stop();
    await Promise.allSettled(pendingWrites);
    clearInterval(tick);
    ui.elapsed.textContent = clock(recorder.elapsedMs());
    rec.stopped = true;
    await saveRecording(uploader.db, rec);
    window.removeEventListener("beforeunload", warnBeforeLeaving);
    recorder = null;
    ui.live.hidden = true;
    ui.preview.hidden = true;
    ui.preview.srcObject = null;
    if (ui.agreed) ui.agreed.checked = false; // the next recording is confirmed afresh
    announce(`Recording stopped after ${spoken(rec.durationMs / 1000)}. Finishing the upload.`);
    setText(ui.result, `Recording stopped after ${spoken(rec.durationMs / 1000)}. `
      + "Finishing the upload…");
    uploader.kick();
    active = null;
    refreshStart();
  }

  ui.start.addEventListener("click", startRecording);
  ui.pause.addEventListener("click", togglePause);
  ui.stop.addEventListener("click", stopRecording);

  // ---- recovering what an earlier tab left behind -----------------------------------------------

  function note(text, className = "") {
    const item = document.createElement("p");
    item.className = `capture-note ${className}`.trim();
    item.textContent = text;
    ui.recovery.append(item);
    ui.recovery.hidden = false;
    return item;
  }

  async function keptBlob(rec) {
    const store = await db();
    const chunks = (await chunksOf(store, rec.id)).sort((a, b) => a.seq - b.seq);
    return { blob: new Blob(chunks.map((c) => c.blob), { type: rec.mimeType }), chunks };
  }

  async function reportGone(rec, message) {
    const { blob, chunks } = await keptBlob(rec);
    const seconds = chunks.reduce((sum, c) => sum + c.ms, 0) / 1000;
    const why = message ? ` (${message.replace(/\.$/, "")})` : "";
    const item = note(`The recording started at ${timeOfDay(rec.startedAt)} could not be `
      + `finished: the server no longer has its upload${why}. It may have expired or been `
      + `cancelled. ${spoken(seconds)} of it are still kept in this browser. `, "capture-problem");
    const save = document.createElement("a");
    save.href = URL.createObjectURL(blob);
    save.download = `recording-${new Date(rec.startedAt).toISOString().slice(0, 16)}.webm`;
    save.textContent = "Save the kept part as a file";
    const discard = document.createElement("button");
    discard.type = "button";
    discard.className = "secondary";
    discard.textContent = "Discard the kept part";
    discard.addEventListener("click", async () => {
      await deleteRecording(await db(), rec.id);
      item.textContent = "The kept part was discarded.";
      announce("The kept part was discarded.");
    });
    item.append(save, " ", discard);
    announce("An interrupted recording could not be finished; see the message on the page.");
  }

  async function recover() {
    let found;
    try {
      found = await recordingsForSession(await db(), config.session);
    } catch {
      return; // no IndexedDB (private window in some browsers): nothing can have been kept
    }
    for (const rec of found) {
      const release = await holdLock(`relisten-capture-${rec.id}`);
      if (!release) continue; // another tab is recording or recovering it right now
      const store = await db();
      if (rec.gone) {
        release();
        reportGone(rec, "");
        continue;
      }
      if (!rec.produced) {
        await deleteRecording(store, rec.id); // nothing was ever recorded
        release();
        continue;
      }
      const wasStopped = rec.stopped;
      rec.stopped = true; // what was kept is all there will be
      await saveRecording(store, rec);
      const what = `The interrupted recording from ${timeOfDay(rec.startedAt)}`;
      const where = note(`${what} (${spoken(rec.durationMs / 1000)}) `
        + `${wasStopped ? "had not finished uploading" : "was not stopped properly"}. `
        + "Uploading the rest from this browser now…", "capture-recovering");
      announce("Found an interrupted recording; uploading the rest now.");
      const uploader = uploaderFor(store, rec, { what, where, onFinished: release });
      uploader.kick();
    }
  }

  // ---- file upload ------------------------------------------------------------------------------

  if (window.tus?.isSupported) {
    const fileState = $("capture-file-state");
    new FileUploader({
      input: $("capture-file"), drop: $("capture-drop"), box: $("capture-file-progress-box"),
      progress: $("capture-file-progress"), percent: $("capture-file-percent"),
      retry: $("capture-file-retry"), cancel: $("capture-file-cancel"), state: fileState,
      error: $("capture-file-error"),
    }, {
      config, csrf, announce,
      onUploaded: (recordingId) => follow(recordingId, fileState, "The uploaded file"),
    });
  } else {
    setText($("capture-file-error"), "This browser cannot upload files here. Use a recent "
      + "version of Firefox, Chrome, Edge or Safari.");
    $("capture-file").disabled = true;
  }

  if (canRecord) recover();
}
