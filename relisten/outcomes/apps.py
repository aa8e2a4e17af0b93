from typing import Any

from django.apps import AppConfig
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.signals import post_migrate


def _load_builtin_instruments(sender: AppConfig, using: str = DEFAULT_DB_ALIAS,
                              **kwargs: Any) -> None:
    """After migrate (and after a test flush), make sure PHQ-9 and GAD-7 are in the database.

    A signal rather than a data migration, as for the fidelity scales: an improved shipped
    file needs no new migration, and a flushed test database gets the instruments back.
    """
    from relisten.outcomes.builtin import load_builtin_instruments
    from relisten.outcomes.models import Instrument

    if using != DEFAULT_DB_ALIAS:
        return
    if Instrument._meta.db_table not in connections[using].introspection.table_names():
        return  # migrated backwards past the outcomes tables
    load_builtin_instruments()


class OutcomesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "relisten.outcomes"
    label = "outcomes"
    verbose_name = "Outcome monitoring"

    def ready(self) -> None:
        post_migrate.connect(_load_builtin_instruments, sender=self,
                             dispatch_uid="relisten.outcomes.load_builtin_instruments")
        from relisten.outcomes import signals  # SCHEDULE: re-plan dues on session changes

        signals.connect()
