from __future__ import annotations

from django import forms

from relisten.consent.models import Purpose

DECISIONS = [("grant", "Agrees"), ("refuse", "Does not agree")]


class AttestForm(forms.Form):
    """A therapist records what the client decided on a signed paper form."""

    purpose = forms.ChoiceField(choices=Purpose.choices)
    decision = forms.ChoiceField(choices=DECISIONS, widget=forms.RadioSelect)
    text_version = forms.IntegerField(min_value=1, widget=forms.HiddenInput, required=False)
    paper_form_signed = forms.BooleanField(
        label="I confirm the client signed a paper consent form with this wording.",
        error_messages={"required": "Tick this to confirm a signed form exists."},
    )


class ClientDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=DECISIONS)
    text_version = forms.IntegerField(min_value=1)
