"""Measurement plan pages (clinic default, per episode), response rates, and the client's
opt-out (from an emailed link, no sign-in, or from the portal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from relisten import access
from relisten.access import Act
from relisten.accounts.models import Clinic, User
from relisten.audit.log import record_event_now, record_read
from relisten.clients.models import Client
from relisten.outcomes import actions
from relisten.outcomes.links import LinkError, redeem
from relisten.outcomes.models import (
    Due,
    DueState,
    Instrument,
    MeasurementPlan,
    QuestionnaireContact,
    TimePoint,
)
from relisten.outcomes.schedule import plan_for
from relisten.web import signed_in_user as _user

# ---- the plan form ---------------------------------------------------------------------------

def offered_instruments(clinic: Clinic) -> QuerySet[Instrument]:
    return Instrument.objects.filter(Q(clinic=None) | Q(clinic=clinic), active=True)


class PlanForm(forms.Form):
    instruments = forms.ModelMultipleChoiceField(
        queryset=Instrument.objects.none(), widget=forms.CheckboxSelectMultiple, required=False,
        label="Questionnaires", help_text="Choose none to ask for no questionnaires.")
    at_intake = forms.BooleanField(required=False, label="At intake (the start of the episode)")
    every_n_sessions = forms.IntegerField(
        min_value=0, max_value=52, label="Before sessions: every how many sessions?",
        help_text="1: before every session; 2: every second session; 0: not before sessions. "
                  "They are asked for the day before the session.")
    at_end = forms.BooleanField(required=False, label="At the end of treatment (discharge)")
    follow_up_months = forms.TypedMultipleChoiceField(
        choices=[(m, f"{m} month{'s' if m > 1 else ''} after discharge")
                 for m in actions.FOLLOW_UP_CHOICES],
        coerce=int, widget=forms.CheckboxSelectMultiple, required=False, label="Follow-ups")
    reminder_days = forms.CharField(
        max_length=40, label="Reminder emails, days after the questionnaire is due",
        help_text="For example 0, 3, 7: on the day, three days later and a week later.")
    link_valid_days = forms.IntegerField(
        min_value=1, max_value=90, label="Each emailed link works for (days)")
    show_client_chart = forms.BooleanField(
        required=False, label="Show clients their own chart after they answer")

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["instruments"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = offered_instruments(clinic)

    def clean_reminder_days(self) -> tuple[int, ...]:
        raw: str = self.cleaned_data["reminder_days"]
        parts = [p for p in raw.replace(";", ",").replace(" ", ",").split(",") if p]
        if not parts or not all(p.isdigit() for p in parts):
            raise forms.ValidationError(
                "Write whole numbers of days separated by commas, for example 0, 3, 7.")
        days = tuple(sorted({int(p) for p in parts}))
        if days[-1] > 60:
            raise forms.ValidationError("The last reminder can be at most 60 days after the "
                                        "questionnaire is due.")
        return days

    def values(self) -> actions.PlanValues:
        data = self.cleaned_data
        return actions.PlanValues(
            at_intake=data["at_intake"], every_n_sessions=data["every_n_sessions"],
            at_end=data["at_end"], follow_up_months=tuple(data["follow_up_months"]),
            reminder_days=data["reminder_days"], link_valid_days=data["link_valid_days"],
            show_client_chart=data["show_client_chart"])


def plan_initial(plan: MeasurementPlan | None, clinic: Clinic) -> dict[str, Any]:
    if plan is None:
        defaults = actions.PlanValues()
        return {
            "instruments": list(offered_instruments(clinic).filter(clinic=None)),
            "at_intake": defaults.at_intake, "every_n_sessions": defaults.every_n_sessions,
            "at_end": defaults.at_end, "follow_up_months": list(defaults.follow_up_months),
            "reminder_days": ", ".join(map(str, defaults.reminder_days)),
            "link_valid_days": defaults.link_valid_days,
            "show_client_chart": defaults.show_client_chart,
        }
    return {
        "instruments": list(plan.instruments.all()), "at_intake": plan.at_intake,
        "every_n_sessions": plan.every_n_sessions, "at_end": plan.at_end,
        "follow_up_months": plan.follow_up_months,
        "reminder_days": ", ".join(str(d) for d in plan.reminder_days),
        "link_valid_days": plan.link_valid_days, "show_client_chart": plan.show_client_chart,
    }


class ContactForm(forms.Form):
    email = forms.EmailField(
        required=False, label="Email for questionnaires",
        help_text="Reminders go here. Leave empty to use the client's portal sign-in email.")


# ---- clinic default --------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def clinic_plan(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    clinic = access.admin_clinics(user).order_by("name").first()
    if clinic is None:
        raise Http404("Not found")
    plan = MeasurementPlan.objects.filter(clinic=clinic, episode=None).first()
    form = PlanForm(request.POST or None, clinic=clinic, initial=plan_initial(plan, clinic))
    if request.method == "POST" and form.is_valid():
        actions.save_clinic_plan(actor=user, clinic=clinic, values=form.values(),
                                 instruments=form.cleaned_data["instruments"])
        messages.success(request, "The clinic's questionnaire schedule is saved. Episodes "
                                  "without their own schedule follow it from now on.")
        return redirect("outcomes:clinic_plan")
    return render(request, "outcomes/clinic_plan.html",
                  {"clinic": clinic, "form": form, "plan": plan})


# ---- one episode -----------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def episode_plan(request: HttpRequest, episode_id: str) -> HttpResponse:
    user = _user(request)
    episode = access.get_episode_for_user(user, episode_id, Act.TREAT)
    client = episode.client
    clinic = client.clinic
    own = MeasurementPlan.objects.filter(episode=episode).first()
    contact = QuestionnaireContact.objects.filter(client=client).first()
    if request.method == "GET":
        record_read(actor=user, client=client, target=episode,
                    role=access.relationship_to(user, client))
    data = request.POST if request.method == "POST" else None
    form = PlanForm(data, clinic=clinic, initial=plan_initial(own or plan_for(episode), clinic))
    contact_form = ContactForm(data, initial={"email": contact.email if contact else ""})
    if request.method == "POST" and request.POST.get("use") == "clinic":
        actions.use_clinic_plan(actor=user, episode=episode)
        messages.success(request, "This episode follows the clinic's questionnaire schedule "
                                  "again.")
        return redirect("clients:episode", episode_id=episode.public_id)
    if request.method == "POST" and form.is_valid() and contact_form.is_valid():
        actions.save_episode_plan(actor=user, episode=episode, values=form.values(),
                                  instruments=form.cleaned_data["instruments"])
        actions.set_questionnaire_email(actor=user, client=client,
                                        email=contact_form.cleaned_data["email"])
        messages.success(request, "This episode's questionnaire schedule is saved.")
        return redirect("clients:episode", episode_id=episode.public_id)
    return render(request, "outcomes/episode_plan.html", {
        "episode": episode, "client": client, "form": form, "contact_form": contact_form,
        "own": own, "opted_out": bool(contact and contact.opted_out_at),
    })


# ---- response rates --------------------------------------------------------------------------

RATE_POINTS = (
    (TimePoint.INTAKE, "Intake"), (TimePoint.SESSION, "Before sessions"),
    (TimePoint.END, "End of treatment"), (TimePoint.FOLLOW_UP_1, "1-month follow-up"),
    (TimePoint.FOLLOW_UP_3, "3-month follow-up"), (TimePoint.FOLLOW_UP_6, "6-month follow-up"),
    (TimePoint.FOLLOW_UP_12, "12-month follow-up"),
)


@dataclass
class Rate:
    label: str
    answered: int = 0
    missed: int = 0
    opted_out: int = 0
    open: int = 0

    @property
    def asked(self) -> int:
        """Closed questions only: an open one may still be answered."""
        return self.answered + self.missed + self.opted_out

    @property
    def percent(self) -> int | None:
        return round(100 * self.answered / self.asked) if self.asked else None


@dataclass
class RateRow:
    name: str
    points: list[Rate] = field(default_factory=list)


def _empty_points() -> dict[str, Rate]:
    return {point: Rate(label) for point, label in RATE_POINTS}


def rate_rows(dues: QuerySet[Due], names: dict[int, str]) -> tuple[RateRow, list[RateRow]]:
    """The whole (clinic or caseload) row and one row per therapist, from one grouped query."""
    total = _empty_points()
    per: dict[int, dict[str, Rate]] = {}
    grouped = (dues.exclude(state=DueState.CANCELLED)
               .values("episode__therapist_id", "time_point", "state")
               .annotate(n=Count("pk")).order_by())
    for row in grouped:
        therapist_points = per.setdefault(row["episode__therapist_id"], _empty_points())
        for bucket in (total[row["time_point"]], therapist_points[row["time_point"]]):
            name = {"due": "open"}.get(row["state"], row["state"])
            setattr(bucket, name, getattr(bucket, name) + row["n"])
    rows = [RateRow(names.get(tid, "—"), list(points.values())) for tid, points in per.items()]
    rows.sort(key=lambda r: r.name)
    return RateRow("All", list(total.values())), rows


@login_required
def response_rates(request: HttpRequest) -> HttpResponse:
    """Admins see their clinic by therapist; a therapist sees their own caseload."""
    user = _user(request)
    clinic = access.admin_clinics(user).order_by("name").first()
    if clinic is not None:
        dues = Due.objects.filter(episode__client__clinic=clinic)
        scope = clinic.name
    elif access.clinics_where_user_treats(user).exists():
        dues = Due.objects.filter(episode__therapist=user,
                                  episode__client__clinic__in=access.clinics_where_user_treats(user))
        scope = "your clients"
    else:
        raise Http404("Not found")
    therapist_ids = dues.values_list("episode__therapist_id", flat=True).distinct()
    names = {u.pk: (u.get_full_name() or u.get_username())
             for u in User.objects.filter(pk__in=therapist_ids)}
    overall, rows = rate_rows(dues, names)
    record_event_now(actor=user, event_type="outcomes.response_rates_viewed",
                     clinic=clinic, changes={"scope": "clinic" if clinic else "own"})
    return render(request, "outcomes/response_rates.html", {
        "scope": scope, "overall": overall, "rows": rows if clinic is not None else [],
        "labels": [label for _, label in RATE_POINTS], "is_admin": clinic is not None,
    })


# ---- the client's opt-out --------------------------------------------------------------------

@never_cache
@require_http_methods(["GET", "POST"])
def opt_out_by_link(request: HttpRequest, token: str) -> HttpResponse:
    """From the emailed link, no sign-in: the token is the credential, and is not used up."""
    try:
        due = redeem(token)
    except LinkError as error:
        return render(request, "outcomes/opt_out.html", {"problem": error.message}, status=410)
    client = due.episode.client
    if request.method == "POST":
        actions.opt_out(client=client, actor=None, via="link")
        return render(request, "outcomes/opt_out.html", {"done": True, "clinic": client.clinic})
    return render(request, "outcomes/opt_out.html", {"clinic": client.clinic})


@login_required
@require_http_methods(["GET", "POST"])
def opt_out_portal(request: HttpRequest, record_id: str) -> HttpResponse:
    user = _user(request)
    client: Client = access.get_own_client_record(user, record_id)
    if request.method == "POST":
        if request.POST.get("choice") == "start":
            actions.opt_in(client=client, actor=user)
            messages.success(request, "Questionnaires are on again. Thank you.")
        else:
            actions.opt_out(client=client, actor=user, via="portal")
            messages.success(request, "You will not get any more questionnaires. You can turn "
                                      "them on again here at any time.")
        return redirect("outcomes:opt_out_portal", record_id=client.public_id)
    contact = QuestionnaireContact.objects.filter(client=client).first()
    return render(request, "outcomes/opt_out_portal.html", {
        "client": client, "opted_out": bool(contact and contact.opted_out_at)})

