from django.urls import path

from relisten.accounts import views

app_name = "accounts"
urlpatterns = [
    path("accounts/sign-in/", views.SignInView.as_view(), name="login"),
    path("accounts/sign-out/", views.sign_out, name="logout"),
    path("accounts/two-factor/setup/", views.mfa_setup, name="mfa_setup"),
    path("accounts/two-factor/verify/", views.mfa_verify, name="mfa_verify"),
    path("accounts/two-factor/recovery-codes/", views.recovery_codes, name="recovery_codes"),
    path("accounts/security/", views.security, name="security"),
    path("clinics/<uuid:clinic_id>/people/", views.clinic_people, name="clinic_people"),
    path("clinics/<uuid:clinic_id>/consent-texts/", views.consent_texts, name="consent_texts"),
    path("clinics/<uuid:clinic_id>/sharing-default/", views.clinic_sharing_default,
         name="clinic_sharing_default"),
    path("consent-texts/<uuid:text_id>/", views.consent_text_edit, name="consent_text_edit"),
    path("memberships/<uuid:membership_id>/revoke/", views.membership_revoke,
         name="membership_revoke"),
    path("memberships/<uuid:membership_id>/add-role/", views.membership_add_role,
         name="membership_add_role"),
]
