// IndexedDB store for recordings made in this browser: every chunk the recorder produces is
// written here first and removed only after the server has acknowledged its bytes, so a
// closed or crashed tab loses at most the chunk being recorded. Two object stores:
//   recordings: {id, session, kind, mimeType, startedAt, produced (bytes), durationMs,
//                stopped, uploadUrl, recordingId, gone}
//   chunks:     {rec, seq, start, size, ms, blob}   key [rec, seq]
const DB_NAME = "relisten-capture";
const DB_VERSION = 1;

const promised = (request) =>
  new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

const finished = (transaction) =>
  new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error || new Error("IndexedDB write aborted"));
  });

export function openStore() {
  const request = indexedDB.open(DB_NAME, DB_VERSION);
  request.onupgradeneeded = () => {
    const db = request.result;
    const recordings = db.createObjectStore("recordings", { keyPath: "id" });
    recordings.createIndex("session", "session");
    db.createObjectStore("chunks", { keyPath: ["rec", "seq"] });
  };
  return promised(request);
}

const chunkRange = (recId) => IDBKeyRange.bound([recId, 0], [recId, Number.MAX_SAFE_INTEGER]);

export async function saveRecording(db, rec) {
  const tx = db.transaction("recordings", "readwrite");
  tx.objectStore("recordings").put({ ...rec });
  await finished(tx);
}

export async function recordingsForSession(db, session) {
  const tx = db.transaction("recordings", "readonly");
  const found = await promised(tx.objectStore("recordings").index("session").getAll(session));
  return found.sort((a, b) => a.startedAt - b.startedAt);
}

// The chunk and the recording's new length in one transaction: after a crash the recording
// never claims bytes whose chunk was not stored.
export async function addChunk(db, rec, chunk) {
  const tx = db.transaction(["recordings", "chunks"], "readwrite");
  tx.objectStore("chunks").put({ rec: rec.id, ...chunk });
  tx.objectStore("recordings").put({ ...rec });
  await finished(tx);
}

export async function chunksOf(db, recId) {
  const tx = db.transaction("chunks", "readonly");
  return promised(tx.objectStore("chunks").getAll(chunkRange(recId)));
}

// Remove the chunks whose every byte the server holds (its Upload-Offset is past their end).
export async function dropAcknowledged(db, recId, offset) {
  const tx = db.transaction("chunks", "readwrite");
  const store = tx.objectStore("chunks");
  const chunks = await promised(store.getAll(chunkRange(recId)));
  for (const chunk of chunks) {
    if (chunk.start + chunk.size <= offset) store.delete([recId, chunk.seq]);
  }
  await finished(tx);
}

export async function deleteRecording(db, recId) {
  const tx = db.transaction(["recordings", "chunks"], "readwrite");
  tx.objectStore("chunks").delete(chunkRange(recId));
  tx.objectStore("recordings").delete(recId);
  await finished(tx);
}
