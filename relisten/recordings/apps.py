from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "relisten.recordings"
    label = "recordings"
    default_auto_field = "django.db.models.BigAutoField"
