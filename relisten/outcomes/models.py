"""Routine outcome monitoring: instruments (FHIR Questionnaires), what is due when, the answers.

The framework-free rules (scoring, bands, reliable change, FHIR mapping) live in
relisten/lib/outcomes/; these rows hold the clinic's data. Answers are stored per item.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from relisten.accounts.models import Clinic
from relisten.clients.models import Client, Episode, TherapySession


class Instrument(models.Model):
    """One version of a questionnaire: its FHIR R4 Questionnaire and scoring rules.
    `clinic` NULL: built in (PHQ-9, GAD-7) and offered to every clinic."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="instruments")
    code = models.SlugField(max_length=40, help_text="stable across versions, e.g. phq-9")
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=200)
    loinc_panel = models.CharField(max_length=20, blank=True)
    loinc_total = models.CharField(max_length=20, blank=True)
    questionnaire = models.JSONField(help_text="FHIR R4 Questionnaire resource")
    scoring = models.JSONField(default=dict, help_text="bands, caseness, reliable change, risk")
    copyright = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "code", "version"],
                                    name="instrument_version_per_clinic"),
            models.UniqueConstraint(fields=["code", "version"], condition=models.Q(clinic=None),
                                    name="builtin_instrument_version"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"


class TimePoint(models.TextChoices):
    INTAKE = "intake", "Intake"
    SESSION = "session", "Before a session"
    END = "end", "End of treatment"
    FOLLOW_UP_1 = "fu1", "1-month follow-up"
    FOLLOW_UP_3 = "fu3", "3-month follow-up"
    FOLLOW_UP_6 = "fu6", "6-month follow-up"
    FOLLOW_UP_12 = "fu12", "12-month follow-up"


class MeasurementPlan(models.Model):
    """When questionnaires are due: the clinic's default (episode NULL) or one episode's own."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="measurement_plans")
    episode = models.OneToOneField(Episode, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="measurement_plan")
    instruments = models.ManyToManyField(Instrument, related_name="+")
    at_intake = models.BooleanField(default=True)
    every_n_sessions = models.PositiveSmallIntegerField(
        default=1, help_text="0: not before sessions; 1: before every session; n: every n-th")
    at_end = models.BooleanField(default=True)
    follow_up_months = models.JSONField(default=list, help_text="e.g. [1, 3, 6, 12]")
    reminder_days = models.JSONField(default=list, help_text="days after due, e.g. [0, 3, 7]")
    link_valid_days = models.PositiveSmallIntegerField(default=14)
    show_client_chart = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clinic"], condition=models.Q(episode=None),
                                    name="one_default_plan_per_clinic"),
        ]

    def __str__(self) -> str:
        return f"measurement plan {self.public_id}"


class DueState(models.TextChoices):
    DUE = "due", "Due"
    ANSWERED = "answered", "Answered"
    MISSED = "missed", "Not answered in time"
    OPTED_OUT = "opted_out", "Client opted out"
    CANCELLED = "cancelled", "Cancelled"


class Due(models.Model):
    """One questionnaire the client is asked to answer at one time point."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    episode = models.ForeignKey(Episode, on_delete=models.PROTECT, related_name="dues")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="dues")
    time_point = models.CharField(max_length=10, choices=TimePoint.choices)
    session = models.ForeignKey(TherapySession, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="dues")
    due_at = models.DateTimeField(db_index=True)
    state = models.CharField(max_length=10, choices=DueState.choices, default=DueState.DUE,
                             db_index=True)
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    last_reminded_at = models.DateTimeField(null=True, blank=True)
    draft_answers = models.JSONField(default=dict, blank=True,
                                     help_text="linkId -> answer, kept while the client answers")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at"]
        constraints = [
            # Two partial constraints rather than nulls_distinct=False, which SQLite ignores.
            models.UniqueConstraint(fields=["episode", "instrument", "time_point", "session"],
                                    condition=models.Q(session__isnull=False),
                                    name="one_due_per_session_point"),
            # Intake, end and follow-ups: once per episode. (A session's due names its session.)
            models.UniqueConstraint(fields=["episode", "instrument", "time_point"],
                                    condition=models.Q(session__isnull=True)
                                    & ~models.Q(time_point="session"),
                                    name="one_due_per_point"),
        ]

    def __str__(self) -> str:
        return f"due {self.public_id}"


class AnswerLink(models.Model):
    """A single-use, expiring link that opens one Due without an account. Only the token's
    SHA-256 is stored; the token itself exists only in the message sent to the client."""

    due = models.ForeignKey(Due, on_delete=models.CASCADE, related_name="links")
    token_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"answer link for {self.due_id}"


class Source(models.TextChoices):
    LINK = "link", "Emailed link"
    PORTAL = "portal", "Client portal"
    STAFF = "staff", "Entered by staff"
    IMPORT = "import", "Imported (FHIR)"


class Response(models.Model):
    """A completed questionnaire: per-item answers, the total and band as scored then."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    episode = models.ForeignKey(Episode, on_delete=models.PROTECT, related_name="responses")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="responses")
    due = models.OneToOneField(Due, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="response")
    time_point = models.CharField(max_length=10, choices=TimePoint.choices)
    session = models.ForeignKey(TherapySession, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="responses")
    answered_at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    total = models.IntegerField()
    band = models.CharField(max_length=40, blank=True)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["answered_at"]

    def __str__(self) -> str:
        return f"response {self.public_id}"


class ItemAnswer(models.Model):
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="items")
    link_id = models.CharField(max_length=100)
    # Wide enough for imported questionnaires, whose codes are not always LOINC's short ones.
    code = models.CharField(max_length=100, blank=True, help_text="the item's LOINC code")
    answer_code = models.CharField(max_length=100, blank=True,
                                   help_text="LOINC answer, e.g. LA6568-5")
    value = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["response", "link_id"], name="one_answer_per_item"),
        ]

    def __str__(self) -> str:
        return f"{self.link_id}={self.value}"


class AlertKind(models.TextChoices):
    RISK_ITEM = "risk_item", "Risk item answered above 0 (e.g. PHQ-9 item 9)"
    DETERIORATION = "deterioration", "Reliable deterioration"
    OFF_TRACK = "off_track", "Off-track progress"


class Alert(models.Model):
    """A risk alert must be acknowledged by a person; flags show on the therapist's home."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    episode = models.ForeignKey(Episode, on_delete=models.PROTECT, related_name="alerts")
    response = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="alerts")
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    raised_at = models.DateTimeField(auto_now_add=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                        on_delete=models.PROTECT, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(fields=["response", "kind"], name="one_alert_per_kind"),
        ]

    def __str__(self) -> str:
        return f"alert {self.public_id}"


# ---- SCHEDULE: how questionnaires reach the client, and their opt-out ----------------------

class QuestionnaireContact(models.Model):
    """Where reminder emails go (else the client's portal sign-in email), and whether the client
    asked to stop. Opting out stops every reminder and cancels what is still due."""

    client = models.OneToOneField(Client, on_delete=models.CASCADE,
                                  related_name="questionnaire_contact")
    email = models.EmailField(blank=True)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"questionnaire contact for client {self.client_id}"
# ---- end SCHEDULE ----
