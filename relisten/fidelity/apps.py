from typing import Any

from django.apps import AppConfig
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.signals import post_migrate


def _load_shipped_scales(sender: AppConfig, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """After migrate (and after a test flush), make sure the shipped scales are in the database.

    A signal rather than a data migration: a data migration runs once, so an improved shipped
    file would need a new migration, and a flushed test database would lose the scales.
    """
    from relisten.fidelity.actions import load_shipped_scales
    from relisten.fidelity.models import Scale

    if using != DEFAULT_DB_ALIAS:
        return
    if Scale._meta.db_table not in connections[using].introspection.table_names():
        return  # migrated backwards past the fidelity tables
    load_shipped_scales()


class FidelityConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "relisten.fidelity"
    label = "fidelity"
    verbose_name = "Fidelity rating"

    def ready(self) -> None:
        post_migrate.connect(_load_shipped_scales, sender=self,
                             dispatch_uid="relisten.fidelity.load_shipped_scales")
