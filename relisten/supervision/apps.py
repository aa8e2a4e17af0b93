from django.apps import AppConfig


class SupervisionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "relisten.supervision"
    label = "supervision"
    verbose_name = "Supervision"
