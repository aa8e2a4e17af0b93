// Sends a recording's chunks from IndexedDB to the tus server, one request at a time.
//
// The server's Upload-Offset is the only truth: chunks it covers are deleted from IndexedDB,
// everything after it is (re)sent. Network trouble and busy answers are retried with backoff
// for as long as the page is open; an upload the server no longer knows (404/410) stops the
// queue and is reported, never silently dropped. With the recording stopped and every byte
// acknowledged, the last PATCH carries Upload-Length and the server finalises the recording.
import { chunksOf, deleteRecording, dropAcknowledged, saveRecording } from "./chunk-store.js";

const TUS = { "Tus-Resumable": "1.0.0" };
const MAX_BODY = 8 * 1024 * 1024; // backlog after an outage goes in pieces of at most this
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];

const base64 = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));

export class UploadGone extends Error {}
export class UploadRefused extends Error {}

// Reasons the queue is waiting, in words for the person at the screen.
const WAITING = {
  network: "The connection to the server is interrupted.",
  busy: "The server is busy.",
  signin: "You seem to be signed out. Sign in again in another tab.",
  server: "The server had a problem.",
};

export class ChunkUploader {
  // options: {db, rec, csrf, createUrl, onChange(state), onDone(rec), onGone(rec, message),
  //           onRefused(rec, message)}
  constructor(options) {
    Object.assign(this, options);
    this.serverOffset = null; // unknown until HEAD or PATCH tells us
    this.running = false;
    this.again = false;
    this.failures = 0;
    this.waiting = "";
    this.timer = null;
    this.stopped = false; // the queue gave up (gone/refused) or finished
  }

  // Start (or nudge) the queue; safe to call as often as chunks arrive.
  kick() {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.running = true;
    this.run().finally(() => {
      this.running = false;
      if (this.again && !this.stopped && !this.timer) {
        this.again = false;
        this.kick();
      }
    });
  }

  async run() {
    try {
      for (;;) {
        this.again = false;
        const more = await this.step();
        this.failures = 0;
        this.waiting = "";
        if (!more) break;
      }
      this.report();
    } catch (error) {
      if (error instanceof UploadGone) {
        this.stopped = true;
        this.rec.gone = true;
        await saveRecording(this.db, this.rec);
        this.onGone?.(this.rec, error.message);
      } else if (error instanceof UploadRefused) {
        this.stopped = true;
        this.onRefused?.(this.rec, error.message);
      } else {
        this.retryLater(error.reason || "network");
      }
    }
  }

  retryLater(reason) {
    const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
    this.failures += 1;
    this.waiting = WAITING[reason] || WAITING.network;
    this.retryAt = Date.now() + delay;
    this.report();
    this.timer = setTimeout(() => {
      this.timer = null;
      this.kick();
    }, delay);
  }

  // Seconds of recording whose bytes the server has not acknowledged yet.
  async backlogSeconds() {
    const chunks = await chunksOf(this.db, this.rec.id);
    const offset = this.serverOffset ?? 0;
    const ms = chunks.filter((c) => c.start + c.size > offset).reduce((sum, c) => sum + c.ms, 0);
    return Math.round(ms / 1000);
  }

  report() {
    this.onChange?.({
      waiting: this.waiting,
      retryAt: this.waiting ? this.retryAt : null,
      offset: this.serverOffset,
      produced: this.rec.produced,
    });
  }

