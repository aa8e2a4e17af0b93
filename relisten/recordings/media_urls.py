from django.urls import path

from relisten.recordings import media

urlpatterns = [
    # No trailing slash: players request the media URL as given, ranges and all.
    path("recordings/<uuid:recording_id>/media", media.media, name="media"),
    path("recordings/<uuid:recording_id>/erase/", media.erase, name="erase"),
]
