from django.urls import path

from relisten.recordings import tus

# tus 1.0.0: POST to the collection creates; HEAD/PATCH/DELETE on the upload's own URL.
urlpatterns = [
    path("uploads/", tus.upload_create, name="upload_create"),
    path("uploads/<uuid:upload_id>/", tus.upload, name="upload"),
]
