// The rating panel beside the player (fidelity/_rating_panel.html).
//
// Without this module the panel is a plain form that posts every answer at once. With it:
// each answer is saved as it is chosen (one POST per change, the latest value per item, so a
// repeated save is harmless), and a failed save says so and tries again until it works;
// behaviour counts go up and down with − / + or the tally keys shown on the panel while the
// recording keeps playing; evidence is added at the player's moment in one click; evidence
// times seek the player ("relisten:seek"); the other forms are sent in place and the server
// answers with the updated panel.

const PANEL = "[data-rating-panel]";
const SAVED = "Saved";
const NOT_SAVED = "Not saved — check your connection. Trying again…";
const COUNT_DELAY_MS = 400; // counts tallied in a burst are saved once, with the last value
const RETRY_MS = [1000, 2000, 4000, 8000, 15000];

let lastTime = 0;

/** "M:SS", or "H:MM:SS" from an hour, as the server writes times. */
export function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds || 0));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const secs = String(whole % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

/** Keys typed into these go to the field, not to the tally. Radio buttons and tick boxes
 * do not take letters or digits, so counting goes on while one has the focus. */
export function isTyping(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag !== "INPUT") return false;
  return !["radio", "checkbox", "button", "submit", "reset", "range"].includes(target.type);
}

function player() {
  return document.getElementById("player");
}

function current() {
  return document.querySelector(PANEL);
}

function csrf(panel) {
  return panel.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
}

function say(panel, text, { problem = false } = {}) {
  const status = panel.querySelector("[data-rating-status]");
  if (!status) return;
  const line = document.createElement("p");
  line.className = problem ? "msg msg-error" : "msg";
  line.textContent = text;
  status.replaceChildren(line);
}

// ---- autosave ------------------------------------------------------------------------------

/** The answers waiting to be saved, the latest value per item, sent one at a time. */
const saver = {
  url: "",
  pending: new Map(),
  timers: new Map(),
  busy: false,
  failures: 0,
  retryTimer: 0,
  idle: [],

  queue(item, value, delay) {
    this.pending.set(item, value);
    clearTimeout(this.timers.get(item));
    this.timers.set(item, setTimeout(() => { this.timers.delete(item); this.flush(); }, delay));
  },

  settled() {
    return !this.busy && this.pending.size === 0;
  },

  /** Resolves once everything waiting has been sent (or given up on). */
  whenIdle() {
    for (const [item, timer] of this.timers) { clearTimeout(timer); this.timers.delete(item); }
    if (this.settled()) return Promise.resolve(true);
    const waiting = new Promise((resolve) => this.idle.push(resolve));
    this.flush();
    return waiting;
  },

  done(ok) {
    const waiting = this.idle.splice(0);
    for (const resolve of waiting) resolve(ok);
  },

  async flush() {
    if (this.busy || this.retryTimer) return;
    const next = [...this.pending.entries()].find(([item]) => !this.timers.has(item));
    if (!next) {
      if (this.pending.size === 0) this.done(true);
      return;
    }
    const [item, value] = next;
    const panel = current();
    if (!panel || !this.url) return;
    this.busy = true;
    const body = new FormData();
    body.append("item", item);
    body.append("value", value);
    let response = null;
    try {
      response = await fetch(this.url, {
        method: "POST", body, credentials: "same-origin",
        headers: { "X-CSRFToken": csrf(panel), Accept: "application/json" },
      });
    } catch {
      response = null;
    }
    this.busy = false;
    if (response === null || response.status >= 500 || response.status === 429) {
      // The answer stays waiting; try again later, and say so until it works.
      say(current() || panel, NOT_SAVED, { problem: true });
      this.done(false); // whoever waits (a form being sent) hears it did not work
      const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
      this.failures += 1;
      this.retryTimer = setTimeout(() => { this.retryTimer = 0; this.flush(); }, wait);
      return;
    }
    this.failures = 0;
    if (this.pending.get(item) === value) this.pending.delete(item);
    let answer = {};
    try {
      answer = await response.json();
    } catch {
      answer = {};
    }
    if (!response.ok) {
      this.pending.delete(item); // the server will not take it: saying why is all we can do
      say(current() || panel, answer.error || "That answer could not be saved. Please reload the page.", { problem: true });
    } else if (this.pending.size === 0) {
      say(current() || panel, SAVED);
    }
    this.flush();
  },
};

