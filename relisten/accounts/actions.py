"""Writes to people, clinics and roles; each saves and audits in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from relisten.accounts.models import Clinic, Membership, Role, User
from relisten.audit.log import record_event
from relisten.consent.actions import create_default_texts


def create_clinic(*, actor: User | None, name: str) -> Clinic:
    with transaction.atomic():
        clinic = Clinic.objects.create(name=name)
        create_default_texts(clinic, actor)
        record_event(actor=actor, event_type="clinic.created", target=clinic, clinic=clinic)
    return clinic


def create_user(
    *, actor: User | None, clinic: Clinic, username: str, password: str | None,
    display_name: str = "", email: str = "", roles: Sequence[str] = (),
) -> User:
    """A new person with roles in one clinic; password None leaves sign-in disabled."""
    with transaction.atomic():
        user = User(username=username, display_name=display_name, email=email)
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.save()
        # No username in the row: client usernames often contain the client's name.
        record_event(actor=actor, event_type="user.created", target=user, clinic=clinic)
        for role in roles:
            grant_role(actor=actor, clinic=clinic, user=user, role=role)
    return user


def grant_role(*, actor: User | None, clinic: Clinic, user: User, role: str) -> Membership:
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}")
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(user=user, clinic=clinic, role=role)
        if not created and not membership.active:
            membership.active = True
            membership.save(update_fields=["active"])
            created = True
        if created:
            record_event(
                actor=actor, event_type="role.granted", target=membership, clinic=clinic,
                changes={"user": str(user.public_id), "role": role},
            )
    return membership


def revoke_role(*, actor: User, membership: Membership) -> None:
    with transaction.atomic():
        if not membership.active:
            return
        membership.active = False
        membership.save(update_fields=["active"])
        record_event(
            actor=actor, event_type="role.revoked", target=membership, clinic=membership.clinic,
            changes={"user": str(membership.user.public_id), "role": membership.role},
        )


def set_password(*, actor: User, user: User, password: str) -> None:
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        record_event(actor=actor, event_type="user.password_set", target=user)
