"""People, clinics (tenants) and the roles a person holds in each clinic."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Clinic admin"
    THERAPIST = "therapist", "Therapist"
    TRAINEE = "trainee", "Trainee therapist"
    SUPERVISOR = "supervisor", "Supervisor"
    CLIENT = "client", "Client"
    RESEARCHER = "researcher", "Researcher"


# Roles that may treat clients; an admin without one of these sees no clinical content.
CLINICAL_ROLES = frozenset({Role.THERAPIST, Role.TRAINEE, Role.SUPERVISOR})
TREATING_ROLES = frozenset({Role.THERAPIST, Role.TRAINEE})
# Everyone but clients works with many people's data, so they need a second factor.
STAFF_ROLES = frozenset(set(Role) - {Role.CLIENT})


class User(AbstractUser):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    display_name = models.CharField(max_length=150, blank=True)

    def label(self) -> str:
        return self.display_name or self.get_full_name() or self.get_username()


class Clinic(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    # Clinic policy: whether a newly scheduled session starts shared with the client. Off by
    # default; the therapist can change it per session, and consent still decides access.
    share_sessions_with_clients_by_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="memberships")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "clinic", "role"], name="one_role_once_per_clinic"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.clinic_id}:{self.role}"