window.addEventListener("online", () => {
  if (saver.retryTimer) {
    clearTimeout(saver.retryTimer);
    saver.retryTimer = 0;
  }
  saver.flush();
});

// ---- completion state ------------------------------------------------------------------

function rateable(panel) {
  return [...panel.querySelectorAll("[data-item]")].filter((item) => item.dataset.kind !== "count");
}

function showProgress(panel) {
  const items = rateable(panel);
  const rated = items.filter((item) => item.querySelector("input[type=radio]:checked"));
  for (const item of items) item.classList.toggle("is-open", !item.querySelector("input[type=radio]:checked"));
  const counter = panel.querySelector("[data-rated]");
  if (counter) counter.textContent = String(rated.length);
  const button = panel.querySelector("[data-complete]");
  const why = panel.querySelector("[data-complete-why]");
  if (!button) return;
  const left = items.length - rated.length;
  button.disabled = left > 0;
  if (why) {
    why.textContent = left > 0
      ? `Rate the remaining ${left} item${left === 1 ? "" : "s"} to complete the rating (behaviour counts start at 0).`
      : "Every item is rated. Completing computes the scores and shows them to the other rater.";
  }
}

// ---- behaviour counts --------------------------------------------------------------------

function step(panel, item, by) {
  const field = item.querySelector("input.count-value");
  if (!field || field.disabled) return;
  const value = Math.max(0, Math.min(9999, (parseInt(field.value, 10) || 0) + by));
  field.value = String(value);
  item.classList.remove("is-tallied");
  void item.offsetWidth; // restart the short highlight
  item.classList.add("is-tallied");
  saver.queue(item.dataset.item, String(value), COUNT_DELAY_MS);
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (isTyping(event.target)) return;
  const panel = current();
  if (!panel || panel.dataset.state !== "draft") return;
  const item = panel.querySelector(`[data-tally="${CSS.escape(event.code)}"]`);
  if (!item) return;
  event.preventDefault();
  step(panel, item, event.shiftKey ? -1 : 1);
});

// ---- evidence at the player's moment -----------------------------------------------------

function followTime(panel, t) {
  for (const label of panel.querySelectorAll("[data-now-label]")) label.textContent = clock(t);
  for (const field of panel.querySelectorAll("[data-evidence-at]")) {
    if (!field.dataset.pinned && document.activeElement !== field) field.value = clock(t);
  }
}

// ---- sending forms in place --------------------------------------------------------------

async function send(panel, form, submitter, extra = null) {
  if (submitter) submitter.disabled = true;
  const saved = await saver.whenIdle();
  if (!saved) {
    if (submitter) submitter.disabled = false;
    return;
  }
  // Only a form's own submit button may name itself in FormData (the "evidence at" button
  // belongs to no form).
  const own = submitter && submitter.type === "submit" && submitter.form === form;
  const body = own ? new FormData(form, submitter) : new FormData(form);
  if (extra) for (const [name, value] of Object.entries(extra)) body.set(name, value);
  const action = submitter?.getAttribute("formaction") || form.action;
  let response;
  try {
    response = await fetch(action, {
      method: "POST", body, credentials: "same-origin",
      headers: { "HX-Request": "true", "X-CSRFToken": csrf(panel) },
    });
  } catch {
    if (submitter) submitter.disabled = false;
    say(panel, "Not saved — check your connection, then try again.", { problem: true });
    return;
  }
  if (!response.ok) {
    if (submitter) submitter.disabled = false;
    say(panel, response.status === 403 || response.status === 404
      ? "This rating can no longer be changed from here. Reload the page to see the latest."
      : "Something went wrong on the server, so nothing was saved. Please try again.", { problem: true });
    return;
  }
  const template = document.createElement("template");
  template.innerHTML = await response.text();
  const fresh = template.content.querySelector(PANEL);
  if (!fresh) return;
  const openItem = form.closest("[data-item]")?.dataset.item;
  panel.replaceWith(fresh);
  setUp(fresh);
  const focus = fresh.querySelector("[data-rating-error]") || fresh.querySelector("[data-rating-status]");
  if (focus) {
    focus.setAttribute("tabindex", "-1");
    focus.focus({ preventScroll: Boolean(openItem) });
  }
  if (openItem) fresh.querySelector(`[data-item="${CSS.escape(openItem)}"]`)?.scrollIntoView({ block: "nearest" });
}

