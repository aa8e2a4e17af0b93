from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from relisten.api import api
from relisten.home import home


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("", include("relisten.accounts.urls")),
    path("", include("relisten.clients.urls")),
    path("", include("relisten.clients.portal_urls")),
    path("", include("relisten.recordings.urls")),
    path("", include("relisten.transcripts.urls")),
    path("", include("relisten.review.urls")),  # time-stamped comments
    path("", include("relisten.supervision.urls")),  # assignments, sign-off
    path("fidelity/", include("relisten.fidelity.urls")),  # scales, ratings, calibration
    path("", include("relisten.outcomes.urls")),  # questionnaires, plans, alerts
    path("api/v1/", api.urls),
]
