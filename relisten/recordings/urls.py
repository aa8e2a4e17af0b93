from django.urls import include, path

# Two route files so the upload (tus) server and playback/management pages can grow apart.
app_name = "recordings"
urlpatterns = [
    path("", include("relisten.recordings.tus_urls")),
    path("", include("relisten.recordings.media_urls")),
]
