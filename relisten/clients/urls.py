from django.urls import path

from relisten.clients import sharing, views
from relisten.consent import views as consent_views

app_name = "clients"
urlpatterns = [
    path("clients/", views.client_list, name="list"),
    path("clients/new/", views.client_new, name="new"),
    path("clients/<uuid:client_id>/", views.client_detail, name="detail"),
    path("clients/<uuid:client_id>/edit/", views.client_edit, name="edit"),
    path("clients/<uuid:client_id>/consent/", consent_views.client_consent, name="consent"),
    path("clients/<uuid:client_id>/portal-access/", views.portal_access, name="portal_access"),
    path("clients/<uuid:client_id>/access-log/", views.client_access_log, name="access_log"),
    path("clients/<uuid:client_id>/episodes/new/", views.episode_new, name="episode_new"),
    path("episodes/<uuid:episode_id>/", views.episode_detail, name="episode"),
    path("episodes/<uuid:episode_id>/discharge/", views.episode_discharge, name="discharge"),
    path("episodes/<uuid:episode_id>/sessions/new/", views.session_new, name="session_new"),
    path("sessions/<uuid:session_id>/", views.session_detail, name="session"),
    path("sessions/<uuid:session_id>/edit/", views.session_edit, name="session_edit"),
    path("sessions/<uuid:session_id>/sharing/", sharing.update_sharing, name="session_sharing"),
]
