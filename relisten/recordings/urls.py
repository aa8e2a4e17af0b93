from django.urls import include, path

from relisten.recordings import capture

# Two route files so the upload (tus) server and playback/management pages can grow apart.
app_name = "recordings"
urlpatterns = [
    path("", include("relisten.recordings.tus_urls")),
    path("", include("relisten.recordings.media_urls")),
    # The session page's capture panel follows its uploads here until they are READY.
    path("sessions/<uuid:session_id>/capture-status/", capture.capture_status,
         name="capture_status"),
]
