"""Routes of the outcomes app (namespace `outcomes`), shared by several owners.

Each owner adds routes only inside their own block below.
"""

from django.urls import path

from relisten.outcomes import (
    answer,  # ANSWER
    fhir_views,  # FHIRWEB
    instrument_views,  # INSTRUMENTS
    plans,  # SCHEDULE
)

app_name = "outcomes"
urlpatterns = [
    # ---- SCHEDULE (measurement plans, response rates, opt-out) ----
    path("outcomes/plan/", plans.clinic_plan, name="clinic_plan"),
    path("episodes/<uuid:episode_id>/outcomes/plan/", plans.episode_plan, name="episode_plan"),
    path("outcomes/response-rates/", plans.response_rates, name="response_rates"),
    path("q/<str:token>/stop/", plans.opt_out_by_link, name="opt_out_link"),
    path("me/<uuid:record_id>/questionnaires/stop/", plans.opt_out_portal,
         name="opt_out_portal"),
    # ---- end SCHEDULE ----

    # ---- ANSWER (client's answer form by link and portal, alerts, charts) ----
    path("q/thanks/", answer.thanks, name="thanks"),
    path("q/<str:token>/", answer.link_answer, name="link_answer"),
    path("q/<str:token>/draft/", answer.link_draft, name="link_draft"),
    path("me/<uuid:record_id>/questionnaires/<uuid:due_id>/", answer.portal_answer,
         name="portal_answer"),
    path("me/<uuid:record_id>/questionnaires/<uuid:due_id>/draft/", answer.portal_draft,
         name="portal_draft"),
    path("outcomes/alerts/<uuid:alert_id>/", answer.alert_page, name="alert"),
    path("outcomes/caseload/", answer.caseload, name="caseload"),
    # ---- end ANSWER ----

    # ---- INSTRUMENTS (questionnaire definitions: list, detail, import) ----
    path("outcomes/instruments/", instrument_views.instrument_list, name="instruments"),
    path("outcomes/instruments/import/", instrument_views.instrument_import,
         name="instrument_import"),
    path("outcomes/instruments/<uuid:instrument_id>/", instrument_views.instrument_detail,
         name="instrument"),
    # ---- end INSTRUMENTS ----

    # ---- FHIRWEB (FHIR export of answers, import of a QuestionnaireResponse) ----
    path("outcomes/responses/<uuid:response_id>/fhir.json", fhir_views.response_fhir,
         name="response_fhir"),
    path("episodes/<uuid:episode_id>/outcomes/fhir.json", fhir_views.episode_fhir,
         name="episode_fhir"),
    path("episodes/<uuid:episode_id>/outcomes/import/", fhir_views.fhir_import,
         name="fhir_import"),
    # ---- end FHIRWEB ----
]
