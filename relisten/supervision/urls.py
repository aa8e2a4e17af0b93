from django.urls import path

from relisten.supervision import views

app_name = "supervision"
urlpatterns = [
    path("clinics/<uuid:clinic_id>/supervision/", views.assignments, name="assignments"),
    path("supervision-assignments/<uuid:assignment_id>/end/", views.assignment_end,
         name="assignment_end"),
    path("sessions/<uuid:session_id>/sign-off/", views.sign_off, name="sign_off"),
    path("sessions/<uuid:session_id>/reopen/", views.reopen, name="reopen"),
]
