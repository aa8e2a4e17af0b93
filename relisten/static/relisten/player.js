// The review workspace (templates/review/_workspace.html): the player, its position bar, speed and
// skip controls, keyboard shortcuts, the transcript that follows playback (current passage and
// word highlighted, click a word to play from it), search within the session and the inline
// correction form. A same-origin module because the CSP allows no inline script.
//
// The transcript markup comes from the server in one piece; word timings come beside it as one
// JSON block (#ws-data: s = [start, end] per passage, w = word starts per passage matching the
// passage's <span>s, k = speaker position, speakers = speaker ids). Nothing is fetched per word.
//
// Contract with the comments panel (comments.js): it may read `#player`'s currentTime, fills
// `#timeline-markers`, asks for a seek with `relisten:seek` {t}; this module reports the time
// with `relisten:timeupdate` {t} at most four times a second and asks for a comment at the
// current moment with `relisten:comment-here` {t} (the C key).

const root = document.getElementById("workspace");
const player = document.getElementById("player");

const SPEEDS = [0.75, 1, 1.25, 1.5, 1.75, 2];
const SKIP_S = 10;
const TIMEUPDATE_EVERY_MS = 250;
const MANUAL_SCROLL_PAUSE_MS = 4000;
const MAX_HITS = 5000;
const PLACEHOLDER = "00000000-0000-0000-0000-000000000000";
const SPEED_KEY = "relisten.playbackRate";

export function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

// The last index whose value is <= t in an ascending array (-1 when t is before the first).
export function lastAtOrBefore(values, t, pick = (v) => v) {
  let lo = 0;
  let hi = values.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (pick(values[mid]) <= t) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

function readData() {
  const node = document.getElementById("ws-data");
  if (!node) return { s: [], w: [], k: [], speakers: [] };
  try {
    return JSON.parse(node.textContent);
  } catch {
    return { s: [], w: [], k: [], speakers: [] };
  }
}

const byId = (id) => document.getElementById(id);
const reducedMotion = () => window.matchMedia("(prefers-reduced-motion: reduce)").matches;

function isTyping(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag !== "INPUT") return false;
  // Radio buttons and sliders use the arrow keys themselves, so they count as fields too.
  return !["checkbox", "button", "submit", "reset"].includes(target.type);
}

// Space on a button, link, tick box or the media element's own controls means "activate that".
function ownsSpace(target) {
  if (!(target instanceof Element)) return false;
  return Boolean(target.closest("button, a[href], summary, input, audio, video, [role=button], [role=slider]"));
}

