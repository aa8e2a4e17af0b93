from __future__ import annotations

from collections.abc import Callable

from django.test import Client as HttpClient

from relisten.accounts.models import User
from relisten.core.personas import Cast


def test_therapist_sees_own_client_page(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    http = signed_in(cast.therapist_a)
    response = http.get(f"/clients/{cast.client_a.public_id}/")
    assert response.status_code == 200
    assert b"Cora" in response.content


def test_other_therapist_gets_404(cast: Cast, signed_in: Callable[[User], HttpClient]) -> None:
    http = signed_in(cast.therapist_b)
    assert http.get(f"/clients/{cast.client_a.public_id}/").status_code == 404
