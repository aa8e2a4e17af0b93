"""Rating a recorded session against a fidelity scale: the panel beside the player, its
endpoints, and the page that sets a self-rating beside a supervisor's.

`rating_context(user, recording)` is what `fidelity/_rating_panel.html` shows in the review
workspace, in a fixed number of queries (the rater's role, the scales on offer, the rater's
ratings of the session, the current rating's evidence). The panel is a plain form that posts
every answer at once; rating.js saves each change as it is made instead (one POST per change,
answered with JSON), tallies behaviour counts from the keyboard while the recording plays, and
adds evidence at the player's moment.

Every object comes through relisten.access; every change through relisten.fidelity.actions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from relisten import access
from relisten.accounts.models import User
from relisten.audit.log import record_event_now, record_read
from relisten.fidelity import actions
from relisten.fidelity.models import Evidence, RaterRole, Rating, RatingState, Scale
from relisten.lib.fidelity.scale import OP_SIGNS, Item, ScaleDef, scale_from_definition
from relisten.recordings.models import Recording
from relisten.review.comments import parse_time
from relisten.review.models import Comment
from relisten.transcripts.search import clock
from relisten.web import same_site_next
from relisten.web import signed_in_user as _user
from relisten.web import wants_fragment as _wants_fragment

PANEL = "fidelity/_rating_panel.html"
PAGE = "fidelity/rating_page.html"
# Keys that tally behaviour counts, in item order (KeyboardEvent.code, and what the key shows).
# None of them is a player shortcut (Space K J L , . / C ?), and Shift with one takes one off.
TALLY_KEYS: tuple[tuple[str, str], ...] = (
    *((f"Digit{d}", d) for d in "1234567890"),
    *((f"Key{c.upper()}", c.upper()) for c in "qwertyuiop"),
)
# Where the comparison page highlights a difference (it says so on the page).
LIKERT_APART = 2
COUNT_APART = 3
LONGEST_RECORDING_S = 10 * 3600
COMMENT_SNIPPET = 60
ROLE_WORDS = {
    RaterRole.SELF: "Self-rating", RaterRole.SUPERVISOR: "Supervisor's rating",
    RaterRole.PEER: "Peer rating", RaterRole.REFERENCE: "Reference rating",
}
NOT_SAVED = "Not saved — check your connection."


# ---- the scale behind a rating ---------------------------------------------------------------

_parsed: dict[tuple[int, str], ScaleDef] = {}


def scale_definition(scale: Scale) -> ScaleDef:
    """The scale's validated document as the library's ScaleDef. A version never changes once
    made, so each is read once per process."""
    key = (scale.pk, scale.source_sha256)
    found = _parsed.get(key)
    if found is None:
        found = scale_from_definition(scale.definition)
        _parsed[key] = found
    return found


# ---- what the panel shows --------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    value: int
    anchor: str
    checked: bool


@dataclass(frozen=True)
class EvidenceView:
    evidence: Evidence
    at: str  # "12:34" or "12:34–13:00"
    from_comment: bool

    @property
    def seek(self) -> str:
        return f"{self.evidence.start:.2f}"


@dataclass
class ItemView:
    item: Item
    number: int
    value: int | None
    points: list[Point] = field(default_factory=list)
    evidence: list[EvidenceView] = field(default_factory=list)
    tally_code: str = ""
    tally_key: str = ""

    @property
    def is_count(self) -> bool:
        return self.item.kind == "count"

    @property
    def answered(self) -> bool:
        return self.is_count or self.value is not None

    @property
    def count_value(self) -> int:
        return self.value or 0


@dataclass(frozen=True)
class ScoreLine:
    label: str
    value: str  # as shown: "42", "0.85", "not defined"
    reason: str = ""


@dataclass(frozen=True)
class ThresholdLine:
    label: str
    rule: str
    met: bool | None  # None: could not be decided (a score not defined)


@dataclass
class Panel:
    """Context key `rating`: the rating panel for one recording and one person."""

    recording: Recording
    role: str | None
    scales: list[Scale] = field(default_factory=list)
    rating: Rating | None = None
    others: list[Rating] = field(default_factory=list)  # the rater's other ratings here
    items: list[ItemView] = field(default_factory=list)
    comment_choices: list[tuple[str, str]] = field(default_factory=list)
    scores: list[ScoreLine] = field(default_factory=list)
    thresholds: list[ThresholdLine] = field(default_factory=list)
    back: str = ""
    message: str = ""
    error: str = ""

    @property
    def role_label(self) -> str:
        return ROLE_WORDS.get(RaterRole(self.role), "") if self.role else ""

    @property
    def is_complete(self) -> bool:
        return self.rating is not None and self.rating.state == RatingState.COMPLETE

    @property
    def to_rate(self) -> int:
        return sum(1 for view in self.items if not view.is_count)

    @property
    def rated(self) -> int:
        return sum(1 for view in self.items if not view.is_count and view.value is not None)

    @property
    def counts(self) -> list[ItemView]:
        return [view for view in self.items if view.is_count]

    @property
    def ready(self) -> bool:
        return self.rated == self.to_rate

    @property
    def seek_base(self) -> str:
        """`back` ready for `t=…` (the session page's address already has `?r=`)."""
        back = self.back or reverse("transcripts:page",
                                    kwargs={"recording_id": self.recording.public_id})
        return back + ("&" if "?" in back else "?")

    @property
    def start_url(self) -> str:
        return reverse("fidelity:rating_start", kwargs={"recording_id": self.recording.public_id})

    @property
    def compare_url(self) -> str:
        return reverse("fidelity:compare",
                       kwargs={"session_id": self.recording.session.public_id})

    def _url(self, name: str) -> str:
        assert self.rating is not None
        return reverse(f"fidelity:{name}", kwargs={"rating_id": self.rating.public_id})

    @property
    def save_url(self) -> str:
        return self._url("rating")

    @property
    def answer_url(self) -> str:
        return self._url("rating_answer")

    @property
    def evidence_url(self) -> str:
        return self._url("rating_evidence")

    @property
    def complete_url(self) -> str:
        return self._url("rating_complete")

    @property
    def reopen_url(self) -> str:
        return self._url("rating_reopen")


def span(start: float, end: float | None) -> str:
    return clock(start) if end is None else f"{clock(start)}–{clock(end)}"


def _points(item: Item, value: int | None) -> list[Point]:
    if item.kind == "yes_no":
        return [Point(1, item.anchors.get(1, "Yes"), value == 1),
                Point(0, item.anchors.get(0, "No"), value == 0)]
    if item.kind == "likert":
        return [Point(p, item.anchors.get(p, ""), value == p)
                for p in range(item.min, (item.max if item.max is not None else item.min) + 1)]
    return []


def item_views(definition: ScaleDef, answers: dict[str, Any],
               evidence: Iterable[Evidence] = ()) -> list[ItemView]:
    by_item: dict[str, list[EvidenceView]] = {}
    for found in evidence:
        by_item.setdefault(found.item, []).append(
            EvidenceView(found, span(found.start, found.end), found.comment_id is not None))
    views: list[ItemView] = []
    keys = iter(TALLY_KEYS)
    for number, item in enumerate(definition.items, start=1):
        raw = answers.get(item.id)
        value = int(raw) if isinstance(raw, int | float) else None
        code, key = next(keys, ("", "")) if item.kind == "count" else ("", "")
        views.append(ItemView(item, number, value, _points(item, value),
                              by_item.get(item.id, []), code, key))
    return views


def score_lines(definition: ScaleDef, scores: dict[str, Any]
                ) -> tuple[list[ScoreLine], list[ThresholdLine]]:
    """The scores stored on a completed rating (lib Scores.to_json) as the panel and the
    comparison show them: each subscale and formula by name, then each threshold."""
    values = scores.get("values") or {}
    not_defined = scores.get("not_defined") or {}
    lines = [ScoreLine(definition.score_name(score_id), _number(value),
                       str(not_defined.get(score_id, "")))
             for score_id, value in values.items()]
    thresholds = []
    for found in scores.get("thresholds") or []:
        sign = OP_SIGNS.get(found.get("op"), found.get("op", ""))
        name = definition.score_name(str(found.get("score", "")))
        rule = f"{name} {sign} {_number(found.get('value'))}"
        thresholds.append(ThresholdLine(str(found.get("label", "")), rule, found.get("met")))
    return lines, thresholds


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "not defined"
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _comment_choices(comments: Iterable[Comment]) -> list[tuple[str, str]]:
    choices = []
    for comment in comments:
        words = " ".join(comment.body.split())
        if len(words) > COMMENT_SNIPPET:
            words = words[: COMMENT_SNIPPET - 1].rstrip() + "…"
        choices.append((str(comment.public_id), f"{span(comment.start, comment.end)} · {words}"))
    return choices


def rating_context(
    user: User, recording: Recording, *, can_treat: bool | None = None,
    comments: Sequence[Comment] | None = None, back: str = "", message: str = "",
    error: str = "",
) -> Panel:
    """The rating panel for `recording` (which must come through relisten.access for `user`).

    Four queries at most: the rater's role (none when the caller knows they treat), the scales
    on offer, the rater's ratings of this session, the current one's evidence. `comments`: the
    comments the person can read, when the caller has them already (the workspace has).
    """
    role = access.rater_role(user, recording, can_treat=can_treat)
    panel = Panel(recording=recording, role=role, back=back, message=message, error=error)
    if role is None:
        return panel
    panel.scales = list(actions.offered_scales(recording).defer("definition"))
    mine = list(Rating.objects.filter(session_id=recording.session_id, rater=user)
                .select_related("scale").order_by("-updated_at", "-pk"))
    if not mine:
        return panel
    rating, panel.others = mine[0], mine[1:]
    rating.session = recording.session
    panel.rating = rating
    definition = scale_definition(rating.scale)
    panel.items = item_views(definition, rating.answers,
                             Evidence.objects.filter(rating=rating).order_by("start", "pk"))
    panel.scores, panel.thresholds = score_lines(definition, rating.scores)
    if comments is None:
        comments = list(access.comments_for_user(user, recording).filter(parent__isnull=True)
                        .order_by("start", "created_at"))
    panel.comment_choices = _comment_choices(comments)
    return panel


# ---- the endpoints ---------------------------------------------------------------------------



def _back(request: HttpRequest, recording: Recording) -> str:
    """The page the person came from (this site only), else the recording's page."""
    return same_site_next(
        request, reverse("transcripts:page", kwargs={"recording_id": recording.public_id}))


def _recording_of(rating: Rating) -> Recording:
    recording = rating.recording
    assert recording is not None  # access.ratings_for_user asks for a playable recording
    return recording


def _answer(request: HttpRequest, recording: Recording, *, message: str = "",
            error: str = "") -> HttpResponse:
    """After a change: the panel alone (script), or back to the page (no script)."""
    user = _user(request)
    back = _back(request, recording)
    if _wants_fragment(request):
        panel = rating_context(user, recording, back=back, message=message, error=error)
        return render(request, PANEL, {"rating": panel})
    if error:
        messages.error(request, error)
    elif message:
        messages.success(request, message)
    return redirect(f"{back}#rating")


@login_required
@require_POST
def rating_start(request: HttpRequest, recording_id: str) -> HttpResponse:
    """Start rating this recording's session on the chosen scale (or go back to the rater's
    existing rating on it)."""
    user = _user(request)
    recording = access.get_recording_for_user(user, recording_id)
    role = access.rater_role(user, recording)
    if role is None:
        record_event_now(actor=user, event_type="authz.forbidden", changes={
            "object_type": "recording", "object_id": str(recording.public_id)})
        raise PermissionDenied("Only the session's therapist or supervisor can rate it.")
    wanted = _uuid(request.POST.get("scale", ""))
    scale = actions.offered_scales(recording).filter(public_id=wanted).first() if wanted else None
    if scale is None:
        return _answer(request, recording, error="Please choose a scale from the list.")
    if role == RaterRole.SUPERVISOR and request.POST.get("reference") == "1":
        # The supervisor's rating doubles as the gold standard of the calibration reports.
        role = str(RaterRole.REFERENCE)
    try:
        rating = actions.start_rating(actor=user, recording=recording, scale=scale, role=role)
    except actions.RatingRefused as refusal:
        return _answer(request, recording, error=refusal.message)
    return _answer(request, recording, message=f"Rating on {rating.scale.name}.")


def _uuid(raw: str) -> str | None:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def _posted_answers(request: HttpRequest, definition: ScaleDef
                    ) -> tuple[dict[str, float | None], list[str]]:
    """The plain form's answers (`item-<id>`), and what could not be read."""
    values: dict[str, float | None] = {}
    problems: list[str] = []
    for item in definition.items:
        name = f"item-{item.id}"
        if name not in request.POST:
            continue
        raw = request.POST[name].strip()
        if not raw:
            continue  # an untouched field clears nothing
        try:
            values[item.id] = float(raw)
        except ValueError:
            problems.append(f"“{item.text}” takes a number.")
    return values, problems


@login_required
def rating_page(request: HttpRequest, rating_id: str) -> HttpResponse:
    """GET: the rater's own rating on a page of its own (anyone else who may read it goes to
    the comparison). POST: the plain form's answers, all at once; "complete" completes too."""
    user = _user(request)
    if request.method == "POST":
        rating = access.get_rating_for_user(user, rating_id, own=True)
        return _save_form(request, rating, complete="complete" in request.POST)
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    rating = access.get_rating_for_user(user, rating_id)
    recording = _recording_of(rating)
    if rating.rater_id != user.pk:
        where = reverse("fidelity:compare", kwargs={"session_id": rating.session.public_id})
        return redirect(f"{where}?scale={rating.scale.public_id}")
    client = rating.session.episode.client
    record_read(actor=user, client=client, target=rating,
                role=access.relationship_to(user, client))
    panel = rating_context(user, recording, back=_back(request, recording))
    return render(request, PAGE, {"rating": panel, "recording": recording})


def _save_form(request: HttpRequest, rating: Rating, *, complete: bool) -> HttpResponse:
    user = _user(request)
    recording = _recording_of(rating)
    definition = scale_definition(rating.scale)
    values, problems = _posted_answers(request, definition)
    if problems:
        return _answer(request, recording, error=" ".join(problems))
    try:
        if values:
            actions.save_answers(actor=user, rating=rating, definition=definition,
                                 values=values)
        if complete:
            actions.complete_rating(actor=user, rating=rating, definition=definition)
    except actions.RatingRefused as refusal:
        return _answer(request, recording, error=refusal.message)
    return _answer(request, recording,
                   message="Rating complete. The scores are below." if complete else "Saved.")


@login_required
@require_POST
def rating_answer(request: HttpRequest, rating_id: str) -> JsonResponse:
    """Autosave of one answer: `item`, `value` (empty clears it). Answered with JSON."""
    user = _user(request)
    rating = access.get_rating_for_user(user, rating_id, own=True)
    definition = scale_definition(rating.scale)
    raw = request.POST.get("value", "").strip()
    try:
        value = float(raw) if raw else None
    except ValueError:
        return JsonResponse({"error": "That answer is not a number."}, status=400)
    try:
        changed = actions.save_answers(actor=user, rating=rating, definition=definition,
                                       values={request.POST.get("item", ""): value})
    except actions.RatingRefused as refusal:
        status = 409 if refusal.message == actions.COMPLETE_FIRST else 400
        return JsonResponse({"error": refusal.message}, status=status)
    to_rate = [item for item in definition.items if item.kind != "count"]
    missing = actions.unanswered(definition, rating.answers)
    return JsonResponse({"saved": True, "changed": changed,
                         "rated": len(to_rate) - len(missing), "to_rate": len(to_rate)})


@login_required
@require_POST
def rating_evidence(request: HttpRequest, rating_id: str) -> HttpResponse:
    """Evidence for an item: `item`, and a time `at` (with `until` for a stretch) or a
    `comment` the rater can read; an optional short `note`."""
    user = _user(request)
    rating = access.get_rating_for_user(user, rating_id, own=True)
    recording = _recording_of(rating)
    definition = scale_definition(rating.scale)
    comment: Comment | None = None
    start = end = None
    wanted = _uuid(request.POST.get("comment", ""))
    if wanted:
        comment = access.comments_for_user(user, recording).filter(public_id=wanted).first()
        if comment is None:
            return _answer(request, recording, error="That comment is no longer there. "
                                                     "Please choose another or use a time.")
    else:
        start, end, problem = _times(request, recording)
        if problem:
            return _answer(request, recording, error=problem)
    try:
        actions.add_evidence(actor=user, rating=rating, definition=definition,
                             item_id=request.POST.get("item", ""), start=start or 0.0, end=end,
                             comment=comment, note=request.POST.get("note", "").strip())
    except actions.RatingRefused as refusal:
        return _answer(request, recording, error=refusal.message)
    return _answer(request, recording, message="Evidence added.")


def _times(request: HttpRequest, recording: Recording
           ) -> tuple[float | None, float | None, str]:
    start = parse_time(request.POST.get("at", ""))
    raw_end = request.POST.get("until", "").strip()
    end = parse_time(raw_end) if raw_end else None
    limit = recording.duration_s or LONGEST_RECORDING_S
    if start is None or (raw_end and end is None):
        return None, None, ("Please write the time as minutes:seconds, for example 12:34, "
                            "or choose a comment.")
    if start > limit or (end is not None and end > limit):
        return None, None, f"That time is after the end of the recording ({clock(limit)})."
    if end is not None and end < start:
        return None, None, (f"The end ({clock(end)}) is before the start ({clock(start)}). "
                            "Leave it empty for a single moment.")
    return start, (None if end == start else end), ""


@login_required
@require_POST
def evidence_delete(request: HttpRequest, evidence_id: str) -> HttpResponse:
    user = _user(request)
    evidence = access.get_evidence_for_user(user, evidence_id)
    recording = _recording_of(evidence.rating)
    try:
        actions.remove_evidence(actor=user, evidence=evidence)
    except actions.RatingRefused as refusal:
        return _answer(request, recording, error=refusal.message)
    return _answer(request, recording, message="Evidence removed.")


@login_required
@require_POST
def rating_complete(request: HttpRequest, rating_id: str) -> HttpResponse:
    """Complete (answers sent with it are saved first, so the plain form can complete too)."""
    rating = access.get_rating_for_user(_user(request), rating_id, own=True)
    return _save_form(request, rating, complete=True)


@login_required
@require_POST
def rating_reopen(request: HttpRequest, rating_id: str) -> HttpResponse:
    user = _user(request)
    rating = access.get_rating_for_user(user, rating_id, own=True)
    actions.reopen_rating(actor=user, rating=rating)
    return _answer(request, _recording_of(rating),
                   message="Reopened. Change what you need, then complete it again.")


# ---- the comparison page -----------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    value: str  # as shown
    anchor: str
    evidence: list[tuple[str, str]]  # (span, address of the recording page at that moment)


@dataclass(frozen=True)
class Row:
    item: Item
    cells: list[Cell]
    differs: bool


@dataclass
class Column:
    rating: Rating
    heading: str
    scores: list[ScoreLine]
    thresholds: list[ThresholdLine]


def differs(item: Item, values: Sequence[int | None]) -> bool:
    """The page's rule: Likert ratings 2 or more points apart, yes/no answers that differ,
    counts 3 or more apart. An item one rater has not answered is not a difference."""
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return False
    gap = max(known) - min(known)
    if item.kind == "yes_no":
        return gap > 0
    return gap >= (COUNT_APART if item.kind == "count" else LIKERT_APART)


def _shown(item: Item, value: int | None) -> tuple[str, str]:
    if value is None:
        return "not rated", ""
    shown = ("Yes" if value else "No") if item.kind == "yes_no" else str(value)
    anchor = item.anchors.get(value, "")
    return shown, "" if anchor == shown else anchor


def _evidence_links(found: Iterable[Evidence], recording_page: str) -> dict[str, list[Any]]:
    by_item: dict[str, list[tuple[str, str]]] = {}
    for evidence in found:
        by_item.setdefault(evidence.item, []).append(
            (span(evidence.start, evidence.end), f"{recording_page}?t={evidence.start:.2f}"))
    return by_item


def _heading(rating: Rating, user: User) -> str:
    who = "You" if rating.rater_id == user.pk else rating.rater.label()
    words = ROLE_WORDS.get(RaterRole(rating.role), rating.role)
    state = "" if rating.state == RatingState.COMPLETE else " (in progress)"
    return f"{words}: {who}{state}"


def comparison(user: User, ratings: Sequence[Rating]) -> tuple[list[Column], list[Row]]:
    """Self-rating first, then supervisors and the rest, item by item; evidence in one query."""
    order = {RaterRole.SELF: 0, RaterRole.SUPERVISOR: 1, RaterRole.PEER: 2,
             RaterRole.REFERENCE: 3}
    chosen = sorted(ratings, key=lambda r: (order.get(RaterRole(r.role), 9), r.pk))
    evidence: dict[int, list[Evidence]] = {}
    for found in Evidence.objects.filter(rating__in=chosen).order_by("start", "pk"):
        evidence.setdefault(found.rating_id, []).append(found)
    columns, links = [], []
    definition = scale_definition(chosen[0].scale) if chosen else None
    for rating in chosen:
        assert definition is not None
        lines, thresholds = score_lines(definition, rating.scores)
        columns.append(Column(rating, _heading(rating, user), lines, thresholds))
        page = reverse("transcripts:page", kwargs={"recording_id": _recording_of(rating).public_id})
        links.append(_evidence_links(evidence.get(rating.pk, []), page))
    rows = []
    if definition is not None:
        for item in definition.items:
            values = [_value(r.answers.get(item.id)) for r in chosen]
            cells = [Cell(*_shown(item, v), links[n].get(item.id, []))
                     for n, v in enumerate(values)]
            rows.append(Row(item, cells, differs(item, values)))
    return columns, rows


def _value(raw: Any) -> int | None:
    return int(raw) if isinstance(raw, int | float) else None


@login_required
@require_GET
def compare(request: HttpRequest, session_id: str) -> HttpResponse:
    """Ratings of one session on one scale version side by side (`?scale=` picks the version
    when the session was rated on several)."""
    user = _user(request)
    session = access.get_rated_session_for_user(user, session_id)
    client = session.episode.client
    record_read(actor=user, client=client, target=session,
                role=access.relationship_to(user, client))
    ratings = list(access.ratings_for_user(user).filter(session=session)
                   .select_related("scale", "rater", "recording__session"))
    scales: dict[str, Scale] = {}
    for rating in ratings:
        scales.setdefault(str(rating.scale.public_id), rating.scale)
    wanted = request.GET.get("scale", "")
    if wanted not in scales:
        # The scale with the most raters (a self-rating and a supervisor's, usually).
        wanted = max(scales, key=lambda key: sum(str(r.scale.public_id) == key
                                                  for r in ratings), default="")
    shown = [r for r in ratings if str(r.scale.public_id) == wanted]
    columns, rows = comparison(user, shown)
    return render(request, "fidelity/compare.html", {
        "session": session, "client": client, "columns": columns, "rows": rows,
        "scales": list(scales.values()), "scale": scales.get(wanted),
        "differences": sum(1 for row in rows if row.differs),
        "likert_apart": LIKERT_APART, "count_apart": COUNT_APART,
        "session_url": reverse("clients:session", kwargs={"session_id": session.public_id}),
    })
