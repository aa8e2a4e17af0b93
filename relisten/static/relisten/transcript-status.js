// Transcription progress on the transcript page: polls the status API every 2 s and updates the
// progress bar; when the run ends, reloads once so the server renders the transcript (or the
// reason it failed). A same-origin module because the CSP allows no inline script.
const box = document.getElementById("transcription-status");

if (box && box.dataset.statusUrl) {
  const label = box.querySelector("[data-status-label]");
  const step = box.querySelector("[data-status-step]");
  const bar = box.querySelector("[data-status-progress]");
  const url = box.dataset.statusUrl;
  let failures = 0;

  const show = (status) => {
    if (label) label.textContent = status.state_label;
    if (step) step.textContent = status.step ? `(${status.step})` : "";
    if (bar) {
      const value = Math.max(0, Math.min(100, Math.round(status.progress)));
      bar.value = value;
      bar.textContent = `${value}%`;
    }
  };

  const poll = async () => {
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      if (!response.ok) throw new Error(`status ${response.status}`);
      const status = await response.json();
      failures = 0;
      show(status);
      if (!status.active) {
        window.location.reload();
        return;
      }
    } catch (error) {
      failures += 1;
      if (failures >= 5 && label) {
        label.textContent = "Could not check progress; reload the page to try again.";
        return; // stop hammering a server that is not answering
      }
    }
    window.setTimeout(poll, 2000);
  };

  window.setTimeout(poll, 2000);
}
