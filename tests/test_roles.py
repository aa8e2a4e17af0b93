"""Roles belong to a clinic: the same person can be a therapist here and an admin there."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client as HttpClient

from relisten import access
from relisten.accounts.actions import grant_role, revoke_role
from relisten.accounts.models import Membership, Role, User
from relisten.core.personas import Cast


def test_roles_are_per_clinic(cast: Cast, signed_in: Callable[[User], HttpClient]) -> None:
    tess = cast.therapist_a
    grant_role(actor=None, clinic=cast.other_clinic, user=tess, role=Role.ADMIN)
    http = signed_in(tess)
    # Admin in the other clinic: manages its people...
    assert http.get(f"/clinics/{cast.other_clinic.public_id}/people/").status_code == 200
    # ...but is no admin in her own clinic, where she is a therapist.
    assert http.get(f"/clinics/{cast.clinic.public_id}/people/").status_code == 404
    assert list(access.clinics_where_user_treats(tess)) == [cast.clinic]
    # Her admin role elsewhere opens no clinical content there.
    other_client_count = access.clients_for_user(tess).filter(clinic=cast.other_clinic).count()
    assert other_client_count == 0


def test_revoking_a_role_takes_effect_at_once(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    http = signed_in(cast.therapist_a)
    url = f"/clients/{cast.client_a.public_id}/"
    assert http.get(url).status_code == 200
    membership = Membership.objects.get(user=cast.therapist_a, clinic=cast.clinic,
                                        role=Role.THERAPIST)
    revoke_role(actor=cast.admin, membership=membership)
    assert http.get(url).status_code == 404
