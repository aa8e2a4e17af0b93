from django.urls import path

from relisten.clients import portal
from relisten.consent import views as consent_views

app_name = "portal"
urlpatterns = [
    path("me/", portal.portal_home, name="home"),
    path("me/<uuid:record_id>/", portal.portal_record, name="record"),
    path("me/<uuid:record_id>/consent/", consent_views.my_consent, name="consent"),
    path("me/<uuid:record_id>/consent/<slug:purpose>/", consent_views.my_consent_decide,
         name="consent_decide"),
    path("me/<uuid:record_id>/access/", portal.portal_access_log, name="access_log"),
]
