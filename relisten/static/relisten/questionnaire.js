// The client's questionnaire form (outcomes/answer.html).
//
// Without this module the form posts every answer at once and the server says what is missing.
// With it: each answer is saved as it is chosen (the whole form each time, so a repeated or
// out-of-order save is harmless), the progress line counts the answered questions, a failed
// save says so and is tried again, and sending with questions unanswered lists them at once.

const SAVED = "Your answers so far are saved.";
const NOT_SAVED = "Not saved yet — check your connection. Trying again…";
const RETRY_MS = [1000, 2000, 4000, 8000, 15000];

/** Numbers (1-based) of the questions in `form` that have no answer. */
export function missingNumbers(form) {
  return [...form.querySelectorAll("fieldset[data-link-id]")]
    .filter((fieldset) => !fieldset.querySelector("input[type=radio]:checked"))
    .map((fieldset) => Number(fieldset.dataset.number));
}

/** The same words the server uses (relisten/outcomes/questionnaire.py missing_message). */
export function missingMessage(missing) {
  if (missing.length === 1) return `Please answer question ${missing[0]} before sending.`;
  const listed = `${missing.slice(0, -1).join(", ")} and ${missing[missing.length - 1]}`;
  return `Please answer questions ${listed} before sending. Every question is needed.`;
}

function showProgress(form) {
  const total = Number(form.dataset.items);
  const answered = total - missingNumbers(form).length;
  const count = form.querySelector("[data-answered]");
  if (count) count.textContent = String(answered);
  const bar = document.getElementById("q-progress-bar");
  if (bar) bar.value = answered;
}

function showMissing(form, missing) {
  const box = document.getElementById("q-error");
  box.replaceChildren();
  const text = document.createElement("p");
  text.textContent = missingMessage(missing);
  const list = document.createElement("ul");
  for (const number of missing) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `#q-item-${number}`;
    link.textContent = `Question ${number}`;
    item.append(link);
    list.append(item);
  }
  box.append(text, list);
  box.hidden = false;
  for (const fieldset of form.querySelectorAll("fieldset[data-link-id]")) {
    fieldset.classList.toggle("q-missing", missing.includes(Number(fieldset.dataset.number)));
  }
  box.focus();
}

function startSaving(form) {
  const status = document.getElementById("q-saved");
  let attempt = 0;
  let pending = false;
  let timer = null;

  async function save() {
    timer = null;
    pending = false;
    try {
      const response = await fetch(form.dataset.draftUrl, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      });
      const answer = await response.json().catch(() => ({}));
      if (response.status === 410) {
        status.textContent = answer.message || "";
        return;
      }
      if (!response.ok) throw new Error(String(response.status));
      attempt = 0;
      status.textContent = SAVED;
    } catch {
      status.textContent = NOT_SAVED;
      pending = true;
      const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
      attempt += 1;
      timer = setTimeout(save, wait);
    }
    if (pending && !timer) save();
  }

  return () => {
    if (timer) return; // a retry is waiting and will send the latest answers
    save();
  };
}

function init() {
  const form = document.getElementById("q-form");
  if (!form) return;
  const saveSoon = startSaving(form);
  form.addEventListener("change", (event) => {
    if (!(event.target instanceof HTMLInputElement) || event.target.type !== "radio") return;
    const fieldset = event.target.closest("fieldset");
    if (fieldset) fieldset.classList.remove("q-missing");
    showProgress(form);
    saveSoon();
  });
  form.addEventListener("submit", (event) => {
    const missing = missingNumbers(form);
    if (missing.length) {
      event.preventDefault();
      showMissing(form, missing);
    }
  });
  showProgress(form);
}

init();
