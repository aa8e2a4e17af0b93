from django.apps import AppConfig


class TranscriptsConfig(AppConfig):
    name = "relisten.transcripts"
    label = "transcripts"
    default_auto_field = "django.db.models.BigAutoField"
