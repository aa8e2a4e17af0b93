from __future__ import annotations

from django import forms

from relisten.consent.models import Purpose

DECISIONS = [("grant", "Agrees"), ("refuse", "Does not agree")]


def encode_versions(versions: dict[str, int]) -> str:
    """The wording versions a page showed, per purpose, for a hidden field."""
    return ";".join(f"{purpose}={version}" for purpose, version in versions.items())


def decode_versions(raw: str) -> dict[str, int]:
    versions: dict[str, int] = {}
    for part in raw.split(";"):
        purpose, _, version = part.partition("=")
        if purpose in Purpose.values and version.isdigit():
            versions[purpose] = int(version)
    return versions


class AttestForm(forms.Form):
    """A therapist records what the client decided on a signed paper form."""

    purpose = forms.ChoiceField(choices=Purpose.choices)
    decision = forms.ChoiceField(choices=DECISIONS, widget=forms.RadioSelect)
    text_version = forms.IntegerField(min_value=1, widget=forms.HiddenInput, required=False)
    # One form serves every purpose, so the page carries the version of each wording it
    # showed; a wording published meanwhile is then caught instead of silently recorded.
    shown_versions = forms.CharField(widget=forms.HiddenInput, required=False)
    paper_form_signed = forms.BooleanField(
        label="I confirm the client signed a paper consent form with this wording.",
        error_messages={"required": "Tick this to confirm a signed form exists."},
    )

    def version_shown(self, purpose: str) -> int | None:
        """The wording version the therapist saw for this purpose, when the page said."""
        explicit: int | None = self.cleaned_data.get("text_version")
        if explicit:
            return explicit
        return decode_versions(self.cleaned_data.get("shown_versions") or "").get(purpose)


class ClientDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=DECISIONS)
    text_version = forms.IntegerField(min_value=1)
