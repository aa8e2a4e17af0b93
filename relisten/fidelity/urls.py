"""Routes of the fidelity app (namespace `fidelity`), shared by several owners.

Each owner adds routes only inside their own block below.
"""

from django.urls import path

# rating: RATING's views; calibration and trend: STATS' reports
from relisten.fidelity import calibration, rating, scales_views, trend

app_name = "fidelity"
urlpatterns = [
    # ---- SCALES (scale library: list, detail, import, export, builder, retire) ----
    path("scales/", scales_views.scale_list, name="scales"),
    path("scales/import/", scales_views.scale_import, name="scale_import"),
    path("scales/new/", scales_views.scale_builder, name="scale_new"),
    path("scales/<uuid:scale_id>/", scales_views.scale_detail, name="scale"),
    path("scales/<uuid:scale_id>/export.<str:fmt>", scales_views.scale_export,
         name="scale_export"),
    path("scales/<uuid:scale_id>/edit/", scales_views.scale_builder, name="scale_edit"),
    path("scales/<uuid:scale_id>/retire/", scales_views.scale_retire, name="scale_retire"),
    # ---- end SCALES ----

    # ---- RATING (rating form, autosave, evidence, comparison) ----
    path("recordings/<uuid:recording_id>/ratings/start", rating.rating_start,
         name="rating_start"),
    path("ratings/<uuid:rating_id>/", rating.rating_page, name="rating"),
    path("ratings/<uuid:rating_id>/answer", rating.rating_answer, name="rating_answer"),
    path("ratings/<uuid:rating_id>/evidence", rating.rating_evidence, name="rating_evidence"),
    path("ratings/<uuid:rating_id>/complete", rating.rating_complete, name="rating_complete"),
    path("ratings/<uuid:rating_id>/reopen", rating.rating_reopen, name="rating_reopen"),
    path("evidence/<uuid:evidence_id>/delete", rating.evidence_delete, name="evidence_delete"),
    path("sessions/<uuid:session_id>/ratings/", rating.compare, name="compare"),
    # ---- end RATING ----

    # ---- STATS (calibration and fidelity-over-time reports, CSV) ----
    path("reports/", trend.reports, name="reports"),
    path("calibration/<uuid:clinic_id>/", calibration.calibration_index,
         name="calibration_index"),
    path("calibration/<uuid:clinic_id>/<uuid:scale_id>/", calibration.calibration_report,
         name="calibration"),
    path("calibration/<uuid:clinic_id>/<uuid:scale_id>/reference/",
         calibration.calibration_reference, name="calibration_reference"),
    path("over-time/episode/<uuid:episode_id>/", trend.episode_trend, name="episode_trend"),
    path("over-time/episode/<uuid:episode_id>/fidelity.csv", trend.episode_trend_csv,
         name="episode_trend_csv"),
    path("over-time/person/<uuid:user_id>/", trend.person_trend, name="person_trend"),
    path("over-time/person/<uuid:user_id>/fidelity.csv", trend.person_trend_csv,
         name="person_trend_csv"),
    # ---- end STATS ----

    # ---- SUPERVISION (if its routes live under fidelity; its own app has its own urls.py) ----
    # ---- end SUPERVISION ----
]
