"""The demo clinic's cast. `relisten demo` loads it; the tests use the same people.

Two clinics so that "a user of another clinic" is real; two therapists so that "someone
else's client" is real; an admin with no clinical role so that "admins see no clinical
content" can be checked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from relisten.accounts.actions import create_clinic, create_user
from relisten.accounts.models import Clinic, Role, User
from relisten.clients.actions import create_client, give_portal_access, schedule_session
from relisten.clients.models import Client, Modality
from relisten.consent.actions import record_decision
from relisten.consent.models import Method, Purpose
from relisten.consent.policy import current_text
from relisten.supervision.actions import assign_supervisor

DEMO_CLINIC = "Riverside Psychotherapy (demo)"
OTHER_CLINIC = "Hillside Counselling (demo)"


@dataclass(frozen=True)
class Cast:
    clinic: Clinic
    other_clinic: Clinic
    admin: User
    therapist_a: User
    therapist_b: User
    supervisor: User
    trainee: User
    researcher: User
    other_clinic_therapist: User
    client_user_a: User
    client_user_b: User
    client_a: Client
    client_b: Client
    trainee_client: Client


# (attribute, username, display name, roles in the demo clinic)
STAFF = [
    ("admin", "alex.admin", "Alex Admin", [Role.ADMIN]),
    ("therapist_a", "tess.therapist", "Tess Morgan", [Role.THERAPIST]),
    ("therapist_b", "ben.therapist", "Ben Okafor", [Role.THERAPIST]),
    ("supervisor", "sam.supervisor", "Dr Sam Reyes", [Role.SUPERVISOR]),
    ("trainee", "tara.trainee", "Tara Lind", [Role.TRAINEE]),
    ("researcher", "rita.researcher", "Rita Chen", [Role.RESEARCHER]),
]


def grant_consents(actor: User, client: Client, *purposes: str) -> None:
    for purpose in purposes:
        record_decision(actor=actor, client=client, purpose=purpose, granted=True,
                        method=Method.PAPER_ATTESTED, text=current_text(client.clinic_id, purpose))


def build_cast(password: str) -> Cast:
    with transaction.atomic():
        clinic = create_clinic(actor=None, name=DEMO_CLINIC)
        other = create_clinic(actor=None, name=OTHER_CLINIC)
        people = {
            attr: create_user(actor=None, clinic=clinic, username=username, password=password,
                              display_name=name, roles=roles)
            for attr, username, name, roles in STAFF
        }
        # Supervision (issue 6): Sam sees Tess's and Tara's supervised episodes only because
        # the clinic assigned them to Sam; Ben has no supervisor.
        for supervisee in ("therapist_a", "trainee"):
            assign_supervisor(actor=people["admin"], clinic=clinic,
                              supervisor=people["supervisor"], supervisee=people[supervisee])
        outsider = create_user(actor=None, clinic=other, username="otto.other", password=password,
                               display_name="Otto Vance", roles=[Role.THERAPIST, Role.ADMIN])
        client_a = create_client(actor=people["therapist_a"], clinic=clinic, given_name="Cora",
                                 family_name="Client", supervisor=people["supervisor"],
                                 start_date=dt.date.today() - dt.timedelta(days=30))
        client_b = create_client(actor=people["therapist_b"], clinic=clinic, given_name="Colin",
                                 family_name="Bright",
                                 start_date=dt.date.today() - dt.timedelta(days=10))
        trainee_client = create_client(actor=people["trainee"], clinic=clinic, given_name="Tomas",
                                       family_name="Field", supervisor=people["supervisor"])
        user_a = give_portal_access(actor=people["therapist_a"], client=client_a,
                                    username="cora.client", password=password)
        user_b = give_portal_access(actor=people["therapist_b"], client=client_b,
                                    username="colin.client", password=password)
        grant_consents(people["therapist_a"], client_a, Purpose.AUDIO_RECORDING,
                       Purpose.TRANSCRIPTION, Purpose.SUPERVISION_REVIEW, Purpose.CLIENT_ACCESS)
        grant_consents(people["therapist_b"], client_b, Purpose.AUDIO_RECORDING)
        for client, therapist in ((client_a, people["therapist_a"]),
                                  (client_b, people["therapist_b"])):
            episode = client.episodes.get()
            for week in range(2):
                schedule_session(
                    actor=therapist, episode=episode, modality=Modality.IN_PERSON,
                    scheduled_at=timezone.now() - dt.timedelta(days=14 - 7 * week),
                )
    return Cast(
        clinic=clinic, other_clinic=other, other_clinic_therapist=outsider,
        client_user_a=user_a, client_user_b=user_b, client_a=client_a, client_b=client_b,
        trainee_client=trainee_client, **people,
    )
