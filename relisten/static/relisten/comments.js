// The comments panel beside the player (review/_comments.html).
//
// Without this module the panel still works: plain forms, and time links that open the
// recording at that moment. With it: clicking a time seeks the player ("relisten:seek"), the
// timeline shows one marker per comment, the new-comment form follows the player's time until
// the person types a time of their own, "C" (the player's "relisten:comment-here") opens the
// form at the current moment, and forms are sent in place: the server answers with the
// updated panel, which replaces this one.

const PANEL = "[data-comments-panel]";
const NEAR_BEFORE_S = 1; // a point comment counts as "now" from 1 s before...
const NEAR_AFTER_S = 5; // ...until 5 s after its moment

let lastTime = 0;

/** "M:SS", or "H:MM:SS" from an hour, as the server writes times. */
export function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds || 0));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const secs = String(whole % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

function player() {
  return document.getElementById("player");
}

function seek(t) {
  document.dispatchEvent(new CustomEvent("relisten:seek", { detail: { t } }));
}

function duration() {
  const root = document.getElementById("workspace");
  const fromPage = root ? parseFloat(root.dataset.duration) : NaN;
  if (fromPage > 0) return fromPage;
  const media = player();
  return media && media.duration > 0 && Number.isFinite(media.duration) ? media.duration : 0;
}

// ---- the timeline markers ----------------------------------------------------------------

function drawMarkers(panel) {
  const holder = document.getElementById("timeline-markers");
  if (!holder) return;
  holder.replaceChildren();
  const total = duration();
  if (!total) return; // positions need the length; loadedmetadata calls again
  for (const item of panel.querySelectorAll("[data-comment]")) {
    const start = parseFloat(item.dataset.start);
    const end = item.dataset.end ? parseFloat(item.dataset.end) : null;
    const marker = document.createElement("button");
    marker.type = "button";
    marker.className = end === null ? "marker" : "marker marker-range";
    marker.dataset.t = String(start);
    marker.dataset.comment = item.id;
    marker.setAttribute("aria-label", item.dataset.label || `Comment at ${clock(start)}`);
    marker.title = item.dataset.label || "";
    marker.style.left = `${Math.min(100, (start / total) * 100)}%`;
    if (end !== null) {
      marker.style.width = `${Math.max(0.5, Math.min(100, ((end - start) / total) * 100))}%`;
    }
    marker.addEventListener("click", () => {
      seek(start);
      item.classList.add("is-picked");
      window.setTimeout(() => item.classList.remove("is-picked"), 1500);
    });
    holder.append(marker);
  }
}

// ---- "comment at 12:34" follows the player ------------------------------------------------

function timeField(panel) {
  return panel.querySelector("[data-comment-at]");
}

function showTime(panel, t, { pin = false } = {}) {
  const field = timeField(panel);
  if (!field || (field.dataset.pinned && !pin)) return;
  field.value = clock(t);
  if (pin) field.dataset.pinned = "1";
  const label = panel.querySelector("[data-at-label]");
  if (label) label.textContent = field.value;
}

function markNow(panel, t) {
  for (const item of panel.querySelectorAll("[data-comment]")) {
    const start = parseFloat(item.dataset.start);
    const end = item.dataset.end ? parseFloat(item.dataset.end) : start + NEAR_AFTER_S;
    item.classList.toggle("is-now", t >= start - NEAR_BEFORE_S && t <= end);
  }
}

// ---- sending forms in place --------------------------------------------------------------

function say(panel, text) {
  const status = panel.querySelector("[data-comments-status]");
  if (status) {
    status.replaceChildren(Object.assign(document.createElement("p"), { className: "msg", textContent: text }));
  }
}

async function send(panel, form) {
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  let response;
  try {
    response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "HX-Request": "true" },
      credentials: "same-origin",
    });
  } catch {
    if (button) button.disabled = false;
    say(panel, "Could not reach the server, so nothing was saved. What you wrote is still here; please try again.");
    return;
  }
  if (!response.ok) {
    if (button) button.disabled = false;
    say(panel, response.status === 403 || response.status === 404
      ? "This comment can no longer be changed from here (it may have been deleted). Reload the page to see the latest."
      : "Something went wrong on the server, so nothing was saved. What you wrote is still here; please try again.");
    return;
  }
  const wasPinned = timeField(panel)?.dataset.pinned;
  const template = document.createElement("template");
  template.innerHTML = await response.text();
  const fresh = template.content.querySelector(PANEL);
  if (!fresh) return;
  panel.replaceWith(fresh);
  setUp(fresh);
  const problem = fresh.querySelector("[aria-invalid=true], .errors, .field-errors");
  if (problem) {
    // The same form came back with what to fix: keep the typed time, go to the first problem.
    if (wasPinned && timeField(fresh)) timeField(fresh).dataset.pinned = "1";
    (problem.matches("input, textarea") ? problem : problem.closest("form")?.querySelector("textarea, input:not([type=hidden])") || problem).focus();
  } else {
    fresh.querySelector("[data-comments-status]")?.setAttribute("tabindex", "-1");
    fresh.querySelector("[data-comments-status]")?.focus();
    showTime(fresh, lastTime);
  }
}

// ---- wiring ------------------------------------------------------------------------------

function setUp(panel) {
  const media = player();
  const useNow = panel.querySelector("[data-use-now]");
  if (media && useNow) {
    useNow.hidden = false;
    useNow.addEventListener("click", () => showTime(panel, media.currentTime, { pin: true }));
  }
  const field = timeField(panel);
  if (field) {
    if (panel.querySelector("[data-new-comment] [aria-invalid=true]")) field.dataset.pinned = "1";
    field.addEventListener("input", () => {
      field.dataset.pinned = "1"; // the person chose a time: stop following the player
      const label = panel.querySelector("[data-at-label]");
      if (label) label.textContent = field.value.trim() || "…";
    });
  }
  panel.addEventListener("click", (event) => {
    const link = event.target.closest("[data-seek]");
    if (!link || !player()) return; // no player on this page: follow the link instead
    event.preventDefault();
    seek(parseFloat(link.dataset.seek));
  });
  panel.addEventListener("submit", (event) => {
    const form = event.target.closest("[data-comments-form]");
    if (!form) return;
    event.preventDefault();
    send(panel, form);
  });
  drawMarkers(panel);
  markNow(panel, lastTime);
}

function current() {
  return document.querySelector(PANEL);
}

document.addEventListener("relisten:timeupdate", (event) => {
  lastTime = Number(event.detail?.t) || 0;
  const panel = current();
  if (!panel) return;
  showTime(panel, lastTime);
  markNow(panel, lastTime);
});

document.addEventListener("relisten:comment-here", (event) => {
  const panel = current();
  if (!panel) return;
  const t = Number(event.detail?.t ?? player()?.currentTime ?? 0) || 0;
  showTime(panel, t, { pin: true });
  const box = panel.querySelector("[data-new-comment-box]");
  if (box) box.open = true;
  const form = panel.querySelector("[data-new-comment]");
  form?.scrollIntoView({ block: "nearest" });
  form?.querySelector("textarea")?.focus();
});

const first = current();
if (first) {
  setUp(first);
  const media = player();
  // Without a duration on the page, place the markers once the player knows the length.
  media?.addEventListener("loadedmetadata", () => {
    const panel = current();
    if (panel) drawMarkers(panel);
  });
}