// ---- wiring ------------------------------------------------------------------------------

function setUp(panel) {
  saver.url = panel.dataset.answerUrl || "";
  const draft = panel.dataset.state === "draft";
  if (draft) {
    panel.querySelector("[data-save-all]")?.setAttribute("hidden", "");
    panel.querySelector("[data-autosave-note]")?.removeAttribute("hidden");
    for (const button of panel.querySelectorAll(".count-step")) button.hidden = false;
  }
  const media = player();
  if (media && draft) {
    for (const button of panel.querySelectorAll("[data-evidence-here], [data-evidence-end]")) button.hidden = false;
  }
  panel.addEventListener("change", (event) => {
    const field = event.target.closest("[data-answer]");
    const item = field?.closest("[data-item]");
    if (!item || field.disabled) return;
    if (field.type === "radio") {
      saver.queue(item.dataset.item, field.value, 0);
      showProgress(panel);
    } else {
      const value = field.value.trim() === "" ? "0" : String(Math.max(0, parseInt(field.value, 10) || 0));
      field.value = value;
      saver.queue(item.dataset.item, value, COUNT_DELAY_MS);
    }
  });
  panel.addEventListener("input", (event) => {
    if (event.target.matches("[data-evidence-at]")) event.target.dataset.pinned = "1";
  });
  panel.addEventListener("click", (event) => {
    const link = event.target.closest("[data-seek]");
    if (link && player()) {
      event.preventDefault();
      document.dispatchEvent(new CustomEvent("relisten:seek", { detail: { t: parseFloat(link.dataset.seek) } }));
      return;
    }
    const stepper = event.target.closest("[data-step]");
    if (stepper) {
      step(panel, stepper.closest("[data-item]"), parseInt(stepper.dataset.step, 10));
      return;
    }
    const here = event.target.closest("[data-evidence-here]");
    const form = panel.querySelector("[data-evidence-form]");
    if (here && form) {
      const t = player() ? player().currentTime : lastTime;
      const item = here.closest("[data-item]").dataset.item;
      send(panel, form, here, { item, at: t.toFixed(2), until: "", comment: "", note: "" });
      return;
    }
    const more = event.target.closest("[data-evidence-for]");
    if (more && form) {
      // The one evidence form, for this item, at the player's moment.
      event.preventDefault();
      form.querySelector("[data-evidence-item]").value = more.dataset.evidenceFor;
      form.scrollIntoView({ block: "nearest" });
      form.querySelector("[data-evidence-at]")?.focus();
      return;
    }
    const end = event.target.closest("[data-evidence-end]");
    if (end) {
      const form = end.closest("form");
      const t = player() ? player().currentTime : lastTime;
      form.querySelector("[data-evidence-until]").value = clock(t);
      const at = form.querySelector("[data-evidence-at]");
      at.dataset.pinned = "1"; // the start stays where it was when the end was set
    }
  });
  panel.addEventListener("submit", (event) => {
    const form = event.target.closest("[data-rating-form]");
    if (!form) return;
    event.preventDefault();
    send(panel, form, event.submitter || null);
  });
  showProgress(panel);
  followTime(panel, player() ? player().currentTime : lastTime);
}

document.addEventListener("relisten:timeupdate", (event) => {
  lastTime = Number(event.detail?.t) || 0;
  const panel = current();
  if (panel) followTime(panel, lastTime);
});

const first = current();
if (first) setUp(first);
