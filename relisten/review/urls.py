from django.urls import path

from relisten.review import views

app_name = "review"
urlpatterns = [
    # GET: the comments panel; POST: a new comment on the recording.
    path("recordings/<uuid:recording_id>/comments/", views.comments, name="comments"),
    path("comments/<uuid:comment_id>/reply", views.reply, name="comment_reply"),
    path("comments/<uuid:comment_id>/edit", views.edit, name="comment_edit"),
    path("comments/<uuid:comment_id>/delete", views.delete, name="comment_delete"),
]
