from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Operator commands (serve, worker, demo) that belong to no single domain."""

    name = "relisten.core"
    label = "core"