function start() {
  const data = readData();
  const list = byId("ws-segments");
  const segs = list ? Array.from(list.querySelectorAll(":scope > li.seg")) : [];
  const segIndex = new Map(segs.map((el, i) => [el, i]));
  const track = byId("timeline-track");
  const progress = byId("timeline-progress");
  const timeText = byId("ws-time");
  const playButton = byId("ws-play");
  const speedSelect = byId("ws-speed");
  const follow = byId("ws-follow");
  const pane = document.querySelector("#workspace .ws-main");
  const help = byId("ws-help");
  const editUrl = root.dataset.editUrl || "";

  const duration = () => (Number.isFinite(player.duration) && player.duration > 0
    ? player.duration : Number(root.dataset.duration) || 0);

  // ---- where we are ------------------------------------------------------------------------
  let currentSeg = -1;
  let currentWord = null;
  let activeSeg = -1; // the passage whose links are in the tab order
  let lastManualScroll = -Infinity;
  let lastReported = -Infinity;
  let lastShown = "";

  const segmentAt = (t) => lastAtOrBefore(data.s, t + 0.001, (span) => span[0]);

  function wordAt(i, t) {
    const starts = data.w[i] || [];
    if (!starts.length || t > data.s[i][1] + 0.25) return null;
    const j = lastAtOrBefore(starts, t + 0.001);
    if (j < 0) return null;
    const text = segs[i].querySelector(".seg-text");
    return text ? text.children[j] || null : null;
  }

  function setActive(i) {
    if (i === activeSeg || i < 0 || i >= segs.length) return;
    if (activeSeg >= 0) {
      for (const link of segs[activeSeg].querySelectorAll(".seg-meta a")) link.tabIndex = -1;
    }
    activeSeg = i;
    for (const link of segs[i].querySelectorAll(".seg-meta a")) link.removeAttribute("tabindex");
  }

  function render(t) {
    const total = duration();
    const fraction = total ? Math.min(1, Math.max(0, t / total)) : 0;
    if (progress) progress.style.width = `${(fraction * 100).toFixed(2)}%`;
    // The words for people (and screen readers) change once a second, not every frame.
    const shown = `${clock(t)} / ${clock(total)}`;
    if (shown !== lastShown) {
      lastShown = shown;
      if (track) {
        track.setAttribute("aria-valuenow", t.toFixed(1));
        track.setAttribute("aria-valuemax", total.toFixed(1));
        track.setAttribute("aria-valuetext", `${clock(t)} of ${clock(total)}`);
      }
      if (timeText && !timeText.dataset.error) timeText.textContent = shown;
    }
    if (!segs.length) return;
    const i = segmentAt(t);
    if (i !== currentSeg) {
      if (currentSeg >= 0) {
        segs[currentSeg].classList.remove("now");
        segs[currentSeg].removeAttribute("aria-current");
      }
      currentSeg = i;
      if (i >= 0) {
        segs[i].classList.add("now");
        segs[i].setAttribute("aria-current", "true");
        if (!list.contains(document.activeElement)) setActive(i);
        if (!player.paused) followTo(i);
      }
    }
    const word = i >= 0 ? wordAt(i, t) : null;
    if (word !== currentWord) {
      if (currentWord) currentWord.classList.remove("now");
      currentWord = word;
      if (word) word.classList.add("now");
    }
  }

  function report(t, force = false) {
    const now = performance.now();
    if (!force && now - lastReported < TIMEUPDATE_EVERY_MS) return;
    lastReported = now;
    document.dispatchEvent(new CustomEvent("relisten:timeupdate", { detail: { t } }));
  }

  // ---- scrolling the transcript ------------------------------------------------------------
  const paneScrolls = () => pane && pane.scrollHeight > pane.clientHeight + 1
    && getComputedStyle(pane).overflowY !== "visible";

  function stickyPlayerHeight() {
    const box = document.querySelector("#workspace .ws-player");
    if (!box || getComputedStyle(box).position !== "sticky") return 0;
    return box.getBoundingClientRect().height;
  }

  // Scroll so passage i sits a third of the way down the part of the transcript that is on
  // screen. Passages far off screen are laid out at an estimated height (content-visibility),
  // so the position is checked again once they have been drawn. `reveal` (a seek the person
  // asked for) first brings the workspace into view when the page is scrolled away from it.
  function scrollToSegment(i, { onlyIfHidden = false, smooth = false, reveal = false } = {}) {
    const el = segs[i];
    if (!el) return;
    const inPane = paneScrolls();
    if (reveal && inPane) {
      const box = pane.getBoundingClientRect();
      if (box.top < 0 || box.top > window.innerHeight / 4) window.scrollBy(0, box.top - 8);
    }
    const place = (behavior) => {
      const rect = el.getBoundingClientRect();
      let top = stickyPlayerHeight();
      let bottom = window.innerHeight;
      if (inPane) {
        const box = pane.getBoundingClientRect();
        top = Math.max(box.top, 0);
        bottom = Math.min(box.bottom, window.innerHeight);
      }
      if (bottom - top < 48) return 0; // the transcript is off screen: leave the page alone
      const offset = rect.top - top - (bottom - top) / 3;
      const margin = (bottom - top) * 0.1;
      if (onlyIfHidden && rect.top >= top + margin && rect.bottom <= bottom - margin) return 0;
      if (inPane) pane.scrollTo({ top: Math.max(0, pane.scrollTop + offset), behavior });
      else window.scrollTo({ top: Math.max(0, window.scrollY + offset), behavior });
      return Math.abs(offset);
    };
    const far = place(smooth && !reducedMotion() ? "smooth" : "auto");
    if (far > window.innerHeight && !smooth) {
      requestAnimationFrame(() => requestAnimationFrame(() => place("auto")));
    }
  }

  function followTo(i) {
    if (follow && !follow.checked) return;
    if (performance.now() - lastManualScroll < MANUAL_SCROLL_PAUSE_MS) return;
    if (list.contains(document.activeElement)) return; // do not pull the view from under a reader
    scrollToSegment(i, { onlyIfHidden: true, smooth: true });
  }

  const noteManualScroll = () => { lastManualScroll = performance.now(); };
  for (const target of [window, pane].filter(Boolean)) {
    target.addEventListener("wheel", noteManualScroll, { passive: true });
    target.addEventListener("touchmove", noteManualScroll, { passive: true });
  }

  // ---- playing -----------------------------------------------------------------------------
  function seek(t, { scroll = true } = {}) {
    if (!Number.isFinite(t)) return;
    const total = duration();
    const to = Math.max(0, total ? Math.min(t, total) : t);
    player.currentTime = to;
    render(to);
    report(to, true);
    if (scroll && segs.length) {
      const i = segmentAt(to);
      if (i >= 0) scrollToSegment(i, { onlyIfHidden: true, reveal: true });
    }
  }

  const skip = (delta) => seek(player.currentTime + delta);

  function togglePlay() {
    if (player.paused) {
      player.play().catch(() => {}); // a refused autoplay changes nothing; the button says Play
    } else {
      player.pause();
    }
  }

  function setSpeed(rate) {
    const value = SPEEDS.includes(rate) ? rate : 1;
    player.playbackRate = value;
    player.defaultPlaybackRate = value;
    if (speedSelect) speedSelect.value = String(value);
    try {
      window.localStorage.setItem(SPEED_KEY, String(value));
    } catch {
      // private windows may refuse storage; the speed still applies to this page
    }
  }

  function stepSpeed(direction) {
    const at = SPEEDS.indexOf(player.playbackRate);
    const index = at < 0 ? SPEEDS.indexOf(1) : at;
    setSpeed(SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, index + direction))]);
  }

  let frame = 0;
  function tick() {
    render(player.currentTime);
    report(player.currentTime);
    frame = player.paused ? 0 : requestAnimationFrame(tick);
  }

  player.addEventListener("play", () => {
    if (playButton) playButton.textContent = "Pause";
    if (!frame) frame = requestAnimationFrame(tick);
  });
  player.addEventListener("pause", () => {
    if (playButton) playButton.textContent = "Play";
    render(player.currentTime);
    report(player.currentTime, true);
  });
  player.addEventListener("seeked", () => { render(player.currentTime); report(player.currentTime, true); });
  player.addEventListener("timeupdate", () => { if (player.paused) render(player.currentTime); });
  player.addEventListener("loadedmetadata", () => render(player.currentTime));
  player.addEventListener("ratechange", () => {
    if (speedSelect && SPEEDS.includes(player.playbackRate)) speedSelect.value = String(player.playbackRate);
  });
  player.addEventListener("error", () => {
    if (!timeText) return;
    timeText.dataset.error = "1";
    timeText.textContent = "The recording could not be loaded. Reload the page to try again.";
  });

  if (playButton) playButton.addEventListener("click", togglePlay);
  byId("ws-back")?.addEventListener("click", () => skip(-SKIP_S));
  byId("ws-forward")?.addEventListener("click", () => skip(SKIP_S));
  if (speedSelect) speedSelect.addEventListener("change", () => setSpeed(Number(speedSelect.value)));
  try {
    const saved = Number(window.localStorage.getItem(SPEED_KEY));
    if (SPEEDS.includes(saved)) setSpeed(saved);
  } catch {
    // no storage: start at normal speed
  }

  document.addEventListener("relisten:seek", (event) => seek(Number(event.detail && event.detail.t)));

  // ---- the position bar --------------------------------------------------------------------
  if (track) {
    const fractionAt = (clientX) => {
      const box = track.getBoundingClientRect();
      return box.width ? Math.min(1, Math.max(0, (clientX - box.left) / box.width)) : 0;
    };
    let dragging = false;
    track.addEventListener("pointerdown", (event) => {
      dragging = true;
      track.setPointerCapture(event.pointerId);
      seek(fractionAt(event.clientX) * duration());
    });
    track.addEventListener("pointermove", (event) => {
      if (dragging) seek(fractionAt(event.clientX) * duration(), { scroll: false });
    });
    const stop = () => { dragging = false; };
    track.addEventListener("pointerup", stop);
    track.addEventListener("pointercancel", stop);
    track.addEventListener("keydown", (event) => {
      const moves = { ArrowLeft: -5, ArrowDown: -5, ArrowRight: 5, ArrowUp: 5, PageDown: -60, PageUp: 60 };
      if (event.key in moves) {
        seek(player.currentTime + moves[event.key]);
      } else if (event.key === "Home") {
        seek(0);
      } else if (event.key === "End") {
        seek(duration());
      } else {
        return;
      }
      event.preventDefault();
    });
  }

  // ---- the transcript: click and keys ------------------------------------------------------
  const wordsOf = (i) => Array.from(segs[i].querySelector(".seg-text")?.children || []);

  function seekToWord(span) {
    const li = span.closest("li.seg");
    const i = segIndex.get(li);
    if (i === undefined) return;
    const j = wordsOf(i).indexOf(span);
    const t = j >= 0 && data.w[i] && j < data.w[i].length ? data.w[i][j] : data.s[i]?.[0];
    seek(t, { scroll: false });
  }

  function focusWord(span) {
    span.tabIndex = -1;
    span.focus();
  }

  if (list) {
    list.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target : null;
      if (!target) return;
      const li = target.closest("li.seg");
      const i = li ? segIndex.get(li) : undefined;
      if (i === undefined) return;
      if (target.closest("a.seg-time")) {
        event.preventDefault();
        setActive(i);
        seek(data.s[i][0], { scroll: false });
        return;
      }
      if (target.closest("a.seg-edit")) {
        if (!editUrl) return;
        event.preventDefault();
        openCorrection(i);
        return;
      }
      if (String(window.getSelection() || "")) return; // selecting text to copy, not seeking
      const span = target.closest(".seg-text > span");
      if (span) {
        seekToWord(span);
      } else if (target.closest(".seg-text")) {
        seek(data.s[i][0], { scroll: false });
      }
    });

    list.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
      const target = event.target instanceof Element ? event.target : null;
      const li = target?.closest("li.seg");
      const i = li ? segIndex.get(li) : undefined;
      if (i === undefined) return;
      const onWord = target.matches(".seg-text > span");
      const onTime = target.matches("a.seg-time");
      if (!onWord && !onTime) return;
      const words = wordsOf(i);
      const j = onWord ? words.indexOf(target) : -1;
      let handled = true;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        const next = i + (event.key === "ArrowDown" ? 1 : -1);
        if (next >= 0 && next < segs.length) {
          setActive(next);
          segs[next].querySelector("a.seg-time")?.focus();
        }
      } else if (event.key === "ArrowRight") {
        if (j + 1 < words.length) {
          focusWord(words[j + 1]);
        } else if (i + 1 < segs.length) {
          setActive(i + 1);
          const first = wordsOf(i + 1)[0];
          if (first) focusWord(first); else segs[i + 1].querySelector("a.seg-time")?.focus();
        }
      } else if (event.key === "ArrowLeft") {
        if (j > 0) focusWord(words[j - 1]);
        else if (onWord) li.querySelector("a.seg-time")?.focus();
      } else if ((event.key === "Enter" || event.key === " ") && onWord) {
        seekToWord(target);
      } else if ((event.key === "e" || event.key === "E") && editUrl) {
        openCorrection(i);
      } else {
        handled = false;
      }
      if (handled) event.preventDefault();
    });

    list.addEventListener("focusin", (event) => {
      const li = event.target instanceof Element ? event.target.closest("li.seg") : null;
      const i = li ? segIndex.get(li) : undefined;
      if (i !== undefined) setActive(i);
    });

    // Only one passage's links in the tab order: Tab enters the transcript at the passage being
    // played (or the one last visited), not at the first of 700.
    for (const link of list.querySelectorAll(".seg-meta a")) link.tabIndex = -1;
    const fromHash = window.location.hash.startsWith("#seg-") ? byId(window.location.hash.slice(1)) : null;
    setActive(fromHash && segIndex.has(fromHash) ? segIndex.get(fromHash) : 0);
  }

  // ---- correcting a passage: the page's one form, moved into the passage ------------------
  const form = byId("correct-form");
  function openCorrection(i) {
    if (!form || !editUrl) return;
    const li = segs[i];
    const id = li.id.replace(/^seg-/, "");
    form.action = editUrl.replace(PLACEHOLDER, id);
    form.dataset.segment = id;
    const text = form.querySelector("textarea[name=text]");
    const speaker = form.querySelector("select[name=speaker]");
    const when = form.querySelector("[data-correct-clock]");
    if (text) text.value = li.querySelector(".seg-text")?.textContent.trim() || "";
    if (speaker) {
      const k = data.k[i];
      speaker.value = k >= 0 && data.speakers[k] ? data.speakers[k] : "";
    }
    if (when) when.textContent = li.querySelector(".seg-time")?.textContent || "";
    li.appendChild(form);
    form.hidden = false;
    text?.focus();
  }
  function closeCorrection() {
    if (!form) return;
    const li = form.closest("li.seg");
    form.hidden = true;
    li?.querySelector("a.seg-time")?.focus();
  }
  if (form) {
    byId("correct-cancel")?.addEventListener("click", (event) => {
      event.preventDefault();
      closeCorrection();
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") closeCorrection();
    });
    // Opened without JavaScript (?edit=): show it inside its passage.
    const opened = form.hidden ? null : byId(`seg-${form.dataset.segment}`);
    if (opened && segIndex.has(opened)) opened.appendChild(form);
  }

  // ---- search within the session -----------------------------------------------------------
  const search = byId("ws-search");
  const searchForm = byId("ws-search-form");
  const count = byId("ws-count");
  const canHighlight = typeof Highlight === "function" && typeof CSS !== "undefined" && CSS.highlights;
  let lowered = null;
  let hits = [];
  let hitAt = -1;
  let debounce = 0;

  function rangeFor(i, pos, length) {
    const text = segs[i].querySelector(".seg-text");
    if (!text) return null;
    const walker = document.createTreeWalker(text, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    let offset = 0;
    let started = false;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const size = node.data.length;
      if (!started && pos < offset + size) {
        range.setStart(node, pos - offset);
        started = true;
      }
      if (started && pos + length <= offset + size) {
        range.setEnd(node, pos + length - offset);
        return range;
      }
      offset += size;
    }
    return null;
  }

  function clearMarks() {
    if (canHighlight) {
      CSS.highlights.delete("ws-hit");
      CSS.highlights.delete("ws-hit-now");
    }
    for (const el of list ? list.querySelectorAll("li.hit") : []) el.classList.remove("hit");
  }

  function find(query) {
    clearMarks();
    hits = [];
    hitAt = -1;
    const needle = query.trim().toLowerCase();
    if (!needle) {
      if (count) count.textContent = "";
      return;
    }
    if (!lowered) lowered = segs.map((li) => (li.querySelector(".seg-text")?.textContent || "").toLowerCase());
    for (let i = 0; i < lowered.length && hits.length < MAX_HITS; i += 1) {
      let from = 0;
      for (;;) {
        const pos = lowered[i].indexOf(needle, from);
        if (pos < 0 || hits.length >= MAX_HITS) break;
        hits.push({ i, pos, length: needle.length, range: null });
        from = pos + needle.length;
      }
    }
    if (canHighlight) {
      const ranges = [];
      for (const hit of hits) {
        hit.range = rangeFor(hit.i, hit.pos, hit.length);
        if (hit.range) ranges.push(hit.range);
      }
      CSS.highlights.set("ws-hit", new Highlight(...ranges));
    }
    for (const hit of hits) segs[hit.i].classList.add("hit");
    if (count) {
      count.textContent = hits.length
        ? `${hits.length}${hits.length >= MAX_HITS ? "+" : ""} match${hits.length === 1 ? "" : "es"} in this session. Press Enter or Next to go to the first.`
        : "No matches in this session.";
    }
  }

  function timeOfHit(hit) {
    const starts = data.w[hit.i] || [];
    const range = hit.range || rangeFor(hit.i, hit.pos, hit.length);
    if (range && starts.length) {
      const node = range.startContainer;
      let span = node.parentElement?.closest(".seg-text > span");
      if (!span && node.nextSibling instanceof Element) span = node.nextSibling; // the space before a word
      const j = span ? wordsOf(hit.i).indexOf(span) : -1;
      if (j >= 0 && j < starts.length) return starts[j];
    }
    return data.s[hit.i][0];
  }

  function showHit(step) {
    if (!hits.length) {
      if (search && search.value.trim()) find(search.value);
      if (!hits.length) return;
    }
    hitAt = (hitAt + step + hits.length) % hits.length;
    const hit = hits[hitAt];
    if (canHighlight) {
      const range = hit.range || rangeFor(hit.i, hit.pos, hit.length);
      if (range) CSS.highlights.set("ws-hit-now", new Highlight(range));
    }
    seek(timeOfHit(hit), { scroll: false });
    setActive(hit.i);
    scrollToSegment(hit.i, { reveal: true });
    if (count) count.textContent = `Match ${hitAt + 1} of ${hits.length}${hits.length >= MAX_HITS ? "+" : ""}, at ${clock(timeOfHit(hit))}.`;
  }

  if (search && searchForm) {
    search.addEventListener("input", () => {
      window.clearTimeout(debounce);
      debounce = window.setTimeout(() => find(search.value), 150);
    });
    searchForm.addEventListener("submit", (event) => {
      event.preventDefault(); // searching this session happens here; "Search all transcripts" is a link
      window.clearTimeout(debounce);
      if (!hits.length || hitAt < 0) find(search.value);
      showHit(1);
    });
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.shiftKey) {
        event.preventDefault();
        showHit(-1);
      }
    });
    byId("ws-next")?.addEventListener("click", () => showHit(1));
    byId("ws-prev")?.addEventListener("click", () => showHit(-1));
  }

  // ---- shortcuts ---------------------------------------------------------------------------
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (isTyping(target)) return;
    const onMedia = target instanceof Element && target.matches("audio, video");
    switch (event.key) {
      case " ":
        if (ownsSpace(target)) return;
        togglePlay();
        break;
      case "k": case "K":
        togglePlay();
        break;
      case "j": case "J":
        skip(-SKIP_S);
        break;
      case "l": case "L":
        skip(SKIP_S);
        break;
      case "ArrowLeft":
        if (onMedia) return;
        skip(-SKIP_S);
        break;
      case "ArrowRight":
        if (onMedia) return;
        skip(SKIP_S);
        break;
      case ",": case "<":
        stepSpeed(-1);
        break;
      case ".": case ">":
        stepSpeed(1);
        break;
      case "/":
        if (!search) return;
        search.focus();
        search.select();
        break;
      case "c": case "C":
        document.dispatchEvent(new CustomEvent("relisten:comment-here", { detail: { t: player.currentTime } }));
        break;
      case "?":
        if (help) help.open = !help.open;
        break;
      default:
        return;
    }
    event.preventDefault();
  });

  // ---- first paint -------------------------------------------------------------------------
  const startAt = Number(root.dataset.start);
  if (root.dataset.start && Number.isFinite(startAt)) {
    render(startAt);
    const i = segmentAt(startAt);
    if (i >= 0 && !window.location.hash) {
      setActive(i);
      requestAnimationFrame(() => scrollToSegment(i, { reveal: true }));
    }
  } else {
    render(player.currentTime || 0);
  }
  root.dataset.ready = "1"; // for tests and the comments panel: the player is wired up
}

if (root && player) start();