  // One request; true while there is more to do right now.
  async step() {
    const rec = this.rec;
    if (!rec.uploadUrl) {
      await this.create();
      return true;
    }
    if (this.serverOffset === null) {
      await this.head();
      return true;
    }
    await dropAcknowledged(this.db, rec.id, this.serverOffset);
    const chunks = (await chunksOf(this.db, rec.id)).sort((a, b) => a.seq - b.seq);
    const pieces = [];
    let size = 0;
    for (const chunk of chunks) {
      const end = chunk.start + chunk.size;
      if (end <= this.serverOffset) continue;
      if (chunk.start > this.serverOffset + size) {
        // A gap cannot happen (chunks are stored before the length that counts them); if
        // IndexedDB lost a chunk anyway, say so rather than send a file with a hole.
        throw new UploadRefused("Part of this recording is missing from this browser's storage.");
      }
      const from = Math.max(0, this.serverOffset - chunk.start);
      pieces.push(chunk.blob.slice(from));
      size += chunk.size - from;
      if (size >= MAX_BODY) break;
    }
    const reachesEnd = this.serverOffset + size === rec.produced;
    if (!size && !(rec.stopped && reachesEnd)) {
      this.report();
      return false; // everything so far is on the server; wait for the next chunk
    }
    const last = rec.stopped && reachesEnd;
    await this.patch(new Blob(pieces), last ? rec.produced : null);
    this.report();
    if (last && this.serverOffset === rec.produced) {
      this.stopped = true;
      await deleteRecording(this.db, rec.id);
      this.onDone?.(rec);
      return false;
    }
    return true;
  }

  async request(url, init) {
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", cache: "no-store", ...init });
    } catch (error) {
      throw Object.assign(new Error("network"), { reason: "network" });
    }
    const found = response.headers.get("Relisten-Recording");
    if (found && found !== this.rec.recordingId) {
      this.rec.recordingId = found;
      await saveRecording(this.db, this.rec);
    }
    return response;
  }

  async problem(response, action) {
    const text = (await response.text()).trim();
    const plain = response.headers.get("Content-Type")?.startsWith("text/plain");
    const message = plain && text ? text : `The server refused to ${action} (error ${response.status}).`;
    if (response.status === 404 || response.status === 410) throw new UploadGone(plain ? text : "");
    if (response.status === 401) throw Object.assign(new Error(message), { reason: "signin" });
    if (response.status === 423 || response.status === 429) {
      throw Object.assign(new Error(message), { reason: "busy" });
    }
    if (response.status >= 500) throw Object.assign(new Error(message), { reason: "server" });
    throw new UploadRefused(message);
  }

  async create() {
    const metadata = `session ${base64(this.rec.session)},kind ${base64(this.rec.kind)}`;
    const response = await this.request(this.createUrl, {
      method: "POST",
      headers: { ...TUS, "Upload-Defer-Length": "1", "Upload-Metadata": metadata,
                 "X-CSRFToken": this.csrf },
    });
    if (response.status !== 201) await this.problem(response, "start the upload");
    this.rec.uploadUrl = new URL(response.headers.get("Location"), window.location.href).pathname;
    this.serverOffset = 0;
    await saveRecording(this.db, this.rec);
  }

  async head() {
    const response = await this.request(this.rec.uploadUrl, { method: "HEAD", headers: TUS });
    if (!response.ok) await this.problem(response, "say how much has arrived");
    this.serverOffset = Number(response.headers.get("Upload-Offset"));
    const length = response.headers.get("Upload-Length");
    if (length !== null && Number(length) === this.serverOffset && this.serverOffset > 0) {
      // Complete already (the last answer was lost on the way back): only tidy up.
      this.rec.produced = this.serverOffset;
      this.rec.stopped = true;
    }
  }

  async patch(body, length) {
    const headers = { ...TUS, "Upload-Offset": String(this.serverOffset),
                      "Content-Type": "application/offset+octet-stream",
                      "X-CSRFToken": this.csrf };
    if (length !== null) headers["Upload-Length"] = String(length);
    const response = await this.request(this.rec.uploadUrl, { method: "PATCH", headers, body });
    if (response.status === 409) {
      this.serverOffset = null; // someone else moved it on (or a lost answer): ask again
      return;
    }
    if (response.status !== 204) await this.problem(response, "take the recording");
    this.serverOffset = Number(response.headers.get("Upload-Offset"));
  }
}
