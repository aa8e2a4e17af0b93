from django.apps import AppConfig


class FidelityConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "relisten.fidelity"
    label = "fidelity"
    verbose_name = "Fidelity rating"
