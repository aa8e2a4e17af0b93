from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password

from relisten import access
from relisten.accounts.models import Clinic, User
from relisten.clients.models import Attendance, Modality

DATE = forms.DateInput(attrs={"type": "date"})


class PublicIdChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    """A choice sent as the object's public UUID, like every id in a URL.

    Anything that is not one of the offered choices (a sequential id, a tampered value) gets
    the plain "not one of the choices" message rather than a lecture about UUID syntax.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("to_field_name", "public_id")
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except forms.ValidationError as error:
            if error.code == "invalid_choice":
                raise
            raise forms.ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice"
            ) from None


# ---- supervision (supervision helper): only supervisors the clinic assigned to this therapist -
NOT_ASSIGNED = ("{name} is not assigned to supervise you in this clinic. Your clinic admin "
                "assigns supervisors on the Supervision page.")
NO_SUPERVISOR_ASSIGNED = ("No supervisor is assigned to you yet, so there is no one to choose. "
                          "Your clinic admin assigns supervisors on the Supervision page.")


def _offer_assigned_supervisors(field: forms.Field, supervisors: Any) -> None:
    """`supervisors` should come from access.supervisors_assigned_to(therapist, clinics)."""
    field.queryset = supervisors  # type: ignore[attr-defined]
    field.label_from_instance = User.label  # type: ignore[attr-defined]
    if not supervisors.exists():
        field.help_text = NO_SUPERVISOR_ASSIGNED


class ClientForm(forms.Form):
    given_name = forms.CharField(max_length=100)
    family_name = forms.CharField(max_length=100)
    date_of_birth = forms.DateField(required=False, widget=DATE)
    reference = forms.CharField(max_length=50, required=False, label="Case number (optional)")

    def clean_date_of_birth(self) -> dt.date | None:
        born: dt.date | None = self.cleaned_data.get("date_of_birth")
        if born is not None and born > dt.date.today():
            raise forms.ValidationError("The date of birth cannot be in the future.")
        return born


class NewClientForm(ClientForm):
    clinic = PublicIdChoiceField(
        queryset=Clinic.objects.none(), empty_label=None,
        error_messages={"invalid_choice": "This clinic is not one you work in. Reload the page "
                                          "and try again.",
                        "required": "Choose a clinic."},
    )
    supervisor = PublicIdChoiceField(
        queryset=User.objects.none(), required=False, empty_label="No supervisor"
    )
    start_date = forms.DateField(widget=DATE, initial=dt.date.today, label="Start of care")

    def __init__(
        self, *args: Any, clinics: Any, supervisors: Any, therapist: User, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.therapist = therapist
        self.fields["clinic"].queryset = clinics  # type: ignore[attr-defined]
        _offer_assigned_supervisors(self.fields["supervisor"], supervisors)
        if clinics.count() == 1:
            self.fields["clinic"].widget = forms.HiddenInput()
            self.fields["clinic"].initial = clinics.first()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        supervisor, clinic = data.get("supervisor"), data.get("clinic")
        if supervisor and clinic and not supervisor.memberships.filter(
            clinic=clinic, role="supervisor", active=True
        ).exists():
            self.add_error("supervisor", "This person is not a supervisor in that clinic.")
        elif supervisor and clinic and not access.is_assigned_supervisor(
            supervisor.pk, self.therapist.pk, clinic.pk
        ):
            self.add_error("supervisor", NOT_ASSIGNED.format(name=supervisor.label()))
        return data


class EpisodeForm(forms.Form):
    start_date = forms.DateField(widget=DATE, initial=dt.date.today, label="Start of care")
    supervisor = PublicIdChoiceField(
        queryset=User.objects.none(), required=False, empty_label="No supervisor"
    )

    def __init__(self, *args: Any, supervisors: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _offer_assigned_supervisors(self.fields["supervisor"], supervisors)


class DischargeForm(forms.Form):
    end_date = forms.DateField(widget=DATE, initial=dt.date.today, label="Discharge date")


class SessionForm(forms.Form):
    scheduled_at = forms.DateTimeField(
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        label="Date and time",
    )
    modality = forms.ChoiceField(choices=Modality.choices, initial=Modality.IN_PERSON)


class SessionEditForm(SessionForm):
    attendance = forms.ChoiceField(choices=Attendance.choices)


class PortalAccessForm(forms.Form):
    # The same character rules as every other sign-in name (letters, digits and @.+-_).
    username = forms.CharField(
        max_length=150, help_text="What the client types to sign in.",
        validators=[User.username_validator],
    )
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        label="Initial password",
        help_text="At least 12 characters. Give it to the client privately.",
    )

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("Someone already signs in with this username.")
        return username

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "password" in data:
            try:
                validate_password(data["password"], User(username=data.get("username", "")))
            except forms.ValidationError as error:
                self.add_error("password", error)
        return data
