from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password

from relisten.accounts.models import Role, User


class CodeForm(forms.Form):
    """The second step at sign-in: a code from the app, or a recovery code."""

    code = forms.CharField(
        label="Code from your authenticator app (or a recovery code)", max_length=40,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text",
                                      "autofocus": True, "spellcheck": "false",
                                      "autocapitalize": "off"}),
        error_messages={"required": "Please type the code your app shows."},
    )


class EnrolmentCodeForm(forms.Form):
    """Proves the app holds the new key; only the six digits make sense here."""

    code = forms.CharField(
        label="The 6-digit code your app shows", max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                      "autofocus": True}),
        error_messages={"required": "Please type the 6-digit code your app shows."},
    )


class NewPersonForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="What they type to sign in.",
                               validators=[User.username_validator])
    display_name = forms.CharField(max_length=150, label="Name shown to colleagues")
    email = forms.EmailField(required=False)
    roles = forms.MultipleChoiceField(
        choices=[(r.value, r.label) for r in Role if r != Role.CLIENT],
        widget=forms.CheckboxSelectMultiple,
        help_text="Clients get their sign-in from their therapist, on the client's page.",
    )
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        label="Initial password", help_text="At least 12 characters; tell them privately.",
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


class AddRoleForm(forms.Form):
    role = forms.ChoiceField(choices=[(r.value, r.label) for r in Role if r != Role.CLIENT])


class ConsentTextForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), label="New wording",
                           min_length=20, max_length=5000)
