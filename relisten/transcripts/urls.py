from django.urls import path, register_converter

from relisten.lib.asr.export import FORMATS
from relisten.transcripts import views


class ExportFormat:
    """Only the formats we write: any other suffix never reaches the view."""

    regex = "|".join(FORMATS)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ExportFormat, "export_format")

app_name = "transcripts"
urlpatterns = [
    path("transcripts/search/", views.search, name="search"),
    # The page belongs to the recording: it shows the run's progress before a transcript exists.
    path("recordings/<uuid:recording_id>/transcript/", views.transcript_page, name="page"),
    path("transcripts/<uuid:transcript_id>/export.<export_format:fmt>", views.export,
         name="export"),
    path("transcripts/<uuid:transcript_id>/segments/<uuid:segment_id>/edit", views.edit_segment,
         name="edit_segment"),
    path("transcripts/<uuid:transcript_id>/speakers/<uuid:speaker_id>/rename",
         views.rename_speaker, name="rename_speaker"),
]
